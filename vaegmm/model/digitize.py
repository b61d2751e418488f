"""A drawing made MNIST-like, the way MNIST itself was made (LeCun et al.: "the images were size normalized to fit
in a 20x20 pixel box while preserving their aspect ratio ... and centered in a 28x28 image by computing the
center of mass of the pixels"):

1. the ink: an RGBA canvas's alpha (a stroke's coverage, whatever its colour), else the grey level, inverted when
   the background is light (dark ink on paper); scaled so the darkest stroke is 1;
2. the stroke's bounding box, scaled (anti-aliased, Pillow's Lanczos filter) so its longer side is 20 pixels,
   keeping its aspect, and brightened so its strongest pixel is 1 again (a pen stroke drawn thin on a large canvas
   fades when it shrinks, while an MNIST digit's strokes are solid in their middle);
3. placed in 28 x 28 and moved by whole pixels so its centre of mass is within half a pixel of the field's centre
   (13.5, 13.5) in pixel indices; whole pixels keep the box at most 20 x 20.

An empty drawing is not an error: :func:`digitize` returns a :class:`Digitized` whose ``image`` is None and whose
``message`` says "nothing drawn", for the page to show as a prompt.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

SIZE, BOX = 28, 20  # MNIST's field and the box a digit is scaled into
CENTRE = (SIZE - 1) / 2  # 13.5: the field's centre in pixel indices
INK_THRESHOLD = 0.05  # ink (0..1) below this is background: anti-aliasing haze and paper noise
NOTHING_DRAWN = "nothing drawn"


@dataclass(frozen=True)
class Digitized:
    """:func:`digitize`'s result: ``image (784,) float32`` in [0, 1] (MNIST-like, row-major 28 x 28), or None with
    ``message`` "nothing drawn"."""

    image: Optional[np.ndarray]
    message: str = ""

    @property
    def empty(self) -> bool:
        return self.image is None


def ink(canvas: np.ndarray) -> np.ndarray:
    """The ink of a canvas image ``(H, W)`` grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA (uint8 0-255 or float
    0-1): ``(H, W) float32`` in [0, 1], 1 where the stroke is darkest/most opaque."""
    a = np.asarray(canvas)
    if a.ndim == 3 and a.shape[2] in (3, 4):
        scale = 255.0 if a.dtype == np.uint8 or a.max() > 1 else 1.0
        a = a.astype(np.float32) / scale
        if a.shape[2] == 4 and np.ptp(a[..., 3]) > 0:
            value = a[..., 3]  # a stroke on a transparent canvas: its coverage, whatever its colour
        else:
            value = a[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            value = _against_background(value)
    elif a.ndim == 2:
        scale = 255.0 if a.dtype == np.uint8 or a.max() > 1 else 1.0
        value = _against_background(a.astype(np.float32) / scale)
    else:
        raise ValueError(f"a drawing must be (H, W), (H, W, 3) or (H, W, 4), got shape {a.shape}")
    top = float(value.max()) if value.size else 0.0
    return value / top if top > 0 else value


def _against_background(grey: np.ndarray) -> np.ndarray:
    """Grey levels as ink: inverted when the border (the background) is light, so dark ink on paper counts."""
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    return 1.0 - grey if np.median(border) > 0.5 else grey


def digitize(canvas: np.ndarray) -> Digitized:
    """A drawing ``(H, W[, 3 or 4])`` of any size as an MNIST-like image (see the module docstring)."""
    from PIL import Image

    value = ink(canvas)
    rows = np.flatnonzero((value > INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((value > INK_THRESHOLD).any(axis=0))
    if len(rows) == 0:
        return Digitized(None, NOTHING_DRAWN)
    box = np.where(value > INK_THRESHOLD, value, 0.0)[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = box.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # Pillow's (width, height)
    small = np.asarray(Image.fromarray(box.astype(np.float32)).resize(size, Image.Resampling.LANCZOS))
    small = np.clip(small, 0.0, None)  # Lanczos rings a little below 0
    if small.max() <= 0:
        return Digitized(None, NOTHING_DRAWN)
    small = np.minimum(small / small.max(), 1.0)
    field = np.zeros((SIZE, SIZE), dtype=np.float32)
    top, left = (SIZE - small.shape[0]) // 2, (SIZE - small.shape[1]) // 2
    field[top:top + small.shape[0], left:left + small.shape[1]] = small
    cy, cx = _centre_of_mass(field)
    return Digitized(_shift(field, round(CENTRE - cy), round(CENTRE - cx)).reshape(-1), "")


def _centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    """``(row, column)`` of an image's centre of mass, in pixel indices."""
    total = image.sum()
    return (float((image.sum(axis=1) * np.arange(image.shape[0])).sum() / total),
            float((image.sum(axis=0) * np.arange(image.shape[1])).sum() / total))


def _shift(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``image`` moved by whole pixels (what leaves the field is lost; nothing wraps around)."""
    out = np.zeros_like(image)
    h, w = image.shape
    src_y, dst_y = slice(max(0, -dy), min(h, h - dy)), slice(max(0, dy), min(h, h + dy))
    src_x, dst_x = slice(max(0, -dx), min(w, w - dx)), slice(max(0, dx), min(w, w + dx))
    out[dst_y, dst_x] = image[src_y, src_x]
    return out
