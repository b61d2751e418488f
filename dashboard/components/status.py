"""The status line: a coloured state badge, iteration i of n, time per iteration, the progress bar of the VAE
update, and the queue position or error of the run."""
from __future__ import annotations

import time
from typing import Optional

import streamlit as st

from dashboard.components.formatting import fmt_duration
from dashboard.components.markup import escape_html, escape_markdown
from dashboard.components.metric_cards import metric_cards
from dashboard.state.refresh import chosen_every
from vaegmm.runs.slots import default_slots
from vaegmm.runs.state import FAILED, FINISHED, IDLE, PAUSED, QUEUED, RUNNING, STOPPED
from vaegmm.runs.status_words import iteration_text, per_iteration_text, progress_of, queue_text, run_name
from vaegmm.sweeps.budget import RunCost


def _count(x: float) -> str:
    """``"1.2 M"``, ``"340 k"``, ``"900"``."""
    if x >= 1e9:
        return f"{x / 1e9:.1f} G"
    if x >= 1e6:
        return f"{x / 1e6:.1f} M"
    if x >= 1e4:
        return f"{x / 1e3:.0f} k"
    return f"{x:.0f}"


def cost_line(cost: RunCost, limit_s) -> None:
    """Before Start: what the run will cost (image-steps, seconds at this server's rate) against the limit."""
    limit = "no limit" if limit_s is None else f"limit {fmt_duration(limit_s)} per run"
    st.caption(f"Estimated cost: {_count(cost.vae_image_steps)} VAE image-steps + {_count(cost.gmm_point_steps)} "
               f"GMM point-updates, about **{fmt_duration(cost.seconds)}** of training at this server's speed "
               f"({escape_markdown(cost.basis or 'rough: from BENCHMARKS.md')}; {limit}).",
               help="Image-steps: images x epochs x iterations (each image through the VAE once per epoch); "
                    "GMM point-updates: images x Gibbs sweeps or EM restarts x GMM fits.")


def run_note(entry) -> None:
    """Why this run is shown: joined (another page trains it) or trained earlier (a replay from the library)."""
    if entry is None or not entry.note:
        return
    icon = ":material/group:" if entry.joined else ":material/history:"
    st.info(escape_markdown(entry.note), icon=icon)

STATE_COLOURS = {IDLE: "#888", QUEUED: "#b8860b", RUNNING: "#2e7d32", PAUSED: "#1565c0", FINISHED: "#1b5e20",
                 STOPPED: "#616161", FAILED: "#c62828"}


def _status_html(state: str, text: str, done: int = 0, first: str = "", marks: str = "") -> None:
    """The status line: a coloured state badge and ``text`` (HTML), with the state and timings as data attributes
    for the browser tests (``data-rendered``: the server's clock when the line was drawn; ``data-every``: this
    session's refresh interval, s)."""
    colour = STATE_COLOURS.get(state, "#888")
    every = chosen_every()
    every = "" if every is None else every
    st.markdown(f'<div data-testid="vaegmm-status" data-state="{state}" data-iterations="{done}" '
                f'data-first-result-s="{first}" data-marks="{marks}" data-rendered="{time.time():.3f}" '
                f'data-every="{every}" '
                f'style="font-size:1.05rem"><span style="background:{colour};color:white;border-radius:0.8rem;'
                f'padding:0.1rem 0.6rem;font-weight:600">{state}</span> &nbsp;{text}</div>', unsafe_allow_html=True)


def idle_status(settings: dict) -> None:
    """Before the first Start: the status line, progress bar and metric cards a run will fill, empty. The page
    keeps its layout at Start, and the browser has already loaded the code of these elements: Streamlit's frontend
    fetches and compiles an element's JavaScript the first time one is drawn (the HTML status line, the progress
    bar and the metric cards are eight such files), which on a busy machine delayed the first status after Start
    by seconds (tests/test_classroom.py)."""
    iterations, epochs = settings.get("iterations", 0), settings.get("epochs", 0)
    _status_html(IDLE, f"no run yet · <b>iteration 0 of {iterations}</b> · press <b>Start</b>")
    st.progress(0.0, text=f"epoch 0 of {epochs}")
    metric_cards(None)


def status_line(snap, library_id: Optional[int] = None) -> None:
    """State, iteration i of n, a progress bar for epoch e of E, time per iteration; queue / error messages. The
    words are :mod:`vaegmm.runs.status_words`' (a follower's frame says the same); the run is named by
    ``library_id`` (its share link's id) when it has one."""
    done = snap.iterations_done
    first = "" if snap.first_result_seconds is None else f"{snap.first_result_seconds:.3f}"
    marks = " ".join(f"{k}={v}" for k, v in snap.marks.items())
    _status_html(snap.state, f"{escape_html(run_name(snap, library_id))} · <b>{iteration_text(snap)}</b> · "
                             f"{per_iteration_text(snap)}", done, first, marks)
    if snap.state == QUEUED:
        cap = default_slots().capacity
        st.info(f"Waiting for a free training slot: {queue_text(snap)}. The server trains at most "
                f"{cap} run{'s' if cap != 1 else ''} at a time; this run starts by itself when a slot frees.",
                icon=":material/hourglass_top:")
    frac, text = progress_of(snap)
    st.progress(frac, text=text)
    if snap.state == FAILED:
        st.error(f"The run failed: {escape_markdown(snap.message)}. The iterations finished before are kept below.", icon=":material/error:")
    elif snap.state == STOPPED and snap.message:
        st.caption(f"Stopped: {escape_markdown(snap.message)}.")
