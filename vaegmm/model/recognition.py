"""Ask a trained iteration where an image lands: Serket's recognition mode (the trained encoder encodes, the
fitted GMM classifies, nothing learns), plus the pictures a student needs to see the answer.

One function answers: :func:`ask` takes one iteration's kept state (:class:`TrainedIteration`, built from an
:class:`~vaegmm.model.mutual.IterationResult` of a live or a saved run) and images ``(M, 784)``, and returns an
:class:`Answer`: codes, class probabilities, class, digit (by the cluster-to-digit matching learned on the
*training* images, never re-matched on the asked images), the 2-D positions in the PCA view (exact), the LDA view
(exact, with the view's axes) and the t-SNE view (approximate: the mean t-SNE position of the nearest training
codes, since t-SNE has no map for new points), the reconstruction and the nearest training images. The held-out
scoring after each iteration, the drawing canvas and an upload all call it.

Also the PCA inverse (a point of the PCA view -> a latent code) and the decoded straight line between two codes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from vaegmm.model import predictive
from vaegmm.model.image_files import check_images
from vaegmm.model.metrics import best_matching, confusion, nmi
from vaegmm.model.projection import Projection2D
from vaegmm.model.vae import VAE, decode_numpy, encode_all

NEIGHBOURS = 5  # nearest training images shown with an answer
NOT_ANSWERABLE = ("this iteration was saved before runs kept what answering needs (the encoder's weights and the "
                  "GMM's posterior): train the run again to ask it")


class NotAnswerable(ValueError):
    """The iteration lacks the state answering needs (a run saved by an older vaegmm). The message says so."""


def digit_matching(classes: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """The one-to-one class -> digit matching that the training accuracy uses (Hungarian, on the training
    images): ``(K,) int64``, ``-1`` for a class left unmatched (K > number of digits) or empty."""
    out = np.full(int(n_classes), -1, dtype=np.int64)
    for c, d in best_matching(np.asarray(classes), np.asarray(labels)).items():
        if c < n_classes:
            out[c] = d
    return out


def majority_digits(classes: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Each class's most frequent digit among its training images ``(K,) int64`` (``-1`` for an empty class):
    the label of a class in a bar chart."""
    values = np.unique(labels)
    m = confusion(np.asarray(classes), np.asarray(labels), int(n_classes), label_values=values)
    return np.where(m.sum(axis=1) > 0, values[m.argmax(axis=1)], -1).astype(np.int64)


@dataclass
class Answer:
    """Where ``M`` asked images land. ``K`` classes, ``D`` latent dimensions."""

    codes: np.ndarray  # (M, D) float32: encoder means
    proba: np.ndarray  # (M, K) float64: the GMM's class probabilities (rows sum to 1)
    classes: np.ndarray  # (M,) int64: the most probable class
    digits: np.ndarray  # (M,) int64: the class's digit by the training matching; -1 unmatched or no labels
    pca_xy: np.ndarray  # (M, 2) float32: exact position in the iteration's PCA view
    lda_xy: Optional[np.ndarray] = None  # (M, 2) float32: exact position in the LDA view (when its axes were given)
    tsne_xy: Optional[np.ndarray] = None  # (M, 2) float32: APPROXIMATE: mean t-SNE position of the nearest codes
    reconstruction: Optional[np.ndarray] = None  # (M, 784) float32 pixel probabilities
    nearest: Optional[np.ndarray] = None  # (M, neighbours) int64: indices of the nearest training images
    tsne_approximate: bool = True  # t-SNE has no map for new points: tsne_xy is where the nearest codes sit


class TrainedIteration:
    """What answering needs of one finished iteration: the encoder's and the decoder's weights (numpy state dicts,
    or a live ``vae`` module), the GMM's ``posterior`` (:mod:`vaegmm.model.predictive`), the PCA view's
    :class:`~vaegmm.model.projection.Projection2D`, the training matching ``digit_of_class (K,)`` (None without
    labels) and the training images' encoder means ``train_codes (N, D)`` (for the nearest images)."""

    def __init__(self, encoder_state: dict, decoder_state: dict, posterior: dict, pca: Projection2D,
                 digit_of_class: Optional[np.ndarray] = None, train_codes: Optional[np.ndarray] = None,
                 iteration: int = 0, vae: Optional[VAE] = None):
        self.posterior = posterior
        self.pca = pca
        self.digit_of_class = None if digit_of_class is None else np.asarray(digit_of_class, dtype=np.int64)
        self.train_codes = None if train_codes is None else np.asarray(train_codes, dtype=np.float32)
        self.iteration = int(iteration)
        self.vae = vae if vae is not None else _vae_from_states(encoder_state, decoder_state)

    @classmethod
    def from_result(cls, result) -> "TrainedIteration":
        """The answering state of an :class:`~vaegmm.model.mutual.IterationResult`; :class:`NotAnswerable` when
        the result lacks it (saved before it was kept)."""
        if not getattr(result, "encoder_state", None) or not getattr(result, "gmm_posterior", None) \
                or not result.decoder_state or result.pca is None:
            raise NotAnswerable(NOT_ANSWERABLE)
        return cls(result.encoder_state, result.decoder_state, result.gmm_posterior, result.pca,
                   getattr(result, "digit_of_class", None), result.encoder_mean, result.iteration)

    @property
    def n_classes(self) -> int:
        return int(np.asarray(self.posterior["means"]).shape[0])

    def encode(self, images: np.ndarray) -> np.ndarray:
        """Encoder means of ``images (M, 784)`` in [0, 1]: ``(M, D) float32``."""
        device = next(self.vae.parameters()).device
        mu, _ = encode_all(self.vae, torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).to(device))
        return mu

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Pixel probabilities ``(M, 784) float32`` of codes ``(M, D)``."""
        return decode_numpy(self.vae, np.atleast_2d(np.asarray(codes, dtype=np.float32)))

    def classify(self, codes: np.ndarray) -> np.ndarray:
        """The GMM's class probabilities ``(M, K)`` of codes ``(M, D)``; nothing learns."""
        return predictive.predict_proba(self.posterior, codes)

    def pca_inverse(self, xy: np.ndarray) -> np.ndarray:
        """The latent codes ``(M, D)`` at points ``xy (M, 2)`` of the PCA view: the mean plus the two components;
        the other D - 2 directions stay at the mean."""
        return self.pca.inverse_transform(xy)


