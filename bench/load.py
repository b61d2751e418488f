#!/usr/bin/env python
"""A classroom against one server: N real Chromium pages (one browser, one context each) open the same tiny
experiment and press Start within about a second of each other (issues 8 and 10).

Reports how many runs finished, the queue positions the pages showed, p50/p95 seconds from Start to the page
showing its run or queue position, to the first latent picture and to "finished", the frontend errors (a white
page logs "Cannot set a node at a delta path"), and the server's RSS and thread count before, at peak and after
all tabs closed (the training workers are separate processes: their peak RSS is reported beside).

    python bench/load.py --pages 30                 # the lecture: 30 pages, default cap; table into BENCHMARKS.md
    python bench/load.py --pages 8 --cap 8 --no-markdown
    python bench/load.py --followers 100            # issue 18: 100 light followers of one live run (follow_load.py)

The test suite runs the same driver with 6 pages (tests/test_classroom.py; 8 until 2026-12-03).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from browser_support import (ARTIFACTS, CHARTS_JS, STATUS, PageErrors, launch_chromium,  # noqa: E402
                             streamlit_server)

CLASS_RUN = {"preset": "quick-demo", "n": 300, "latent": 4, "iterations": 2, "epochs": 5, "batch": 100, "gmm": "em"}

_PAGE_JS = f"""() => {{ const el = document.querySelector('{STATUS}');
    const alert = Array.from(document.querySelectorAll('[data-testid="stAlert"]')).map(a => a.innerText).join(' ');
    const latent = Array.from(document.querySelectorAll('.js-plotly-plot'))
        .some(p => p.layout && p.layout.meta === 'latent');
    return [el ? el.getAttribute('data-state') : '', alert, latent]; }}"""

_WATCH_JS = f"""() => {{ window.__vgShownAt = null; window.__vgClickAt = null; window.__vgPositions = [];
    const seen = ['queued', 'running', 'paused', 'finished'];
    const tick = () => {{ if (window.__vgClickAt == null) return;
        for (const a of document.querySelectorAll('[data-testid="stAlert"]')) {{
            const m = a.innerText.match(/position (\\d+) in the queue/);
            if (m && !window.__vgPositions.includes(+m[1])) window.__vgPositions.push(+m[1]); }}
        const el = document.querySelector('{STATUS}');
        if (window.__vgShownAt == null && el && seen.includes(el.getAttribute('data-state')))
            {{ window.__vgShownAt = performance.now(); window.__vgRendered = parseFloat(el.getAttribute('data-rendered')); }} }};
    new MutationObserver(tick).observe(document.body, {{subtree: true, childList: true, attributes: true}});
    window.__vgTimer = setInterval(tick, 50); }}"""

# [seconds from the click to the status shown, by the page's clock; the server's clock when it drew that status
# minus the click's wall time] once the page showed its run or queue position (_WATCH_JS), else [null, null]
_SHOWN_JS = """() => window.__vgShownAt != null ? [(window.__vgShownAt - window.__vgClickAt) / 1000,
    window.__vgRendered - window.__vgClickWall] : [null, null]"""

_CLICK_JS = """() => { const b = document.querySelector('.st-key-btn_start button');
    window.__vgClickAt = performance.now(); window.__vgClickWall = Date.now() / 1000; b.click(); }"""


def proc_status(pid: int) -> dict:
    """VmRSS (MB) and Threads of a process, from /proc."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    out["rss_mb"] = int(line.split()[1]) / 1024
                elif line.startswith("Threads:"):
                    out["threads"] = int(line.split()[1])
    except OSError:
        pass
    return out


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (the fork server and the training workers)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


class Sampler:
    """Samples the server's RSS and threads, and the workers' summed RSS, every ``every`` seconds."""

    def __init__(self, pid: int, every: float = 0.2):
        self.pid, self.every = pid, every
        self.peak_rss = self.peak_threads = self.peak_workers_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            s = proc_status(self.pid)
            self.peak_rss = max(self.peak_rss, s.get("rss_mb", 0))
            self.peak_threads = max(self.peak_threads, s.get("threads", 0))
            workers = sum(proc_status(c).get("rss_mb", 0) for c in descendants(self.pid))
            self.peak_workers_mb = max(self.peak_workers_mb, workers)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


def say(text: str) -> None:
    """Progress on stderr (a 30-page round takes minutes)."""
    print(time.strftime("%H:%M:%S"), text, file=sys.stderr, flush=True)


