"""VAE+GMM live dashboard: `streamlit run app.py`.

Sidebar: the experiment (mirrored into the URL). Main area: the controls (Start / Pause / Step / Stop / Reset),
the run's status and its latent space, metrics and losses, refreshed by one fragment while it trains in a worker
process. The order of the elements is fixed (see dashboard/ui.py): messages go into a container made up front.
"""
import streamlit as st

from dashboard import library_view, ui
from dashboard.settings import check_settings, data_note

ui.page_setup("Live training")
runs = ui.session_runs()
saved = library_view.requested_run()
if saved is not None:  # ?run=<id>: a saved run, read-only (a link opens a new session: the layout is fixed in it)
    library_view.saved_run_page(saved)
    st.stop()
st.sidebar.title("VAE + GMM")
settings = ui.sidebar_settings()
problems = check_settings(settings)

st.title("VAE + GMM: mutual learning, live")
st.caption("A VAE turns each MNIST image into a code; a Gaussian mixture groups the codes into classes and sends "
           "each class mean back to the VAE as the centre of its prior. Watch the classes form.")
with st.container(key="page_messages"):  # always here, even when empty: the live part below never moves
    ui.link_warnings(settings)
    if library_view.store_problem():
        st.warning(f"Runs are not saved: {library_view.store_problem()}", icon=":material/database:")
    for p in problems:
        st.error(p, icon=":material/error:")
    note = data_note(settings)
    if note and not problems:
        st.info(note, icon=":material/info:")
ui.live_page(runs)
