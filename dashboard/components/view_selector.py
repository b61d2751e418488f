"""The latent scatter's two choices: the 2-D view (PCA, LDA, t-SNE), shared by the live page and the Latent
explorer, and the colouring (digit or GMM class)."""
from __future__ import annotations

from vaegmm.views.latent2d import LABELS, LDA, PCA, TSNE

OPTIONS = [LABELS[PCA], LABELS[LDA], LABELS[TSNE]]
KIND = {LABELS[k]: k for k in (PCA, LDA, TSNE)}
COLOUR_BY = ["digit", "GMM class"]  # the latent scatter's colourings


def view_selector(container, key: str, disabled: bool = False) -> str:
    """A segmented control "View": returns "pca", "lda" or "tsne"."""
    choice = container.segmented_control(
        "View", OPTIONS, default=LABELS[PCA], key=key, required=True, disabled=disabled,
        help="How the D-dimensional codes are flattened to 2-D. PCA: largest spread. LDA: the directions that best "
             "separate the GMM's classes. t-SNE: keeps neighbours together (computed in the background).")
    return KIND.get(choice or LABELS[PCA], PCA)
