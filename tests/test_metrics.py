import numpy as np

from vaegmm.model.metrics import ari, best_matching, clustering_accuracy, confusion, nmi


def test_permuted_perfect_labelling_scores_one():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 500)
    perm = rng.permutation(10)
    classes = perm[labels]
    assert clustering_accuracy(classes, labels) == 1.0
    assert abs(nmi(classes, labels) - 1.0) < 1e-12
    assert abs(ari(classes, labels) - 1.0) < 1e-12
    assert best_matching(classes, labels) == {int(perm[d]): d for d in range(10)}


def test_accuracy_uses_one_to_one_matching():
    labels = np.array([0, 0, 0, 1, 1, 1])
    classes = np.array([0, 0, 0, 0, 0, 0])  # one class for everything: only one label can match it
    assert clustering_accuracy(classes, labels) == 0.5
    classes = np.array([2, 2, 1, 1, 1, 0])  # 3 classes, 2 labels: best is 2->0 (2 hits), 1->1 (2 hits)
    assert abs(clustering_accuracy(classes, labels) - 4 / 6) < 1e-12


def test_confusion_counts_rows_classes_columns_labels():
    labels = np.array([3, 3, 7, 7, 7])
    classes = np.array([1, 0, 1, 1, 1])
    m = confusion(classes, labels, n_classes=3)
    assert m.tolist() == [[1, 0], [1, 3], [0, 0]]
