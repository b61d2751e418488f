"""Decode any point (issue 25): a click on an empty spot of the PCA view decodes the latent code at that place
(the PCA inverse: the codes' mean plus the two components, the other D - 2 directions at the mean), and a walk
along the straight line between two GMM class means, decoded.

Plotly reports clicks on points only, so the Latent explorer's PCA picture carries an invisible grid of points
(:func:`dashboard.charts.click_grid`, ``customdata`` -1): a click on empty space picks the nearest grid point,
whose place is decoded. The decoding itself is :func:`vaegmm.runs.ask.decode_pca_point` and
:func:`~vaegmm.runs.ask.walk_between_classes`.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import streamlit as st

from dashboard.components.ask_panel import class_names
from dashboard.components.digit_image import enlarged, figure_html
from dashboard.components.markup import escape_markdown
from vaegmm.model.recognition import NotAnswerable
from vaegmm.runs.ask import decode_pca_point, walk_between_classes
from vaegmm.views.latent2d import PCA

WALK_STEPS = 9  # images along a walk, both class means included
NEEDS_PCA = ("Decoding a point needs the PCA view: PCA is a linear map with a way back from the picture to a code "
             "(LDA and t-SNE have none). Switch the View to PCA and click an empty spot.")


def clicked(key: str) -> Optional[tuple]:
    """The new click on the scatter ``key`` (once per click): ``("point", image index)`` for a point,
    ``("spot", (x, y))`` for a click on empty space (a point of the click grid, image index -1), else None."""
    event = st.session_state.get(key)
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return None
    if not points:
        return None
    stamp = tuple(sorted((p.get("curve_number"), p.get("point_index")) for p in points))
    if st.session_state.get(f"_{key}_last_click") == stamp:
        return None
    st.session_state[f"_{key}_last_click"] = stamp
    point = points[0]
    cd = point.get("customdata")
    if isinstance(cd, dict):  # a row of a binary (typed) array reaches the server as {"0": index, "1": ...}
        cd = [cd[k] for k in sorted(cd, key=int)] if all(str(k).isdigit() for k in cd) else None
    if not isinstance(cd, (list, tuple)) or not cd:
        return None
    if int(cd[0]) < 0:
        try:
            return "spot", (float(point["x"]), float(point["y"]))
        except (KeyError, TypeError, ValueError):
            return None
    return "point", int(cd[0])


def decoded_point(run, result, kind: str, xy: Optional[tuple]) -> None:
    """The image decoded at ``xy`` of iteration ``result``'s PCA view, or a line on how to get one."""
    if kind != PCA:
        st.caption(f":material/info: {NEEDS_PCA}")
        return
    if xy is None:
        st.caption(":material/touch_app: Click an empty spot of the picture: the image the decoder makes of the "
                   "code at that place appears here.")
        return
    try:
        code, image = decode_pca_point(run, result.iteration, xy)
    except (NotAnswerable, ValueError) as e:
        st.caption(escape_markdown(str(e)))
        return
    d = len(code)
    st.markdown(figure_html(enlarged(image, 4), f"decoded at ({xy[0]:.2f}, {xy[1]:.2f}) of the PCA view"),
                unsafe_allow_html=True)
    st.caption(f"The code there: the mean of the codes plus {xy[0]:.2f} × PC 1 and {xy[1]:.2f} × PC 2; the other "
               f"{d - 2} directions of the {d}-dimensional code are at the mean (the diamond marks the place).")


def class_walk(run, result, key: str) -> None:
    """Two class choices and the images decoded along the straight line between their means (both ends
    included), or one sentence when the run cannot decode (saved before runs kept their encoders)."""
    names = class_names(result, run.labels)
    k = len(names)
    if k < 2:
        return
    counts = np.asarray(result.class_counts)
    busiest = [int(c) for c in np.argsort(-counts, kind="stable")[:2]]
    c1, c2 = st.columns(2)
    a = c1.selectbox("Walk from", range(k), index=busiest[0], format_func=names.__getitem__, key=f"{key}_from")
    b = c2.selectbox("to", range(k), index=busiest[1], format_func=names.__getitem__, key=f"{key}_to")
    try:
        _, images = walk_between_classes(run, result.iteration, int(a), int(b), steps=WALK_STEPS)
    except (NotAnswerable, ValueError) as e:
        st.caption(escape_markdown(str(e)))
        return
    captions = [f"class {a}"] + [f"{i / (WALK_STEPS - 1):.0%}" for i in range(1, WALK_STEPS - 1)] + [f"class {b}"]
    figures = "".join(f'<div style="width:70px">{figure_html(enlarged(img, 2), cap)}</div>'
                      for img, cap in zip(images, captions))
    st.markdown(f'<div data-testid="vaegmm-walk" style="display:flex;flex-wrap:wrap;gap:0.4rem">{figures}</div>',
                unsafe_allow_html=True)
    st.caption(f"The decoder applied to {WALK_STEPS} codes on the straight line from the mean of class {a} to the "
               f"mean of class {b}: how one typical digit turns into the other in the latent space.")
