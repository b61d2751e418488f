"""Pause / resume / stop requests honoured between mini-batches (thread-safe)."""
from __future__ import annotations

import threading


class StopRequested(Exception):
    """Raised inside the training loop when a stop was requested."""


class RunControl:
    """Shared by the worker (which calls :meth:`checkpoint` often) and the UI (which calls pause/resume/stop)."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()  # wake a paused worker so it can see the stop

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set() and not self._stop.is_set()

    def checkpoint(self) -> None:
        """Return at once when running; block while paused; raise :class:`StopRequested` once stopped."""
        while not self._running.wait(0.1):
            pass
        if self._stop.is_set():
            raise StopRequested()
