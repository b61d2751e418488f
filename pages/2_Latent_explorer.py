"""Pick a point to see its image and reconstruction; decoded class means; the confusion matrix."""
import streamlit as st

from dashboard.components.navigation import page_setup
from dashboard.screens.latent_explorer import explorer_page
from dashboard.state.browser_session import session_runs

page_setup("Latent explorer", "🔍")
runs = session_runs()
st.title("Latent explorer")
explorer_page(runs)
