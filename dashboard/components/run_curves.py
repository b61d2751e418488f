"""The run's curves: accuracy, NMI and ARI per iteration, and the VAE's loss terms per epoch."""
from __future__ import annotations

import streamlit as st

from dashboard import charts
from dashboard.components.figure_cache import cached_figure
from dashboard.state.session import RunEntry
from vaegmm.runs.state import ACTIVE


def metrics_panel(entry: RunEntry, snap) -> None:
    """Accuracy, NMI and ARI of every finished iteration (rebuilt when an iteration finishes)."""
    st.markdown("**Accuracy, NMI and ARI per iteration**")
    if snap.history:
        fig = cached_figure(entry, ("metrics", len(snap.history)), lambda: charts.metrics_chart(snap.history))
        st.plotly_chart(fig, key="metrics_chart", config={"displaylogo": False})


def loss_panel(entry: RunEntry, snap) -> None:
    """Reconstruction and alpha·KL per epoch, with the epochs of the VAE update in progress."""
    st.markdown("**VAE loss terms per epoch** (reconstruction and alpha·KL)")
    p = snap.progress
    live = p.iteration if snap.state in ACTIVE and p.recon else None
    if snap.history:
        key = ("losses", len(snap.history), live, len(p.recon))  # rebuilt only when an epoch was added
        fig = cached_figure(entry, key, lambda: charts.loss_chart(snap.history, snap.config.vae.alpha, p.recon,
                                                                   p.kl, live))
        st.plotly_chart(fig, key="loss_chart", config={"displaylogo": False})

