"""The follower page of ``?run=<id>`` while that run trains on this server (issue 18 part 1): live and read-only.

The page is drawn once: a title, the run's settings, and the live view (:mod:`dashboard.components.follow_view`),
which redraws itself from the server's push channel. The only script reruns are one fragment every
``FINISH_CHECK`` seconds that, once the run has ended, reruns the page, which then is the saved run's page with
the finished run's panels (:mod:`dashboard.screens.saved_run`)."""
from __future__ import annotations

import streamlit as st

from dashboard.components.follow_view import follow_view
from dashboard.components.markup import escape_markdown
from vaegmm.model.params import describe, settings_from_config
from vaegmm.runs.state import TERMINAL

FINISH_CHECK = 5.0  # seconds between two looks at whether the followed run has ended (a script run costs ~ms)


def follow_run_page(run_id: int, run) -> None:
    """Follow ``run`` (registered as ``run_id``): live, read-only; then its saved run's page."""
    settings = settings_from_config(run.config, "project-default")
    st.sidebar.title("VAE + GMM")
    st.sidebar.markdown(f"**Run #{run_id}** (live, read-only)  \n{escape_markdown(describe(settings))}")
    st.sidebar.link_button("Live training", "./", icon=":material/monitoring:", width="stretch")
    st.title(f"Run #{run_id}, live")
    st.caption("Someone on this server is training this run; this page follows it as it trains (read-only) and "
               "shows the finished run's panels when it ends.")
    follow_view(run_id)

    @st.fragment(run_every=FINISH_CHECK)  # constant
    def finish_check():
        if run.state in TERMINAL:
            st.rerun()  # the page becomes the saved run's page

    finish_check()
