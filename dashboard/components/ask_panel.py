"""Ask the trained model (issue 25): a digit drawn by hand, encoded by the chosen iteration's encoder and
classified by its GMM (Serket's recognition mode: nothing learns), shown as a large star in the 2-D view above,
the GMM's class probabilities, what the model saw, its reconstruction and the 5 nearest training images.

The page draws its scatter into a container made *before* :func:`ask_row` and fills it after, so the star of the
drawing just made is in the picture of the same script run (the container keeps the scatter's place on the
page). The answers come from :func:`vaegmm.runs.ask.ask_run`, one call per new drawing.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional

import numpy as np
import streamlit as st

from dashboard import charts
from dashboard.components.digit_image import enlarged, figure_html
from dashboard.components.draw_digit import drawing_canvas
from dashboard.components.figure_cache import cached_figure
from dashboard.components.markup import escape_markdown
from dashboard.state.session import RunEntry
from vaegmm.model.recognition import Answer, NotAnswerable, majority_digits
from vaegmm.runs.ask import answerable, ask_run
from vaegmm.views.latent2d import LABELS, LDA, PCA, TSNE

PROMPT = ("Draw a digit in the box, with the mouse or a finger: the model encodes it and the star shows where it "
          "lands.")

EXACT = "The ★ in the picture above is your digit's code, projected exactly as the points are ({})."


@dataclass
class Asked:
    """What :func:`ask_row` found: the ``answer`` (None for an empty canvas or a run that cannot answer) and the
    star's place ``star (2,)`` in the view drawn (None when there is none)."""

    answer: Optional[Answer] = None
    star: Optional[np.ndarray] = None


def askable(snap) -> bool:
    """Whether a run's page offers the canvas: the run is paused or no longer trains (the iteration asked stays
    the same while the student draws)."""
    return snap is not None and (snap.state == "paused" or not snap.is_active)


def class_names(result, labels: Optional[np.ndarray]) -> list[str]:
    """Each GMM class named for the bar chart: "class 3 · mostly 7s" (its most frequent digit among its training
    images), "class 3 · empty", or "class 3" without labels."""
    k = len(result.class_means)
    if labels is None:
        return [f"class {c}" for c in range(k)]
    major = majority_digits(result.classes, labels, k)
    return [f"class {c} · mostly {d}s" if d >= 0 else f"class {c} · empty" for c, d in enumerate(major)]


def _digest(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image, dtype=np.float32).tobytes()).hexdigest()


def _answer(entry: RunEntry, iteration: int, image: np.ndarray) -> Answer:
    """The run's answer for one drawing (asked once per drawing, iteration and t-SNE state: the page's polling
    fragment reruns every half second)."""
    run = entry.run
    ready = run.views.tsne_status(iteration) == "ready"
    return cached_figure(entry, ("answer", iteration, _digest(image), ready), lambda: ask_run(run, iteration, image))


def star_place(answer: Answer, kind: str) -> tuple[Optional[np.ndarray], str]:
    """The star's place in the view ``kind`` drawn and a caption: exact in PCA and LDA; in t-SNE the mean place of
    the drawing's nearest training codes (t-SNE has no map for new points)."""
    if kind == TSNE:
        if answer.tsne_xy is None:
            return None, "The star appears when the t-SNE of this iteration is ready."
        return answer.tsne_xy[0], ("t-SNE has no map for a new point: the ★ in the picture above sits at the mean "
                                   "place of the 5 training codes nearest to your digit's code.")
    if kind == LDA and answer.lda_xy is not None:
        return answer.lda_xy[0], EXACT.format(LABELS[LDA])
    return answer.pca_xy[0], EXACT.format(LABELS[PCA])


def verdict(answer: Answer, names: list[str], labelled: bool) -> str:
    """One sentence: the class the drawing joins, its probability and the digit that class is matched to."""
    c, p = int(answer.classes[0]), float(answer.proba[0].max())
    text = f"Your digit joins **class {c}** (probability {p:.2f})"
    if not labelled:
        return text + " (the run has no labels, so the classes have no digits)."
    d = int(answer.digits[0])
    if d < 0:
        return text + f"; class {c} is matched to no digit."
    return text + f": the model reads it as a **{d}** (the digit class {c} is matched to in training)."


def ask_row(entry: RunEntry, result, kind: str, key: str) -> Asked:
    """The canvas beside the verdict and the class probabilities, then what the model saw, its reconstruction and
    the nearest training images; the star's place in view ``kind`` (the view drawn above). For a run saved before
    runs kept what answering needs: one sentence instead."""
    run = entry.run
    st.markdown(f"**Ask the trained model: draw a digit** (iteration {result.iteration})")
    if not answerable(run, result.iteration):
        st.caption(":material/info: This run cannot be asked: it was saved before runs kept their encoders. "
                   "Train its settings again to draw digits for it.")
        return Asked()
    left, right = st.columns([1.15, 1])
    with left:
        drawn = drawing_canvas(key)
    with right:
        if drawn.empty:
            st.info(PROMPT, icon=":material/draw:")
            st.caption("Try it in a lecture: draw a 7 and see which class it joins; then a sloppy one, or a 1 "
                       "with a base, and see it move.")
            return Asked()
        try:
            answer = _answer(entry, result.iteration, drawn.image)
        except (NotAnswerable, ValueError) as e:
            st.caption(escape_markdown(str(e)))
            return Asked()
        names = class_names(result, run.labels)
        st.markdown(verdict(answer, names, run.labels is not None))
        bars = cached_figure(entry, ("proba", result.iteration, _digest(drawn.image)),
                             lambda: charts.class_probability_chart(answer.proba[0], names))
        st.plotly_chart(bars, key=f"{key}_proba",
                        config={"displaylogo": False, "displayModeBar": False})
        star, note = star_place(answer, kind)
        st.caption(note)
    row = cached_figure(entry, ("pictures", result.iteration, _digest(drawn.image)),
                        lambda: _pictures(run, drawn.image, answer))
    st.markdown(row, unsafe_allow_html=True)
    return Asked(answer, star)


def _pictures(run, image: np.ndarray, answer: Answer) -> str:
    """One wrapping row of small pictures (HTML): what the model saw (the drawing made MNIST-like), its
    reconstruction, and the nearest training images with their digits."""
    items = [(image, "what the model saw"), (answer.reconstruction[0], "its reconstruction")]
    if answer.nearest is not None and run.images_u8 is not None:
        for rank, i in enumerate(answer.nearest[0]):
            tag = f"digit {int(run.labels[i])}" if run.labels is not None else f"image {int(i)}"
            items.append((run.images_u8[i] / 255.0, f"nearest {rank + 1}: {tag}"))
    figures = "".join(f'<div style="width:108px">{figure_html(enlarged(img, 3), cap)}</div>' for img, cap in items)
    return f'<div data-testid="vaegmm-asked" style="display:flex;flex-wrap:wrap;gap:0.6rem">{figures}</div>'


def marked_figure(fig, xy: Optional[np.ndarray], what: str = "star", name: str = "your drawing"):
    """The scatter ``fig`` with one more marker at ``xy`` (:func:`charts.marked`; ``fig`` itself when ``xy`` is
    None), kept on ``fig`` for its last place: the polling fragment redraws the same figure object until the
    picture, the drawing or the point changes."""
    if xy is None:
        return fig
    place = (what, float(xy[0]), float(xy[1]))
    memo = getattr(fig, "_marked", None)
    if memo is None or memo[0] != place:
        memo = (place, charts.marked(fig, xy, what, name))
        fig._marked = memo
    return memo[1]
