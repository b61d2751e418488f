"""The Sweeps page in a real browser: `streamlit run app.py` headless, Playwright driving Debian's Chromium.
A 4-run tiny sweep started from the page outlives its tab, finishes, and its table and charts show it.
Screenshots go to artifacts/browser/ (git-ignored). Never runs `playwright install`: it uses /usr/bin/chromium."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts" / "browser"
CHROMIUM = os.environ.get("VAEGMM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]
STATUS = '[data-testid="vaegmm-sweep-status"]'
CHARTS_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(el => ({
    meta: el.layout ? el.layout.meta : null,
    traces: (el.data || []).map(t => ({meta: t.meta, name: t.name, n: t.y ? t.y.length : 0}))}))"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app on a free port with a store of its own; killed (its process group) at the end."""
    port = _free_port()
    db = tmp_path_factory.mktemp("sweeps-db") / "runs.db"
    env = {**os.environ, "VAEGMM_MAX_RUNS": "2", "PYTHONUNBUFFERED": "1", "VAEGMM_DB": str(db)}
    env.pop("VAEGMM_RAY_ADDRESS", None)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = open(ARTIFACTS / "server_sweeps.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start; see {ARTIFACTS / 'server_sweeps.log'}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(5)
        log.close()


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def open_sweeps(browser, server):
    ctx = browser.new_context(viewport={"width": 1500, "height": 1100})
    page = ctx.new_page()
    page.goto(f"{server}/Sweeps")
    page.wait_for_selector('[data-testid="stApp"]', timeout=30000)
    page.locator('[data-testid="stButton"] button', has_text="Start sweep").first.wait_for(timeout=30000)
    return page


def fill(page, label: str, value: str) -> None:
    box = page.locator(f'[data-testid="stSidebar"] input[aria-label="{label}"]').first
    box.fill(value)
    box.press("Enter")
    page.wait_for_timeout(800)


def no_exceptions(page) -> None:
    assert page.query_selector('[data-testid="stException"]') is None, page.inner_text('[data-testid="stException"]')


def shoot(page, name: str) -> None:
    height = page.evaluate("""() => { const m = document.querySelector('[data-testid="stMain"]') ||
        document.querySelector('section.main'); return m ? m.scrollHeight : document.body.scrollHeight; }""")
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(height) + 40, 6000))})
    page.wait_for_timeout(1200)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)
    page.set_viewport_size(size)


def test_tiny_sweep_outlives_its_tab_and_shows_table_and_charts(browser, server):
    page = open_sweeps(browser, server)
    fill(page, "Fixed settings", "n=120 epochs=1 iterations=2 latent=3 batch=60")
    fill(page, "Seeds", "2")
    page.wait_for_function("""() => document.querySelector('[data-testid="stSidebar"]').innerText
        .includes('2 cells × 2 seeds = 4 runs')""", timeout=20000)
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
    shoot(page, "sweeps.png")
    with open(ARTIFACTS / "timings.txt", "a") as f:
        f.write(f"sweeps_4_tiny_runs_finished_after_tab_closed_s {finished_after:.2f}\n")
    page.context.close()
