"""Issue 18 in a real browser: a second browser session that presses Start with the same settings and seed as a
run training now joins it (the note "Joined an identical run started at HH:MM", read-only controls, one run
training), and a runaway link is refused on the page. Its own server: reuse on (the suite turns it off,
tests/conftest.py), its own results store."""
from __future__ import annotations

import re
import tempfile
from pathlib import Path
from urllib.parse import urlencode

import pytest

from browser_support import STATUS, no_exceptions, shoot, streamlit_server

pytestmark = pytest.mark.browser

SAME = {"n": 200, "latent": 4, "epochs": 400, "iterations": 2, "batch": 25, "codes": "mean", "seed": 11}
RUNAWAY = {"preset": "quick-demo", "n": 5000, "epochs": 1000, "iterations": 50, "batch": 1}


@pytest.fixture
def reuse_server():
    with tempfile.TemporaryDirectory(prefix="vaegmm-reuse-db-") as d:
        env = {"VAEGMM_MAX_RUNS": "2", "VAEGMM_REUSE": "on", "VAEGMM_DB": str(Path(d) / "runs.db")}
        with streamlit_server(env, log_name="server-reuse.log") as (url, _proc):
            yield url


def open_page(browser, url: str, params: dict):
    page = browser.new_context().new_page()
    page.set_viewport_size({"width": 1300, "height": 900})
    page.goto(f"{url}/?{urlencode(params)}")
    page.wait_for_selector('[data-testid="stApp"]', timeout=30000)
    page.locator(".st-key-btn_start button").first.wait_for(timeout=30000)
    return page


def wait_state(page, wanted: str, timeout: float) -> None:
    page.wait_for_function(f"""() => {{ const el = document.querySelector('{STATUS}');
        return el && el.getAttribute('data-state') === '{wanted}'; }}""", timeout=timeout * 1000, polling=100)


def test_second_session_joins_the_identical_run(browser, reuse_server):
    a = open_page(browser, reuse_server, SAME)
    b = open_page(browser, reuse_server, SAME)
    a.locator(".st-key-btn_start button").first.click()
    wait_state(a, "running", 30)
    b.locator(".st-key-btn_start button").first.click()
    note = b.get_by_text(re.compile(r"Joined an identical run started at \d\d:\d\d"))
    note.wait_for(timeout=15000)
    wait_state(b, "running", 10)
    # the same run on both pages (its name is in the status line), and the follower cannot steer it
    assert a.inner_text(STATUS).split("·")[0] == b.inner_text(STATUS).split("·")[0]
    assert b.locator(".st-key-btn_stop button").first.is_disabled()
    assert b.locator(".st-key-btn_pause button").first.is_disabled()
    assert a.locator(".st-key-btn_stop button").first.is_enabled()
    shoot(b, "reuse_joined.png")
    a.locator(".st-key-btn_stop button").first.click()
    wait_state(a, "stopped", 60)
    wait_state(b, "stopped", 30)  # the follower sees the owner's run end
    no_exceptions(a)
    no_exceptions(b)
    a.context.close()
    b.context.close()


def test_runaway_link_is_refused_on_the_page(browser, reuse_server):
    page = open_page(browser, reuse_server, RUNAWAY)
    page.get_by_text("This run is too big for this server").wait_for(timeout=15000)
    assert page.locator(".st-key-btn_start button").first.is_disabled()
    shoot(page, "reuse_refused.png")
    assert page.query_selector(STATUS).get_attribute("data-state") == "idle"
    no_exceptions(page)
    page.context.close()
