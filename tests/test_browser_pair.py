"""Issue 19 in the real browser: ``?pair=feedback`` trains with and without feedback side by side; both latent
pictures move while the VAEs train, both accuracy curves share one chart with the gap labelled, and both runs
finish. Any frontend error of any page fails the test (WatchedBrowser). Screenshots (projector width and a narrow
screen) go to artifacts/browser/."""
from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest

from browser_support import STATUS, no_exceptions, shoot

pytestmark = pytest.mark.browser

# the feedback-lesson preset on 200 images; many small batches, so each VAE update lasts a few seconds and the
# worker sends several snapshots of the codes during it (one per 0.5 CPU s)
PAIR = {"preset": "feedback-lesson", "pair": "feedback", "n": 200, "epochs": 120, "batch": 20, "iterations": 2}

# every chart on the page: its meta, and for the latent pictures a signature of the drawn points
PAIR_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(el => {
    const pts = (el.data || []).filter(t => t.meta === 'points');
    const sig = pts.map(t => !t.x ? '' : (t.x.bdata ? t.x.bdata.slice(0, 60) : Array.from(t.x).slice(0, 8).join(',')))
        .join('|');
    const lay = el._fullLayout || el.layout;
    return {meta: el.layout ? el.layout.meta : null, sig: sig,
            curves: (el.data || []).filter(t => t.meta === 'curve').map(t => ({name: t.name, n: (t.y || []).length})),
            title: lay && lay.title ? lay.title.text : '',
            notes: (lay && lay.annotations || []).map(a => a.text),
            xrange: lay && lay.xaxis ? lay.xaxis.range : null, yrange: lay && lay.yaxis ? lay.yaxis.range : null};
})"""


@pytest.fixture
def server(app_server):
    """The shared app (conftest's ``app_server``: 2 training slots: the pair trains at once)."""
    return app_server


def states(page) -> list[str]:
    return page.evaluate(f"""() => Array.from(document.querySelectorAll('{STATUS}'))
        .map(el => el.getAttribute('data-state'))""")


def test_pair_trains_side_by_side_pictures_move_both_finish(browser, server):
    page = browser.new_page(viewport={"width": 1920, "height": 1080})  # a projector
    page.goto(f"{server}/?{urlencode(PAIR)}")
    page.wait_for_selector('[data-testid="stApp"]', timeout=30000)
    start = page.locator(".st-key-pair_start button").first
    start.wait_for(timeout=30000)
    sides = page.locator('[data-testid="vaegmm-pair-side"]')
    sides.nth(1).wait_for(timeout=30000)  # drawn after the button (a busy browser showed the button first)
    assert sides.count() == 2
    page.wait_for_timeout(800)
    start.click()
    seen = {0: set(), 1: set()}  # each latent picture's signatures while its side trains
    t0 = time.monotonic()
    while time.monotonic() - t0 < 300:  # a busy machine (no timing is asserted)
        latent = [c for c in page.evaluate(PAIR_JS) if c["meta"] == "latent"]
        now = states(page)
        if len(latent) == 2 and len(now) == 2:  # (both running at once: one side saw 2 pictures on a fast CPU)
            for i in (0, 1):
                if now[i] == "running":
                    seen[i].add(latent[i]["sig"])
        if now == ["finished", "finished"]:
            break
        page.wait_for_timeout(150)
    assert states(page) == ["finished", "finished"], states(page)
    # both pictures moved: several different codes drawn on each side during the run
    assert len(seen[0]) >= 3 and len(seen[1]) >= 3, {k: len(v) for k, v in seen.items()}
    page.wait_for_function("""() => Array.from(document.querySelectorAll('.js-plotly-plot')).some(el =>
        el.layout && el.layout.meta === 'pair_accuracy' && el.data.filter(t => t.meta === 'curve')
            .every(t => t.y.length === 3))""", timeout=15000)
    found = page.evaluate(PAIR_JS)
    acc = [c for c in found if c["meta"] == "pair_accuracy"]
    assert len(acc) == 1
    assert acc[0]["curves"] == [{"name": "with feedback", "n": 3}, {"name": "without feedback", "n": 3}]
    gap = float(page.get_attribute('[data-testid="vaegmm-pair-gap"]', "data-gap"))
    assert acc[0]["notes"] == [f"feedback {gap:+.1f} points (iteration 2)"]
    latent = [c for c in found if c["meta"] == "latent"]
    assert len(latent) == 2 and latent[0]["xrange"] == latent[1]["xrange"] and latent[0]["yrange"] == latent[1]["yrange"]
    assert "with feedback · iteration 2 · PCA" in latent[0]["title"]
    assert "without feedback · iteration 2 · PCA" in latent[1]["title"]
    # side by side on a projector: the two pictures' left edges are at least 700 px apart on one row
    boxes = page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot'))
        .filter(el => el.layout && el.layout.meta === 'latent').map(el => el.getBoundingClientRect())
        .map(r => ({x: r.x, y: r.y, w: r.width}))""")
    assert abs(boxes[0]["y"] - boxes[1]["y"]) < 5 and boxes[1]["x"] - boxes[0]["x"] > 700, boxes
    no_exceptions(page)
    shoot(page, "pair_projector.png")
    # a narrow screen: the halves stack, each picture the full width
    page.set_viewport_size({"width": 600, "height": 1000})
    page.wait_for_timeout(1500)
    boxes = page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot'))
        .filter(el => el.layout && el.layout.meta === 'latent').map(el => el.getBoundingClientRect())
        .map(r => ({x: r.x, y: r.y, w: r.width}))""")
    assert boxes[1]["y"] > boxes[0]["y"] + 200 and boxes[1]["w"] > 450, boxes
    no_exceptions(page)
    shoot(page, "pair_narrow.png")
