"""The metric cards: accuracy and NMI on the training images and on the held-out images, and ARI, with their change
since iteration 0. (Iterations done and the time per iteration are in the status line just above: seven cards
left too little room for these, at 1400 px their labels and changes were cut off.)"""
from __future__ import annotations

from typing import Optional

import streamlit as st

from dashboard.components.formatting import metric_text
from vaegmm.runs.ask import heldout_words

HELP = {
    "accuracy": "Hungarian accuracy on the training images: the best one-to-one matching of GMM classes to digits.",
    "heldout_accuracy": "Digits training never saw, encoded by the trained encoder and classified by the fitted "
                        "GMM (nothing learns), scored with the matching of classes to digits learned on the "
                        "training images (never re-matched on these).",
    "nmi": "Normalised mutual information of the GMM classes and the digits (training images).",
    "heldout_nmi": "Normalised mutual information of the classes the GMM gives the held-out images and their digits.",
    "ari": "Adjusted Rand index (training images).",
}
LABELS = {"accuracy": "accuracy", "heldout_accuracy": "held-out accuracy", "nmi": "NMI",
          "heldout_nmi": "held-out NMI", "ari": "ARI"}


def has_heldout(history: list, heldout: Optional[dict]) -> bool:
    """Whether the run recognises a held-out set: its summary counts images, or an iteration scored one (a saved
    run recorded before summaries were kept)."""
    if heldout is not None:
        return bool(heldout.get("images"))
    return any(getattr(r, "heldout_accuracy", None) is not None for r in history)


def metric_cards(snap, heldout: Optional[dict] = None) -> None:
    """Accuracy, held-out accuracy, NMI, held-out NMI, ARI (with their change since iteration 0); dashes before
    a run has results (``snap`` None or without history). ``heldout``: the run's held-out summary
    (:func:`vaegmm.model.data.heldout_summary`, None when unknown). A run without a held-out set has no held-out
    cards, and one caption says why; a score the data had no labels for reads "no labels"."""
    h = snap.history if snap is not None else []
    if not h:
        for col, label in zip(st.columns(len(LABELS)), LABELS.values()):
            col.metric(label, "–")
        return
    held = has_heldout(h, heldout)
    names = [n for n in LABELS if held or not n.startswith("heldout")]
    c = st.columns(len(LABELS))  # the same widths with or without the held-out cards
    last, first = h[-1], h[0]

    def delta(attr):
        now, then = getattr(last, attr, None), getattr(first, attr, None)
        return f"{now - then:+.3f} since it. 0" if len(h) > 1 and now is not None and then is not None else None

    for col, name in zip(c, names):
        col.metric(LABELS[name], metric_text(getattr(last, name, None)), delta=delta(name), help=HELP[name])
    if not held and heldout is not None:
        st.caption(heldout_words(heldout) + "; only the training images are scored.")
