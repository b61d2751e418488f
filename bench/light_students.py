"""Light students: N clients of Streamlit's own websocket protocol (``/_stcore/stream``, protobuf ``BackMsg`` /
``ForwardMsg``), each a browser session of the live page that presses Start, in one asyncio thread (issue 18
part 4: "every page shows its run or queue position within 3 s of Start when the browsers are not on the
server's cores").

A light student does what the page's frontend does for the server, and nothing of its drawing: it opens a
session with the page's query string (the first script run), answers every ``auto_rerun`` (the live fragment's
``run_every`` poll) with a fragment rerun at that interval, presses Start by sending the Start button's trigger in
a rerun of the fragment that holds it, and reads the deltas: the status line (``data-state``), the queue
position ("position N in the queue") and the end. What it costs a browser to draw those deltas is not in here:
that is the real page's (bench/load.py, one page on a free core). Timing: ``time.monotonic()`` of this process
from sending Start to receiving the delta of the status line that shows the run or its queue position.

    python bench/light_students.py --students 30            # prints JSON (BENCHMARKS "Load" by hand)
    python bench/light_students.py --students 29 --real 1   # and one real Chromium page, off the server's core
"""
from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import _pct  # noqa: E402  (bench/load.py's percentile, the same for both benches)

SHOWN = ("queued", "running", "paused", "finished")
ENDED = ("finished", "failed", "stopped")
_STATE = re.compile(r'data-testid="vaegmm-status" data-state="(\w+)"')
_POSITION = re.compile(r"position (\d+) in the queue")


