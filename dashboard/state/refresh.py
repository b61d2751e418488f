"""Each session's refresh interval: how often a page's one polling fragment reruns (``run_every``).

It is chosen once, when the session first asks, and never changed: a fragment's ``run_every`` must stay constant
for the session (the fix for the white pages of issue 8; see :mod:`dashboard.screens.live_run`).
"""
from __future__ import annotations

from typing import Optional

import streamlit as st

from dashboard.state.browser_session import session_guard
from dashboard.state.session_count import connected_sessions
from vaegmm.core.env import env_float

REFRESH_ENV = "VAEGMM_REFRESH"
PER_SESSION_ENV = "VAEGMM_REFRESH_PER_SESSION"
_EVERY_KEY = "_vaegmm_every"
# The shortest interval ($VAEGMM_REFRESH, default 0.5 s): "panels update at least once a second" must survive one
# refresh the browser could not take in time, 2 x 0.5 s, which 0.7 s cannot.
LIVE_EVERY = env_float(REFRESH_ENV, 0.5, lo=0.2, hi=10.0)


def live_every() -> float:
    """This session's refresh interval, s: ``$VAEGMM_REFRESH`` (0.5 s), or longer on a busy server,
    ``$VAEGMM_REFRESH_PER_SESSION`` (0.15 s) times the sessions connected, so that 30 pages polling do not take
    the server's whole core (one script run costs tens of milliseconds). Fixed at the session's first call."""
    every = st.session_state.get(_EVERY_KEY)
    if every is None:
        session_guard()  # this session is counted before it counts the others
        per = env_float(PER_SESSION_ENV, 0.15, lo=0.0)
        sessions = max(1, connected_sessions().count)
        every = st.session_state[_EVERY_KEY] = round(min(10.0, max(LIVE_EVERY, per * sessions)), 2)
    return every


def chosen_every() -> Optional[float]:
    """This session's interval if it was chosen already, else None (the status line reports it)."""
    return st.session_state.get(_EVERY_KEY)
