"""A class trains at once: many real browser pages against one `streamlit run app.py` (issue 8).

Every page opens the same tiny experiment and presses Start within about a second of the others. No page may
turn white (a frontend ``pageerror`` such as "Cannot set a node at a delta path"), every page must show its run
or its queue position within 3 s of Start, and every run must finish with its page showing it and its charts.
Run once with the default cap (2 runs at a time: the rest queue) and once with a cap as large as the class.
"""
from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest

from browser_support import ARTIFACTS, STATUS, PageErrors, launch_chromium, streamlit_server, wait_for_chart

pytestmark = pytest.mark.browser

PAGES = 8
CLASS_RUN = {"preset": "quick-demo", "n": 300, "latent": 4, "iterations": 2, "epochs": 5, "batch": 100, "gmm": "em"}

_STATE_JS = f"""() => {{ const el = document.querySelector('{STATUS}');
    const alert = Array.from(document.querySelectorAll('[data-testid="stAlert"]')).map(a => a.innerText).join(' ');
    return el ? [el.getAttribute('data-state'), alert] : ['', alert]; }}"""


def _classroom(browser, url: str, pages: int, tag: str) -> dict:
    errors = PageErrors()
    contexts, tabs = [], []
    for i in range(pages):
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        page = ctx.new_page()
        errors.watch(page, f"page {i}")
        page.goto(f"{url}/?{urlencode(CLASS_RUN)}")
        contexts.append(ctx)
        tabs.append(page)
    for page in tabs:
        page.locator('[data-testid="stButton"] button', has_text="Start").first.wait_for(timeout=60000)
    starts, shown = [], [None] * pages
    for page in tabs:
        starts.append(time.monotonic())
        page.locator('[data-testid="stButton"] button', has_text="Start").first.dispatch_event("click")
    spread = starts[-1] - starts[0]
    finished = [False] * pages
    seen_queue = [False] * pages
    deadline = time.monotonic() + 240
    while not all(finished) and time.monotonic() < deadline:
        for i, page in enumerate(tabs):
            if finished[i]:
                continue
            state, alert = page.evaluate(_STATE_JS)
            if "position" in alert and "queue" in alert:
                seen_queue[i] = True
            if shown[i] is None and state in ("queued", "running", "paused", "finished"):
                shown[i] = time.monotonic() - starts[i]
            if state == "finished":
                finished[i] = True
            elif state in ("failed", "stopped"):
                pytest.fail(f"page {i} ended {state}: {page.inner_text(STATUS)}")
        tabs[0].wait_for_timeout(100)
    for i, page in enumerate(tabs):
        page.wait_for_timeout(300)
    white = sum(1 for e in {m.split(']')[0] for m in errors.errors if "pageerror" in m})
    result = {"pages": pages, "white": white, "finished": sum(finished), "shown_s": shown, "spread_s": spread,
              "queued_pages": sum(seen_queue)}
    try:
        errors.check()
        assert all(finished), f"finished {sum(finished)} of {pages} pages"
        slow = [(i, s) for i, s in enumerate(shown) if s is None or s > 3.0]
        assert not slow, f"pages without their run or queue position 3 s after Start: {slow}"
        for i, page in enumerate(tabs):
            found = wait_for_chart(page, "metrics", 3)
            latent = [c for c in found if c["meta"] == "latent"]
            assert latent and sum(t["n"] for t in latent[0]["traces"] if t["meta"] == "points") == CLASS_RUN["n"]
            assert "iteration 2 of 2" in page.inner_text(STATUS)
        tabs[0].screenshot(path=str(ARTIFACTS / f"classroom_{tag}.png"))
    finally:
        with open(ARTIFACTS / "classroom.txt", "a") as f:
            f.write(f"{tag}: {result}\n")
        for ctx in contexts:
            ctx.close()
    return result


@pytest.mark.parametrize("cap", [None, PAGES], ids=["default-cap", f"cap-{PAGES}"])
def test_classroom_pages_never_go_white(cap):
    from playwright.sync_api import sync_playwright

    env = {} if cap is None else {"VAEGMM_MAX_RUNS": str(cap)}
    with streamlit_server(env, log_name=f"classroom_{cap or 'default'}.log") as (url, _proc), \
            sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            _classroom(browser, url, PAGES, f"cap-{cap or 'default'}")
        finally:
            browser.close()
