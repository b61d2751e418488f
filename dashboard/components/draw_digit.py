"""The drawing canvas of "Ask the trained model": a student draws a digit with the mouse or a finger; the drawing
comes back as an MNIST-like image (:func:`vaegmm.model.digitize.digitize`).

The canvas is ``streamlit-drawable-canvas`` (a Streamlit components-v2 component, Fabric.js): it sends the drawing
at the end of each stroke, and its pixels only with ``return_image_data=True``. 280 px square, so it fits a
390 px wide phone (Streamlit's phone padding leaves 358 px); Fabric takes touch strokes as it takes the mouse's.
"""
from __future__ import annotations

import hashlib

import streamlit as st

from vaegmm.model.digitize import NOTHING_DRAWN, Digitized, digitize

CANVAS_PX = 280  # the canvas's side: fits a 390 px phone screen
STROKE_PX = 20  # a pen about a fourteenth of the box wide, as MNIST's strokes are of their 20 px box


def _canvas_key(key: str) -> str:
    """The canvas's widget key now: **Clear** gives the canvas a new key (a fresh, empty canvas)."""
    return f"{key}_{st.session_state.get(f'_{key}_clears', 0)}"


def _clear(key: str) -> None:
    st.session_state[f"_{key}_clears"] = st.session_state.get(f"_{key}_clears", 0) + 1


def drawing_canvas(key: str) -> Digitized:
    """Draws a **Clear** button and the canvas; returns the drawing made MNIST-like (``image`` None and ``message``
    "nothing drawn" while the canvas is empty). Digitizing runs once per new drawing, not at every rerun of the
    page's polling fragment."""
    # imported here, not at the top: the package registers its component with Streamlit's runtime when imported,
    # and fails outside one ("must be declared in pyproject.toml with asset_dir"): in the server's own import of
    # app.py (before a script run) and in tests that import the page modules
    from streamlit_drawable_canvas import st_canvas

    # the button first: the canvas's own toolbar (undo, redo, clear) appears on hover in the 2.65 rem above
    # the canvas's right half, where it would cover a heading; the short button sits in its left half
    st.button("Clear", key=f"{key}_clear", icon=":material/ink_eraser:", on_click=_clear, args=(key,),
              help="Empty the canvas and draw again.")
    result = st_canvas(stroke_width=STROKE_PX, stroke_color="#000000", background_color="#ffffff",
                       width=CANVAS_PX, height=CANVAS_PX, drawing_mode="freedraw", return_image_data=True,
                       key=_canvas_key(key))
    png = result.image_bytes
    if not png:
        return Digitized(None, NOTHING_DRAWN)
    digest = hashlib.sha1(png).hexdigest()
    memo = st.session_state.get(f"_{key}_digitized")
    if memo is None or memo[0] != digest:
        memo = (digest, digitize(result.image_data))
        st.session_state[f"_{key}_digitized"] = memo
    return memo[1]
