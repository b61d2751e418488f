"""The main page, live: the experiment in the sidebar, the controls, and the run's status, latent space, metrics
and losses, refreshed by one fragment while the run trains in a worker process.

Page structure (issue 8: pages went white with "Cannot set a node at a delta path" when many students trained at
once). Each page has exactly one polling fragment, declared at a fixed place in the page, with a ``run_every``
that never changes during the session (:func:`dashboard.state.refresh.live_every`). The fragment decides *what*
to draw (idle hint, queue position, live run, finished run), never *whether* it is polled, and nothing inside it
calls ``st.rerun()``. Conditional messages above it live inside a container created at a fixed place, so the
fragment's delta path never moves. The controls (Start, Pause, Step, Stop, Reset, Download) are inside the
fragment, so their state follows the run without a full rerun. The training itself runs in worker processes
(:mod:`vaegmm.runs.worker`), so the server's script runs are not slowed by the training's Python.
"""
from __future__ import annotations

import streamlit as st

from dashboard.components.controls import controls, train_anew
from dashboard.components.idle import idle_hint
from dashboard.components.share_link import share_id, share_link
from dashboard.components.run_view import run_view
from dashboard.components.sidebar import link_warnings, sidebar_settings
from dashboard.components.status import cost_line, idle_status, run_note, status_line
from dashboard.state.budget import cost_of, dashboard_limit_s
from dashboard.state.link import current_settings
from dashboard.state.refresh import live_every
from dashboard.state.session import SessionRuns
from dashboard.state.store import run_store, store_problem
from vaegmm.runs.state import TERMINAL
from vaegmm.sweeps.budget import refusal
from dashboard.components.markup import escape_markdown
from vaegmm.model.params import check_settings, config_from_settings, data_note


def live_training(runs: SessionRuns) -> None:
    """The whole live page (below the navigation): sidebar, title, the messages container, the live part."""
    st.sidebar.title("VAE + GMM")
    settings = sidebar_settings()
    problems = check_settings(settings)

    st.title("VAE + GMM: mutual learning, live")
    st.caption("A VAE turns each MNIST image into a code; a Gaussian mixture groups the codes into classes and sends "
               "each class mean back to the VAE as the centre of its prior. Watch the classes form.")
    with st.container(key="page_messages"):  # always here, even when empty: the live part below never moves
        link_warnings(settings)
        if store_problem():
            st.warning(f"Runs are not saved: {escape_markdown(store_problem())}", icon=":material/database:")
        for p in problems:
            st.error(escape_markdown(p), icon=":material/error:")
        note = data_note(settings)
        if note and not problems:
            st.info(note, icon=":material/info:")
    live_page(runs)


def live_page(runs: SessionRuns) -> None:
    """The main page's live part: one fragment, polled every :func:`live_every` seconds (fixed for the session, see
    the module docstring), drawing the controls and whatever the current run has to show."""

    @st.fragment(run_every=live_every())  # constant for the session
    def live():
        settings = current_settings()
        problems = check_settings(settings)
        limit = dashboard_limit_s()
        cost = None if problems else cost_of(config_from_settings(settings), run_store())
        refused = refusal(cost, limit) if cost is not None else ""  # whatever the URL says: Start is refused
        entry = runs.current
        snap = entry.run.snapshot() if entry is not None else None
        controls(runs, snap, problems + ([refused] if refused else []))
        if refused:
            st.error(escape_markdown(refused), icon=":material/block:")
        elif cost is not None and (snap is None or snap.state in TERMINAL):
            cost_line(cost, limit)
        if entry is None:
            idle_status(settings)
            idle_hint()
            return
        run_note(entry)
        share_link(entry)  # ?run=<id>: others follow this run live (issue 18)
        if entry.reused:
            st.button("Train it anew", icon=":material/replay:", key="btn_anew", on_click=train_anew, args=(runs,),
                      disabled=bool(problems or refused), help="Train these settings now instead of showing the "
                      "earlier run (the same seed gives the same numbers on this server).")
        status_line(snap, share_id(entry))  # named as its share link and its followers name it
        run_view(entry, snap)

    live()
