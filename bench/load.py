#!/usr/bin/env python
"""Load on one server, three ways (issues 8, 10 and 18):

* a classroom: N real Chromium pages (one browser, one context each; the driver is tests/classroom.py) open the
  same tiny experiment and press Start within about a second of each other: runs finished, queue positions shown,
  Start -> shown / first picture / finished, frontend errors (white pages), server RSS and threads;
* ``--followers N``: N followers of one live run, light clients of the push channel (Server-Sent Events) or with
  ``--real`` Chromium pages on the share link: the server's CPU per follower, pictures per second, frame delay;
* ``--students N``: N light students, clients of Streamlit's own websocket protocol (tests/light_students.py),
  press Start at once, optionally with ``--real P`` Chromium pages off the server's core.

    python bench/load.py --pages 30                 # the lecture: 30 pages, default cap; table into BENCHMARKS.md
    python bench/load.py --pages 8 --cap 8 --no-markdown
    python bench/load.py --followers 100            # 100 light followers of one live run (JSON)
    python bench/load.py --followers 8 --real --classic
    python bench/load.py --students 29 --real 1     # a class pressing Start at once (JSON)
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional
from urllib.parse import urlencode, urlparse

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(Path(__file__).resolve().parent)]

from browser_support import STATUS, launch_chromium, streamlit_server  # noqa: E402
from classroom import CLASS_RUN, CLICK_JS, SHOWN_JS, WATCH_JS, Sampler, classroom, pct, proc_status  # noqa: E402
from light_students import ENDED, run_classroom  # noqa: E402
from markdown_section import write_section  # noqa: E402


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
                   help="follower mode: N followers of one live run instead of a classroom")
    p.add_argument("--real", nargs="?", type=int, const=1, default=0, metavar="PAGES",
                   help="follower mode: the followers are Chromium pages; light-student mode: PAGES Chromium pages "
                        "press Start with the students, on the cores the server is not on (needs >= 2 cores)")
    p.add_argument("--window", type=float, default=20.0, help="follower mode: seconds measured")
    p.add_argument("--classic", action="store_true", help="follower mode: follow a Serket-classic run (3000 images)")
    p.add_argument("--speed", type=int, default=0, metavar="PAIRS",
                   help="follower mode: train the run PAIRS times unwatched and PAIRS times followed, interleaved, "
                        "and compare their wall seconds")
    p.add_argument("--students", type=int, default=0,
                   help="light-student mode: N clients of Streamlit's protocol press Start at once")
    a = p.parse_args(argv)
    if a.followers:
        return follower_mode(a)
    if a.students:
        return students_mode(a)
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


FOLLOW_RUN = {"preset": "quick-demo", "n": 1000, "latent": 4, "iterations": 5, "epochs": 50, "batch": 50,
              "gmm": "em", "seed": 5}
CLASSIC_RUN = {"preset": "serket-classic", "gmm": "em", "seed": 5}  # --classic: the lecture's run (3000 images)
_T = re.compile(rb'"t":([0-9.]+)')
_STATE = re.compile(rb'"state":"([a-z]+)"')


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (all its threads, not its children), seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Follower:
    """What one light client saw."""

    frames: int = 0
    pictures: int = 0
    delays: list = field(default_factory=list)
    states: set = field(default_factory=set)
    error: str = ""
    _last_picture: Optional[int] = None

    def take(self, data: bytes, now: float) -> None:
        self.frames += 1
        m = _T.search(data, 0, 64)
        if m:
            self.delays.append(now - float(m.group(1)))
        s = _STATE.search(data, 0, 200)
        if s:
            self.states.add(s.group(1).decode())
        i, j = data.find(b'"picture":'), data.find(b',"accuracy":')
        if i >= 0 and not data.startswith(b'null', i + 10):
            h = hash(data[i:j])
            if h != self._last_picture:
                self.pictures += 1
                self._last_picture = h


async def _follow(host: str, port: int, path: str, f: Follower, stop: asyncio.Event) -> None:
    """One follower: the GET, then the chunked body's SSE events until ``stop`` or the stream's end."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n\r\n".encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            f.error = head.split(b"\r\n", 1)[0].decode()
            return
        buf = b""
        while not stop.is_set():
            size_line = await reader.readline()
            size = int(size_line.strip() or b"0", 16)
            if size == 0:
                return
            buf += await reader.readexactly(size + 2)
            buf = buf[:-2] if buf.endswith(b"\r\n") else buf
            while b"\n\n" in buf:
                event, buf = buf.split(b"\n\n", 1)
                k = event.find(b"data: ")
                if k >= 0:
                    f.take(event[k + 6:], time.time())
        writer.close()
    except (OSError, asyncio.IncompleteReadError, ValueError) as e:
        f.error = f"{type(e).__name__}: {e}"


