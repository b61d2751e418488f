"""The metric cards: accuracy, NMI, ARI (with their change since iteration 0), iterations done, time per
iteration."""
from __future__ import annotations

import streamlit as st

from vaegmm.runs.status_words import seconds_text


def metric_cards(snap) -> None:
    """Accuracy, NMI, ARI (with their change since iteration 0), iterations done, time per iteration; dashes
    before a run has results (``snap`` None or without history)."""
    h = snap.history if snap is not None else []
    c = st.columns(5)
    if not h:
        for col, label in zip(c, ("accuracy", "NMI", "ARI", "iterations done", "time / iteration")):
            col.metric(label, "–")
        return
    last, first = h[-1], h[0]

    def delta(attr):
        return f"{getattr(last, attr) - getattr(first, attr):+.3f} since it. 0" if len(h) > 1 else None

    c[0].metric("accuracy", f"{last.accuracy:.3f}", delta=delta("accuracy"),
                help="Hungarian accuracy: the best one-to-one matching of GMM classes to digits.")
    c[1].metric("NMI", f"{last.nmi:.3f}", delta=delta("nmi"), help="Normalised mutual information.")
    c[2].metric("ARI", f"{last.ari:.3f}", delta=delta("ari"), help="Adjusted Rand index.")
    c[3].metric("iterations done", f"{snap.iterations_done} / {snap.config.iterations}")
    c[4].metric("time / iteration", seconds_text(snap.seconds_per_iteration))