def _pct(values: list, q: float):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def _prune_anyio_workers(url: str, waited: float) -> None:
    """Let the web server's AnyIO worker-thread pool shrink back: Streamlit's server (Starlette) serves files
    from AnyIO worker threads, which stay after a busy spell (up to the pool's limit, 40) and are pruned only when
    a new job comes, if idle for 10 s or more (``WorkerThread.MAX_IDLE_TIME``). One static file request 11 s after
    the pages closed prunes them, so the thread count that follows shows our own threads (runs, timers, sessions)."""
    time.sleep(max(0.0, 11.0 - waited))
    for path in ("/", "/favicon.png"):
        try:
            with urllib.request.urlopen(url + path, timeout=10) as r:
                r.read()
        except OSError:
            pass


def classroom(browser, url: str, server_pid: int, pages: int, params: dict = CLASS_RUN, timeout: float = 600,
              settle: float = 8.0, prune: bool = True, first_seed: int = 1) -> dict:
    """Open ``pages`` pages (page ``i`` with seed ``first_seed + i``), press Start in all, follow them to the end,
    close them; return the measurements."""
    errors = PageErrors()
    time.sleep(1.0)
    before = proc_status(server_pid)
    sampler = Sampler(server_pid)
    contexts, tabs = [], []
    for i in range(pages):
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        page = ctx.new_page()
        errors.watch(page, f"page {i}")
        # each student their own run: a seed of their own (the same settings and seed would join one run)
        page.goto(f"{url}/?{urlencode({**params, 'seed': first_seed + i})}", wait_until="commit")
        contexts.append(ctx)
        tabs.append(page)
    say(f"{pages} pages opened")
    for page in tabs:
        page.locator('.st-key-btn_start button').first.wait_for(timeout=120000)
    say(f"{pages} pages show Start")
    for page in tabs:  # each page notes, by its own clock, when it first shows its run or queue position
        page.evaluate(_WATCH_JS)
    starts, click_wall = [], time.time()
    for page in tabs:
        starts.append(time.monotonic())
        page.evaluate(_CLICK_JS)
    shown, first_picture, finished_at = [None] * pages, [None] * pages, [None] * pages
    server_drawn = [None] * pages  # click -> the server drew the status the page first showed (same machine's clock)
    positions: set = set()
    ended = {}
    deadline = time.monotonic() + timeout
    while len(ended) < pages and time.monotonic() < deadline:
        for i, page in enumerate(tabs):
            if i in ended:
                continue
            state, alert, latent = page.evaluate(_PAGE_JS)
            now = time.monotonic() - starts[i]
            for m in re.finditer(r"position (\d+) in the queue", alert):
                positions.add(int(m.group(1)))
            if shown[i] is None and state in ("queued", "running", "paused", "finished"):
                # the page's own timestamps: the time this loop takes to visit 8 busy pages is not the page's
                in_page, drawn = page.evaluate(_SHOWN_JS)
                shown[i] = in_page if in_page is not None else now
                server_drawn[i] = None if drawn is None else round(drawn, 2)
            if first_picture[i] is None and latent and state != "queued":
                first_picture[i] = now
            if state in ("finished", "failed", "stopped"):
                ended[i] = state
                if state == "finished":
                    finished_at[i] = now
        tabs[0].wait_for_timeout(100)
    say(f"{len(ended)} of {pages} runs ended")
    charts_ok = 0
    for i, page in enumerate(tabs):
        positions.update(page.evaluate("() => window.__vgPositions || []"))  # every place the page itself showed
        found = page.evaluate(CHARTS_JS)
        latent = [c for c in found if c["meta"] == "latent"]
        metrics = [c for c in found if c["meta"] == "metrics"]
        if latent and metrics and sum(t["n"] for t in latent[0]["traces"] if t["meta"] == "points") == params["n"]:
            charts_ok += 1
    shot = ARTIFACTS / f"classroom_{pages}pages.png"
    tabs[-1].screenshot(path=str(shot))
    for ctx in contexts:
        ctx.close()
    closed_at = time.monotonic()
    time.sleep(settle)  # sessions released; their script threads end
    if prune:  # (a warm-up round need not wait for it: its count is not checked)
        _prune_anyio_workers(url, settle)
    after = proc_status(server_pid)
    calm = time.monotonic() + 30  # the runs' last writes (saved-run export) may still be finishing: wait for them
    while after.get("threads", 0) > (before.get("threads") or 0) + 1 and time.monotonic() < calm:
        time.sleep(0.5)
        after = proc_status(server_pid)
    settled_s = time.monotonic() - closed_at
    sampler.stop()
    white_pages = sorted({e.split("]")[0].lstrip("[") for e in errors.errors if "pageerror" in e})
    return {
        "pages": pages, "finished": sum(1 for s in ended.values() if s == "finished"),
        "ended": dict(sorted(ended.items())), "charts_ok": charts_ok, "queue_positions": sorted(positions),
        "shown_s": shown, "server_drawn_s": server_drawn, "first_picture_s": first_picture, "finished_s": finished_at,
        "drawn_p50": _pct(server_drawn, 0.5), "drawn_p95": _pct(server_drawn, 0.95),
        "shown_p50": _pct(shown, 0.5), "shown_p95": _pct(shown, 0.95), "shown_max": max((s or 1e9) for s in shown),
        "first_p50": _pct(first_picture, 0.5), "first_p95": _pct(first_picture, 0.95),
        "finished_p50": _pct(finished_at, 0.5), "finished_p95": _pct(finished_at, 0.95),
        "click_spread_s": starts[-1] - starts[0], "click_wall": click_wall, "errors": errors.errors, "white_pages": white_pages,
        "rss_before_mb": before.get("rss_mb"), "rss_peak_mb": sampler.peak_rss, "rss_after_mb": after.get("rss_mb"),
        "threads_before": before.get("threads"), "threads_peak": sampler.peak_threads,
        "threads_after": after.get("threads"), "settled_s": round(settled_s, 1), "workers_peak_mb": sampler.peak_workers_mb, "screenshot": str(shot),
    }


