"""A small grey-scale picture (a digit, a reconstruction, a decoded class mean) drawn inline as a PNG data URI.

``st.image`` stores each picture as a media file that the next script run deletes; a browser that asks for one
a moment late (a click reruns the Latent explorer while its images load) gets a 404 and the console error "Image
source error". A digit is a few hundred bytes of PNG, so it travels inside the page's HTML instead.
"""
from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from dashboard.components.markup import escape_html


def png_data_uri(img: np.ndarray) -> str:
    """``img``: (h, w) in [0, 1] (values outside are clipped) -> ``data:image/png;base64,...`` of 8-bit grey."""
    grey = (np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(grey, mode="L").save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def figure_html(img: np.ndarray, caption: str) -> str:
    """An ``<figure>`` of ``img`` ((h, w) in [0, 1]) at its own pixel size with ``caption`` (escaped) below."""
    h, w = np.shape(img)
    text = escape_html(caption)
    return (f'<figure style="margin:0 0 0.5rem 0">'
            f'<img src="{png_data_uri(img)}" width="{w}" height="{h}" alt="{text}" '
            f'style="max-width:100%;height:auto;image-rendering:pixelated">'
            f'<figcaption style="font-size:0.875rem;opacity:0.6">{text}</figcaption></figure>')


def digit_image(container, img: np.ndarray, caption: str) -> None:
    """Draws ``img`` ((h, w) in [0, 1]) with ``caption`` in ``container`` (``st`` or a column)."""
    container.markdown(figure_html(img, caption), unsafe_allow_html=True)
