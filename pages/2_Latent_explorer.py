"""Pick a point to see its image and reconstruction; decoded class means; the confusion matrix."""
import streamlit as st

from dashboard import ui, views

ui.page_setup("Latent explorer", "🔍")
runs = ui.session_runs()
st.title("Latent explorer")
views.explorer_page(runs)
