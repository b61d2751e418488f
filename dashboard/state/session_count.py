"""How many browser sessions are connected to this server: a counter of our own in a server-wide
``st.cache_resource`` (no private Streamlit API).

A session counts itself once, when its session-scoped resource is made (:mod:`dashboard.state.browser_session`),
and uncounts itself in that resource's ``on_release``: Streamlit clears a session's session-scoped caches when
its websocket goes away (tab closed or reloaded, network cut), and calls ``on_release`` then. A tab that
reconnects runs its script again and so counts itself again.
"""
from __future__ import annotations

import threading

import streamlit as st


class SessionCounter:
    """A thread-safe count (``on_release`` runs on the server's event loop, the pages on script threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    def add(self) -> None:
        with self._lock:
            self._count += 1

    def remove(self) -> None:
        with self._lock:
            self._count = max(0, self._count - 1)

    @property
    def count(self) -> int:
        with self._lock:
            return self._count


@st.cache_resource(show_spinner=False)
def connected_sessions() -> SessionCounter:
    """The server's one counter of connected browser sessions."""
    return SessionCounter()
