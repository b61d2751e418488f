"""VAE+GMM live dashboard: `streamlit run app.py`.

Sidebar: the experiment (mirrored into the URL). Main area: the controls (Start / Pause / Step / Stop / Reset),
the run's status and its latent space, metrics and losses, refreshed by one fragment while it trains in a worker
process. The order of the elements is fixed (see dashboard/screens/live_run.py): messages go into a container
made up front. Layers: this page -> dashboard.screens -> dashboard.components -> dashboard.state.

Two ways this file is read. ``streamlit run app.py`` finds the ``st.App`` below (Streamlit's own discovery of an
ASGI app in the script) and serves it: that adds the follower route ``/_vaegmm/runs/<id>/events`` (issue 18:
a live run's frames, pushed to everyone who follows its share link) to Streamlit's server; the server imports
this file as the module ``app`` for that. Each page's script run then executes it as ``__main__``: the page.
"""
import streamlit as st

from dashboard.components.navigation import page_setup
from dashboard.screens.follow_run import follow_run_page
from dashboard.screens.live_run import live_training
from dashboard.screens import pair_run  # ?pair=feedback: the same seed with and without feedback
from dashboard.screens.saved_run import saved_run_page
from dashboard.follow.hub import follow_hub
from dashboard.follow.routes import follower_routes
from dashboard.state.browser_session import session_runs
from dashboard.state.saved_runs import requested_run

if __name__ != "__main__":  # imported by the server (`streamlit run app.py`): the app and its extra route
    app = st.App(__file__, routes=follower_routes())
else:  # a page's script run
    page_setup("Live training")
    runs = session_runs()
    wanted = requested_run()
    followed = follow_hub().live(wanted)
    if followed is not None:  # ?run=<id> of a run training now on this server: follow it live, read-only
        follow_run_page(wanted, followed)
        st.stop()
    if wanted is not None:  # ?run=<id>: a saved run, read-only (a link opens a new session: the layout is fixed)
        saved_run_page(wanted)
        st.stop()
    if pair_run.pair_requested():  # side by side (a link opens a new session: the layout is fixed in it)
        pair_run.pair_page(runs); st.stop()  # noqa: E702
    live_training(runs)
