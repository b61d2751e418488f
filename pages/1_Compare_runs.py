"""Every run of this browser session side by side: settings, final metrics, accuracy curves."""
import streamlit as st

from dashboard import ui, views

ui.page_setup("Compare runs", "📊")
runs = ui.session_runs()
st.title("Compare runs")
st.caption("All runs of this browser session, or every saved run. Try the same settings with alpha = 0 and "
           "alpha = 1, or with feedback on and off, over a few seeds: one run differs from the next by about 3 "
           "points, so one run per setting cannot tell. The Sweeps page runs settings x seeds with statistics.")
ui.measured_feedback_effect()
views.compare(runs)
