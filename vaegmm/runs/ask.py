"""Ask a run (live or saved) about one of its finished iterations: the pages' entry to
:mod:`vaegmm.model.recognition`, with the run's own 2-D views.

``run`` is anything with ``history`` (finished :class:`~vaegmm.model.mutual.IterationResult` s) and ``views`` (its
:class:`~vaegmm.views.latent2d.RunViews`): a :class:`~vaegmm.runs.runner.TrainingRun` or a
:class:`~vaegmm.runs.library.SavedRun`. Every function raises
:class:`~vaegmm.model.recognition.NotAnswerable` (a ``ValueError`` with a sentence for the page) when the
iteration was saved before runs kept what answering needs, and ``ValueError`` for an iteration the run does not
have.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from vaegmm.model.recognition import Answer, TrainedIteration, ask, decode_line


def iteration_result(run, iteration: int):
    """The run's finished iteration ``iteration`` (an IterationResult); ValueError when it has none."""
    for r in list(run.history):
        if r.iteration == iteration:
            return r
    raise ValueError(f"the run has no finished iteration {iteration}")


def trained_iteration(run, iteration: int) -> TrainedIteration:
    """What answering needs of the run's iteration (building it costs about 2 ms: no cache is needed)."""
    return TrainedIteration.from_result(iteration_result(run, iteration))


def answerable(run, iteration: int) -> bool:
    """Whether the iteration can be asked (False for iterations saved before answering state was kept)."""
    try:
        trained_iteration(run, iteration)
        return True
    except ValueError:
        return False


def ask_run(run, iteration: int, images, neighbours: int = 5) -> Answer:
    """Where ``images (M, 784)`` (or one ``(784,)``) land in the run's ``iteration``: :func:`~vaegmm.model.
    recognition.ask` with the run's LDA axes of that iteration (None when LDA is not possible there) and its
    t-SNE embedding when it is ready (``tsne_xy`` is then the approximate position; None while it is computed:
    this call does not start one)."""
    model = trained_iteration(run, iteration)
    history = list(run.history)
    try:
        lda = run.views.lda_axes(history, iteration)
    except ValueError:
        lda = None
    tsne = run.views.tsne(history, iteration) if run.views.tsne_status(iteration) == "ready" else None
    return ask(model, images, lda=lda, tsne=tsne, neighbours=neighbours)


def decode_pca_point(run, iteration: int, xy) -> tuple[np.ndarray, np.ndarray]:
    """The latent code at a point ``xy (2,)`` of the iteration's PCA view (the mean plus the two components, the
    other D - 2 directions at the mean) and its decoded image: ``(code (D,) float32, image (784,) float32)``."""
    model = trained_iteration(run, iteration)
    code = model.pca_inverse(np.asarray(xy, dtype=np.float64).reshape(1, 2))
    return code[0], model.decode(code)[0]


def walk_between_classes(run, iteration: int, class_a: int, class_b: int, steps: int = 9
                         ) -> tuple[np.ndarray, np.ndarray]:
    """The straight line in latent space from class ``class_a``'s mean to ``class_b``'s (the iteration's GMM class
    means), decoded: ``(codes (steps, D), images (steps, 784))``."""
    result = iteration_result(run, iteration)
    means = np.asarray(result.class_means)
    for c in (class_a, class_b):
        if not 0 <= int(c) < len(means):
            raise ValueError(f"class {c} is not one of the {len(means)} classes")
    return decode_line(trained_iteration(run, iteration), means[int(class_a)], means[int(class_b)], steps)


def heldout_words(summary: Optional[dict]) -> str:
    """One line about a run's held-out set for a page: "held-out: 2000 images never trained on (the bundled
    images outside the training subset)", "no held-out set: <why>", or "" when unknown (older saved runs)."""
    if not summary:
        return ""
    if not summary.get("images"):
        return f"no held-out set: {summary.get('reason') or 'none was set aside'}"
    tail = "" if summary.get("labelled") else "; no labels, so no held-out accuracy"
    return f"held-out: {summary['images']} images never trained on ({summary.get('origin', '')}){tail}"
