"""The main page for ``?run=<id>``: a saved run of the run library, read-only."""
from __future__ import annotations

from typing import Optional

import streamlit as st

from dashboard.components.run_view import run_view
from dashboard.components.status import status_line
from dashboard.state.refresh import live_every
from dashboard.state.saved_runs import live_link, load_saved, saved_entries, saved_entry
from dashboard.components.markup import escape_markdown
from vaegmm.model.params import describe
from vaegmm.runs import library
from vaegmm.runs.state import ENDED


def saved_every(run_id: int, run) -> Optional[float]:
    """The page's refresh interval, chosen once per session and run: :func:`live_every` while the run may still
    be training here, else None (no polling: its widgets still rerun the fragment). After a followed run ends,
    every follower's page is this page (issue 18): a room of them polling a finished run cost the server a
    script run per page every few seconds for nothing."""
    key = f"_vaegmm_saved_every_{int(run_id)}"
    if key not in st.session_state:
        ended = run is not None and run.status in ENDED  # no longer changes
        every = live_every()  # also counts this session among the connected ones
        st.session_state[key] = None if ended else every
    return st.session_state[key]


def saved_run_page(run_id: int) -> None:
    """A saved run, read-only (no controls; the sidebar links to the live page with the same settings). One
    fragment at a fixed place, as on the live page, so a run that is still training on this server fills in."""
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

    @st.fragment(run_every=saved_every(run_id, run))  # constant: see dashboard/screens/live_run.py
    def body():
        current, problem = load_saved(run_id)
        if current is None:
            st.error(escape_markdown(problem), icon=":material/error:")
            return
        entry = saved_entries().setdefault((run_id, current.status, len(current.history)), saved_entry(current))
        snap = current.snapshot()
        status_line(snap, run_id)
        if not current.history or current.labels is None:
            st.warning("This run's latent codes are no longer on disk (the library keeps its folders under "
                       f"${library.CAP_ENV}); its metrics are on the Compare page.", icon=":material/info:")
            return
        run_view(entry, snap)

    body()
