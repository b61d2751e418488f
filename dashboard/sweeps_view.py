"""The Sweeps page: define a grid x seeds, start / stop / resume it, and read its results with statistics.

The sweep runs in a driver thread inside the server (:func:`vaegmm.sweeps.manager.get_manager`), on the local process pool
(sharing the server's run cap with live runs, behind them in the queue) or on Ray when the server was started
with ``$VAEGMM_RAY_ADDRESS``; it writes every result into the store as it arrives. This page only reads the
store and asks the manager, so closing the tab does not stop a sweep, and coming back shows it.

Page structure: the form and Start are in the sidebar (a full rerun); the selected sweep is drawn by ONE fragment
polling at a constant ``run_every`` for the whole session (it decides what to draw, never whether it polls, and
never calls ``st.rerun``); Stop / Resume and the result widgets always live inside that fragment.
"""
from __future__ import annotations

import hashlib
import time
from typing import Optional

import pandas as pd
import streamlit as st

from vaegmm.sweeps.executors import RAY_ADDRESS_ENV, ExecutorError, make_executor
from vaegmm.model.params import FIELDS, PRESET_LABELS
from vaegmm.runs.runner import default_slots
from vaegmm.store import RunStore, StoreError, default_db_path
from vaegmm.sweeps.driver import default_sweep_name
from vaegmm.sweeps.estimate import estimate_seconds, seconds_per_unit, server_calibration
from vaegmm.sweeps.manager import get_manager
from vaegmm.sweeps.results import cell_table, compare_cells, sweep_results
from vaegmm.sweeps.spec import MAX_PAGE_AXES, SweepError, SweepSpec
from vaegmm.core.threads import cpu_count

from . import sweep_charts

POLL_EVERY = 1.0  # seconds; constant for the whole session (see the module docstring)
AXES = [k for k in FIELDS if k != "seed"]
NONE = "(none)"
DEFAULT_AXES = [("feedback", "on,off"), (NONE, ""), (NONE, "")]
STATE_COLOURS = {"running": "#2e7d32", "finished": "#1b5e20", "stopped": "#616161", "interrupted": "#b8860b",
                 "failed": "#c62828"}


# ---------------------------------------------------------------------------------------------- helpers
def db_path():
    return default_db_path()


@st.cache_resource(show_spinner=False)
def _store(path: str) -> RunStore:
    """One reading connection per database for the whole server (thread-safe; errors are not cached)."""
    return RunStore(path)


def open_store() -> Optional[RunStore]:
    """The store, or None after showing its one-line problem (corrupt, foreign, read-only folder...)."""
    try:
        return _store(str(db_path()))
    except StoreError as e:
        st.error(f"The results store cannot be used: {e}", icon=":material/error:")
        return None


def ray_address() -> str:
    import os

    return os.environ.get(RAY_ADDRESS_ENV, "").strip()


def lanes() -> int:
    """Runs at once on the local pool: the server's cap (shared with live runs), at most the cores."""
    return max(1, min(default_slots().capacity, cpu_count()))


def _executor():
    address = ray_address()
    return make_executor(None, address) if address else make_executor(lanes())


def _slots():
    return None if ray_address() else default_slots()


def _fmt_duration(s: Optional[float]) -> str:
    if s is None:
        return "–"
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


# ---------------------------------------------------------------------------------------------- the form
def _init_form() -> None:
    ss = st.session_state
    ss.setdefault("sw_preset", "quick-demo")
    for i, (axis, values) in enumerate(DEFAULT_AXES):
        ss.setdefault(f"sw_axis_{i}", axis)
        ss.setdefault(f"sw_values_{i}", values)
    ss.setdefault("sw_fixed", "")
    ss.setdefault("sw_seeds", 3)
    ss.setdefault("sw_first_seed", 0)
    ss.setdefault("sw_name", "")
    ss.setdefault("sw_error", "")


