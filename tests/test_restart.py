"""kill -9 of a real `streamlit run app.py` in the middle of a run (issue 10): the store stays readable, the earlier
run is all there, the killed run keeps its finished iterations and reads "interrupted", and after a restart the
saved runs open with ``?run=<id>`` in a real browser."""
from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import time
from urllib.parse import urlencode

import pytest

from browser_support import STATUS, streamlit_server
from vaegmm.runs import library
from vaegmm.store import RunStore

pytestmark = pytest.mark.browser

TINY = {"preset": "quick-demo", "n": 300, "latent": 4, "iterations": 2, "epochs": 5, "batch": 100, "gmm": "em"}
LONG = {**TINY, "iterations": 40, "epochs": 30}


def _state(page) -> str:
    el = page.query_selector(STATUS)
    return el.get_attribute("data-state") if el else ""


def _wait_state(page, states, timeout=120.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = _state(page)
        if s in states:
            return s
        page.wait_for_timeout(200)
    raise AssertionError(f"page never reached {states} (last: {_state(page)!r})")


def _start(page, url, params) -> None:
    page.goto(f"{url}/?{urlencode(params)}")
    button = page.locator('.st-key-btn_start button').first
    button.wait_for(timeout=60000)
    button.click()


def test_kill_9_mid_run_then_restart(tmp_path, browser):
    """``browser``: the shared Chromium (conftest), watching its pages for errors; the servers are this test's own."""
    db = tmp_path / "runs.db"
    env = {"VAEGMM_DB": str(db), "VAEGMM_RECONNECT_GRACE": "5"}
    errors = browser.errors
    with streamlit_server(env, log_name="restart_before.log") as (url, proc):
        page = browser.new_page()
        _start(page, url, TINY)
        assert _wait_state(page, {"finished", "failed"}) == "finished"
        _start(page, url, LONG)
        _wait_state(page, {"running"})
        reader = RunStore(db, readonly=True)
        deadline = time.monotonic() + 120
        runs = []
        while time.monotonic() < deadline:
            runs = reader.list_runs()
            long_run = [r for r in runs if r["config"]["iterations"] == LONG["iterations"]]
            if long_run and len(reader.iterations([long_run[0]["id"]])) >= 2:
                break
            time.sleep(0.3)
        reader.close()
        assert len(runs) == 2, runs
        os.kill(proc.pid, signal.SIGKILL)  # the server, mid-run (its training worker ends with it)
        proc.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        page.close()
    errors.errors.clear()  # the killed server's page lost its connection: expected

    # the store is readable and whole
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store, problem = library.open_store(db)  # what the next server does first
    assert not problem
    first, killed = sorted(store.list_runs(), key=lambda r: r["id"])
    assert first["status"] == "finished"
    assert list(store.iterations([first["id"]])["iteration"]) == [0, 1, 2]
    assert killed["status"] == "interrupted"
    done = sorted(store.iterations([killed["id"]])["iteration"])
    assert len(done) >= 2 and done == list(range(len(done)))  # only the unfinished iteration is lost
    saved = library.load_run(store, killed["id"])
    assert len(saved.history) >= len(done) - 1 and saved.labels is not None
    store.close()

    with streamlit_server(env, log_name="restart_after.log") as (url, proc):
        page = browser.new_page()
        for run, state in ((first, "finished"), (killed, "interrupted")):
            page.goto(f"{url}/?run={run['id']}")
            page.get_by_text(f"Saved run #{run['id']}").first.wait_for(timeout=60000)
            assert _wait_state(page, {state}, timeout=30) == state
            page.wait_for_function(
                "() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
                ".some(p => p.layout && p.layout.meta === 'latent')", timeout=30000)
        page.goto(f"{url}/Latent_explorer?run={first['id']}")
        page.get_by_text(f"Saved run #{first['id']}").first.wait_for(timeout=60000)
        errors.check()
        page.close()
