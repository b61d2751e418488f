"""Light students: N clients of Streamlit's own websocket protocol (``/_stcore/stream``, protobuf ``BackMsg`` /
``ForwardMsg``), each a browser session of the live page that presses Start, in one asyncio thread (issue 18
part 4: "every page shows its run or queue position within 3 s of Start when the browsers are not on the
server's cores"). The driver of tests/test_light_students.py (4 students) and of ``python bench/load.py --students
30`` (the benchmark).

A light student does what the page's frontend does for the server, and nothing of its drawing: it opens a
session with the page's query string (the first script run), answers every ``auto_rerun`` (the live fragment's
``run_every`` poll) with a fragment rerun at that interval, presses Start by sending the Start button's trigger in
a rerun of the fragment that holds it, and reads the deltas: the status line (``data-state``), the queue
position ("position N in the queue") and the end. What it costs a browser to draw those deltas is not in here:
that is the real page's (:mod:`classroom`). Timing: ``time.monotonic()`` of this process from sending Start to
receiving the delta of the status line that shows the run or its queue position.
"""
from __future__ import annotations

import asyncio
import re
import statistics
import threading
import time
from urllib.parse import urlencode

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from classroom import pct

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


async def light_classroom(url: str, students: int, params: dict, first_seed: int = 1, timeout: float = 900,
                    ready: threading.Event | None = None, go: threading.Event | None = None) -> dict:
    """``students`` light students open the page (student ``i`` with seed ``first_seed + i``: runs of their own),
    press Start within a few milliseconds of each other and stay until their runs end. With ``ready`` and ``go``:
    set ``ready`` once every student shows Start, then wait for ``go`` before pressing it (real pages press
    theirs at the same moment: ``bench/load.py --students N --real P``)."""
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

    def p(v, q):
        x = pct(v, q)
        return None if x is None else round(x, 3)

    return {"students": students, "ready": showing, "press_spread_s": round(spread, 3),
            "shown": sum(1 for v in shown if v is not None),
            "first_shown_states": {st: sum(1 for s in crowd if s.shown_state == st) for st in SHOWN},
            "shown_p50_s": p(shown, 0.5), "shown_p95_s": p(shown, 0.95), "shown_max_s": p(shown, 1.0),
            "finished": sum(1 for s in crowd if s.ended_state == "finished"),
            "ended": {st: sum(1 for s in crowd if s.ended_state == st) for st in ENDED},
            "finished_max_s": max((s.ended_s for s in crowd if s.ended_s is not None), default=None),
            "queue_positions": sorted(set().union(*(s.positions for s in crowd))),
            "polls_per_student": statistics.median(s.polls for s in crowd)}


def run_classroom(url: str, students: int, params: dict, wait: bool = True, **kw):
    """:func:`light_classroom` in an event loop of its own thread (callable from sync code beside Playwright): its
    result, or with ``wait=False`` ``(thread, result dict filled when the thread ends)``."""
    out: dict = {}

    def go():
        out.update(asyncio.run(light_classroom(url, students, params, **kw)))

    t = threading.Thread(target=go, name="light-students")
    t.start()
    if not wait:
        return t, out
    t.join()
    return out
