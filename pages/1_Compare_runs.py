"""Every run of this browser session side by side: settings, final metrics, accuracy curves."""
import streamlit as st

from dashboard import ui, views

ui.page_setup("Compare runs", "📊")
runs = ui.session_runs()
st.title("Compare runs")
st.caption("All runs of this browser session. Try the same settings with alpha = 0 and alpha = 1, or with "
           "feedback on and off: the feedback from the GMM is what makes the classes separate.")
views.compare(runs)