class LightFollowers:
    """``n`` light followers of ``url``'s run ``run_id`` in a thread of their own (one asyncio loop)."""

    def __init__(self, url: str, run_id: int, n: int) -> None:
        u = urlparse(url)
        self.followers = [Follower() for _ in range(n)]
        self._args = (u.hostname, u.port, f"/_vaegmm/runs/{int(run_id)}/events")
        self._loop = asyncio.new_event_loop()
        self._stop: Optional[asyncio.Event] = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main():
            self._stop = asyncio.Event()
            await asyncio.gather(*(_follow(*self._args, f, self._stop) for f in self.followers))

        self._loop.run_until_complete(main())

    def reset(self) -> None:
        """Start counting afresh (after the connections settled)."""
        for f in self.followers:
            f.frames, f.pictures, f.delays = 0, 0, []

    def close(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)


def owner_page(browser, url: str, params: dict) -> tuple:
    """``(page, run id)``: the owner's page pressed Start and shows its share link."""
    page = browser.new_context().new_page()
    page.set_viewport_size({"width": 1300, "height": 900})
    page.goto(f"{url}/?{urlencode(params)}")
    page.locator(".st-key-btn_start button").first.wait_for(timeout=60000)
    page.locator(".st-key-btn_start button").first.click()
    link = page.locator('[data-testid="vaegmm-share-link"]').first
    try:
        link.wait_for(timeout=60000)
    except Exception:  # an older checkout (--app-root) has no share link: a fresh store's first run is #1
        return page, 1
    return page, int(link.get_attribute("href").rsplit("run=", 1)[1])


def measure(pid: int, seconds: float) -> float:
    """Server CPU cores used over the next ``seconds``."""
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def followers_bench(browser, url: str, pid: int, n: int, window: float = 20.0, real: bool = False,
                    params: dict = FOLLOW_RUN, after_end: bool = True) -> dict:
    """The follower mode's measurement (see the module docstring); a dict of the numbers. With real pages and
    ``after_end`` also the server's CPU over ``window`` s once the run has ended, its owner's page is closed and
    every follower shows the saved run's page (``cpu_after_end``)."""
    owner, run_id = owner_page(browser, url, params)
    # wait for the VAE update of iteration 1 (the pictures move): iteration 0 done and a little more
    owner.wait_for_function("""() => { const el = document.querySelector('[data-testid="vaegmm-status"]');
        return el && el.getAttribute('data-state') === 'running' && el.innerText.includes('iteration 1 of'); }""",
                            timeout=300000, polling=200)
    time.sleep(2.0)
    alone = measure(pid, window / 2)
    before = proc_status(pid)
    sampler = Sampler(pid)
    light = LightFollowers(url, run_id, 0 if real else n)
    pages = [browser.new_context(viewport={"width": 390, "height": 844}).new_page() for _ in range(n if real else 0)]
    for p in pages:  # phones on the share link
        p.goto(f"{url}/?run={run_id}")
    time.sleep(5.0)  # connections (or pages) settled
    light.reset()
    t0 = time.monotonic()
    watched = measure(pid, window)
    elapsed = time.monotonic() - t0
    sampler.stop()
    state = owner.locator('[data-testid="vaegmm-status"]').first.get_attribute("data-state")
    light.close()
    fs = light.followers
    r = {"followers": n, "real": real, "run_id": run_id, "window_s": window, "cpu_alone": alone,
         "cpu_watched": watched, "cpu_per_follower": (watched - alone) / max(1, n), "rss_before_mb":
         before.get("rss_mb"), "rss_peak_mb": sampler.peak_rss, "threads_peak": sampler.peak_threads,
         "owner_state_after": state, "errors": [f.error for f in fs if f.error][:5]}
    if fs:
        rates = [f.pictures / elapsed for f in fs]
        delays = [d for f in fs for d in f.delays]
        r.update(frames_per_s=sum(f.frames for f in fs) / len(fs) / elapsed, pictures_per_s_min=min(rates),
                 pictures_per_s_median=pct(rates, 0.5), delay_p50_s=pct(delays, 0.5),
                 delay_p95_s=pct(delays, 0.95), states=sorted(set().union(*(f.states for f in fs))))
    if pages and after_end:  # the room after the run: every follower page is the finished run's saved-run page
        owner.wait_for_function("""() => { const el = document.querySelector('[data-testid="vaegmm-status"]');
            return el && ['finished', 'failed', 'stopped'].includes(el.getAttribute('data-state')); }""",
                                timeout=900000, polling=500)
        owner.context.close()
        for p in pages:
            p.get_by_role("heading", name=f"Saved run #{run_id}").wait_for(timeout=120000)
        time.sleep(5.0)
        r["cpu_after_end"] = measure(pid, window)
        r["cpu_after_end_per_page"] = r["cpu_after_end"] / len(pages)
    for p in pages:
        p.context.close()
    if not owner.is_closed():
        owner.context.close()
    return r


