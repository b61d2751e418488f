"""Followers of one live run (issue 18 part 4), the follower mode of ``bench/load.py``.

One real Chromium page (the owner, at nice 10) opens a small run and presses Start; once its share link
``?run=<id>`` shows, the server's CPU (``/proc/<pid>/stat``: utime + stime of the ``streamlit run`` process, the
training workers are separate processes) is measured over ``--window`` seconds with the owner alone, then with
N followers. A follower is a light client that speaks the push channel's own protocol with plain HTTP (one
``GET /_vaegmm/runs/<id>/events``, chunked Server-Sent Events, read by asyncio in one thread: 100 fit here), or
with ``--real`` a Chromium page on the share link (the whole follower page: its Streamlit session too).

Per follower it reports frames and new pictures per second (a picture is new when its points differ from the
follower's previous one) and the frame delay (the client's clock on arrival minus the frame's ``t``, the
server's clock when it was encoded: the same machine). Server RSS and threads are sampled too.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import re
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import urlencode, urlparse

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


def _pct(values: list, q: float) -> Optional[float]:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] if values else None


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


def real_followers(browser, url: str, run_id: int, n: int) -> list:
    pages = []
    for _ in range(n):
        p = browser.new_context().new_page()
        p.set_viewport_size({"width": 390, "height": 844})
        p.goto(f"{url}/?run={run_id}")
        pages.append(p)
    return pages


def followers_bench(browser, url: str, pid: int, n: int, window: float = 20.0, real: bool = False,
                    params: dict = FOLLOW_RUN, after_end: bool = True) -> dict:
    """The follower mode's measurement (see the module docstring); a dict of the numbers. With real pages and
    ``after_end`` also the server's CPU over ``window`` s once the run has ended, its owner's page is closed and
    every follower shows the saved run's page (``cpu_after_end``)."""
    from load import Sampler, proc_status

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
    pages = real_followers(browser, url, run_id, n) if real else []
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
                 pictures_per_s_median=_pct(rates, 0.5), delay_p50_s=_pct(delays, 0.5),
                 delay_p95_s=_pct(delays, 0.95), states=sorted(set().union(*(f.states for f in fs))))
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
                row.update(pictures_per_s_min=round(min(rates), 2), pictures_per_s_median=round(_pct(rates, 0.5), 2),
                           delay_p95_s=round(_pct(delays, 0.95), 3), errors=[f.error for f in fs if f.error][:3])
            print(row, flush=True)
            rows.append(row)
            owner.context.close()
            time.sleep(3.0)
    alone = [r["seconds"] for r in rows if not r["watched"]]
    seen = [r["seconds"] for r in rows if r["watched"]]
    return {"runs": rows, "unwatched_median_s": statistics.median(alone), "watched_median_s": statistics.median(seen),
            "slowdown": statistics.median(seen) / statistics.median(alone) - 1.0}
