"""Every run of this browser session side by side: settings, final metrics, accuracy curves."""
import streamlit as st

from dashboard import ui, views

ui.page_setup("Compare runs", "📊")
runs = ui.session_runs()
st.title("Compare runs")
st.caption("All runs of this browser session. Try the same settings with alpha = 0 and alpha = 1, or with "
           "feedback on and off, over a few seeds: in our 5-seed benchmark the feedback added about 2 points of "
           "accuracy to the project default and kept it from wandering between iterations; alpha = 0 ended about "
           "10 points lower (BENCHMARKS.md).")
views.compare(runs)