def run_seconds(db, run_id: int, timeout: float = 900.0) -> tuple:
    """``(status, wall seconds)`` of run ``run_id`` in the store ``db`` once it has ended."""
    import sqlite3

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.closing(sqlite3.connect(str(db), timeout=30)) as con:
            row = con.execute("SELECT status, seconds FROM runs WHERE id = ?", (int(run_id),)).fetchone()
        if row and row[0] in ("finished", "failed", "stopped", "interrupted") and row[1] is not None:
            return row[0], float(row[1])
        time.sleep(0.5)
    raise TimeoutError(f"run {run_id} did not end within {timeout} s")


def speed_bench(browser, url: str, pid: int, db, n: int, pairs: int = 2, params: dict = CLASSIC_RUN) -> dict:
    """Issue 18 part 4's "the run within 10 % of its unwatched speed": the same run (same settings and seed; the
    server's reuse off) trained ``pairs`` times unwatched and ``pairs`` times with ``n`` light followers connected
    from its share link to its end, interleaved (unwatched first in even pairs, watched first in odd ones). Per
    run: its wall seconds (the store's), the server's CPU over the run, and for the watched ones the followers'
    new pictures per second (minimum over followers) and frame delay p95."""
    rows = []
    for k in range(pairs):
        for watched in ((False, True) if k % 2 == 0 else (True, False)):
            owner, run_id = owner_page(browser, url, params)
            c0, t0 = cpu_seconds(pid), time.monotonic()
            light = LightFollowers(url, run_id, n if watched else 0)
            status, seconds = run_seconds(db, run_id)
            elapsed = time.monotonic() - t0
            cpu = (cpu_seconds(pid) - c0) / elapsed
            light.close()
            fs = light.followers
            row = {"watched": watched, "followers": n if watched else 0, "run_id": run_id, "status": status,
                   "seconds": round(seconds, 2), "server_cores": round(cpu, 3)}
            if fs:
                rates = [f.pictures / elapsed for f in fs]
                delays = [d for f in fs for d in f.delays]
                row.update(pictures_per_s_min=round(min(rates), 2), pictures_per_s_median=round(pct(rates, 0.5), 2),
                           delay_p95_s=round(pct(delays, 0.95), 3), errors=[f.error for f in fs if f.error][:3])
            print(row, flush=True)
            rows.append(row)
            owner.context.close()
            time.sleep(3.0)
    alone = [r["seconds"] for r in rows if not r["watched"]]
    seen = [r["seconds"] for r in rows if r["watched"]]
    return {"runs": rows, "unwatched_median_s": statistics.median(alone), "watched_median_s": statistics.median(seen),
            "slowdown": statistics.median(seen) / statistics.median(alone) - 1.0}


