"""How soon the Sweeps page shows its first status (issue 18 part 5: at most 2 s after opening it).

Starts one `streamlit run app.py` on a copy of a store with sweeps in it (default: bench/results/feedback_map.db,
the issue 19 map: six sweeps, 300 runs; not in git, BENCHMARKS.md "Where feedback matters" makes it), warms it with one page (the server's first script run imports the
package), then opens the Sweeps page ``--tries`` times, each in a fresh browser context (a new visitor), and
times from the navigation's start to the selected sweep's status line (``[data-testid=vaegmm-sweep-status]``)
being visible. Prints the seconds per try and the median as JSON.

    python bench/sweeps_page.py [--db PATH] [--tries 7]
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from browser_support import launch_chromium, streamlit_server  # noqa: E402

STATUS = '[data-testid="vaegmm-sweep-status"]'


_MARKS_JS = """() => { const t = performance.timing, s = t.navigationStart;
    return {dom: (t.domContentLoadedEventEnd - s) / 1000, load: (t.loadEventEnd - s) / 1000}; }"""


def first_status(browser, url: str) -> dict:
    """Seconds from the start of a fresh visitor's navigation to the Sweeps page to: its HTML's
    DOMContentLoaded and load (the frontend's JavaScript), the page's title (the script's first element), the
    server drawing the status line (its ``data-rendered``, the server's clock) and the browser showing it."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = ctx.new_page()
        t0 = time.monotonic()
        page.goto(f"{url}/Sweeps", wait_until="commit")
        page.get_by_role("heading", name="Sweeps: settings").first.wait_for(timeout=60000)
        title = time.monotonic() - t0
        page.locator(STATUS).first.wait_for(timeout=60000)
        status = time.monotonic() - t0
        marks = page.evaluate(_MARKS_JS)
        drawn = page.evaluate(f"""() => parseFloat(document.querySelector('{STATUS}').getAttribute('data-rendered'))
            - performance.timeOrigin / 1000""")  # the server's clock when it drew the line (same machine)
        return {"status": status, "title": title, "drawn": drawn, **marks}
    finally:
        ctx.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", type=Path, default=ROOT / "bench" / "results" / "feedback_map.db")
    p.add_argument("--tries", type=int, default=7)
    a = p.parse_args(argv)
    if not a.db.is_file():
        p.error(f"no store at {a.db}: make it with the commands of BENCHMARKS.md 'Where feedback matters'")
    from playwright.sync_api import sync_playwright

    db = Path(tempfile.mkdtemp(prefix="vaegmm-sweeps-page-")) / "runs.db"
    shutil.copy(a.db, db)
    with streamlit_server({"VAEGMM_DB": str(db)}, log_name="sweeps_page.log") as (url, _proc), \
            sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            warm = first_status(browser, url)
            times = [first_status(browser, url) for _ in range(a.tries)]
        finally:
            browser.close()
    out = {"warm_up_s": round(warm["status"], 2)}
    for k in ("dom", "load", "title", "drawn", "status"):
        v = [t[k] for t in times]
        out[k] = {"seconds": [round(x, 2) for x in v], "median_s": round(statistics.median(v), 2),
                  "max_s": round(max(v), 2)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