def table(r: dict, cap: str) -> str:
    def s(v):
        return "–" if v is None else f"{v:.2f}"

    rows = [
        ("pages (one Chromium, one context each), cap", f"{r['pages']}, {cap}"),
        ("runs finished / pages showing both charts", f"{r['finished']} / {r['charts_ok']}"),
        ("white pages (frontend page errors)", f"{len(r['white_pages'])}"),
        ("queue positions seen", ", ".join(map(str, r["queue_positions"])) or "–"),
        ("Start -> run or queue position shown, p50 / p95 / max s", f"{s(r['shown_p50'])} / {s(r['shown_p95'])} / "
                                                                    f"{s(r['shown_max'])}"),
        ("Start -> the server drew that status (same clock), p50 / p95 s",
         f"{s(r['drawn_p50'])} / {s(r['drawn_p95'])}"),
        ("Start -> first latent picture, p50 / p95 s", f"{s(r['first_p50'])} / {s(r['first_p95'])}"),
        ("Start -> finished, p50 / p95 s", f"{s(r['finished_p50'])} / {s(r['finished_p95'])}"),
        ("server RSS before / peak / after the tabs closed, MB",
         f"{r['rss_before_mb']:.0f} / {r['rss_peak_mb']:.0f} / {r['rss_after_mb']:.0f}"),
        ("server threads before / peak / after", f"{r['threads_before']} / {r['threads_peak']:.0f} / "
                                                 f"{r['threads_after']}"),
        ("training workers' summed RSS at peak, MB (separate processes)", f"{r['workers_peak_mb']:.0f}"),
    ]
    return "| measure | value |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pages", type=int, default=30)
    p.add_argument("--cap", type=int, default=None, help="VAEGMM_MAX_RUNS (default: the server's, = cores)")
    p.add_argument("--browser-nice", type=int, default=10,
                   help="niceness of Chromium, which stands in for the students' own laptops (default 10)")
    p.add_argument("--no-markdown", action="store_true", help="do not write BENCHMARKS.md")
    p.add_argument("--split-cores", action="store_true",
                   help="the server and its training workers on the first core, Chromium on the others (the "
                        "browsers are not on the server's cores, as in a lecture; needs >= 2 cores)")
    p.add_argument("--app-root", type=Path, default=None,
                   help="serve the app of another checkout (e.g. an older commit, for a before/after count)")
    p.add_argument("--followers", type=int, default=0,
                   help="follower mode (bench/follow_load.py): N followers of one live run instead of a classroom")
    p.add_argument("--real", action="store_true", help="follower mode: the followers are Chromium pages")
    p.add_argument("--window", type=float, default=20.0, help="follower mode: seconds measured")
    p.add_argument("--classic", action="store_true", help="follower mode: follow a Serket-classic run (3000 images)")
    p.add_argument("--speed", type=int, default=0, metavar="PAIRS",
                   help="follower mode: train the run PAIRS times unwatched and PAIRS times followed, interleaved, "
                        "and compare their wall seconds")
    a = p.parse_args(argv)
    from playwright.sync_api import sync_playwright

    if a.followers:
        return follower_mode(a)

    from markdown_section import write_section

    import tempfile

    # the bench's own empty store: runs of an earlier bench would be replayed instead of trained (issue 18 reuse)
    db = Path(tempfile.mkdtemp(prefix="vaegmm-load-db-")) / "runs.db"
    env = {"VAEGMM_RECONNECT_GRACE": "5", "VAEGMM_DB": str(db)}
    if a.cap:
        env["VAEGMM_MAX_RUNS"] = str(a.cap)
    cap = str(a.cap) if a.cap else f"default ({os.cpu_count()} = cores)"
    if a.app_root is not None:
        a.no_markdown = True
    cores = sorted(os.sched_getaffinity(0))
    if a.split_cores:  # children inherit this process's CPU set: the server (and its workers) first, Chromium then
        os.sched_setaffinity(0, cores[:1])
    with streamlit_server(env, log_name=f"load_{a.pages}.log", root=a.app_root) as (url, proc), \
            sync_playwright() as pw:
        if a.split_cores:
            os.sched_setaffinity(0, cores[1:])
        browser = launch_chromium(pw, nice=a.browser_nice)
        try:
            # one page first, so the fork server and Streamlit's first-run costs are not in the class's numbers
            warm = classroom(browser, url, proc.pid, 1, settle=1.0, first_seed=1000)
            if warm["finished"] != 1:
                print("warning: the warm-up page did not finish:", warm["ended"], warm["errors"][:3])
            r = classroom(browser, url, proc.pid, a.pages)
        finally:
            browser.close()
    md = table(r, cap)
    print(md)
    if r["errors"]:
        print("frontend errors:", *r["errors"][:10], sep="\n  ")
    ok = (r["finished"] == a.pages and not r["white_pages"] and r["shown_max"] <= 3.0 and r["rss_peak_mb"] < 2048
          and r["rss_after_mb"] - r["rss_before_mb"] <= 150 and r["threads_after"] <= r["threads_before"])
    if not a.no_markdown:
        when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        load = os.getloadavg()[0]
        write_section(ROOT / "BENCHMARKS.md", f"""## Load

Command: `python bench/load.py --pages {a.pages}` ({when}; \
2 CPU cores, load average {load:.1f} at the end). {a.pages} real Chromium pages (one browser, one context each) open \
`/?{urlencode(CLASS_RUN)}` against one `streamlit run app.py` and press Start within {r['click_spread_s']:.1f} s; \
the runs train in worker processes, at most `VAEGMM_MAX_RUNS` at once, the rest queue.

{md}

Targets: all {a.pages} finish; every page shows its run or its queue position within 3 s of Start; server RSS peak \
under 2 GB and back within 150 MB of the start after the tabs close; threads back to the start count: \
**{'met' if ok else 'NOT met'}**.""")
    return 0 if ok else 1