def parse_fixed(text: str) -> list[tuple[str, str]]:
    """``"n=500 epochs=20"`` -> ``[("n", "500"), ("epochs", "20")]`` (one value each)."""
    out = []
    for part in text.replace(";", " ").split():
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise SweepError(f"fixed settings are name=value pairs separated by spaces, e.g. 'n=500 epochs=20'; "
                             f"got {part!r}")
        if "," in value:
            raise SweepError(f"fixed setting {key} takes one value, got {value!r}: make it an axis to vary it")
        out.append((key, value))
    return out


def spec_from_form() -> SweepSpec:
    """The sweep the sidebar describes; :class:`SweepError` with one line when it cannot run."""
    ss = st.session_state
    grid = []
    for i in range(MAX_PAGE_AXES):
        axis, values = ss[f"sw_axis_{i}"], str(ss[f"sw_values_{i}"]).strip()
        if axis == NONE:
            continue
        if not values:
            raise SweepError(f"axis {axis!r} has no values: write them separated by commas, e.g. 0.5,1,2")
        grid.append((axis, values))
    if not grid:
        raise SweepError("empty grid: choose at least one axis and its values")
    axes = {k for k, _ in grid}
    fixed = [(k, v) for k, v in parse_fixed(ss["sw_fixed"])]
    dup = [k for k, _ in fixed if k in axes]
    if dup:
        raise SweepError(f"{dup[0]} is both an axis and a fixed setting")
    first = int(ss["sw_first_seed"])
    return SweepSpec.from_grid(ss["sw_preset"], fixed + grid, list(range(first, first + int(ss["sw_seeds"]))))


def _start(store: RunStore) -> None:
    ss = st.session_state
    try:
        spec = spec_from_form()
        name = ss["sw_name"].strip() or default_sweep_name(spec)
        get_manager().start(store.path, spec, name, _executor, slots=_slots())
    except (SweepError, StoreError, ExecutorError) as e:
        ss["sw_error"] = str(e)
        return
    ss["sw_error"] = ""
    ss["sw_pick"] = name
    ss["sw_name"] = ""


def estimate_text(spec: SweepSpec, store: RunStore) -> str:
    """How long the sweep takes here, and where the speed comes from."""
    if ray_address():
        return f"on the Ray cluster at {ray_address()}"
    rate, basis = seconds_per_unit(store)
    if rate is None:
        cal = server_calibration()
        if cal.rate is None and not cal.error:
            cal.start()
        if cal.rate is not None:
            rate, basis = cal.rate, "from a calibration run on this server"
        else:
            basis = ("rough: from BENCHMARKS.md, " + ("measuring this server now…" if cal.running else
                                                     "no run measured on this server yet"))
    secs = estimate_seconds(spec, lanes(), rate)
    n = lanes()
    return f"about {_fmt_duration(secs)} at {n} run{'s' if n != 1 else ''} at a time ({basis})"


