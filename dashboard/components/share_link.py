"""The share link of a run (issue 18 part 1): ``?run=<id>`` (its library id) as a real link and as text with a
copy button, shown on the run's page as soon as the run has an id (when it takes its training slot). Drawing it changes
nothing on the server: the session registered the run with the follower hub when it started it
(:class:`dashboard.state.session.SessionRuns`)."""
from __future__ import annotations

from typing import Optional

import streamlit as st

from dashboard.components.markup import escape_html
from dashboard.state.saved_runs import RUN_PARAM
from vaegmm.runs.state import ACTIVE, TERMINAL


def share_id(entry) -> Optional[int]:
    """The run's library id (the link's ``?run=``), or None while it has none (queued, or no run library)."""
    run = entry.run
    rid = getattr(run, "library_id", None)
    if rid is None and entry.reused:
        rid = run.id  # a saved run of the library: its id is the library's
    return None if rid is None else int(rid)


def share_url(run_id: int) -> str:
    """The full link when the page knows its own address, else the relative ``./?run=<id>``."""
    base = str(st.context.url or "").split("?")[0].split("#")[0]
    base = base.rstrip("/") + "/" if base else "./"
    return f"{base}?{RUN_PARAM}={int(run_id)}"


def share_link(entry) -> None:
    """The link and a copy button; a note while the run has no id yet."""
    if entry is None:
        return
    rid = share_id(entry)
    state = entry.run.state
    if rid is None:
        if state in ACTIVE:
            st.caption("The share link appears when this run gets its training slot.")
        return
    url = share_url(rid)
    what = "watch this run live (read-only)" if state not in TERMINAL else "open this run (read-only)"
    with st.container(key="share_link"):
        st.markdown(f'<a href="{escape_html(url)}" target="_blank" data-testid="vaegmm-share-link">Share link: '
                    f'<b>?{RUN_PARAM}={rid}</b></a> · anyone who opens it can {what}.', unsafe_allow_html=True)
        st.code(url, language=None, wrap_lines=True)
