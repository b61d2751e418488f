"""VAE+GMM live dashboard: `streamlit run app.py`.

Sidebar: the experiment (mirrored into the URL) and Start / Stop / Pause / Step / Reset. Main area: the run's
status and its latent space, metrics and losses, refreshed while it trains in a background thread.
"""
import streamlit as st

from dashboard import ui
from dashboard.settings import check_settings, data_note

ui.page_setup("Live training")
runs = ui.session_runs()
st.sidebar.title("VAE + GMM")
buttons = st.sidebar.container()  # drawn above the settings, filled once the settings are known
settings = ui.sidebar_settings()
problems = check_settings(settings)
ui.controls(runs, problems, where=buttons)
ui.download(runs.current, where=buttons)

st.title("VAE + GMM: mutual learning, live")
st.caption("A VAE turns each MNIST image into a code; a Gaussian mixture groups the codes into classes and sends "
           "each class mean back to the VAE as the centre of its prior. Watch the classes form.")
ui.link_warnings(settings)
for p in problems:
    st.error(p, icon=":material/error:")
note = data_note(settings)
if note and not problems:
    st.info(note, icon=":material/info:")

if runs.current is None:
    st.info("Choose a preset or settings in the sidebar and press **Start**. Iteration 0 (the untrained "
            "encoder's codes, clustered) appears at once; then every mutual iteration trains the VAE and refits "
            "the GMM. **How it works** (left) explains what you see.", icon=":material/arrow_back:")
    ui.placeholder_chart()
else:
    ui.live_panels(runs.current)
