"""The run library in the dashboard: saved runs on the Compare page, a saved run opened read-only with
``?run=<id>`` (main page and Latent explorer), and the store every live run is recorded into.

The store is opened once per server (:func:`library_store`); when it cannot be (a read-only folder, a foreign
file), the pages say so once and everything else works as before, only unsaved.
"""
from __future__ import annotations

import datetime as dt
from typing import Optional
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from vaegmm.runs import library
from vaegmm.model.params import settings_from_config, to_query

from . import charts
from .session import RunEntry
from .settings import describe

RUN_PARAM = "run"


@st.cache_resource(show_spinner=False)
def _store_or_error():
    """``(store, "")`` or ``(None, message)``: the server's results store, opened once."""
    return library.open_store()


def library_store():
    return _store_or_error()[0]


def store_problem() -> str:
    return _store_or_error()[1]


def requested_run() -> Optional[int]:
    """The saved run asked for by ``?run=<id>`` in the link, or None."""
    raw = st.query_params.get(RUN_PARAM)
    if raw is None:
        return None
    try:
        return int(str(raw).strip())
    except ValueError:
        return -1  # shown as "no such run"


@st.cache_resource(show_spinner=False, max_entries=8)
def _load(run_id: int, status: str, n_iterations: int):
    """A saved run read from disk once per (id, status, iterations) on this server (shared by all sessions:
    it is read-only)."""
    return library.load_run(library_store(), run_id)


def load_saved(run_id: int):
    """``(SavedRun, "")`` or ``(None, message)``."""
    store = library_store()
    if store is None:
        return None, f"saved runs are not available: {store_problem()}"
    row = store.get_run(run_id) if run_id >= 0 else None
    if row is None:
        return None, f"there is no saved run {run_id} (the link's ?run= names a run of this server's library)"
    n = len(store.iterations([run_id]))
    return _load(run_id, row["status"], n), ""


def saved_entry(run) -> RunEntry:
    settings = settings_from_config(run.config, "project-default")
    return RunEntry(run, settings, f"#{run.id} " + describe(settings))


def live_link(run) -> str:
    """A link to the live page with this run's settings (to train it again, or change it)."""
    settings = settings_from_config(run.config, "project-default")
    return "./?" + urlencode(to_query(settings))


# ---------------------------------------------------------------------------------------------- Compare
def saved_runs_table(limit: int = 500) -> Optional[pd.DataFrame]:
    """Every saved run (newest first), with its settings and final metrics; None when there is no store."""
    store = library_store()
    if store is None:
        return None
    rows = store.list_runs(newest_first=True, limit=limit)
    if not rows:
        return pd.DataFrame()
    its = store.iterations([r["id"] for r in rows])
    last = its.sort_values("iteration").groupby("run_id").tail(1).set_index("run_id") if len(its) else None
    out = []
    for r in rows:
        c = r["config"]
        s = settings_from_config(library.RunConfig.from_dict(c), r.get("preset") or "project-default")
        final = last.loc[r["id"]] if last is not None and r["id"] in last.index else None
        out.append({
            "run": r["id"], "when": dt.datetime.fromtimestamp(r["created"]).strftime("%Y-%m-%d %H:%M"),
            "source": r["source"], "preset": r.get("preset") or "", "status": r["status"],
            "final accuracy": round(float(final["accuracy"]), 4) if final is not None else None,
            "images": s["n"], "K": s["k"], "D": s["latent"], "alpha": s["alpha"], "GMM": s["gmm"],
            "codes": s["codes"], "feedback": "on" if s["feedback"] else "off", "seed": s["seed"],
            "iterations": int(final["iteration"]) if final is not None else 0,
            "final NMI": round(float(final["nmi"]), 4) if final is not None else None,
            "final ARI": round(float(final["ari"]), 4) if final is not None else None,
            "seconds": round(r["seconds"], 1) if r.get("seconds") else None,
            "settings": describe(s),
        })
    return pd.DataFrame(out)


