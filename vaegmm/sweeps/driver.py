"""The sweep driver: the only writer of a sweep's results.

:class:`SweepDriver` (and :func:`run_sweep`) skips runs the store has finished already (same config and seed, from
any source), hands the rest to the executor lane by lane, each lane taking a slot of a
:class:`~vaegmm.runs.runner.SlotManager` first (priority 1: live runs go first), and writes each result as it
arrives. A crash loses at most the runs in flight. The driver knows nothing about printing: it emits
:class:`SweepEvent` to an ``on_event`` callback (the CLI's progress bar, a benchmark's log).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

from vaegmm.runs.slots import SlotManager
from vaegmm.sweeps.cell import WorkerDied
from vaegmm.sweeps.spec import Cell, SweepError, SweepSpec


@dataclass
class SweepEvent:
    """What the driver just did. ``kind``: "started" (a run went to a worker), "finished" (its result is
    stored: ``status`` finished / failed / stopped), "reused" (already in the store), "worker_died" (it will be
    retried once), "end"."""

    kind: str
    cell: str = ""
    seed: int = -1
    run_id: int = 0
    status: str = ""
    message: str = ""
    seconds: float = 0.0
    progress: Optional["Progress"] = None


@dataclass
class Progress:
    """Counts of one sweep: ``done`` = finished + failed + reused (they will not run again)."""

    total: int
    done: int = 0
    finished: int = 0
    failed: int = 0
    reused: int = 0
    running: int = 0
    stopped: int = 0
    lanes: int = 1

    def count(self, status: str) -> None:
        """Count one run that ended: "finished", "failed" (done) or "reused" (done, from the store); any other
        status (stopped) will run again."""
        if status == "finished":
            self.finished += 1
        elif status == "failed":
            self.failed += 1
        elif status == "reused":
            self.reused += 1
        else:
            self.stopped += 1
            return
        self.done += 1


class SweepDriver:
    """Drives one sweep: create or reopen it in the store, lock it against a second driver, mark runs of dead
    drivers ``interrupted``, link runs the store has finished already, and train the rest.

    Construction does every check that can fail (and raises :class:`~vaegmm.store.StoreError` or
    :class:`~vaegmm.sweeps.spec.SweepError` with one line); :meth:`run` then blocks until the sweep ends or
    :meth:`stop` is called. ``slots``: the cap shared with other work (the dashboard passes the server's
    ``default_slots()``); default a private ``SlotManager(executor.lanes)``.
    """

    def __init__(self, store, spec: SweepSpec, name: str, executor, slots=None,
                 on_event: Optional[Callable[[SweepEvent], None]] = None, retry_failed: bool = False,
                 stop: Optional[threading.Event] = None):
        if not name or not str(name).strip():
            raise SweepError("a sweep needs a name")
        self.store, self.spec, self.name, self.executor = store, spec, str(name).strip(), executor
        self.slots = slots  # default: a private SlotManager(executor.lanes), made once the executor has started
        self.on_event = on_event
        self.stop_event = stop or threading.Event()
        self._lock = threading.Lock()
        self._errors: list = []
        spec.validate()
        self.sweep_id = store.create_sweep(self.name, spec.to_dict())
        self._sweep_lock = store.lock_sweep(self.sweep_id, self.name)
        try:
            store.recover()
            store.set_sweep_status(self.sweep_id, "running")
            self.progress = Progress(total=spec.n_runs, lanes=executor.lanes)
            self._todo = self._runs_to_train(retry_failed)
        except BaseException:
            self._sweep_lock.release()
            raise

    def _runs_to_train(self, retry_failed: bool) -> list[tuple[Cell, int]]:
        """The (cell, seed) pairs this sweep has not finished (nor failed, unless ``retry_failed``); the others
        count as done in :attr:`progress`."""
        stored = {(r["cell"], r["seed"]): r["status"] for r in self.store.sweep_runs(self.sweep_id)}
        todo = []
        for cell, seed in self.spec.runs():
            status = stored.get((cell.name, seed), "")
            if status == "finished" or (status == "failed" and not retry_failed):
                self.progress.count(status)
            else:
                todo.append((cell, seed))
        return todo

    # ------------------------------------------------------------------------------------------ control
    def stop(self) -> None:
        """End the sweep soon: no new runs; runs in flight are stopped (their workers ended) within seconds."""
        self.stop_event.set()
        if self.slots is not None:
            self.slots.wake()

    def _emit(self, ev: SweepEvent) -> None:
        ev.progress = self.progress
        if self.on_event is not None:
            try:
                self.on_event(ev)
            except Exception:  # a broken progress display must not end the sweep
                pass

    def _next_task(self) -> Optional[tuple[Cell, int]]:
        with self._lock:
            return self._todo.pop(0) if self._todo else None

    # ------------------------------------------------------------------------------------------ running
    def run(self) -> Progress:
        """Train every run not in the store yet, ``executor.lanes`` at a time; returns the final counts."""
        p = self.progress
        lanes = []
        status, message = "finished", ""
        try:
            if self._todo and not self.stop_event.is_set():
                self.executor.start()  # Ray learns its lanes (the cluster's CPUs) here
                if self.slots is None:
                    self.slots = SlotManager(max(1, self.executor.lanes))
                p.lanes = self.executor.lanes
                lanes = [threading.Thread(target=self._lane, args=(i,), name=f"vaegmm-sweep-lane-{i}", daemon=True)
                         for i in range(max(1, min(self.executor.lanes, len(self._todo))))]
                for t in lanes:
                    t.start()
                for t in lanes:
                    while t.is_alive():
                        t.join(0.2)
        except BaseException as e:  # KeyboardInterrupt in the CLI: stop the lanes, keep what is stored
            self.stop()
            for t in lanes:
                t.join(30)
            status, message = "stopped", f"stopped: {type(e).__name__}"
            raise
        finally:
            try:
                self.executor.close()
            finally:
                self._end(status, message)
        if self._errors:
            raise self._errors[0]
        return p

    def _end(self, status: str, message: str) -> None:
        """Store the sweep's final status (an error or a stop overrides ``status``), release its lock, emit "end"."""
        p = self.progress
        if self._errors:
            status, message = "failed", str(self._errors[0])
        elif self.stop_event.is_set() and p.done < p.total:
            status, message = "stopped", message or "stopped"
        elif p.failed:
            message = f"{p.failed} run{'s' if p.failed != 1 else ''} failed"
        try:
            self.store.set_sweep_status(self.sweep_id, status, message)
        finally:
            self._sweep_lock.release()
            self._emit(SweepEvent("end", status=status, message=message))

    def _lane(self, lane: int) -> None:
        """One lane's thread: take a slot, train the next task, give the slot back, until none is left."""
        try:
            while not self.stop_event.is_set():
                ticket = object()
                if not self.slots.acquire(ticket, self.stop_event, poll=0.2, priority=1):
                    return
                try:
                    task = self._next_task()
                    if task is None:
                        return
                    self._run_task(lane, *task)
                finally:
                    self.slots.release(ticket)
        except BaseException as e:  # a store error: end the sweep, report it
            self._errors.append(e)
            self.stop()

    def _run_task(self, lane: int, cell: Cell, seed: int) -> None:
        """Claim (cell, seed) in the store, then reuse the stored run, put it back for later (another driver
        trains it now), or train it and record the result."""
        what, run_id = self.store.claim_run(self.sweep_id, cell.name, cell.config, seed,
                                            label=f"{self.name}: {cell.name}", preset=self.spec.preset)
        if what == "reuse":
            with self._lock:
                self.progress.count("reused")
            self._emit(SweepEvent("reused", cell.name, seed, run_id, "finished"))
            return
        if what == "busy":  # another driver trains this (config, seed) now: come back to it later
            with self._lock:
                self._todo.append((cell, seed))
            self.stop_event.wait(1.0)
            return
        self._record(cell, seed, run_id, self._train(lane, cell, seed, run_id))

    def _train(self, lane: int, cell: Cell, seed: int, run_id: int) -> dict:
        """The executor's result for one run; a run whose worker died is retried once on a fresh worker."""
        p = self.progress
        with self._lock:
            p.running += 1
        self._emit(SweepEvent("started", cell.name, seed, run_id))
        result = None
        try:
            for attempt in (1, 2):
                try:
                    result = self.executor.run(lane, cell.config, seed, self.stop_event)
                    result["attempts"] = attempt
                    break
                except WorkerDied as e:
                    self._emit(SweepEvent("worker_died", cell.name, seed, run_id, message=str(e)))
                    if self.stop_event.is_set():
                        result = {"status": "stopped", "attempts": attempt}
                    elif attempt == 2:
                        result = {"status": "failed", "attempts": attempt,
                                  "message": f"its worker process died twice ({e})"}
        finally:
            with self._lock:
                p.running -= 1
        if result is None:  # pragma: no cover - defensive
            result = {"status": "failed", "message": "no result"}
        return result

    def _record(self, cell: Cell, seed: int, run_id: int, result: dict) -> None:
        """Write one run's result to the store, count it, emit "finished"."""
        result.setdefault("executor", self.executor.name)
        status = result.get("status", "failed")
        if status == "stopped":
            result["message"] = "the sweep was stopped"
        self.store.record_result(run_id, result)
        with self._lock:
            self.progress.count(status)
        self._emit(SweepEvent("finished", cell.name, seed, run_id, status, result.get("message", ""),
                              float(result.get("seconds") or 0.0)))


def run_sweep(store, spec: SweepSpec, name: str, executor, slots=None, on_event=None, stop=None,
              retry_failed: bool = False) -> Progress:
    """Create (or reopen) the sweep ``name`` in ``store`` and run what is missing; see :class:`SweepDriver`."""
    return SweepDriver(store, spec, name, executor, slots=slots, on_event=on_event, stop=stop,
                       retry_failed=retry_failed).run()


def default_sweep_name(spec: SweepSpec) -> str:
    """``feedback-alpha-20260102-153000``: the axes and the time, for a sweep started without a name."""
    axes = "-".join(a.name for a in spec.axes) or "seeds"
    return f"{axes}-{time.strftime('%Y%m%d-%H%M%S')}"
