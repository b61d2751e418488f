"""This browser session, created in one place: its runs (:class:`SessionRuns`), kept in ``st.session_state``,
and a session-scoped resource that counts the session as connected and, when Streamlit releases it (the tab's
websocket went away), uncounts it and lets the session's runs go on for the reconnect grace period."""
from __future__ import annotations

from typing import Optional

import streamlit as st

from dashboard.state.session import SessionRuns, reconnect_grace
from dashboard.state.session_count import SessionCounter, connected_sessions
from dashboard.state.store import run_store
from vaegmm.runs.runner import warm_up
from vaegmm.runs.slots import default_slots

_RUNS_KEY = "_vaegmm_runs"


class _SessionGuard:
    """Lives in a session-scoped resource cache: Streamlit calls ``on_release`` when the browser session's
    websocket goes away (tab closed or refreshed, or a network blip). The session's runs then keep training for
    ``$VAEGMM_RECONNECT_GRACE`` seconds: Streamlit keeps a disconnected session for reconnection
    (``server.disconnectedSessionTTL``, 120 s), and a tab that comes back within the grace period finds its runs
    live (:func:`session_runs` reattaches them). After it, they stop."""

    def __init__(self, counter: SessionCounter) -> None:
        self.runs: Optional[SessionRuns] = None
        self._counter = counter  # kept: on_release runs outside a script, where no cache can be asked
        counter.add()

    def release(self) -> None:
        self._counter.remove()
        if self.runs is not None:
            self.runs.release(reconnect_grace())


@st.cache_resource(scope="session", on_release=lambda guard: guard.release(), show_spinner=False)
def session_guard() -> _SessionGuard:
    """This session's guard (made at the session's first script run, and again after a reconnect)."""
    return _SessionGuard(connected_sessions())


@st.cache_resource(show_spinner=False)
def _warm_up_once() -> bool:
    warm_up()  # torch's first optimiser costs seconds: pay it before the first Start
    return True


def session_runs() -> SessionRuns:
    """This browser session's runs, created in one place (every page calls it first)."""
    _warm_up_once()
    runs = st.session_state.get(_RUNS_KEY)
    if runs is None:
        runs = st.session_state[_RUNS_KEY] = SessionRuns(slots=default_slots(), store=run_store())
    if runs.released:
        runs.reattach()
    session_guard().runs = runs
    return runs
