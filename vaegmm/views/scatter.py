"""The one specification of the latent scatter: how a 2-D picture of the codes looks wherever it is drawn.

Three places draw it: the dashboard's live chart and Replay (Plotly, ``dashboard/charts.py``), the GIF / MP4 / PNG
frames (matplotlib, :mod:`vaegmm.views.animation`) and the Serket-style ``pca.png`` of an exported run
(matplotlib, :mod:`vaegmm.views.export`). They share, from here:

* **colours**: a point has the colour of its group, a digit (``DIGIT_COLOURS``, matplotlib's ``tab10``) or a GMM
  class (``GROUP_COLOURS``: the same ten, then ``tab20``'s light halves; more classes wrap around);
* **names**: "digit 3" or "class 3" in legends, "class means" for the crosses;
* **markers**: round points, the GMM class means as black crosses;
* **axes**: the view's axis names (:data:`vaegmm.views.latent2d.AXES`: "PC 1", "LD 2", ...), no tick labels
  (the units mean nothing to a reader), fixed ranges so the points move and the axes do not;
* **titles** of the frames and of ``pca.png``.

Sizes are in each medium's own units (Plotly: marker diameter in pixels; matplotlib: area in points squared), so
they are written per medium below. Pure Python: neither Plotly nor matplotlib is imported here.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from vaegmm.views.latent2d import LABELS

DIGIT_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf")
GROUP_COLOURS = DIGIT_COLOURS + ("#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2",
                                 "#c7c7c7", "#dbdb8d", "#9edae5")
MEANS_NAME = "class means"
MEANS_COLOUR = "black"


def group_colour(g: int) -> str:
    """The colour of group ``g`` (digit or GMM class; also the i-th curve of a chart of several runs)."""
    return GROUP_COLOURS[int(g) % len(GROUP_COLOURS)]


def group_name(g: int, colour_by: str) -> str:
    """The legend name of group ``g``: "class g" when points are coloured by GMM class, else "digit g"."""
    return f"class {g}" if colour_by == "class" else f"digit {g}"


def groups_of(labels: Optional[np.ndarray], classes: np.ndarray, colour_by: str) -> np.ndarray:
    """The group of each point, ``(N,)``: its GMM class (``colour_by="class"``, or when there are no labels) or
    its digit."""
    return np.asarray(classes if colour_by == "class" or labels is None else labels)


def accuracy_text(accuracy: Optional[float]) -> str:
    """``"accuracy 0.753"``, or ``"no labels"`` for a run without labels (its accuracy is None)."""
    return "no labels" if accuracy is None else f"accuracy {accuracy:.3f}"


# ---------------------------------------------------------------------------------------------- Plotly
def plotly_points_marker(g: int) -> dict:
    """The marker of group ``g``'s points in a Plotly scatter (5 px, a little transparent: dense groups show)."""
    return dict(size=5, color=group_colour(g), opacity=0.75)


def plotly_means_marker() -> dict:
    """The class means in a Plotly scatter: black crosses with a thin white outline (visible on any point)."""
    return dict(symbol="x", size=12, color=MEANS_COLOUR, line=dict(width=1, color="white"))


def plotly_axis(title: str, span: Optional[tuple] = None) -> dict:
    """A Plotly axis of the scatter: its name, no tick labels or zero line, and the fixed range ``span = (lo, hi)``
    when given (else Plotly fits the data)."""
    axis = dict(title=dict(text=title), showticklabels=False, zeroline=False)
    if span is not None:
        axis.update(range=list(span), autorange=False)
    return axis


# ---------------------------------------------------------------------------------------------- matplotlib
FRAME_POINT_ALPHA = 0.8  # the frames' points (the GIF palette blends each colour with white at this coverage)
FRAME_MEANS = dict(s=90, marker="x", c=MEANS_COLOUR, linewidths=2.2)  # the frames' class means
FIGURE_POINT_SIZE = 4  # pca.png's points (two panels of 10 x 4.6 inches)


def frame_point_size(n: int) -> float:
    """Area (points squared) of a frame's points for ``n`` points: smaller when there are many, 4 to 30."""
    return float(np.clip(9000 / max(n, 1), 4, 30))


# ---------------------------------------------------------------------------------------------- titles
def replay_title(frame) -> str:
    """The one-line title of a replay frame (the dashboard's Replay; ``frame`` a
    :class:`vaegmm.views.animation.Frame`)."""
    if frame.finished:
        return f"iteration {frame.iteration} · {accuracy_text(frame.accuracy)}"
    return (f"iteration {frame.iteration}, VAE epoch {frame.epoch} of {frame.epochs} · "
            f"{accuracy_text(frame.accuracy)} (GMM of iteration {frame.iteration - 1})")


def frame_titles(frame) -> tuple[str, str]:
    """``(title, subtitle)`` of a frame in a file (GIF / MP4 / PNG): larger type, whole sentences for a slide."""
    if frame.finished:
        title = ("Iteration 0: the untrained encoder" if frame.iteration == 0
                 else f"Iteration {frame.iteration}: VAE and GMM updated")
        return title, f"{accuracy_text(frame.accuracy)} (GMM classes of iteration {frame.iteration})"
    return (f"Iteration {frame.iteration}: VAE epoch {frame.epoch} of {frame.epochs}",
            f"{accuracy_text(frame.accuracy)} (GMM classes of iteration {frame.iteration - 1}; "
            f"crosses: the means the codes are pulled toward)")


def frame_caption(kind: str) -> str:
    """The foot line of a file's frames when the replay has no caption of its own."""
    return f"VAE + GMM mutual learning · {LABELS[kind]} of the latent codes"


def pca_panel_title(iteration: int, role: str, accuracy: Optional[float]) -> str:
    """A panel of ``pca.png``: ``role`` "before" or "after"."""
    return f"iteration {iteration} ({role}): {accuracy_text(accuracy)}"
