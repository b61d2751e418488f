"""The Sweeps page in a real browser: `streamlit run app.py` headless, Playwright driving Debian's Chromium.
A 4-run tiny sweep started from the page outlives its tab, finishes, and its table and charts show it.
Screenshots go to artifacts/browser/ (git-ignored). Never runs `playwright install`: it uses /usr/bin/chromium."""
from __future__ import annotations

import time

import pytest

from browser_support import ARTIFACTS, no_exceptions, shoot, streamlit_server

pytestmark = pytest.mark.browser

STATUS = '[data-testid="vaegmm-sweep-status"]'
CHARTS_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(el => ({
    meta: el.layout ? el.layout.meta : null,
    traces: (el.data || []).map(t => ({meta: t.meta, name: t.name, n: t.y ? t.y.length : 0}))}))"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app on a free port with a store of its own and the local sweep pool (no Ray address)."""
    db = tmp_path_factory.mktemp("sweeps-db") / "runs.db"
    env = {"VAEGMM_MAX_RUNS": "2", "VAEGMM_DB": str(db), "VAEGMM_RAY_ADDRESS": ""}
    with streamlit_server(env, log_name="server_sweeps.log") as (url, _proc):
        yield url


def open_sweeps(browser, server):
    ctx = browser.new_context(viewport={"width": 1500, "height": 1100})
    page = ctx.new_page()
    page.goto(f"{server}/Sweeps")
    page.wait_for_selector('[data-testid="stApp"]', timeout=30000)
    page.locator('[data-testid="stButton"] button', has_text="Start sweep").first.wait_for(timeout=30000)
    return page


IDLE_JS = """() => { const app = document.querySelector('[data-testid="stApp"]');
    return app && app.getAttribute('data-test-script-state') === 'notRunning'; }"""


def fill(page, label: str, value: str) -> None:
    """Type ``value`` into the sidebar input ``label`` and press Enter; return once the rerun it caused is over
    and the input still holds the value (a value typed while an earlier rerun was still drawing the form was
    lost on a busy machine: typed again)."""
    box = page.locator(f'[data-testid="stSidebar"] input[aria-label="{label}"]').first
    for _ in range(3):
        box.fill(value)
        box.press("Enter")
        page.wait_for_timeout(500)
        page.wait_for_function(IDLE_JS, timeout=60000, polling=100)
        if box.input_value() == value:
            return
    assert box.input_value() == value, (label, box.input_value())


def test_tiny_sweep_outlives_its_tab_and_shows_table_and_charts(browser, server):
    page = open_sweeps(browser, server)
    fill(page, "Fixed settings", "n=120 epochs=1 iterations=2 latent=3 batch=60")
    fill(page, "Seeds", "2")
    page.wait_for_function("""() => document.querySelector('[data-testid="stSidebar"]').innerText
        .includes('2 cells × 2 seeds = 4 runs')""", timeout=60000)
    page.locator('[data-testid="stButton"] button', has_text="Start sweep").first.click()
    page.wait_for_selector(STATUS, timeout=30000)
    t0 = time.monotonic()
    page.context.close()  # the tab goes away: the sweep must go on in the server

    page = open_sweeps(browser, server)  # coming back shows it
    page.wait_for_selector(f'{STATUS}[data-state="finished"][data-done="4"][data-total="4"]', timeout=180000,
                           state="attached")
    finished_after = time.monotonic() - t0
    page.wait_for_timeout(1500)  # the next poll draws the charts of the last run
    no_exceptions(page)
    assert page.locator('[data-testid="stDataFrame"]').count() >= 1
    charts = {c["meta"]: c for c in page.evaluate(CHARTS_JS)}
    assert {"sweep_curves", "sweep_final"} <= set(charts)
    means = [t for t in charts["sweep_curves"]["traces"] if t["meta"] == "mean"]
    assert len(means) == 2 and all(t["n"] == 3 for t in means)  # iterations 0..2 for each cell
    assert sum(t["n"] for t in charts["sweep_final"]["traces"] if t["meta"] == "cell") == 4
    compare = page.inner_text('[data-testid="vaegmm-sweep-compare"]')
    assert "feedback=on" in compare and "2 seeds" in compare
    shoot(page, "sweeps.png", settle_ms=1200)
    with open(ARTIFACTS / "timings.txt", "a") as f:
        f.write(f"sweeps_4_tiny_runs_finished_after_tab_closed_s {finished_after:.2f}\n")
    page.context.close()
