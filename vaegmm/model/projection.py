"""2-D PCA of the latent codes, aligned between iterations so successive plots do not flip or spin."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass
class Projection2D:
    """``transform(x (M, D)) = (x - center) @ components @ rotation``, giving ``(M, 2)``."""

    center: np.ndarray  # (D,)
    components: np.ndarray  # (D, 2) top principal directions
    rotation: np.ndarray  # (2, 2) orthogonal alignment to the previous iteration's plot
    explained: np.ndarray  # (2,) fraction of variance along each component

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float64) - self.center) @ self.components @ self.rotation).astype(np.float32)

    def inverse_transform(self, xy: np.ndarray) -> np.ndarray:
        """The codes ``(M, D) float32`` at the points ``xy (M, 2)`` of this view: ``center + xy R^T C^T`` (the
        components are orthonormal and R orthogonal, so ``transform(inverse_transform(xy)) == xy``); the other
        D - 2 directions are at the mean."""
        xy = np.atleast_2d(np.asarray(xy, dtype=np.float64))
        return (self.center + xy @ self.rotation.T @ self.components.T).astype(np.float32)


def fit_pca2d(z: np.ndarray, previous: Optional[np.ndarray] = None) -> Projection2D:
    """PCA of ``z (N, D)`` to 2-D. With ``previous (N, 2)`` (the same points' last plot), the 2-D result is
    turned by the orthogonal matrix (rotation or reflection) that best matches it (Procrustes), so a point's
    place on screen changes only as much as the codes do."""
    z = np.asarray(z, dtype=np.float64)
    center = z.mean(axis=0)
    zc = z - center
    _, s, vt = np.linalg.svd(zc, full_matrices=False)
    comps = vt[:2].T
    if comps.shape[1] < 2:  # D == 1: pad a zero direction
        comps = np.hstack([comps, np.zeros((z.shape[1], 2 - comps.shape[1]))])
    # deterministic signs: the largest-magnitude loading of each component is positive
    signs = np.sign(comps[np.abs(comps).argmax(axis=0), np.arange(2)])
    comps = comps * np.where(signs == 0, 1, signs)
    var = s ** 2
    explained = np.zeros(2)
    explained[: min(2, len(var))] = (var[:2] / var.sum()) if var.sum() > 0 else 0
    rotation = np.eye(2)
    if previous is not None and len(previous) == len(z):
        p = zc @ comps
        u, _, vt2 = np.linalg.svd(p.T @ (np.asarray(previous, dtype=np.float64) - np.mean(previous, axis=0)))
        rotation = u @ vt2
    return Projection2D(center, comps, rotation, explained)
