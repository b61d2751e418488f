"""The live run's controls: Start, Pause/Resume, Step, Stop, Reset and the run's Download, in one row."""
from __future__ import annotations

from typing import Optional

import streamlit as st

from dashboard.state.link import current_settings
from dashboard.state.session import RunEntry, SessionRuns
from dashboard.state.settings import check_settings, config_from_settings
from vaegmm.runs.runner import ACTIVE, IDLE, PAUSED, QUEUED, RUNNING, TERMINAL
from vaegmm.views.export import zip_run


def _start(runs: SessionRuns, step: bool = False) -> None:
    settings = current_settings()
    if check_settings(settings):
        return
    entry = runs.new_run(config_from_settings(settings), settings)
    if step:
        entry.run.step()
    else:
        entry.run.start()


def _step(runs: SessionRuns) -> None:
    cur = runs.current
    if cur is None or cur.run.state in TERMINAL:
        _start(runs, step=True)
    else:
        cur.run.step()


def _pause_resume(runs: SessionRuns) -> None:
    cur = runs.current
    if cur is None:
        return
    if cur.run.state == PAUSED:
        cur.run.resume()
    else:
        cur.run.pause()


def _stop(runs: SessionRuns) -> None:
    if runs.current is not None:
        runs.current.run.stop()
        runs.current.run.join(1.0)  # the worker ends at its next mini-batch: draw the page as "stopped" at once


def controls(runs: SessionRuns, snap, problems: list[str]) -> None:
    """Start, Pause/Resume, Step, Stop, Reset and Download in one row (inside the live fragment: their
    callbacks run first, so the fragment drawn next already shows their effect)."""
    state = snap.state if snap is not None else IDLE
    active = state in ACTIVE
    paused = state == PAUSED
    c = st.columns([1.1, 1.1, 1, 1, 1, 2.2], vertical_alignment="center")
    c[0].button("Start", icon=":material/play_arrow:", type="primary", key="btn_start", on_click=_start,
                args=(runs,), disabled=active or bool(problems), width="stretch",
                help="Start a new run with the settings in the sidebar (earlier runs stay on the Compare page).")
    c[1].button("Resume" if paused else "Pause", icon=":material/play_arrow:" if paused else ":material/pause:",
                key="btn_pause", on_click=_pause_resume, args=(runs,),
                disabled=state not in (RUNNING, PAUSED, QUEUED), width="stretch")
    c[2].button("Step", icon=":material/skip_next:", key="btn_step", on_click=_step, args=(runs,),
                disabled=(not active and bool(problems)), width="stretch", help="One more iteration, then pause.")
    c[3].button("Stop", icon=":material/stop:", key="btn_stop", on_click=_stop, args=(runs,), disabled=not active,
                width="stretch", help="End the run; the iterations finished so far are kept.")
    c[4].button("Reset", icon=":material/restart_alt:", key="btn_reset", on_click=runs.reset,
                disabled=runs.current is None, width="stretch",
                help="Stop and clear the page (the run stays on the Compare page).")
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

