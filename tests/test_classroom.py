"""A class trains at once: many real browser pages against one `streamlit run app.py` (issues 8 and 10).

Every page opens the same tiny experiment and presses Start within about a second of the others. No page may
turn white (a frontend ``pageerror`` such as "Cannot set a node at a delta path"), every page must show its run
or its queue position (within 3 s of Start is the benchmark's goal), and every run must finish with its page showing it and its charts.
One case, a cap of half the class (3 runs train at once on 2 cores while 3 pages queue), covers both what the
default cap (2: most pages queue) and a cap as large as the class (every page trains) once tested separately, in
half the suite's time; bench/load.py (the same driver, tests/classroom.py) runs both caps and the 30-page lecture version. Six pages
(eight until 2026-12-03: the suite's longest test, 140-190 s, on the worker that decides the suite's wall time;
eight real pages on one server are also tests/test_follow_browser.py's, and bench/load.py --students' 30).

"Shown within 3 s" is timed by each page's own clock, from its click to its status line showing the run or its
queue position (the driver's loop visiting six busy pages in turn would add its own lag). The browser runs at nice 5:
in a lecture the 30 browsers are the students' laptops, here they share the server's two cores.
"""
from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest

from browser_support import ARTIFACTS, STATUS, streamlit_server
from classroom import CLASS_RUN, classroom, proc_status

pytestmark = pytest.mark.browser

PAGES = 6
GRACE = 5  # seconds a closed tab's session keeps its runs (VAEGMM_RECONNECT_GRACE)


def warm_up(browser, url: str) -> str:
    """One page runs the class's experiment to its end, so that first-run costs (the fork server, imports,
    Streamlit's first script run) are not in the class's numbers; the state its run ended in. Nothing of it is
    measured, so it does not sample the server as bench/load.py's round does (whose wait for the thread count to
    come back within 1 of a fresh server's runs out its 30 s: a server that has served a run keeps 5 more)."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = ctx.new_page()
        page.goto(f"{url}/?{urlencode(CLASS_RUN)}")
        start = page.locator(".st-key-btn_start button").first
        start.wait_for(timeout=120000)
        start.click()
        page.wait_for_function(f"""() => {{ const el = document.querySelector('{STATUS}');
            return el && ['finished', 'failed', 'stopped'].includes(el.getAttribute('data-state')); }}""",
                               timeout=600000, polling=100)
        return page.get_attribute(STATUS, "data-state")
    finally:
        ctx.close()


def wait_until_settled(pid: int, grace: float, timeout: float = 30.0) -> None:
    """After the warm-up page closed: its session's reconnect grace period, then until the server's thread count
    holds still for a second, so that the class's "before" counts are the idle server's."""
    time.sleep(grace + 1.0)
    deadline, last = time.monotonic() + timeout, proc_status(pid).get("threads")
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = proc_status(pid).get("threads")
        if now == last:
            return
        last = now


CAP = PAGES // 2


def test_classroom_pages_never_go_white(niced_chromium):
    """``niced_chromium``: the shared Chromium at nice 5 (conftest): in a lecture the browsers are the students'
    laptops, here they share the server's two cores."""
    env = {"VAEGMM_RECONNECT_GRACE": str(GRACE), "VAEGMM_MAX_RUNS": str(CAP)}
    with streamlit_server(env, log_name=f"classroom_cap{CAP}.log") as (url, proc):
        assert warm_up(niced_chromium, url) == "finished"  # first-run costs, not measured
        wait_until_settled(proc.pid, GRACE)
        r = classroom(niced_chromium, url, proc.pid, PAGES)
    with open(ARTIFACTS / "classroom.txt", "a") as f:
        f.write(f"cap {CAP}: { {k: v for k, v in r.items() if k != 'errors'} }\n")
    assert not r["errors"], "frontend errors:\n" + "\n".join(r["errors"][:20])
    assert r["finished"] == PAGES and r["charts_ok"] == PAGES, r["ended"]
    # every page showed its run or its queue position; how soon (the 3 s goal) is the benchmark's question
    # (bench/load.py, BENCHMARKS "Load"): the seconds are in classroom.txt (a CI box with the browsers on the
    # server's two cores took 23-26 s for some pages, this machine under 3)
    never = [i for i, s in enumerate(r["shown_s"]) if s is None]
    assert not never, f"pages that never showed their run or queue position: {never}"
    assert r["queue_positions"], f"with {CAP} slots and {PAGES} pages, some pages must have shown a queue position"
    assert r["threads_after"] <= r["threads_before"] + 1, (r["threads_before"], r["threads_after"])
    assert r["rss_after_mb"] - r["rss_before_mb"] <= 150, (r["rss_before_mb"], r["rss_after_mb"])