def follower_mode(a) -> int:
    """``--followers N``: print the follower numbers as JSON; BENCHMARKS.md by hand."""
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
                r = followers_bench(browser, url, proc.pid, a.followers, window=a.window, real=bool(a.real),
                                    params=params)
        finally:
            browser.close()
    r["load_average"] = os.getloadavg()
    print(json.dumps(r, indent=1))
    return 0


def real_pages(browser, url: str, pages: int, params: dict, first_seed: int, students: int) -> dict:
    """``pages`` real Chromium pages (seeds ``first_seed + i``) press Start at the same moment as ``students``
    light students (tests/light_students.py); each page's own clock from its click to its status line showing the run
    or its queue position (tests/classroom.py's page scripts), and the light students' numbers."""
    ctxs = [browser.new_context(viewport={"width": 1280, "height": 900}) for _ in range(pages)]
    tabs = [c.new_page() for c in ctxs]
    for i, page in enumerate(tabs):
        page.goto(f"{url}/?{urlencode({**params, 'seed': first_seed + i})}")
        page.locator(".st-key-btn_start button").first.wait_for(timeout=120000)
        page.evaluate(WATCH_JS)
    ready, go = threading.Event(), threading.Event()
    thread, light = run_classroom(url, students, params, wait=False, ready=ready, go=go)
    ready.wait(180)
    go.set()
    for page in tabs:
        page.evaluate(CLICK_JS)
    shown = [None] * pages
    deadline = time.monotonic() + 60
    while any(v is None for v in shown) and time.monotonic() < deadline:
        for i, page in enumerate(tabs):
            if shown[i] is None:
                in_page, drawn = page.evaluate(SHOWN_JS)
                shown[i] = None if in_page is None else (in_page, drawn)
        tabs[0].wait_for_timeout(50)
    thread.join()
    ended = []
    for page in tabs:  # the light students' runs have ended: the pages' runs (queued among theirs) end soon after
        page.wait_for_function(f"""() => {{ const el = document.querySelector('{STATUS}');
            return el && {list(ENDED)!r}.includes(el.getAttribute('data-state')); }}""", timeout=300000, polling=200)
        ended.append(page.get_attribute(STATUS, "data-state"))
    for c in ctxs:
        c.close()
    return {"real_pages_shown_s": [None if v is None else round(v[0], 3) for v in shown], "real_pages_ended": ended,
            "real_pages_server_drawn_s": [None if v is None else round(v[1], 3) for v in shown], **light}


def students_mode(a) -> int:
    """``--students N [--real P]``: light students (and P real pages) press Start at once; JSON, BENCHMARKS.md by
    hand ("A class pressing Start at once")."""
    cores = sorted(os.sched_getaffinity(0))
    if a.real:  # children inherit this process's CPU set: the server (and its workers) first, Chromium then
        os.sched_setaffinity(0, cores[:1])
    db = Path(tempfile.mkdtemp(prefix="vaegmm-light-db-")) / "runs.db"
    env = {"VAEGMM_RECONNECT_GRACE": "5", "VAEGMM_DB": str(db)}
    if a.cap:
        env["VAEGMM_MAX_RUNS"] = str(a.cap)
    with streamlit_server(env, log_name=f"light_students_{a.students}.log") as (url, proc):
        if a.real:
            os.sched_setaffinity(0, cores[1:])
        warm = run_classroom(url, 1, CLASS_RUN, first_seed=1000)  # the fork server and first-run costs
        sampler = Sampler(proc.pid)
        if a.real:
            with sync_playwright() as pw:
                browser = launch_chromium(pw)
                try:
                    r = real_pages(browser, url, a.real, CLASS_RUN, 500, a.students)
                finally:
                    browser.close()
        else:
            r = run_classroom(url, a.students, CLASS_RUN)
        sampler.stop()
    r["warm_up"] = {k: warm[k] for k in ("shown_p50_s", "finished")}
    r["server_rss_peak_mb"] = round(sampler.peak_rss)
    print(json.dumps(r, indent=1))
    ok = (r["finished"] == a.students and r["shown"] == a.students and (r["shown_max_s"] or 1e9) <= 3.0
          and all(v is not None and v <= 3.0 for v in r.get("real_pages_shown_s", []))
          and all(e == "finished" for e in r.get("real_pages_ended", [])))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
