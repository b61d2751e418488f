"""The live run's controls: Start, Pause/Resume, Step, Stop, Reset and the run's Download, in one row. Start goes
through :meth:`dashboard.state.session.SessionRuns.start` (budget, joining an identical live run, reusing an
identical finished one); a joined run is read-only here (only Reset, which leaves it training)."""
from __future__ import annotations

from typing import Optional

import streamlit as st

from dashboard.state.budget import cost_of, dashboard_limit_s
from dashboard.state.link import current_settings
from dashboard.state.session import RunEntry, SessionRuns
from dashboard.state.store import run_store
from vaegmm.model.params import check_settings, config_from_settings
from vaegmm.runs.state import ACTIVE, IDLE, PAUSED, QUEUED, RUNNING, TERMINAL
from vaegmm.views.export import zip_run


def _start(runs: SessionRuns, step: bool = False, fresh: bool = False) -> None:
    settings = current_settings()
    if check_settings(settings):
        return
    config = config_from_settings(settings)
    _, why = runs.start(config, settings, cost=cost_of(config, run_store()), limit_s=dashboard_limit_s(),
                        fresh=fresh, step=step)
    if why:  # the page shows the same refusal from the settings; nothing was queued
        st.session_state["_vaegmm_refused"] = why


def train_anew(runs: SessionRuns) -> None:
    """The "Train it anew" button of a reused finished run: train these settings now."""
    _start(runs, fresh=True)


def _step(runs: SessionRuns) -> None:
    cur = runs.current
    if cur is None or cur.run.state in TERMINAL:
        _start(runs, step=True)
    else:
        cur.run.step()


def _pause_resume(runs: SessionRuns) -> None:
    cur = runs.current
    if cur is None or cur.joined:
        return
    if cur.run.state == PAUSED:
        cur.run.resume()
    else:
        cur.run.pause()


def _stop(runs: SessionRuns) -> None:
    if runs.current is not None and not runs.current.joined:
        runs.current.run.stop()
        runs.current.run.join(1.0)  # the worker ends at its next mini-batch: draw the page as "stopped" at once


def controls(runs: SessionRuns, snap, problems: list[str]) -> None:
    """Start, Pause/Resume, Step, Stop, Reset and Download in one row (inside the live fragment: their
    callbacks run first, so the fragment drawn next already shows their effect)."""
    state = snap.state if snap is not None else IDLE
    active = state in ACTIVE
    paused = state == PAUSED
    follower = runs.current is not None and runs.current.joined  # another session's run: watch, not steer
    c = st.columns([1.1, 1.1, 1, 1, 1, 2.2], vertical_alignment="center")
    c[0].button("Start", icon=":material/play_arrow:", type="primary", key="btn_start", on_click=_start,
                args=(runs,), disabled=active or bool(problems), width="stretch",
                help="Start a new run with the settings in the sidebar (earlier runs stay on the Compare page).")
    c[1].button("Resume" if paused else "Pause", icon=":material/play_arrow:" if paused else ":material/pause:",
                key="btn_pause", on_click=_pause_resume, args=(runs,),
                disabled=state not in (RUNNING, PAUSED, QUEUED) or follower, width="stretch")
    c[2].button("Step", icon=":material/skip_next:", key="btn_step", on_click=_step, args=(runs,),
                disabled=(not active and bool(problems)) or (follower and active), width="stretch",
                help="One more iteration, then pause.")
    c[3].button("Stop", icon=":material/stop:", key="btn_stop", on_click=_stop, args=(runs,),
                disabled=not active or follower, width="stretch",
                help="End the run; the iterations finished so far are kept.")
    c[4].button("Reset", icon=":material/restart_alt:", key="btn_reset", on_click=runs.reset,
                disabled=runs.current is None, width="stretch",
                help="Stop and clear the page (the run stays on the Compare page; a run this page only follows "
                     "goes on training).")
    with c[5]:
        download(runs.current, snap)


def download(entry: Optional[RunEntry], snap) -> None:
    """Zip of the Serket-layout export and history.json, built only when the button is clicked."""
    if entry is None or snap is None or snap.state not in TERMINAL or not snap.history:
        return
    run = entry.run
    state = snap.state

    def build() -> bytes:
        if state not in entry.zip_cache:
            entry.zip_cache[state] = zip_run(run.config, run.history, run.labels, status=state)
        return entry.zip_cache[state]

    st.download_button(f"Download run #{run.id} (zip)", icon=":material/download:", data=build,
                       file_name=f"vaegmm_run{run.id}.zip", mime="application/zip", key=f"dl_{run.id}",
                       width="stretch", on_click="ignore",
                       help="Serket-layout folders (module001_vae, module002_gmm) and history.json.")

