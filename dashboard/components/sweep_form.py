"""The Sweeps page's sidebar form: a preset, up to three axes with their values, fixed settings, seeds and a
name; the sweep's size and how long it takes here; Start (a full rerun: the form lives outside the fragment)."""
from __future__ import annotations

import streamlit as st

from dashboard.components.formatting import fmt_duration
from dashboard.state import sweeps
from dashboard.components.markup import escape_markdown
from vaegmm.model.params import FIELDS, PRESET_LABELS
from vaegmm.store import RunStore, StoreError
from vaegmm.sweeps.executors import ExecutorError
from vaegmm.sweeps.driver import default_sweep_name
from vaegmm.sweeps.estimate import estimate_seconds, rate_or_calibration, seconds_per_unit
from vaegmm.sweeps.manager import get_manager
from vaegmm.sweeps.spec import MAX_PAGE_AXES, SweepError, SweepSpec

AXES = [k for k in FIELDS if k != "seed"]
NONE = "(none)"
DEFAULT_AXES = [("feedback", "on,off"), (NONE, ""), (NONE, "")]


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
        get_manager().start(store.path, spec, name, sweeps.executor, slots=sweeps.slots())
    except (SweepError, StoreError, ExecutorError) as e:
        ss["sw_error"] = str(e)
        return
    ss["sw_error"] = ""
    ss["sw_pick"] = name
    ss["sw_name"] = ""


def estimate_text(spec: SweepSpec, store: RunStore) -> str:
    """How long the sweep takes here, and where the speed comes from."""
    if sweeps.ray_address():
        return f"on the Ray cluster at {sweeps.ray_address()}"
    rate, basis = rate_or_calibration(*seconds_per_unit(store))
    secs = estimate_seconds(spec, sweeps.lanes(), rate)
    n = sweeps.lanes()
    return f"about {fmt_duration(secs)} at {n} run{'s' if n != 1 else ''} at a time ({basis})"


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


def start_error() -> None:
    """Why the last Start sweep or Resume failed (main area, above the sweep list), if it did."""
    if st.session_state.get("sw_error"):
        st.error(escape_markdown(st.session_state["sw_error"]), icon=":material/error:")