def compare_saved() -> None:
    """The Compare page's "all saved runs": filters, the table, curves of the chosen runs, links to open them."""
    problem = store_problem()
    if problem:
        st.warning(f"Saved runs are not available: {problem}", icon=":material/database:")
        return
    df = saved_runs_table()
    if df is None or df.empty:
        st.info("No saved run yet: every run started here or with `python -m vaegmm run` is kept.")
        return
    c1, c2, c3, c4 = st.columns([2, 2, 1.4, 2])
    presets = c1.multiselect("Preset", sorted(p for p in df["preset"].unique() if p), key="lib_presets")
    sources = c2.multiselect("Started from", sorted(df["source"].unique()), key="lib_sources")
    days = c3.number_input("Last days", 0, 3650, 0, key="lib_days", help="0: any date")
    text = c4.text_input("Settings contain", key="lib_text", placeholder="e.g. alpha=0.5 or feedback off")
    view = df
    if presets:
        view = view[view["preset"].isin(presets)]
    if sources:
        view = view[view["source"].isin(sources)]
    if days:
        since = (dt.datetime.now() - dt.timedelta(days=int(days))).strftime("%Y-%m-%d %H:%M")
        view = view[view["when"] >= since]
    if text.strip():
        view = view[view["settings"].str.contains(text.strip(), case=False, regex=False)]
    st.caption(f"{len(view)} of {len(df)} saved runs. Open one with its link: the main page shows it read-only "
               f"(`?run=<id>`), the Latent explorer too.")
    view = view.assign(open=[f"./?run={i}" for i in view["run"]],
                       explore=[f"./Latent_explorer?run={i}" for i in view["run"]])
    st.dataframe(view, hide_index=True, width="stretch", column_config={
        "open": st.column_config.LinkColumn("open", display_text="live page"),
        "explore": st.column_config.LinkColumn("explore", display_text="explorer")})
    chosen = st.multiselect("Curves of", list(view["run"])[:200], default=list(view["run"])[:5],
                            key="lib_curves", format_func=lambda i: f"#{i}")
    if chosen:
        its = library_store().iterations(chosen)
        fig = charts.compare_chart([(f"#{i}", _rows_as_history(its[its["run_id"] == i])) for i in chosen],
                                   "accuracy")
        st.plotly_chart(fig, key="lib_compare_chart", config={"displaylogo": False})


class _Row:
    def __init__(self, row):
        self.iteration, self.accuracy, self.nmi, self.ari = (int(row["iteration"]), float(row["accuracy"]),
                                                             float(row["nmi"]), float(row["ari"]))


def _rows_as_history(df) -> list:
    return [_Row(r) for _, r in df.sort_values("iteration").iterrows()]


# ---------------------------------------------------------------------------------------------- ?run=<id>
def saved_run_page(run_id: int) -> None:
    """The main page for ``?run=<id>``: a saved run, read-only (no controls; the sidebar links to the live page
    with the same settings). One fragment at a fixed place, as on the live page, so a run that is still training
    on this server fills in."""
    from . import ui

    run, problem = load_saved(run_id)
    st.sidebar.title("VAE + GMM")
    if run is not None:
        st.sidebar.markdown(f"**Saved run #{run.id}** (read-only)  \n{describe(saved_entry(run).settings)}")
        st.sidebar.link_button("Train these settings again", live_link(run), icon=":material/replay:",
                               width="stretch")
    st.sidebar.link_button("Live training", "./", icon=":material/monitoring:", width="stretch")
    st.title(f"Saved run #{run_id}")
    st.caption("Opened from the run library (the link's `?run=`): what this run showed when it trained, kept on "
               "the server. Nothing can be changed here; **Train these settings again** opens the live page.")

    @st.fragment(run_every=ui.live_every())  # constant: see dashboard/ui.py
    def body():
        current, problem = load_saved(run_id)
        if current is None:
            st.error(problem, icon=":material/error:")
            return
        entries = st.session_state.setdefault("_saved_entries", {})
        entry = entries.setdefault((run_id, current.status, len(current.history)), saved_entry(current))
        snap = current.snapshot()
        ui.status_line(snap)
        if not current.history or current.labels is None:
            st.warning("This run's latent codes are no longer on disk (the library keeps its folders under "
                       f"${library.CAP_ENV}); its metrics are on the Compare page.", icon=":material/info:")
            return
        ui.metric_cards(snap)
        ui.charts_panel(entry, snap)
        m1, m2 = st.columns(2)
        with m1:
            ui.metrics_panel(entry, snap)
        with m2:
            ui.loss_panel(entry, snap)

    body()
