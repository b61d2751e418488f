"""Page setup shared by every page: the page config and the sidebar's links to the pages."""
from __future__ import annotations

import streamlit as st

NAV = (("app.py", "Live training", ":material/monitoring:"),
       ("pages/1_Compare_runs.py", "Compare runs", ":material/compare_arrows:"),
       ("pages/2_Latent_explorer.py", "Latent explorer", ":material/scatter_plot:"),
       ("pages/3_How_it_works.py", "How it works", ":material/school:"),
       ("pages/4_Sweeps.py", "Sweeps", ":material/grid_view:"))


def page_setup(title: str, icon: str = "🧠") -> None:
    """Page config and the sidebar's page links. Streamlit's automatic navigation (turned off in
    ``.streamlit/config.toml``) would label the main page "app", after its file name."""
    st.set_page_config(page_title=f"{title} · VAE+GMM", page_icon=icon, layout="wide")
    with st.sidebar.container(key="vaegmm_nav"):
        for path, label, nav_icon in NAV:
            st.page_link(path, label=label, icon=nav_icon)
        st.divider()

