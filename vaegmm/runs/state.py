"""The state machine of one dashboard run (:class:`RunState`) and the copies a page draws (:class:`Snapshot`).

States: ``idle`` -> ``queued`` (waiting for a slot) -> ``running`` <-> ``paused`` -> ``finished`` | ``stopped`` |
``failed``. The commands (pause, resume, step, stop) change the state at once and tell the worker process what to
do; what the worker reports (progress, finished iterations, the end) is applied here too. Everything happens
under one lock, and the commands are sent under it, so the worker receives them in the order the state changed.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from vaegmm.model.config import RunConfig
from vaegmm.model.mutual import IterationResult, ProgressEvent

IDLE, QUEUED, RUNNING, PAUSED, FINISHED, STOPPED, FAILED = (
    "idle", "queued", "running", "paused", "finished", "stopped", "failed")
STATES = (IDLE, QUEUED, RUNNING, PAUSED, FINISHED, STOPPED, FAILED)
TERMINAL = frozenset({FINISHED, STOPPED, FAILED})
ACTIVE = frozenset({QUEUED, RUNNING, PAUSED})  # a worker thread exists
INTERRUPTED = "interrupted"  # a saved run whose server died while it trained (the run library's, never a live run's)
ENDED = TERMINAL | {INTERRUPTED}  # a saved run in one of these no longer changes

Send = Callable[..., None]  # send(*command) to the worker, if one runs


@dataclass
class Progress:
    """Where the worker is. ``iteration`` is the one in progress (0 = the untrained picture)."""

    phase: str = ""  # "", "loading", "vae", "gmm", "done"
    iteration: int = 0
    iterations: int = 0
    epoch: int = 0
    epochs: int = 0
    seconds: float = 0.0  # seconds since the current iteration started (at the last event)
    recon: list = field(default_factory=list)  # per-epoch losses of the iteration in progress
    kl: list = field(default_factory=list)

    def copy(self) -> "Progress":
        return Progress(self.phase, self.iteration, self.iterations, self.epoch, self.epochs, self.seconds,
                        list(self.recon), list(self.kl))


@dataclass
class Snapshot:
    """A consistent copy of a run's state for one page render. ``history`` is a new list of the (immutable)
    iteration results."""

    run_id: int
    name: str
    config: RunConfig
    state: str
    message: str  # error or stop reason ("" when none)
    queue_position: int  # 1-based while queued, else 0
    progress: Progress
    history: list
    started_at: Optional[float]  # time.time() of start()
    first_result_seconds: Optional[float]  # start() to iteration 0, seconds
    seconds_per_iteration: Optional[float]  # mean wall seconds of finished iterations 1..
    iteration_started: Optional[float]  # time.monotonic() when the iteration in progress started
    marks: dict = field(default_factory=dict)  # seconds after start(): "slot", "data", "model", "first"
    live: object = None  # the latest in-update code snapshot (vaegmm.runs.snapshots.CodeSnapshot) or None

    @property
    def iterations_done(self) -> int:
        """Mutual iterations finished (iteration 0 does not count)."""
        return max(0, len(self.history) - 1)

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL


def live_picture(snap: Snapshot):
    """The codes to draw as the run's picture right now: the latest in-update snapshot (a
    :class:`~vaegmm.runs.snapshots.CodeSnapshot`) while a worker trains the iteration after the last finished one
    (running, or paused inside it), else None: draw the last finished iteration. The owner's page and the
    followers' frames both ask here, so they show the same picture."""
    h, live = snap.history, snap.live
    if live is None or not h or snap.state not in (RUNNING, PAUSED) or live.iteration != h[-1].iteration + 1:
        return None
    return live


