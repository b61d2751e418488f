"""A class against one server, driven through real Chromium pages: N pages (one browser, one context each) open
the same tiny experiment and press Start within about a second of each other (issues 8 and 10). The driver of
tests/test_classroom.py (6 pages) and of ``python bench/load.py`` (the lecture's 30).

:func:`classroom` reports how many runs finished, the queue positions the pages showed, p50/p95 seconds from Start
to the page showing its run or queue position, to the first latent picture and to "finished", the frontend errors
(a white page logs "Cannot set a node at a delta path"), and the server's RSS and thread count before, at peak and
after all tabs closed (the training workers are separate processes: their peak RSS is reported beside).
"""
from __future__ import annotations

import os
import re
import sys
import threading
import time
import urllib.request
from urllib.parse import urlencode

from browser_support import ARTIFACTS, CHARTS_JS, STATUS, PageErrors

CLASS_RUN = {"preset": "quick-demo", "n": 300, "latent": 4, "iterations": 2, "epochs": 5, "batch": 100, "gmm": "em"}

PAGE_JS = f"""() => {{ const el = document.querySelector('{STATUS}');
    const alert = Array.from(document.querySelectorAll('[data-testid="stAlert"]')).map(a => a.innerText).join(' ');
    const latent = Array.from(document.querySelectorAll('.js-plotly-plot'))
        .some(p => p.layout && p.layout.meta === 'latent');
    return [el ? el.getAttribute('data-state') : '', alert, latent]; }}"""

WATCH_JS = f"""() => {{ window.__vgShownAt = null; window.__vgClickAt = null; window.__vgPositions = [];
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
# minus the click's wall time] once the page showed its run or queue position (WATCH_JS), else [null, null]
SHOWN_JS = """() => window.__vgShownAt != null ? [(window.__vgShownAt - window.__vgClickAt) / 1000,
    window.__vgRendered - window.__vgClickWall] : [null, null]"""

CLICK_JS = """() => { const b = document.querySelector('.st-key-btn_start button');
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


def pct(values: list, q: float):
    """The ``q`` quantile (0..1) of the values that are not None (the nearest rank), or None."""
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
        page.evaluate(WATCH_JS)
    starts, click_wall = [], time.time()
    for page in tabs:
        starts.append(time.monotonic())
        page.evaluate(CLICK_JS)
    shown, first_picture, finished_at = [None] * pages, [None] * pages, [None] * pages
    server_drawn = [None] * pages  # click -> the server drew the status the page first showed (same machine's clock)
    positions: set = set()
    ended = {}
    deadline = time.monotonic() + timeout
    while len(ended) < pages and time.monotonic() < deadline:
        for i, page in enumerate(tabs):
            if i in ended:
                continue
            state, alert, latent = page.evaluate(PAGE_JS)
            now = time.monotonic() - starts[i]
            for m in re.finditer(r"position (\d+) in the queue", alert):
                positions.add(int(m.group(1)))
            if shown[i] is None and state in ("queued", "running", "paused", "finished"):
                # the page's own timestamps: the time this loop takes to visit 8 busy pages is not the page's
                in_page, drawn = page.evaluate(SHOWN_JS)
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
        "drawn_p50": pct(server_drawn, 0.5), "drawn_p95": pct(server_drawn, 0.95),
        "shown_p50": pct(shown, 0.5), "shown_p95": pct(shown, 0.95), "shown_max": max((s or 1e9) for s in shown),
        "first_p50": pct(first_picture, 0.5), "first_p95": pct(first_picture, 0.95),
        "finished_p50": pct(finished_at, 0.5), "finished_p95": pct(finished_at, 0.95),
        "click_spread_s": starts[-1] - starts[0], "click_wall": click_wall, "errors": errors.errors, "white_pages": white_pages,
        "rss_before_mb": before.get("rss_mb"), "rss_peak_mb": sampler.peak_rss, "rss_after_mb": after.get("rss_mb"),
        "threads_before": before.get("threads"), "threads_peak": sampler.peak_threads,
        "threads_after": after.get("threads"), "settled_s": round(settled_s, 1), "workers_peak_mb": sampler.peak_workers_mb, "screenshot": str(shot),
    }
