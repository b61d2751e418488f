"""The follower page of ``?run=<id>`` while that run trains on this server (issue 18 part 1): live and read-only.

The page is drawn once: a title, the run's settings, and the live view (:mod:`dashboard.follow.view`), which
redraws itself from the server's push channel. It has no fragment and runs no script while the run trains; when
the run has ended the view reruns the page once, which then is the saved run's page with the finished run's panels
(:mod:`dashboard.screens.saved_run`)."""
from __future__ import annotations

import streamlit as st

from dashboard.components.markup import escape_markdown
from dashboard.components.status import STATE_COLOURS
from dashboard.follow.view import follow_view
from vaegmm.model.params import describe, settings_from_config


def follow_run_page(run_id: int, run) -> None:
    """Follow ``run`` (registered as ``run_id``): live, read-only; then its saved run's page."""
    settings = settings_from_config(run.config, "project-default")
    st.sidebar.title("VAE + GMM")
    st.sidebar.markdown(f"**Run #{run_id}** (live, read-only)  \n{escape_markdown(describe(settings))}")
    st.sidebar.link_button("Live training", "./", icon=":material/monitoring:", width="stretch")
    st.title(f"Run #{run_id}, live")
    st.caption("Someone on this server is training this run; this page follows it as it trains (read-only) and "
               "shows the finished run's panels when it ends.")
    follow_view(run_id, STATE_COLOURS)
