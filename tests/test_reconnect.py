"""Issue 10: a network blip does not kill the run. The page talks to the server through a TCP relay that closes
every connection and refuses new ones for 10 s in the middle of a run; Streamlit's frontend reconnects by itself,
and the run, kept alive by the reconnect grace period, goes on and finishes on the same page."""
from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest

from browser_support import (ARTIFACTS, STATUS, PageErrors, TcpRelay, launch_chromium, streamlit_server,
                             wait_for_chart)

pytestmark = pytest.mark.browser

RUN = {"preset": "quick-demo", "n": 300, "latent": 4, "iterations": 3, "epochs": 400, "batch": 100, "gmm": "em"}


def _status(page) -> tuple[str, str]:
    return page.evaluate(f"""() => {{ const el = document.querySelector('{STATUS}');
        return el ? [el.getAttribute('data-state'), el.getAttribute('data-iterations')] : ['', '']; }}""")


def test_run_survives_a_ten_second_network_cut():
    from playwright.sync_api import sync_playwright

    with streamlit_server({"VAEGMM_RECONNECT_GRACE": "60"}, log_name="reconnect.log") as (url, _proc), \
            sync_playwright() as p:
        relay = TcpRelay(int(url.rsplit(":", 1)[1]))
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"http://127.0.0.1:{relay.port}/?{urlencode(RUN)}")
            start = page.locator('.st-key-btn_start button').first
            start.wait_for(timeout=60000)
            start.click()
            page.wait_for_function(f"""() => {{ const el = document.querySelector('{STATUS}');
                return el && el.getAttribute('data-state') === 'running'
                    && Number(el.getAttribute('data-iterations')) >= 1; }}""", timeout=120000)
            state, done = _status(page)
            relay.cut(10.0)  # every connection closed, new ones refused, for 10 s
            errors = PageErrors()
            errors.watch(page)
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline and _status(page)[0] != "finished":
                page.wait_for_timeout(250)
                assert _status(page)[0] not in ("stopped", "failed"), page.inner_text(STATUS)
            assert _status(page)[0] == "finished", page.inner_text(STATUS)
            assert "iteration 3 of 3" in page.inner_text(STATUS)
            wait_for_chart(page, "metrics", RUN["iterations"] + 1)
            errors.errors = [e for e in errors.errors if "WebSocket" not in e and "disconnected" not in e]
            errors.check()
            page.screenshot(path=str(ARTIFACTS / "after_network_cut.png"))
            with open(ARTIFACTS / "timings.txt", "a") as f:
                f.write(f"network cut 10 s at iteration {done} ({state}): the run went on and finished\n")
        finally:
            browser.close()
            relay.close()
