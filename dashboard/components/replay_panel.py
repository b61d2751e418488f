"""The Replay of a finished or stopped run: a Plotly animation over every iteration and the snapshots taken
while the VAE trained."""
from __future__ import annotations

import streamlit as st

from dashboard import charts
from dashboard.components.figure_cache import cached_figure
from dashboard.components.view_fallback import LABELS
from dashboard.state.session import RunEntry
from vaegmm.views import animation

REPLAY_FRAMES = 120  # frames of the in-page Replay (all finished iterations, the snapshots evenly thinned)


def replay_of(entry: RunEntry, kind: str, by: str, max_frames: int):
    """The run's :class:`vaegmm.views.animation.Replay` in ``kind``; LDA that fails falls back to PCA (with the reason),
    a t-SNE still being computed raises :class:`vaegmm.views.animation.Pending`."""
    run = entry.run
    try:
        return animation.replay_frames(run.history, run.snapshots, run.labels, kind, by, run.views, max_frames), ""
    except ValueError as e:
        return (animation.replay_frames(run.history, run.snapshots, run.labels, "pca", by, run.views, max_frames),
                f"{LABELS[kind]} fell back to PCA: {e}")


def replay_panel(entry: RunEntry, snap, kind: str, by: str) -> None:
    """The Replay of a finished or stopped run: a Plotly animation (play/pause, slider) over every iteration and
    the snapshots of each VAE update, built once per run, view and colouring."""
    try:
        rp, note = replay_of(entry, kind, by, REPLAY_FRAMES)
    except animation.Pending as p:
        st.caption(f":material/hourglass_top: computing t-SNE for the replay: {p.ready} of {p.total} iterations "
                   "ready (one frame per iteration; it appears by itself). Meanwhile the PCA replay:")
        rp, note = replay_of(entry, "pca", by, REPLAY_FRAMES)
    if note:
        st.caption(f":material/info: {note}")
    elif rp.kind == "tsne":
        st.caption("t-SNE replay: one frame per finished iteration (a t-SNE of every snapshot would take minutes).")
    key = ("replay", rp.kind, by, len(rp.frames), snap.state, len(snap.history))
    fig = cached_figure(entry, key, lambda: charts.replay_figure(rp))
    st.plotly_chart(fig, key="scatter_replay", config={"displaylogo": False})
    st.caption(f"{len(rp.frames)} frames: every finished iteration and the snapshots taken while the VAE trained. "
               f"Press ▶ Play, or drag the slider.")

