"""A selectbox over this session's runs."""
from __future__ import annotations

from typing import Optional

import streamlit as st

from dashboard.state.session import RunEntry, SessionRuns


def pick_run(runs: SessionRuns, label: str = "Run", key: str = "pick_run") -> Optional[RunEntry]:
    """A selectbox over this session's runs with history (the current one first)."""
    entries = runs.with_history()
    if not entries:
        st.info("No run yet in this session: choose settings on the main page (**app**) and press **Start**.")
        return None
    entries = sorted(entries, key=lambda e: (e.run.id != runs.current_id, -e.run.id))
    ids = [e.run.id for e in entries]
    chosen = st.selectbox(label, ids, key=key, format_func=lambda i: runs.get(i).label)
    return runs.get(chosen)

