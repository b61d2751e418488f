"""The live page before the first Start: the hint, and the chart's controls and frame as they will be, greyed
out (this also loads their code in the browser before the first picture)."""
from __future__ import annotations

import streamlit as st

from dashboard import charts
from dashboard.components.view_selector import COLOUR_BY, view_selector
from vaegmm.core.singleton import process_singleton


@process_singleton
def _placeholder():
    """The empty latent-space frame, built once per server (it is never changed)."""
    return charts.placeholder()


def placeholder_chart() -> None:
    """An empty latent-space frame before the first Start (it also loads Plotly in the browser early)."""
    st.plotly_chart(_placeholder(), key="placeholder", config={"displaylogo": False, "staticPlot": True})


def idle_hint() -> None:
    """What to do first, then the chart's controls (disabled) and its empty frame."""
    st.info("Choose a preset or settings in the sidebar and press **Start**. Iteration 0 (the untrained "
            "encoder's codes, clustered) appears at once; then every mutual iteration trains the VAE and refits "
            "the GMM. **How it works** (left) explains what you see.", icon=":material/arrow_back:")
    # the chart's controls as they will be, greyed out (this also loads their code before the first picture)
    c1, c2, c3 = st.columns([1, 1.15, 1])
    c1.segmented_control("Colour by", COLOUR_BY, default="digit", key="idle_colour_by", disabled=True)
    view_selector(c2, "idle_view_kind", disabled=True)
    c3.selectbox("Iteration", ["latest iteration"], key="idle_iteration_pick", disabled=True)
    placeholder_chart()
