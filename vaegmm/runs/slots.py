"""How many runs train at once: a server-wide :class:`SlotManager` (default: one slot per CPU core, or
``$VAEGMM_MAX_RUNS``). A run beyond the cap waits in a queue (live runs before sweep runs), knows its place, and
can leave the queue when it is stopped. **Fair share** (issue 18): a waiting run that names an ``owner`` (the
dashboard passes its browser session) is served in rounds, its round fixed when it joins the queue: how many of
its owner's runs hold a slot or wait then. Round 0 (a session's first run) comes before round 1, and so on, so one
session holds at most one slot while others wait, and its further runs queue behind the other sessions' first
runs, also behind those that come later. Runs without an owner (sweeps, the CLI) are each
a first run. Each of ``cap`` runs side by side gets :func:`vaegmm.core.threads.threads_for_run` torch and BLAS
threads (:func:`threads_per_run`: its share of the cores, capped at the free ones).
"""
from __future__ import annotations

import bisect
import itertools
import threading
from typing import Optional

from vaegmm.core.env import env_positive_int
from vaegmm.core.singleton import process_singleton
from vaegmm.core.threads import cpu_count, threads_for_run

MAX_RUNS_ENV = "VAEGMM_MAX_RUNS"


def max_runs_from_env(default: Optional[int] = None) -> int:
    """``$VAEGMM_MAX_RUNS`` when it is a positive integer, else ``default`` (the number of cores)."""
    return env_positive_int(MAX_RUNS_ENV) or (default if default is not None else cpu_count())


def threads_per_run(capacity: int) -> int:
    """Torch and BLAS threads of a run starting now: :func:`vaegmm.core.threads.threads_for_run` (``$VAEGMM_TORCH_
    THREADS``, else ``min(cores // capacity, free cores)``, at least 1): one rule for every caller."""
    return threads_for_run(capacity)


class SlotManager:
    """At most ``capacity`` holders at a time; waiters are served by ``priority`` (lower first: live runs 0,
    sweep runs 1), then by their owner's round (see the module docstring: how many of the owner's runs held a slot
    or waited when it came), first come, first served within both.

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
        self._owners: dict = {}  # id(ticket) -> (owner or None, its round), for waiting and holding tickets

    def enqueue(self, ticket, priority: int = 0, owner=None) -> tuple:
        """Put ``ticket`` in the queue now (its :meth:`position` is known at once); :meth:`acquire` with the
        returned entry then waits for the slot. ``owner``: whose run it is (fair share; None = nobody's): its
        round is how many of the owner's runs hold a slot or wait at this moment."""
        with self._cond:
            entry = (priority, next(self._arrivals), ticket)
            bisect.insort(self._queue, entry, key=lambda e: e[:2])
            ahead = 0
            if owner is not None:
                mine = [t for t in self._holders] + [e[2] for e in self._queue if e is not entry]
                ahead = sum(1 for t in mine if self._owners.get(id(t), (None,))[0] is owner)
            self._owners[id(ticket)] = (owner, ahead)
            return entry

    def _order(self) -> list:
        """The waiting entries in the order they are served: (priority, the owner's round, arrival)."""
        return sorted(self._queue, key=lambda e: (e[0], self._owners.get(id(e[2]), (None, 0))[1], e[1]))

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
                    if free > 0 and self._order().index(entry) < free:
                        self._holders.add(ticket)
                        return True
                    self._cond.wait(poll)
            finally:
                self._queue.remove(entry)
                if ticket not in self._holders:
                    self._owners.pop(id(ticket), None)
                self._cond.notify_all()

    def release(self, ticket) -> None:
        with self._cond:
            self._holders.discard(ticket)
            self._owners.pop(id(ticket), None)
            self._cond.notify_all()

    def wake(self) -> None:
        """Let waiters re-check their cancel events now (called when a queued run is stopped)."""
        with self._cond:
            self._cond.notify_all()

    def position(self, ticket) -> int:
        """1-based place of a waiting ticket in the queue; 0 when it is not waiting."""
        with self._cond:
            return next((i + 1 for i, e in enumerate(self._order()) if e[2] is ticket), 0)

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
