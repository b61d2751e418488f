"""A drawing made MNIST-like as MNIST was made: the stroke's box scaled into 20 x 20 keeping its aspect, the
centre of mass at the centre of 28 x 28; an empty canvas says "nothing drawn"."""
from __future__ import annotations

import numpy as np
import pytest

from vaegmm.model.digitize import BOX, CENTRE, NOTHING_DRAWN, digitize, ink


def _stroke(h, w, points, width=10, rgba=True, ink_rgb=(0, 0, 0), paper=None):
    """A canvas (H, W, 4) with a polyline through ``points`` [(row, col), ...] drawn as round dabs."""
    yy, xx = np.mgrid[0:h, 0:w]
    mask = np.zeros((h, w), dtype=bool)
    for (y0, x0), (y1, x1) in zip(points[:-1], points[1:]):
        for t in np.linspace(0, 1, 200):
            mask |= (yy - (y0 + t * (y1 - y0))) ** 2 + (xx - (x0 + t * (x1 - x0))) ** 2 <= (width / 2) ** 2
    if rgba:
        canvas = np.zeros((h, w, 4), dtype=np.uint8)
        canvas[mask, :3] = ink_rgb
        canvas[mask, 3] = 255
        return canvas
    grey = np.full((h, w), 255 if paper == "white" else 0, dtype=np.uint8)
    grey[mask] = 0 if paper == "white" else 255
    return grey


def _box_and_centre(image):
    img = image.reshape(28, 28)
    rows, cols = np.flatnonzero(img.any(axis=1)), np.flatnonzero(img.any(axis=0))
    total = img.sum()
    cy = (img.sum(axis=1) * np.arange(28)).sum() / total
    cx = (img.sum(axis=0) * np.arange(28)).sum() / total
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1, cy, cx


@pytest.mark.parametrize("h, w, points", [
    (400, 400, [(40, 100), (40, 300), (360, 160)]),  # a 7 in the top-left part of a large canvas
    (280, 280, [(250, 30), (250, 60)]),  # a short flat dash in a corner: wide, 1-3 rows high
    (600, 200, [(20, 100), (580, 100)]),  # a tall 1 on a tall canvas
    (300, 500, [(100, 400), (150, 450), (140, 380), (100, 400)]),  # a small loop far right
])
def test_a_synthetic_stroke_fills_a_20_box_keeping_its_aspect_with_its_mass_at_the_centre(h, w, points):
    canvas = _stroke(h, w, points)
    d = digitize(canvas)
    assert not d.empty and d.image.shape == (784,) and d.image.dtype == np.float32
    assert 0.0 <= d.image.min() and d.image.max() == 1.0
    box_h, box_w, cy, cx = _box_and_centre(d.image)
    assert box_h <= BOX and box_w <= BOX and max(box_h, box_w) >= BOX - 1  # the longer side fills the box
    # the aspect is kept (to the pixel the rounding allows)
    rows = np.flatnonzero(ink(canvas).any(axis=1))
    cols = np.flatnonzero(ink(canvas).any(axis=0))
    h0, w0 = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    short, expected = (box_w, BOX * w0 / h0) if h0 >= w0 else (box_h, BOX * h0 / w0)
    assert abs(short - max(1.0, expected)) <= 1.0  # the shorter side in proportion, to the pixel
    assert abs(cy - CENTRE) <= 0.5 and abs(cx - CENTRE) <= 0.5


def test_the_colour_of_the_ink_and_of_the_paper_do_not_matter():
    points = [(40, 60), (200, 60), (200, 160)]
    black = digitize(_stroke(240, 240, points, ink_rgb=(0, 0, 0))).image
    red = digitize(_stroke(240, 240, points, ink_rgb=(255, 0, 0))).image
    np.testing.assert_allclose(black, red)  # RGBA: the stroke's coverage, whatever its colour
    dark_on_white = digitize(_stroke(240, 240, points, rgba=False, paper="white")).image
    white_on_black = digitize(_stroke(240, 240, points, rgba=False, paper="black")).image
    np.testing.assert_allclose(dark_on_white, white_on_black, atol=1e-6)
    np.testing.assert_allclose(dark_on_white, black, atol=1e-6)
    opaque = _stroke(240, 240, points, ink_rgb=(255, 255, 255))
    opaque[..., 3] = 255  # a canvas drawn on an opaque black background: the grey level is the ink
    np.testing.assert_allclose(digitize(opaque).image, black, atol=1e-6)


def test_an_empty_drawing_says_nothing_drawn():
    for canvas in (np.zeros((280, 280, 4), np.uint8), np.full((50, 80), 255, np.uint8), np.zeros((10, 10))):
        d = digitize(canvas)
        assert d.empty and d.image is None and d.message == NOTHING_DRAWN
    faint = np.zeros((100, 100, 4), np.uint8)
    faint[50, 50, 3] = 255
    assert not digitize(faint).empty  # one dot is a drawing: the box is scaled up to 20 x 20
    with pytest.raises(ValueError, match="a drawing must be"):
        digitize(np.zeros((4, 4, 2)))