def sidebar_form(store: RunStore) -> None:
    """Preset, up to three axes with their values, fixed settings, seeds, name; the size and time; Start."""
    _init_form()
    sb = st.sidebar
    sb.title("New sweep")
    sb.selectbox("Start from preset", list(PRESET_LABELS), format_func=PRESET_LABELS.get, key="sw_preset",
                 help="Every run starts from this preset; the axes and fixed settings change it.")
    for i in range(MAX_PAGE_AXES):
        c1, c2 = sb.columns([2, 3])
        c1.selectbox(f"Axis {i + 1}", [NONE] + AXES, key=f"sw_axis_{i}",
                     format_func=lambda k: k if k == NONE else f"{k}: {FIELDS[k].label}")
        c2.text_input(f"Values {i + 1}", key=f"sw_values_{i}", placeholder="e.g. 0.5,1,2",
                      help="Comma-separated, written as in a link: numbers, on/off, em/gibbs, mean/sample, digits "
                           "like 0123.")
    sb.text_input("Fixed settings", key="sw_fixed", placeholder="e.g. n=500 epochs=20",
                  help="name=value pairs (the same names as the axes) applied to every run.")
    c1, c2 = sb.columns(2)
    c1.number_input("Seeds", 1, 100, step=1, key="sw_seeds", help="Every cell runs with each seed.")
    c2.number_input("First seed", 0, 2**31 - 200, step=1, key="sw_first_seed",
                    help="Seeds first..first+N-1. Use seeds you did not tune on to report results.")
    sb.text_input("Name", key="sw_name", placeholder="(automatic)", help="The sweep's name in the store.")
    problem, spec = "", None
    try:
        spec = spec_from_form()
    except SweepError as e:
        problem = str(e)
    if spec is not None:
        sb.markdown(f"**{spec.n_cells} cell{'s' if spec.n_cells != 1 else ''} × {len(spec.seeds)} seed"
                    f"{'s' if len(spec.seeds) != 1 else ''} = {spec.n_runs} runs**, {estimate_text(spec, store)}.")
    else:
        sb.error(problem, icon=":material/error:")
    sb.button("Start sweep", icon=":material/play_arrow:", type="primary", key="sw_start", on_click=_start,
              args=(store,), disabled=spec is None, width="stretch",
              help="Runs in the background on this server: closing the tab does not stop it.")
    if st.session_state.get("sw_error"):
        st.error(st.session_state["sw_error"], icon=":material/error:")


# ---------------------------------------------------------------------------------------------- results
def _version(rows: list) -> str:
    return hashlib.sha1(repr([(r["run_id"], r["status"]) for r in rows]).encode()).hexdigest()


def load(store: RunStore, name: str) -> Optional[dict]:
    """The sweep's tables, recomputed only when one of its runs changed (the fragment polls every second)."""
    info = store.get_sweep(name)
    if info is None:
        return None
    rows = store.sweep_runs(info["id"])
    key = (name, info["status"], _version(rows))
    cache = st.session_state.get("_sw_cache")
    if cache is not None and cache["key"] == key:
        return cache["data"]
    info, runs, its = sweep_results(store, name)
    spec = SweepSpec.from_dict(info["spec"])
    data = {"info": info, "spec": spec, "runs": runs, "its": its, "table": cell_table(spec, runs)}
    st.session_state["_sw_cache"] = {"key": key, "data": data}
    return data


def _stop(store: RunStore, name: str) -> None:
    get_manager().stop(store.path, name)


def _resume(store: RunStore, name: str) -> None:
    try:
        get_manager().resume(store.path, name, _executor, slots=_slots())
        st.session_state["sw_error"] = ""
    except (SweepError, StoreError, ExecutorError) as e:
        st.session_state["sw_error"] = str(e)


def status_panel(store: RunStore, data: dict) -> None:
    info, spec, runs = data["info"], data["spec"], data["runs"]
    name = info["name"]
    mgr = get_manager().status(store.path, name)
    here = mgr is not None and mgr["alive"]
    state = "running" if here else info["status"]
    counts = runs["status"].value_counts().to_dict() if len(runs) else {}
    finished, failed, running = counts.get("finished", 0), counts.get("failed", 0), counts.get("running", 0)
    done, total = finished + failed, spec.n_runs
    secs = runs.loc[runs["status"] == "finished", "seconds"].astype(float)
    left = None
    if state == "running" and len(secs):
        par = (mgr or {}).get("lanes") or max(1, running)
        left = max(0, total - done) * float(secs.median()) / par
    colour = STATE_COLOURS.get(state, "#888")
    st.markdown(
        f'<div data-testid="vaegmm-sweep-status" data-state="{state}" data-done="{done}" data-total="{total}" '
        f'data-rendered="{time.time():.3f}" style="font-size:1.05rem"><span style="background:{colour};color:white;'
        f'border-radius:0.8rem;padding:0.1rem 0.6rem;font-weight:600">{state}</span> &nbsp;<b>{name}</b> · '
        f'{spec.describe()}</div>', unsafe_allow_html=True)
    text = f"{done} of {total} runs done · {running} running now"
    if failed:
        text += f" · {failed} failed"
    if state == "running":
        text += f" · about {_fmt_duration(left)} left" if left is not None else " · time left: after the first run"
    st.progress(done / total if total else 0.0, text=text)
    if mgr is not None and mgr.get("error"):
        st.error(f"The sweep ended with an error: {mgr['error']}", icon=":material/error:")
    if state == "running" and not here:
        st.caption("Driven by another process (e.g. the command line): it can be stopped only there.")
    elif state == "running":
        st.caption(f"Running on {mgr['executor']}; it goes on when you close this tab.")
    c1, c2, _ = st.columns([1, 1, 4])
    c1.button("Stop", icon=":material/stop:", key="sw_stop", on_click=_stop, args=(store, name),
              disabled=not here, width="stretch", help="Ends the sweep within seconds; finished runs are kept.")
    c2.button("Resume", icon=":material/play_arrow:", key="sw_resume", on_click=_resume, args=(store, name),
              disabled=state == "running" or done >= total and state == "finished", width="stretch",
              help="Trains only the runs that are not finished yet.")


