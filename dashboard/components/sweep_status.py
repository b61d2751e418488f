"""The selected sweep's status: a state badge, runs done of all, time left, and Stop / Resume (inside the
page's fragment, so they follow the sweep)."""
from __future__ import annotations

import time

import streamlit as st

from dashboard.components.formatting import fmt_duration
from dashboard.components.markup import escape_html, escape_markdown
from dashboard.state import sweeps
from vaegmm.store import RunStore, StoreError
from vaegmm.sweeps.executors import ExecutorError
from vaegmm.sweeps.manager import get_manager
from vaegmm.sweeps.spec import SweepError

STATE_COLOURS = {"running": "#2e7d32", "finished": "#1b5e20", "stopped": "#616161", "interrupted": "#b8860b",
                 "failed": "#c62828"}


def _stop(store: RunStore, name: str) -> None:
    get_manager().stop(store.path, name)


def _resume(store: RunStore, name: str) -> None:
    try:
        get_manager().resume(store.path, name, sweeps.executor, slots=sweeps.slots())
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
        f'border-radius:0.8rem;padding:0.1rem 0.6rem;font-weight:600">{state}</span> &nbsp;<b>{escape_html(name)}</b> · '
        f'{escape_html(spec.describe())}</div>', unsafe_allow_html=True)
    text = f"{done} of {total} runs done · {running} running now"
    if failed:
        text += f" · {failed} failed"
    if state == "running":
        text += f" · about {fmt_duration(left)} left" if left is not None else " · time left: after the first run"
    st.progress(done / total if total else 0.0, text=text)
    if mgr is not None and mgr.get("error"):
        st.error(f"The sweep ended with an error: {escape_markdown(mgr['error'])}", icon=":material/error:")
    if state == "running" and not here:
        st.caption("Driven by another process (e.g. the command line): it can be stopped only there.")
    elif state == "running":
        st.caption(f"Running on {escape_markdown(mgr['executor'])}; it goes on when you close this tab.")
    c1, c2, _ = st.columns([1, 1, 4])
    c1.button("Stop", icon=":material/stop:", key="sw_stop", on_click=_stop, args=(store, name),
              disabled=not here, width="stretch", help="Ends the sweep within seconds; finished runs are kept.")
    c2.button("Resume", icon=":material/play_arrow:", key="sw_resume", on_click=_resume, args=(store, name),
              disabled=state == "running" or done >= total and state == "finished", width="stretch",
              help="Trains only the runs that are not finished yet.")


