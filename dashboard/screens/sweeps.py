"""The Sweeps page: define a grid x seeds, start / stop / resume it, and read its results with statistics.

The sweep runs in a driver thread inside the server (:func:`vaegmm.sweeps.manager.get_manager`), on the local process pool
(sharing the server's run cap with live runs, behind them in the queue) or on Ray when the server was started
with ``$VAEGMM_RAY_ADDRESS``; it writes every result into the store as it arrives. This page only reads the
store and asks the manager, so closing the tab does not stop a sweep, and coming back shows it.

Page structure: the form and Start are in the sidebar (a full rerun); the selected sweep is drawn by ONE fragment
polling at a constant ``run_every`` for the whole session (it decides what to draw, never whether it polls, and
never calls ``st.rerun``); Stop / Resume and the result widgets always live inside that fragment.
"""
from __future__ import annotations

import time

import streamlit as st

from dashboard.components.sweep_form import sidebar_form, start_error
from dashboard.components.sweep_results import results_panel
from dashboard.components.sweep_status import status_panel
from dashboard.state.sweeps import load
from dashboard.state.store import store_or_problem
from dashboard.components.markup import escape_markdown

POLL_EVERY = 1.0  # seconds; constant for the whole session (see the module docstring)
# Set once the session's first fragment run drew the status: the results (tables, Plotly charts, whose code a
# new visitor's browser loads first) come at the next poll, so the status shows within 2 s (issue 18 part 5).
_SHOWN_KEY = "_sw_status_shown"


def page() -> None:
    """The whole Sweeps page (below the navigation)."""
    st.title("Sweeps: settings × seeds, with statistics")
    st.caption("One run of a setting is noise: the same settings with another seed differ by about 0.03 in "
               "accuracy, as much as most effects you look for. A sweep runs every combination of the values you "
               "choose with several seeds, keeps every result, and reports means with 95 % confidence intervals "
               "and paired comparisons.")
    store, problem = store_or_problem()
    if store is None:
        st.error(f"The results store cannot be used: {escape_markdown(problem)}", icon=":material/error:")
        return
    start_error()
    listed = store.list_sweeps()
    if not listed:
        st.info("No sweep yet. Choose a preset, one to three axes and their values and the number of seeds in the "
                "sidebar, then press **Start sweep**. (Sweeps from `python -m vaegmm sweep` appear here too.)",
                icon=":material/arrow_back:")
    names = [s["name"] for s in listed]
    if names and st.session_state.get("sw_pick") not in names:
        st.session_state["sw_pick"] = names[0]
    if names:
        by_name = {s["name"]: s for s in listed}
        st.selectbox("Sweep", names, key="sw_pick", help="Every sweep in the store, newest first.",
                     format_func=lambda n: f"{n} (started "
                                           f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(by_name[n]['created']))})")

    @st.fragment(run_every=POLL_EVERY)
    def live():
        name = st.session_state.get("sw_pick")
        data = load(store, name) if name else None
        if data is None:
            return
        status_panel(store, data)
        if not st.session_state.get(_SHOWN_KEY):  # a new visitor: its status first, the tables and charts next
            st.session_state[_SHOWN_KEY] = True
            st.caption("Reading the results…")
            return
        results_panel(data)

    live()
    sidebar_form(store)  # after the status: a new visitor's browser draws the status before the form's widgets