def results_panel(data: dict) -> None:
    spec, runs, its, table = data["spec"], data["runs"], data["its"], data["table"]
    fin = runs[runs["status"] == "finished"] if len(runs) else runs
    st.subheader("Results per cell")
    st.caption("Final values after the last iteration, over the seeds finished so far: mean ± std and the 95 % "
               "confidence interval of the mean (Student t).")
    view = pd.DataFrame({
        "cell": table["cell"], "seeds done": table["seeds done"],
        "accuracy": [summarize_text(r, "accuracy") for _, r in table.iterrows()],
        "accuracy 95 % CI": [ci_text(r, "accuracy") for _, r in table.iterrows()],
        "NMI": [summarize_text(r, "nmi") for _, r in table.iterrows()],
        "NMI 95 % CI": [ci_text(r, "nmi") for _, r in table.iterrows()],
        "ARI": [summarize_text(r, "ari") for _, r in table.iterrows()],
        "ARI 95 % CI": [ci_text(r, "ari") for _, r in table.iterrows()],
        "failed": table["failed"], "s / run": table["s / run"].round(1)})
    st.dataframe(view, hide_index=True, width="stretch", key="sw_table")
    c1, c2 = st.columns(2)
    c1.download_button("Download the table (CSV)", table.to_csv(index=False).encode(), key="sw_csv_cells",
                       file_name=f"{data['info']['name']}-cells.csv", mime="text/csv",
                       icon=":material/download:", width="stretch")
    c2.download_button("Download every run (CSV)", runs.to_csv(index=False).encode(), key="sw_csv_runs",
                       file_name=f"{data['info']['name']}-runs.csv", mime="text/csv",
                       icon=":material/download:", width="stretch")

    metric = st.segmented_control("Metric", ["accuracy", "nmi", "ari"], default="accuracy", key="sw_metric",
                                  format_func=sweep_charts.METRIC_NAMES.get, required=True) or "accuracy"
    cells = spec.cells()
    left, right = st.columns(2)
    with left:
        st.markdown(f"**{sweep_charts.METRIC_NAMES[metric]} per iteration**: mean over seeds, 95 % CI band")
        curves = []
        for c in cells:
            ids = fin.loc[fin["cell"] == c.name, "run_id"].tolist()
            curves.append((c.name, [its.loc[its["run_id"] == i, metric].tolist() for i in ids]))
        st.plotly_chart(sweep_charts.curves_chart(curves, metric), key="sw_curves", config={"displaylogo": False})
    with right:
        names = [a.name for a in spec.axes]
        if len(names) >= 2:
            st.markdown(f"**Mean final {sweep_charts.METRIC_NAMES[metric]}** for two axes"
                        + (" (averaged over the others)" if len(names) > 2 else ""))
            h1, h2 = st.columns(2)
            x_axis = h1.selectbox("across", names, index=1, key="sw_heat_x")
            y_axis = h2.selectbox("down", names, index=0, key="sw_heat_y")
            if x_axis == y_axis:
                st.info("Choose two different axes.")
            else:
                means, counts = sweep_charts.heat_means(runs, x_axis, y_axis, metric)
                ax = {a.name: [v.label for v in a.values] for a in spec.axes}
                st.plotly_chart(sweep_charts.heatmap_chart(x_axis, ax[x_axis], y_axis, ax[y_axis], means, counts,
                                                           metric), key="sw_heatmap", config={"displaylogo": False})
        else:
            st.markdown(f"**Final {sweep_charts.METRIC_NAMES[metric]} per cell**: mean, 95 % CI, every run")
            vals = [(c.name, fin.loc[fin["cell"] == c.name, metric].astype(float).tolist()) for c in cells]
            st.plotly_chart(sweep_charts.final_chart(vals, metric), key="sw_final", config={"displaylogo": False})

    st.subheader("Compare two cells")
    if len(cells) < 2:
        st.info("One cell only: add an axis with two or more values to compare settings.")
    else:
        names = [c.name for c in cells]
        c1, c2 = st.columns(2)
        a = c1.selectbox("Cell A", names, index=0, key="sw_cmp_a")
        b = c2.selectbox("Cell B", names, index=1, key="sw_cmp_b")
        if a == b:
            st.info("Choose two different cells.")
        elif len(fin):
            p = compare_cells(spec, runs, a, b, metric)
            st.markdown(f'<div data-testid="vaegmm-sweep-compare">{p.sentence()}</div>', unsafe_allow_html=True)
            st.caption("Paired over the seeds both cells finished: the same seed gives both the same images and "
                       "starting weights, so the differences vary less than the values. The 95 % CI is that of the "
                       "mean difference (Student t); p-values from scipy's paired t-test and Wilcoxon test. With "
                       "fewer than 6 seeds the Wilcoxon test cannot reach p < 0.05.")
    bad = runs[runs["status"].isin(["failed", "stopped", "interrupted"])] if len(runs) else runs
    if len(bad):
        with st.expander(f"Runs that did not finish ({len(bad)})"):
            st.dataframe(bad[["cell", "seed", "status", "message"]], hide_index=True, width="stretch")


