"""The explorer's digits are inline PNGs: the pixels survive the round trip and a caption is text, not markup."""
import base64
import io
import re

import numpy as np
from PIL import Image

from dashboard.components.digit_image import figure_html, png_data_uri


def decode(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))


def test_png_round_trip_clips_and_keeps_the_pixels():
    img = np.random.default_rng(0).uniform(-0.5, 1.5, (28, 28))
    back = decode(png_data_uri(img))
    assert back.shape == (28, 28) and back.dtype == np.uint8
    assert np.array_equal(back, (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))


def test_figure_escapes_its_caption_and_keeps_its_size():
    html = figure_html(np.zeros((84, 140)), 'class 3 <img src=x onerror="alert(1)"> \u202e')
    assert '<img src=x' not in html and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    assert 'width="140" height="84"' in html
    assert decode(re.search(r'src="([^"]+)"', html).group(1)).shape == (84, 140)
