"""Clustering quality against the true digits."""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


def confusion(classes: np.ndarray, labels: np.ndarray, n_classes: int | None = None,
              label_values=None) -> np.ndarray:
    """Counts ``(K, L)``: row = GMM class, column = true label (in ``label_values`` order, default sorted)."""
    classes = np.asarray(classes, dtype=np.int64)
    labels = np.asarray(labels)
    if classes.shape != labels.shape:
        raise ValueError(f"classes {classes.shape} and labels {labels.shape} differ in shape")
    k = int(n_classes if n_classes is not None else (classes.max() + 1 if classes.size else 0))
    values = np.unique(labels) if label_values is None else np.asarray(label_values)
    col = np.searchsorted(values, labels)
    m = np.zeros((k, len(values)), dtype=np.int64)
    np.add.at(m, (classes, col), 1)
    return m


def best_matching(classes: np.ndarray, labels: np.ndarray) -> dict[int, int]:
    """The one-to-one class -> label map that maximises agreement (Hungarian); unmatched classes are absent."""
    values = np.unique(labels)
    m = confusion(classes, labels, label_values=values)
    rows, cols = linear_sum_assignment(-m)
    return {int(r): int(values[c]) for r, c in zip(rows, cols)}


def clustering_accuracy(classes: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of points whose class maps to their label under the best one-to-one matching."""
    classes = np.asarray(classes)
    if classes.size == 0:
        raise ValueError("clustering_accuracy needs at least one point")
    m = confusion(classes, labels)
    rows, cols = linear_sum_assignment(-m)
    return float(m[rows, cols].sum() / classes.size)


def nmi(classes: np.ndarray, labels: np.ndarray) -> float:
    """Normalised mutual information (arithmetic normalisation, scikit-learn's default)."""
    return float(normalized_mutual_info_score(labels, classes))


def ari(classes: np.ndarray, labels: np.ndarray) -> float:
    """Adjusted Rand index."""
    return float(adjusted_rand_score(labels, classes))
