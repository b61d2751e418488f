"""Pick a point to see its image and reconstruction; decoded class means; the confusion matrix."""
import streamlit as st

from dashboard import ui, views

ui.page_setup("Latent explorer", "🔍")
runs = ui.session_runs()
st.title("Latent explorer")
entry = ui.pick_run(runs)
if entry is not None:
    views.explorer(entry)