def follower_mode(a) -> int:
    """``--followers N``: print the follower numbers (bench/follow_load.py) as JSON; BENCHMARKS.md by hand."""
    import json

    from playwright.sync_api import sync_playwright

    from follow_load import CLASSIC_RUN, FOLLOW_RUN, followers_bench, speed_bench

    import tempfile

    db = Path(tempfile.mkdtemp(prefix="vaegmm-follow-db-")) / "runs.db"  # the estimate from defaults, not history
    # the training worker at the server's priority: on a busy machine a nice-10 worker ran past twice its estimate
    env = {"VAEGMM_RECONNECT_GRACE": "5", "VAEGMM_DB": str(db), "VAEGMM_WORKER_NICE": "0", "VAEGMM_REUSE": "off"}
    params = CLASSIC_RUN if a.classic else FOLLOW_RUN
    with streamlit_server(env, log_name=f"follow_{a.followers}.log", root=a.app_root) as (url, proc), \
            sync_playwright() as pw:
        browser = launch_chromium(pw, nice=a.browser_nice)
        try:
            if a.speed:
                r = speed_bench(browser, url, proc.pid, db, a.followers, pairs=a.speed, params=params)
            else:
                r = followers_bench(browser, url, proc.pid, a.followers, window=a.window, real=a.real, params=params)
        finally:
            browser.close()
    r["load_average"] = os.getloadavg()
    print(json.dumps(r, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
