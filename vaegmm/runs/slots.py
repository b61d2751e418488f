"""How many runs train at once: a server-wide :class:`SlotManager` (default: one slot per CPU core, or
``$VAEGMM_MAX_RUNS``). A run beyond the cap waits in a FIFO queue (live runs before sweep runs), knows its place,
and can leave the queue when it is stopped. Each of ``cap`` runs side by side gets ``cores // cap`` torch and BLAS
threads (:func:`threads_per_run`), so together they use about all cores without oversubscribing them.
"""
from __future__ import annotations

import bisect
import itertools
import threading
from typing import Optional

from vaegmm.core.env import env_positive_int
from vaegmm.core.singleton import process_singleton
from vaegmm.core.threads import TORCH_THREADS_ENV, cpu_count

MAX_RUNS_ENV = "VAEGMM_MAX_RUNS"


def max_runs_from_env(default: Optional[int] = None) -> int:
    """``$VAEGMM_MAX_RUNS`` when it is a positive integer, else ``default`` (the number of cores)."""
    return env_positive_int(MAX_RUNS_ENV) or (default if default is not None else cpu_count())


def threads_per_run(capacity: int) -> int:
    """Torch and BLAS threads of each run: ``$VAEGMM_TORCH_THREADS``, else ``max(1, cores // capacity)`` so that
    ``capacity`` runs side by side fill the cores without oversubscribing them."""
    return env_positive_int(TORCH_THREADS_ENV) or max(1, cpu_count() // max(1, capacity))


class SlotManager:
    """At most ``capacity`` holders at a time; waiters are served by ``priority`` (lower first: live runs 0,
    sweep runs 1), first come, first served within a priority.

    ``acquire(ticket, cancel)`` blocks until ``ticket`` holds a slot (True) or ``cancel`` is set (False, and the
    ticket leaves the queue). :meth:`position` tells a waiting ticket its place (1 = next).
    """

    def __init__(self, capacity: int):
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be an integer >= 1, got {capacity!r}")
        self.capacity = capacity
        self._cond = threading.Condition()
        self._queue: list = []  # (priority, arrival, ticket), kept sorted: the order in which waiters are served
        self._arrivals = itertools.count()
        self._holders: set = set()

    def enqueue(self, ticket, priority: int = 0) -> tuple:
        """Put ``ticket`` in the queue now (its :meth:`position` is known at once); :meth:`acquire` with the
        returned entry then waits for the slot."""
        with self._cond:
            entry = (priority, next(self._arrivals), ticket)
            bisect.insort(self._queue, entry, key=lambda e: e[:2])
            return entry

    def acquire(self, ticket, cancel: threading.Event, poll: float = 0.2, priority: int = 0,
                entry: Optional[tuple] = None) -> bool:
        if entry is None:
            entry = self.enqueue(ticket, priority)
        with self._cond:
            try:
                while True:
                    if cancel.is_set():
                        return False
                    free = self.capacity - len(self._holders)
                    if free > 0 and self._queue.index(entry) < free:
                        self._holders.add(ticket)
                        return True
                    self._cond.wait(poll)
            finally:
                self._queue.remove(entry)
                self._cond.notify_all()

    def release(self, ticket) -> None:
        with self._cond:
            self._holders.discard(ticket)
            self._cond.notify_all()

    def wake(self) -> None:
        """Let waiters re-check their cancel events now (called when a queued run is stopped)."""
        with self._cond:
            self._cond.notify_all()

    def position(self, ticket) -> int:
        """1-based place of a waiting ticket in the queue; 0 when it is not waiting."""
        with self._cond:
            return next((i + 1 for i, e in enumerate(self._queue) if e[2] is ticket), 0)

    @property
    def running(self) -> int:
        with self._cond:
            return len(self._holders)

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)


@process_singleton
def default_slots() -> SlotManager:
    """The process-wide slot manager, created on first use with ``$VAEGMM_MAX_RUNS`` (default: the cores)."""
    return SlotManager(max_runs_from_env())