class RunState:
    """State, history, progress and timings of one run, with the transitions between states. Thread-safe:
    every method takes :attr:`lock`; those that take ``send`` call it under the lock."""

    def __init__(self, config: RunConfig) -> None:
        self.lock = threading.Lock()
        self.cancel = threading.Event()  # set by stop(): the run leaves the queue / its worker ends
        self.state = IDLE
        self.message = ""
        self.history: list[IterationResult] = []
        self.live = None  # the latest CodeSnapshot of the VAE update in progress, or None
        self.progress = Progress(iterations=config.iterations, epochs=config.vae.epochs)
        self.pause_after: Optional[int] = None  # pause once this iteration has finished (Step)
        self.paused_request = False  # Pause pressed while queued
        self.stop_sent: Optional[float] = None  # time.monotonic() of the stop command
        self.started_at: Optional[float] = None  # time.time() of start()
        self._t_start: Optional[float] = None
        self._first_result: Optional[float] = None
        self._marks: dict = {}
        self._iter_started: Optional[float] = None
        self._iter_seconds: list[float] = []

    # ------------------------------------------------------------------------------------------ commands
    def start(self) -> bool:
        """``idle`` -> ``queued``; False from any other state."""
        with self.lock:
            if self.state != IDLE:
                return False
            self.state = QUEUED
            self.started_at, self._t_start = time.time(), time.monotonic()
            return True

    def pause(self, send: Send) -> None:
        with self.lock:
            if self.state in (QUEUED, RUNNING):
                self.pause_after = None
                send("pause_after", None)
                if self.state == RUNNING:
                    self.state = PAUSED
                    send("pause")
                else:
                    self.paused_request = True

    def resume(self, send: Send) -> None:
        with self.lock:
            self.pause_after = None
            send("pause_after", None)
            if self.state == PAUSED:
                self.state = RUNNING
                send("resume")
            elif self.state == QUEUED:
                self.paused_request = False

    def step(self, send: Send) -> bool:
        """One more iteration, then pause. True when the run was idle: it must be started (it pauses after
        iteration 1)."""
        with self.lock:
            if self.state == IDLE:
                self.pause_after = 1
                return True
            if self.state in (RUNNING, PAUSED, QUEUED):
                # running: finish the iteration in progress, then pause; paused: do the next one, then pause
                done = self.history[-1].iteration if self.history else 0
                self.pause_after = done + 1
                send("pause_after", done + 1)
                if self.state == PAUSED:
                    self.state = RUNNING
                    send("resume")
                elif self.state == QUEUED:
                    self.paused_request = False
            return False

    def stop(self, send: Send, reason: str) -> bool:
        """Stop (at once when idle). True when a queued or training run was told to stop."""
        with self.lock:
            if self.state in TERMINAL:
                return False
            if self.state == IDLE:
                self.state, self.message = STOPPED, reason
                return False
            if reason:
                self.message = reason
            self.cancel.set()
            self.stop_sent = time.monotonic()
            send("stop")
            return True

    # ------------------------------------------------------------------------------------------ the worker
    def slot_taken(self) -> None:
        """The run holds a slot: at once no longer shown as queued."""
        with self.lock:
            if self.state == QUEUED:
                self.state = PAUSED if self.paused_request else RUNNING
                self.progress.phase = "loading"

    def worker_options(self) -> Optional[tuple[bool, Optional[int]]]:
        """``(start paused, pause after)`` for a new worker, or None (the run is stopped: it was cancelled)."""
        with self.lock:
            if self.cancel.is_set():
                self.state, self.progress.phase = STOPPED, "done"
                return None
            return self.state == PAUSED, self.pause_after

    def worker_started(self, send: Send, started_paused: bool) -> None:
        """Send the commands given while the worker was starting."""
        with self.lock:
            send("pause_after", self.pause_after)
            if self.state == PAUSED and not started_paused:
                send("pause")
            elif self.state == RUNNING and started_paused:
                send("resume")
            if self.cancel.is_set():
                send("stop")
            self._iter_started = time.monotonic()

    def on_progress(self, ev: ProgressEvent, recon: list, kl: list) -> None:
        with self.lock:
            p = self.progress
            if ev.iteration != p.iteration:
                p.recon, p.kl = [], []
            p.recon.extend(recon)
            p.kl.extend(kl)
            p.phase, p.iteration, p.iterations = ev.phase, ev.iteration, ev.iterations
            p.epoch, p.epochs, p.seconds = ev.epoch, (ev.epochs or p.epochs), ev.seconds

    def on_result(self, result: IterationResult, seconds: float) -> None:
        with self.lock:
            self.history.append(result)
            self.live = None
            self.progress.phase = "done"
            if result.iteration == 0:
                self._first_result = time.monotonic() - self._t_start
                self._marks["first"] = round(self._first_result, 3)
            else:
                self._iter_seconds.append(seconds)
            self._iter_started = time.monotonic()

    def on_live(self, snap) -> Optional[list]:
        """Keep an in-update snapshot as the live picture; the history to draw it against, or None when it is
        late (its iteration has already finished)."""
        with self.lock:
            if self.history and self.history[-1].iteration >= snap.iteration:
                return None
            self.live = snap
            return list(self.history)

    def on_paused(self, iteration: int) -> None:
        """The worker paused after ``iteration`` (a Step)."""
        with self.lock:
            if self.pause_after is not None and iteration >= self.pause_after:
                self.pause_after = None
            if self.state == RUNNING:
                self.state = PAUSED

    def mark(self, name: str) -> None:
        """Remember when ``name`` happened, in seconds after start()."""
        with self.lock:
            self._marks[name] = round(time.monotonic() - self._t_start, 3)

    def finish(self, state: str, message: str) -> None:
        with self.lock:
            self.state = state
            self.message = message
            self.progress.phase = "done"
            self._iter_started = None

    def stop_message(self) -> str:
        with self.lock:
            return self.message

    # ------------------------------------------------------------------------------------------ reading
    def snapshot(self, run_id: int, name: str, config: RunConfig) -> Snapshot:
        """A copy for one page render (queue position 0: the slot manager knows it)."""
        with self.lock:
            secs = (sum(self._iter_seconds) / len(self._iter_seconds)) if self._iter_seconds else None
            snap = Snapshot(run_id, name, config, self.state, self.message, 0, self.progress.copy(),
                            list(self.history), self.started_at, self._first_result, secs, self._iter_started,
                            dict(self._marks))
            snap.live = self.live
            return snap
