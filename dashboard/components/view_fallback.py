"""The view actually drawn and its fallback rules: a view that fails shows PCA with the reason; a t-SNE being
computed shows PCA meanwhile. The views themselves are computed by the package (:mod:`vaegmm.views.latent2d`),
per run, in ``run.views``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import streamlit as st

from vaegmm.views.latent2d import EXPLAIN, LABELS, PCA, TSNE, View2D


@dataclass
class Shown:
    """The view actually drawn (``view.kind`` may be PCA when the wanted one failed or is not ready)."""

    view: View2D
    wanted: str
    note: str = ""  # why it is not the wanted view
    pending: bool = False  # a t-SNE is being computed


def iteration_view(run, history, i: int, kind: str) -> Shown:
    """The view ``kind`` of finished iteration ``i``, or PCA and the reason."""
    views = run.views
    try:
        v = views.iteration(history, i, kind)
    except ValueError as e:
        return Shown(views.iteration(history, i, PCA), kind, f"{LABELS[kind]} fell back to PCA: {e}")
    if v is None:
        return Shown(views.iteration(history, i, PCA), kind,
                     f"computing t-SNE for iteration {i}… (PCA meanwhile; it appears by itself)", pending=True)
    return Shown(v, kind)


def live_view(run, history, live, kind: str) -> Optional[Shown]:
    """The view ``kind`` of an in-update snapshot (t-SNE: the last finished iteration's embedding), or PCA and the
    reason; None when the snapshot's base iteration is not known."""
    views = run.views
    try:
        v = views.live(history, live, kind)
    except ValueError as e:
        pca = views.live(history, live, PCA)
        return None if pca is None else Shown(pca, kind, f"{LABELS[kind]} fell back to PCA: {e}")
    if v is None:
        pca = views.live(history, live, PCA)
        if pca is None:
            return None
        return Shown(pca, kind, f"computing t-SNE for iteration {live.iteration - 1}… (PCA meanwhile)",
                     pending=True)
    note = ""
    if kind == TSNE:
        note = (f"t-SNE shows iteration {live.iteration - 1}'s map while the VAE trains (one t-SNE takes "
                f"seconds); switch to PCA or LDA to watch the codes move.")
    return Shown(v, kind, note)


def explain(shown: Shown, container=None) -> None:
    """One line on what the view shows, and the fallback or progress note."""
    c = container or st
    text = EXPLAIN[shown.view.kind]
    if shown.note:
        icon = ":material/hourglass_top:" if shown.pending else ":material/info:"
        c.caption(f"{icon} {shown.note}  \n{text}")
    else:
        c.caption(text)