class LightStudent:
    """One browser session of the live page at ``url`` with ``query`` (see the module docstring)."""

    def __init__(self, url: str, query: str, name: str):
        self.ws_url = url.replace("http://", "ws://") + "/_stcore/stream"
        self.origin, self.query, self.name = url, query, name
        self.start_id = self.start_fragment = None
        self.state = ""
        self.positions: set[int] = set()
        self.pressed_at = self.shown_s = self.ended_s = None
        self.shown_state = self.ended_state = ""
        self.polls = 0
        self._ws = None
        self._pollers: dict[str, asyncio.Task] = {}

    def _rerun(self, fragment_id: str = "", widgets=(), auto: bool = False) -> bytes:
        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = self.query
        cs.fragment_id = fragment_id
        cs.is_auto_rerun = auto
        for wid in widgets:
            w = cs.widget_states.widgets.add()
            w.id = wid
            w.trigger_value = True
        return msg.SerializeToString()

    async def _poll(self, fragment_id: str, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            self.polls += 1
            await self._ws.send(self._rerun(fragment_id, auto=True))

    def _read(self, data: bytes) -> None:
        msg = ForwardMsg()
        msg.ParseFromString(data)
        kind = msg.WhichOneof("type")
        if kind == "auto_rerun":
            fid, every = msg.auto_rerun.fragment_id, msg.auto_rerun.interval
            if fid not in self._pollers:
                self._pollers[fid] = asyncio.ensure_future(self._poll(fid, every))
            return
        if kind != "delta" or msg.delta.WhichOneof("type") != "new_element":
            return
        el = msg.delta.new_element
        which = el.WhichOneof("type")
        if which == "button" and el.button.id.endswith("btn_start"):
            self.start_id, self.start_fragment = el.button.id, msg.delta.fragment_id
        elif which in ("markdown", "alert"):
            body = el.markdown.body if which == "markdown" else el.alert.body
            for m in _POSITION.finditer(body):
                self.positions.add(int(m.group(1)))
            m = _STATE.search(body)
            if m:
                self._state(m.group(1))

    def _state(self, state: str) -> None:
        self.state = state
        if self.pressed_at is None:
            return
        now = time.monotonic() - self.pressed_at
        if self.shown_s is None and state in SHOWN:
            self.shown_s, self.shown_state = now, state
        if self.ended_s is None and state in ENDED:
            self.ended_s, self.ended_state = now, state

    async def open(self) -> None:
        self._ws = await websockets.connect(self.ws_url, subprotocols=["streamlit"], origin=self.origin,
                                            max_size=None, ping_interval=None)
        self._reader = asyncio.ensure_future(self._read_all())
        await self._ws.send(self._rerun())

    async def _read_all(self) -> None:
        try:
            async for data in self._ws:
                if isinstance(data, bytes):
                    self._read(data)
        except websockets.ConnectionClosed:
            pass

    async def press_start(self) -> None:
        self.pressed_at = time.monotonic()
        await self._ws.send(self._rerun(self.start_fragment, widgets=[self.start_id]))

    async def close(self) -> None:
        for t in self._pollers.values():
            t.cancel()
        await self._ws.close()
        self._reader.cancel()


async def classroom(url: str, students: int, params: dict, first_seed: int = 1, timeout: float = 900,
                    ready: threading.Event | None = None, go: threading.Event | None = None) -> dict:
    """``students`` light students open the page (student ``i`` with seed ``first_seed + i``: runs of their own),
    press Start within a few milliseconds of each other and stay until their runs end. With ``ready`` and ``go``:
    set ``ready`` once every student shows Start, then wait for ``go`` before pressing it (real pages press
    theirs at the same moment, :func:`main`)."""
    crowd = [LightStudent(url, urlencode({**params, "seed": first_seed + i}), f"student {i}")
             for i in range(students)]
    for s in crowd:
        await s.open()
    deadline = time.monotonic() + 120
    while any(s.start_id is None or s.state != "idle" for s in crowd) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    showing = sum(1 for s in crowd if s.start_id is not None)
    await asyncio.sleep(2.0)  # every session polling at its own interval, as a room of idle pages does
    if ready is not None:
        ready.set()
        while not go.is_set():
            await asyncio.sleep(0.005)
    t0 = time.monotonic()
    for s in crowd:
        await s.press_start()
    spread = time.monotonic() - t0
    deadline = time.monotonic() + timeout
    while any(s.ended_s is None for s in crowd) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    for s in crowd:
        await s.close()
    shown = [s.shown_s for s in crowd]

    def pct(v, q):
        x = _pct(v, q)
        return None if x is None else round(x, 3)

    return {"students": students, "ready": showing, "press_spread_s": round(spread, 3),
            "shown": sum(1 for v in shown if v is not None),
            "first_shown_states": {st: sum(1 for s in crowd if s.shown_state == st) for st in SHOWN},
            "shown_p50_s": pct(shown, 0.5), "shown_p95_s": pct(shown, 0.95), "shown_max_s": pct(shown, 1.0),
            "finished": sum(1 for s in crowd if s.ended_state == "finished"),
            "ended": {st: sum(1 for s in crowd if s.ended_state == st) for st in ENDED},
            "finished_max_s": max((s.ended_s for s in crowd if s.ended_s is not None), default=None),
            "queue_positions": sorted(set().union(*(s.positions for s in crowd))),
            "polls_per_student": statistics.median(s.polls for s in crowd)}


def run_classroom(url: str, students: int, params: dict, wait: bool = True, **kw):
    """:func:`classroom` in an event loop of its own thread (callable from sync code beside Playwright): its
    result, or with ``wait=False`` ``(thread, result dict filled when the thread ends)``."""
    out: dict = {}

    def go():
        out.update(asyncio.run(classroom(url, students, params, **kw)))

    t = threading.Thread(target=go, name="light-students")
    t.start()
    if not wait:
        return t, out
    t.join()
    return out


def real_pages(browser, url: str, pages: int, params: dict, first_seed: int, students: int) -> dict:
    """``pages`` real Chromium pages (seeds ``first_seed + i``) press Start at the same moment as ``students``
    light students (:func:`classroom`); each page's own clock from its click to its status line showing the run
    or its queue position (bench/load.py's page scripts), and the light students' numbers."""
    from browser_support import STATUS
    from load import _CLICK_JS, _SHOWN_JS, _WATCH_JS

    ctxs = [browser.new_context(viewport={"width": 1280, "height": 900}) for _ in range(pages)]
    tabs = [c.new_page() for c in ctxs]
    for i, page in enumerate(tabs):
        page.goto(f"{url}/?{urlencode({**params, 'seed': first_seed + i})}")
        page.locator(".st-key-btn_start button").first.wait_for(timeout=120000)
        page.evaluate(_WATCH_JS)
    ready, go = threading.Event(), threading.Event()
    thread, light = run_classroom(url, students, params, wait=False, ready=ready, go=go)
    ready.wait(180)
    go.set()
    for page in tabs:
        page.evaluate(_CLICK_JS)
    shown = [None] * pages
    deadline = time.monotonic() + 60
    while any(v is None for v in shown) and time.monotonic() < deadline:
        for i, page in enumerate(tabs):
            if shown[i] is None:
                in_page, drawn = page.evaluate(_SHOWN_JS)
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


def main(argv=None) -> int:
    from browser_support import streamlit_server
    from load import CLASS_RUN, Sampler

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--students", type=int, default=30)
    p.add_argument("--cap", type=int, default=None, help="VAEGMM_MAX_RUNS (default: the server's, = cores)")
    p.add_argument("--real", type=int, default=0, metavar="PAGES",
                   help="also PAGES real Chromium pages pressing Start with them, on the cores the server is not "
                        "on (the server and its training workers on the first core; needs >= 2 cores)")
    a = p.parse_args(argv)
    import os

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
            from playwright.sync_api import sync_playwright

            from browser_support import launch_chromium

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