def summarize_text(r, m: str) -> str:
    if r["n"] == 0:
        return "–"
    return f"{r[m + ' mean']:.3f}" + (f" ± {r[m + ' std']:.3f}" if r["n"] > 1 else "")


def ci_text(r, m: str) -> str:
    return "–" if r["n"] < 2 else f"{r[m + ' ci low']:.3f} to {r[m + ' ci high']:.3f}"


# ---------------------------------------------------------------------------------------------- page
def page() -> None:
    st.title("Sweeps: settings × seeds, with statistics")
    st.caption("One run of a setting is noise: the same settings with another seed differ by about 0.03 in "
               "accuracy, as much as most effects you look for. A sweep runs every combination of the values you "
               "choose with several seeds, keeps every result, and reports means with 95 % confidence intervals "
               "and paired comparisons.")
    store = open_store()
    if store is None:
        return
    sidebar_form(store)
    sweeps = store.list_sweeps()
    if not sweeps:
        st.info("No sweep yet. Choose a preset, one to three axes and their values and the number of seeds in the "
                "sidebar, then press **Start sweep**. (Sweeps from `python -m vaegmm sweep` appear here too.)",
                icon=":material/arrow_back:")
    names = [s["name"] for s in sweeps]
    if names and st.session_state.get("sw_pick") not in names:
        st.session_state["sw_pick"] = names[0]
    if names:
        by_name = {s["name"]: s for s in sweeps}
        st.selectbox("Sweep", names, key="sw_pick", help="Every sweep in the store, newest first.",
                     format_func=lambda n: f"{n} (started "
                                           f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(by_name[n]['created']))})")

    @st.fragment(run_every=POLL_EVERY)
    def live():
        name = st.session_state.get("sw_pick")
        data = load(store, name) if name else None
        if data is None:
            return
        status_panel(store, data)
        results_panel(data)

    live()