def _vae_from_states(encoder_state: dict, decoder_state: dict) -> VAE:
    hidden, d = np.asarray(decoder_state["dec_hidden.weight"]).shape
    # a private generator: building the module must not draw from torch's global random numbers
    vae = VAE(latent_dim=d, hidden=hidden, generator=torch.Generator().manual_seed(0))
    vae.load_state_dict({k: torch.as_tensor(np.asarray(v, dtype=np.float32))
                         for k, v in {**encoder_state, **decoder_state}.items()})
    return vae.eval()


def ask(model: TrainedIteration, images, lda=None, tsne: Optional[np.ndarray] = None,
        neighbours: int = NEIGHBOURS, reconstruct: bool = True) -> Answer:
    """Where ``images (M, 784)`` (or one ``(784,)``; values in [0, 1] or 0-255) land in ``model``'s iteration.

    ``lda``: the LDA view's axes of that iteration (anything with ``transform(codes) -> (M, 2)``, e.g.
    ``RunViews.lda_axes(history, i)``), for the exact LDA position. ``tsne (N, 2)``: that iteration's t-SNE
    embedding of the training codes, for the approximate t-SNE position. ``neighbours``: how many nearest
    training images (0: none; needs the training codes). ``reconstruct``: decode the codes too.
    ``ValueError`` (one line) for images that are not ``(M, 784)`` values in [0, 1] or 0-255."""
    x = np.asarray(images)
    x = check_images(x[None] if x.ndim == 1 else x, "images")
    codes = model.encode(x)
    proba = model.classify(codes)
    classes = proba.argmax(axis=1).astype(np.int64)
    digits = (model.digit_of_class[classes] if model.digit_of_class is not None
              else np.full(len(classes), -1, dtype=np.int64))
    out = Answer(codes, proba, classes, digits, model.pca.transform(codes))
    if lda is not None:
        out.lda_xy = np.asarray(lda.transform(codes), dtype=np.float32)
    if model.train_codes is not None and (neighbours > 0 or tsne is not None):
        near = nearest_codes(codes, model.train_codes, max(int(neighbours), NEIGHBOURS))
        if tsne is not None:  # t-SNE places no new point: put it where its nearest training codes are
            out.tsne_xy = np.asarray(tsne, dtype=np.float32)[near[:, :NEIGHBOURS]].mean(axis=1)
        if neighbours > 0:
            out.nearest = near[:, :int(neighbours)]
    if reconstruct:
        out.reconstruction = model.decode(codes)
    return out


def nearest_codes(codes: np.ndarray, train_codes: np.ndarray, k: int) -> np.ndarray:
    """Indices ``(M, k) int64`` of the ``k`` training codes nearest (Euclidean) to each of ``codes (M, D)``,
    nearest first."""
    a = np.asarray(codes, dtype=np.float64)
    b = np.asarray(train_codes, dtype=np.float64)
    k = min(int(k), len(b))
    d2 = (a ** 2).sum(axis=1)[:, None] - 2 * a @ b.T + (b ** 2).sum(axis=1)[None]
    part = np.argpartition(d2, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(d2, part, axis=1).argsort(axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1).astype(np.int64)


def recognition_scores(answer: Answer, labels: Optional[np.ndarray]) -> tuple[Optional[float], Optional[float]]:
    """Held-out ``(accuracy, NMI)`` of an answer: accuracy by the training matching (an image counts when its
    class's digit is its label), NMI of the classes and the labels; ``(None, None)`` without labels."""
    if labels is None or len(answer.classes) == 0:
        return None, None
    labels = np.asarray(labels)
    return float(np.mean(answer.digits == labels)), nmi(answer.classes, labels)


def decode_line(model: TrainedIteration, start: np.ndarray, end: np.ndarray, steps: int = 9
                ) -> tuple[np.ndarray, np.ndarray]:
    """The straight line from latent code ``start (D,)`` to ``end (D,)`` in ``steps`` equal steps (both ends
    included), decoded: ``(codes (steps, D) float32, images (steps, 784) float32)``."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 2 <= steps <= 100:
        raise ValueError(f"steps must be an integer 2..100, got {steps!r}")
    a = np.asarray(start, dtype=np.float64).reshape(-1)
    b = np.asarray(end, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"the two codes differ in size: {a.shape[0]} and {b.shape[0]}")
    t = np.linspace(0.0, 1.0, int(steps))[:, None]
    codes = (a[None] + t * (b - a)[None]).astype(np.float32)
    return codes, model.decode(codes)
