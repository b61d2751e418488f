"""Asking the trained model in a real browser (issue 25): a digit drawn with mouse strokes on the canvas of a
finished quick run lands as a star in the latent picture, with the class probabilities and the reconstruction, at
1400 px wide and at a 390 x 844 phone viewport (the saved run's page, as a student opens the share link); a click
on an empty spot of the Latent explorer's PCA view decodes that place.

Any frontend error of any page fails the test (WatchedBrowser). Screenshots go to artifacts/browser/.
"""
from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest

from browser_support import ARTIFACTS, no_exceptions, shoot
from test_browser import button, wait_state
from test_follow_browser import LINK

pytestmark = pytest.mark.browser

QUICK = {"n": 300, "latent": 4, "epochs": 20, "iterations": 2, "batch": 50, "codes": "mean"}
SEVEN = [(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]  # a 7 in one stroke, as fractions of the canvas

# the drawing's answer on the page: a star trace in the latent picture, a bar chart of the class probabilities
# and the row of pictures (what the model saw, its reconstruction, 5 nearest), every image decoded
ANSWER_JS = """() => {
    const plots = Array.from(document.querySelectorAll('.js-plotly-plot'));
    const star = plots.some(el => el.layout && el.layout.meta === 'latent'
        && (el.data || []).some(t => t.meta === 'star'));
    const bars = plots.find(el => el.layout && el.layout.meta === 'proba');
    const row = document.querySelector('[data-testid="vaegmm-asked"]');
    const imgs = row ? Array.from(row.querySelectorAll('img')).filter(i => i.complete && i.naturalWidth > 0) : [];
    return {star: star, bars: bars ? bars.data[0].y.length : 0, pictures: imgs.length}; }"""


def stroke(page, box: dict, points: list, steps: int = 8) -> None:
    """One mouse stroke through ``points`` (fractions of ``box``), pressed from the first to the last."""
    def at(fx, fy):
        return box["x"] + fx * box["width"], box["y"] + fy * box["height"]

    page.mouse.move(*at(*points[0]))
    page.mouse.down()
    for (ax, ay), (bx, by) in zip(points, points[1:]):
        for i in range(1, steps + 1):
            t = i / steps
            page.mouse.move(*at(ax + t * (bx - ax), ay + t * (by - ay)))
    page.mouse.up()


def draw_and_wait(page, what: str) -> float:
    """Draw a 7 on the page's canvas; the seconds until the star, the bars and the pictures are on the page."""
    canvas = page.locator("canvas.upper-canvas").first
    canvas.wait_for(timeout=30000)
    canvas.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    box = canvas.bounding_box()
    viewport = page.viewport_size["width"]
    assert box["x"] >= 0 and box["x"] + box["width"] <= viewport, f"{what}: the canvas {box} leaves the screen"
    t0 = time.monotonic()
    stroke(page, box, SEVEN)
    try:
        page.wait_for_function(f"() => {{ const a = ({ANSWER_JS})(); return a.star && a.bars >= 10 && "
                               "a.pictures === 7; }", timeout=30000, polling=50)
    except Exception:
        raise AssertionError(f"{what}: no answer on the page: {page.evaluate(ANSWER_JS)}") from None
    return time.monotonic() - t0


def test_a_drawn_digit_lands_as_a_star_with_its_classes_on_a_wide_screen_and_a_phone(browser, app_server):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{app_server}/?{urlencode(QUICK)}")
    button(page, "Start").wait_for(timeout=30000)
    button(page, "Start").click()
    page.locator(LINK).first.wait_for(timeout=60000)
    run_id = int(page.locator(LINK).first.get_attribute("href").rsplit("run=", 1)[1])
    wait_state(page, "finished", 180)
    wide_s = draw_and_wait(page, "1400 px")
    assert "Your digit joins class" in page.inner_text("body")
    no_exceptions(page)
    shoot(page, "ask_wide.png")
    # the Latent explorer: a click on an empty spot of the PCA view decodes it
    page.locator('[data-testid="stPageLink"] a', has_text="Latent explorer").first.click()
    page.wait_for_function("() => document.body.innerText.includes('click a point or an empty spot')",
                           timeout=30000)
    page.wait_for_timeout(800)
    x, y = page.evaluate("""() => { const gd = document.querySelector('.js-plotly-plot');
        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, r = gd.getBoundingClientRect();
        return [r.left + xa._offset + 0.06 * xa._length, r.top + ya._offset + 0.06 * ya._length]; }""")
    page.mouse.click(x, y)  # the top-left corner of the picture: no digit there
    page.wait_for_function("() => document.body.innerText.includes('decoded at (')", timeout=15000)
    no_exceptions(page)
    shoot(page, "ask_explorer_decoded.png")
    page.close()
    # a student's phone, on the run's saved page (what the share link opens once the run has ended)
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                device_scale_factor=2).new_page()
    phone.goto(f"{app_server}/?run={run_id}")
    phone_s = draw_and_wait(phone, "390 px")
    no_exceptions(phone)
    phone.screenshot(path=str(ARTIFACTS / "ask_phone.png"))  # the viewport the student sees after drawing
    shoot(phone, "ask_phone_page.png")
    phone.close()
    with open(ARTIFACTS / "timings.txt", "a") as f:
        f.write(f"ask: stroke end to star, bars and pictures shown: {wide_s:.2f} s at 1400 px, "
                f"{phone_s:.2f} s on the phone viewport\n")
