"""A run's results below its status line: the metric cards, the latent-space panel and the curves (the live
page and a saved run's page draw the same)."""
from __future__ import annotations

import streamlit as st

from dashboard.components.latent_panel import charts_panel
from dashboard.components.metric_cards import metric_cards
from dashboard.components.run_curves import loss_panel, metrics_panel
from dashboard.state.session import RunEntry


def run_view(entry: RunEntry, snap) -> None:
    """Metric cards, the latent panel, and accuracy / losses side by side."""
    metric_cards(snap)
    charts_panel(entry, snap)
    m1, m2 = st.columns(2)
    with m1:
        metrics_panel(entry, snap)
    with m2:
        loss_panel(entry, snap)
