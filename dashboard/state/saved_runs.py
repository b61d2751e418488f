"""Saved runs of the run library, for the pages: the run a link asks for (``?run=<id>``), a saved run read from
disk once per server, the saved runs as a table, and a link that trains a saved run's settings again."""
from __future__ import annotations

import datetime as dt
from typing import Optional
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from dashboard.state.session import RunEntry
from dashboard.state.store import run_store, store_problem
from vaegmm.model.params import describe, settings_from_config, to_query
from vaegmm.runs import library

RUN_PARAM = "run"


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
def _load(path: str, run_id: int, status: str, n_iterations: int):
    """A saved run read from disk once per (store, id, status, iterations) on this server (shared by all
    sessions: it is read-only)."""
    return library.load_run(run_store(), run_id)


def load_saved(run_id: int):
    """``(SavedRun, "")`` or ``(None, message)``."""
    store = run_store()
    if store is None:
        return None, f"saved runs are not available: {store_problem()}"
    row = store.get_run(run_id) if run_id >= 0 else None
    if row is None:
        return None, f"there is no saved run {run_id} (the link's ?run= names a run of this server's library)"
    n = len(store.iterations([run_id]))
    return _load(str(store.path), run_id, row["status"], n), ""


def saved_entry(run) -> RunEntry:
    """A saved run as a page entry (its settings, its label and its own figure caches)."""
    settings = settings_from_config(run.config, "project-default")
    return RunEntry(run, settings, f"#{run.id} " + describe(settings))


def saved_entries() -> dict:
    """This session's saved runs as page entries, by (id, status, iterations): their figure caches survive the
    refreshes."""
    return st.session_state.setdefault("_saved_entries", {})


def live_link(run) -> str:
    """A link to the live page with this run's settings (to train it again, or change it)."""
    settings = settings_from_config(run.config, "project-default")
    return "./?" + urlencode(to_query(settings))


def saved_runs_table(limit: int = 500) -> Optional[pd.DataFrame]:
    """Every saved run (newest first), with its settings and final metrics; None when there is no store."""
    store = run_store()
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


class _Row:
    """One stored iteration's metrics, shaped like an ``IterationResult`` for the compare chart."""

    def __init__(self, row):
        self.iteration, self.accuracy, self.nmi, self.ari = (int(row["iteration"]), float(row["accuracy"]),
                                                             float(row["nmi"]), float(row["ari"]))


def saved_histories(run_ids: list[int]) -> list[tuple[str, list]]:
    """``[("#<id>", metrics per iteration), ...]`` of saved runs, for the compare chart."""
    its = run_store().iterations(run_ids)
    return [(f"#{i}", [_Row(r) for _, r in its[its["run_id"] == i].sort_values("iteration").iterrows()])
            for i in run_ids]
