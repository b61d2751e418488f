"""The server's ONE connection to the results store (``$VAEGMM_DB``), cached with ``st.cache_resource``.

Every page uses it: the run recorders of live runs, saved runs (``?run=<id>``), the Compare page's library and
the Sweeps page. A :class:`vaegmm.store.RunStore` is thread-safe, so one per database serves every session. When
the store cannot be opened (a read-only folder, a foreign or corrupt file) the pages say so in one line and work
on, unsaved; the failure is not cached, so a store that becomes usable is used from the next page on.
"""
from __future__ import annotations

from typing import Optional

import streamlit as st

from vaegmm.runs import library
from vaegmm.store import RunStore, default_db_path


class StoreUnavailable(Exception):
    """The results store cannot be opened; the message is one line for the page."""


@st.cache_resource(show_spinner=False)
def _connection(path: str) -> RunStore:
    """The store at ``path``, opened once per server (runs a dead server left ``running`` are marked
    ``interrupted`` on opening). Raises :class:`StoreUnavailable`, which Streamlit does not cache."""
    store, problem = library.open_store(path)
    if store is None:
        raise StoreUnavailable(problem)
    return store


def store_or_problem() -> tuple[Optional[RunStore], str]:
    """``(store, "")``, or ``(None, why)`` when the store at ``$VAEGMM_DB`` cannot be used."""
    try:
        return _connection(str(default_db_path())), ""
    except StoreUnavailable as e:
        return None, str(e)


def run_store() -> Optional[RunStore]:
    """The results store, or None when it cannot be used (:func:`store_problem` says why)."""
    return store_or_problem()[0]


def store_problem() -> str:
    """Why the results store cannot be used, or ``""``."""
    return store_or_problem()[1]
