"""The server's live runs that can be followed by a share link (issue 18 part 1), and their push channels.

:func:`follow_hub` is one object per server process. A session registers each run it starts
(:meth:`FollowHub.register`, called by :class:`dashboard.state.session.SessionRuns`); the run is found by its
library id (the share link's ``?run=<id>``) as soon as it has one, when it takes its training slot.
``?run=<id>`` then opens the follower page while the run is live (:meth:`FollowHub.live`), and the follower's
browser reads the run's frames from ``/_vaegmm/runs/<id>/socket`` (a WebSocket; plain HTTP clients read the same
frames as Server-Sent Events from ``/_vaegmm/runs/<id>/events``: :mod:`dashboard.follow.routes`).

Cost: one :class:`FrameChannel` per followed run polls the run's snapshot every ``POLL`` seconds (a copy under a
lock, microseconds) in the server's event loop while anyone follows it, and only when what a follower sees has
changed (:func:`~dashboard.follow.frames.frame_key`) encodes **one** frame, whose bytes every follower's
stream then sends as they are. A follower costs the server no script run at all; a slow follower skips to the
latest frame. No Streamlit in here.
"""
from __future__ import annotations

import asyncio
import threading
from typing import AsyncIterator, Optional

from dashboard.follow.frames import frame, frame_json, frame_key, sse_event
from vaegmm.core.singleton import process_singleton
from vaegmm.runs.state import TERMINAL

POLL = 0.1  # seconds between two looks at a followed run's snapshot
KEEPALIVE = 15.0  # seconds of silence after which a comment line keeps proxies from closing the stream
KEEP_ENDED = 64  # ended runs remembered (their last frame is still served)


def has_ended(run) -> bool:
    """Whether ``run`` has ended for good: its state is terminal and, for a
    :class:`~vaegmm.runs.runner.TrainingRun`, its record in the run library is final (the saved run's page then
    shows the finished run, not a moment before its record was written)."""
    return getattr(run, "ended", run.state in TERMINAL)


class FrameChannel:
    """One run's frames: the latest frame encoded once for all followers (``latest``: bytes of one Server-Sent
    Event; ``latest_text``: its JSON, a WebSocket message), its number (``version``) and how many frames were
    encoded (``encodes``). :meth:`refresh` is synchronous (tests call it); :meth:`stream` is a follower's async
    stream of frames."""

    def __init__(self, run_id: int, run) -> None:
        self.run_id = run_id
        self.run = run
        self.version = 0
        self.latest: Optional[bytes] = None
        self.latest_text: Optional[str] = None
        self.terminal = False
        self.encodes = 0
        self.followers = 0
        self._key: Optional[tuple] = None
        self._changed: Optional[asyncio.Event] = None
        self._task: Optional[asyncio.Task] = None

    def refresh(self) -> bool:
        """Look at the run; encode a new frame when what a follower sees has changed. True when it has."""
        ended = has_ended(self.run)  # before the snapshot: an ended run's snapshot is its last
        snap = self.run.snapshot()
        labels = getattr(self.run, "labels", None)
        key = frame_key(snap) + (labels is not None, ended)
        if key == self._key:
            return False
        self._key = key
        self.version += 1
        self.latest_text = frame_json(frame(snap, labels, self.run_id, self.version, ended))
        self.latest = sse_event(self.version, self.latest_text)
        self.encodes += 1
        self.terminal = ended
        return True

    async def _poll(self) -> None:
        """While anyone follows: refresh every ``POLL`` s and wake the followers on a new frame."""
        try:
            while self.followers > 0:
                if self.refresh():
                    self._wake()
                if self.terminal:
                    return
                await asyncio.sleep(POLL)
        finally:
            self._task = None

    def _wake(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        if event is not None:
            event.set()

    async def stream(self, text: bool = False) -> AsyncIterator[Optional[bytes | str]]:
        """Every new frame for one follower (the latest at once), until the run's last frame: Server-Sent Event
        bytes (a comment line after ``KEEPALIVE`` s of silence), or with ``text`` the frames' JSON (``None`` after
        ``KEEPALIVE`` s of silence)."""
        self.followers += 1
        if self._changed is None:
            self._changed = asyncio.Event()
        try:
            if self.latest is None:
                self.refresh()
            if self._task is None and not self.terminal:
                self._task = asyncio.get_running_loop().create_task(self._poll())
            sent = 0
            while True:
                if self.version != sent and self.latest is not None:
                    sent = self.version
                    yield self.latest_text if text else self.latest
                    if self.terminal:
                        return
                event = self._changed
                try:
                    await asyncio.wait_for(event.wait(), KEEPALIVE)
                except asyncio.TimeoutError:
                    yield None if text else b": keepalive\n\n"
        finally:
            self.followers -= 1


class FollowHub:
    """The followable runs of this server (thread-safe): each registered run, found by its library id."""

    def __init__(self) -> None:
        self._runs: dict[int, object] = {}  # registered runs by their server id (TrainingRun.id), oldest first
        self._channels: dict[int, FrameChannel] = {}  # by library id
        self._lock = threading.Lock()

    def register(self, run) -> None:
        """Make ``run`` (a :class:`~vaegmm.runs.runner.TrainingRun`) followable as ``?run=<its library id>`` once
        it has one; the oldest ended runs beyond ``KEEP_ENDED`` are forgotten."""
        with self._lock:
            self._runs[run.id] = run
            ended = [i for i, r in self._runs.items() if has_ended(r)]
            for i in ended[:max(0, len(ended) - KEEP_ENDED)]:
                gone = self._runs.pop(i)
                self._channels = {k: c for k, c in self._channels.items() if c.run is not gone}

    def channel(self, run_id: int) -> Optional[FrameChannel]:
        """The push channel of the run whose library id is ``run_id``, or None (no such run registered)."""
        with self._lock:
            ch = self._channels.get(run_id)
            if ch is None:
                run = next((r for r in self._runs.values() if r.library_id == run_id), None)
                if run is None:
                    return None
                ch = self._channels[run_id] = FrameChannel(run_id, run)
            return ch

    def live(self, run_id: Optional[int]):
        """The run registered as ``run_id`` until it has ended (queued, running, paused), else None."""
        ch = self.channel(run_id) if run_id is not None else None
        if ch is None or has_ended(ch.run):
            return None
        return ch.run

    def followers(self) -> int:
        with self._lock:
            return sum(c.followers for c in self._channels.values())


@process_singleton
def follow_hub() -> FollowHub:
    """The server's one hub (the route and every session's pages share it)."""
    return FollowHub()
