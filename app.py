"""VAE+GMM live dashboard: `streamlit run app.py`.

Sidebar: the experiment (mirrored into the URL). Main area: the controls (Start / Pause / Step / Stop / Reset),
the run's status and its latent space, metrics and losses, refreshed by one fragment while it trains in a worker
process. The order of the elements is fixed (see dashboard/screens/live_run.py): messages go into a container
made up front. Layers: this page -> dashboard.screens -> dashboard.components -> dashboard.state.
"""
import streamlit as st

from dashboard.components.navigation import page_setup
from dashboard.screens.live_run import live_training
from dashboard.screens import pair_run  # ?pair=feedback: the same seed with and without feedback
from dashboard.screens.saved_run import saved_run_page
from dashboard.state.browser_session import session_runs
from dashboard.state.saved_runs import requested_run

page_setup("Live training")
runs = session_runs()
saved = requested_run()
if saved is not None:  # ?run=<id>: a saved run, read-only (a link opens a new session: the layout is fixed in it)
    saved_run_page(saved)
    st.stop()
if pair_run.pair_requested():  # side by side (a link opens a new session: the layout is fixed in it)
    pair_run.pair_page(runs); st.stop()  # noqa: E702
live_training(runs)
