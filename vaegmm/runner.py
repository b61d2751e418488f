"""A training run in a background thread, for the dashboard (no Streamlit in here).

:class:`TrainingRun` owns one worker thread that loads the data, builds a :class:`~vaegmm.mutual.MutualLearner`,
computes iteration 0 (the untrained picture) and then one mutual iteration after the other. The page never waits
on it: it calls :meth:`TrainingRun.snapshot` (a consistent copy taken under a lock) and sends commands
(:meth:`start`, :meth:`pause`, :meth:`resume`, :meth:`step`, :meth:`stop`). The commands go through a
:class:`~vaegmm.control.RunControl`, which the training loop checks between mini-batches, so they take effect
within a fraction of a second even in the middle of a VAE update.

A server-wide :class:`SlotManager` caps how many runs train at once (default: the number of CPU cores, or
``$VAEGMM_MAX_RUNS``). A run beyond the cap waits in a FIFO queue, shows its position, starts by itself when a
slot frees, and can be stopped while it waits.

Threads and torch: ``torch.set_num_threads`` is process-wide. :func:`configure_torch_threads` sets it once, the
first time a run starts, to ``max(1, cores // cap)`` (or ``$VAEGMM_TORCH_THREADS``), so that ``cap`` runs side by
side use about all cores without oversubscribing them. Every run shares the same cores.
"""
from __future__ import annotations

import bisect
import itertools
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from .config import RunConfig
from .control import RunControl, StopRequested
from .mutual import IterationResult, MutualLearner, ProgressEvent
from .threads import TORCH_THREADS_ENV, configure_torch_threads, cpu_count  # noqa: F401 (re-exported)

MAX_RUNS_ENV = "VAEGMM_MAX_RUNS"

# states
IDLE, QUEUED, RUNNING, PAUSED, FINISHED, STOPPED, FAILED = (
    "idle", "queued", "running", "paused", "finished", "stopped", "failed")
STATES = (IDLE, QUEUED, RUNNING, PAUSED, FINISHED, STOPPED, FAILED)
TERMINAL = frozenset({FINISHED, STOPPED, FAILED})
ACTIVE = frozenset({QUEUED, RUNNING, PAUSED})  # a worker thread exists


def max_runs_from_env(default: Optional[int] = None) -> int:
    """``$VAEGMM_MAX_RUNS`` when it is a positive integer, else ``default`` (the number of cores)."""
    fallback = default if default is not None else cpu_count()
    raw = os.environ.get(MAX_RUNS_ENV, "").strip()
    if not raw:
        return fallback
    try:
        value = int(raw)
    except ValueError:
        return fallback
    return value if value >= 1 else fallback


# ---------------------------------------------------------------------------------------------- slots
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

    def acquire(self, ticket, cancel: threading.Event, poll: float = 0.2, priority: int = 0) -> bool:
        with self._cond:
            entry = (priority, next(self._arrivals), ticket)
            bisect.insort(self._queue, entry, key=lambda e: e[:2])
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
        """Let waiters re-check their cancel events now (called by :meth:`TrainingRun.stop`)."""
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


_default_slots: Optional[SlotManager] = None
_default_lock = threading.Lock()


def default_slots() -> SlotManager:
    """The process-wide slot manager, created on first use with ``$VAEGMM_MAX_RUNS`` (default: the cores)."""
    global _default_slots
    with _default_lock:
        if _default_slots is None:
            _default_slots = SlotManager(max_runs_from_env())
        return _default_slots


_warm_thread: Optional[threading.Thread] = None


def warm_up(background: bool = True) -> Optional[threading.Thread]:
    """Pay torch's one-time start-up costs (building the first Adam optimiser imports a lot, ~2-3 s) before
    the first Start, so iteration 0 appears quickly. Idempotent; returns the warm-up thread."""
    global _warm_thread

    def _go():
        from .vae import VAE, make_optimizer

        make_optimizer(VAE(2, 4), 1e-3)

    with _default_lock:
        if _warm_thread is None:
            _warm_thread = threading.Thread(target=_go, name="vaegmm-warm-up", daemon=True)
            _warm_thread.start()
    if not background:
        _warm_thread.join()
    return _warm_thread


# ---------------------------------------------------------------------------------------------- run
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


_ids = itertools.count(1)

Loader = Callable[..., tuple]


class TrainingRun:
    """One mutual-learning run in its own thread. Thread-safe; every public method returns at once.

    ``slots``: the :class:`SlotManager` to queue on (default :func:`default_slots`). ``loader``: the data
    loader, ``load_mnist`` by default (tests inject synthetic data). ``keep_images``: keep a uint8 copy of the
    images for the latent explorer.
    """

    def __init__(self, config: RunConfig, slots: Optional[SlotManager] = None, loader: Optional[Loader] = None,
                 name: str = "", keep_images: bool = True):
        self.config = config
        self.id = next(_ids)
        self.name = name or f"run {self.id}"
        self._slots = slots
        self._loader = loader
        self._keep_images = keep_images
        self._lock = threading.Lock()
        self._control = RunControl()
        self._cancel = threading.Event()  # set by stop(): leaves the queue / ends the worker
        self._state = IDLE
        self._message = ""
        self._history: list[IterationResult] = []
        self._progress = Progress(iterations=config.iterations, epochs=config.vae.epochs)
        self._pause_after: Optional[int] = None  # pause once this iteration has finished (Step)
        self._thread: Optional[threading.Thread] = None
        self._learner: Optional[MutualLearner] = None
        self._started_at: Optional[float] = None
        self._t_start: Optional[float] = None
        self._first_result: Optional[float] = None
        self._marks: dict = {}
        self._iter_started: Optional[float] = None
        self._iter_seconds: list[float] = []
        self.labels: Optional[np.ndarray] = None
        self.images_u8: Optional[np.ndarray] = None  # (N, 784) uint8, for the explorer

    # ------------------------------------------------------------------------------------------ commands
    @property
    def slots(self) -> SlotManager:
        if self._slots is None:
            self._slots = default_slots()
        return self._slots

    def start(self) -> bool:
        """Start the worker (queues when the server is full). Only from ``idle``; returns whether it started."""
        with self._lock:
            if self._state != IDLE:
                return False
            self._state = QUEUED
            self._started_at = time.time()
            self._t_start = time.monotonic()
            self._thread = threading.Thread(target=self._work, name=f"vaegmm-run-{self.id}", daemon=True)
            self._thread.start()
            return True

    def pause(self) -> None:
        """Pause at the next mini-batch boundary (a queued run pauses as soon as it gets its slot)."""
        with self._lock:
            if self._state in (QUEUED, RUNNING):
                self._control.pause()
                self._pause_after = None
                if self._state == RUNNING:
                    self._state = PAUSED

    def resume(self) -> None:
        with self._lock:
            self._pause_after = None
            if self._state == PAUSED or (self._state == QUEUED and self._control.paused):
                self._control.resume()
                if self._state == PAUSED:
                    self._state = RUNNING

    def step(self) -> None:
        """One more iteration, then pause. From ``idle`` this starts the run and pauses after iteration 1."""
        with self._lock:
            state = self._state
            done = self._history[-1].iteration if self._history else 0
        if state == IDLE:
            with self._lock:
                self._pause_after = 1
            self.start()
            return
        with self._lock:
            if self._state in (RUNNING, PAUSED, QUEUED):
                # running: finish the iteration in progress, then pause; paused: do the next one, then pause
                self._pause_after = done + 1
                if self._state == PAUSED:
                    self._control.resume()
                    self._state = RUNNING

    def stop(self, reason: str = "") -> None:
        """Stop at the next mini-batch boundary (at once when idle or queued). The history so far is kept."""
        with self._lock:
            if self._state in TERMINAL:
                return
            if self._state == IDLE:
                self._state = STOPPED
                self._message = reason
                return
            if reason:
                self._message = reason
            self._cancel.set()
            self._control.stop()
        if self._slots is not None:
            self._slots.wake()

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait for the worker thread to end; True when it has (or never started)."""
        t = self._thread
        if t is None:
            return True
        t.join(timeout)
        return not t.is_alive()

    # ------------------------------------------------------------------------------------------ reading
    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    @property
    def history(self) -> list[IterationResult]:
        with self._lock:
            return list(self._history)

    @property
    def thread_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def snapshot(self) -> Snapshot:
        with self._lock:
            p = self._progress
            prog = Progress(p.phase, p.iteration, p.iterations, p.epoch, p.epochs, p.seconds, list(p.recon),
                            list(p.kl))
            state = self._state
            secs = (sum(self._iter_seconds) / len(self._iter_seconds)) if self._iter_seconds else None
            snap = Snapshot(self.id, self.name, self.config, state, self._message, 0, prog, list(self._history),
                            self._started_at, self._first_result, secs, self._iter_started, dict(self._marks))
        if state == QUEUED and self._slots is not None:
            snap.queue_position = self._slots.position(self)
        return snap

    # ------------------------------------------------------------------------------------------ worker
    def _set(self, **kw) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self, k, v)

    def _on_progress(self, ev: ProgressEvent) -> None:
        with self._lock:
            p = self._progress
            if ev.phase == "vae":
                if ev.iteration != p.iteration:
                    p.recon, p.kl = [], []
                p.recon.append(ev.recon)
                p.kl.append(ev.kl)
            elif ev.phase == "gmm" and ev.iteration != p.iteration:
                p.recon, p.kl = [], []
            p.phase, p.iteration, p.iterations = ev.phase, ev.iteration, ev.iterations
            p.epoch, p.epochs, p.seconds = ev.epoch, (ev.epochs or p.epochs), ev.seconds

    def _work(self) -> None:
        slots = self.slots
        if not slots.acquire(self, self._cancel):
            self._finish(STOPPED, self._message or "stopped while waiting in the queue")
            return
        iteration = 0
        self._mark("slot")
        try:
            configure_torch_threads(slots.capacity)
            with self._lock:
                if self._state == QUEUED:
                    self._state = PAUSED if self._control.paused else RUNNING
                self._progress.phase = "loading"
            cfg = self.config.validate()
            try:
                loader = self._loader
                if loader is None:
                    from .data import load_mnist as loader
                images, labels = loader(cfg.data.n, cfg.data.digits, cfg.seed, cfg.data.source)
            except ValueError as e:  # DataSourceError is a ValueError
                raise _Failure(f"could not load the data: {e}") from None
            self._mark("data")
            self.labels = np.asarray(labels)
            if self._keep_images:
                self.images_u8 = np.clip(np.rint(np.asarray(images) * 255.0), 0, 255).astype(np.uint8)
            self._control.checkpoint()
            learner = MutualLearner(cfg, images, labels, callbacks=[self._on_progress], control=self._control)
            self._learner = learner
            self._mark("model")
            self._set(_iter_started=time.monotonic())
            first = learner.begin()
            with self._lock:
                self._history.append(first)
                self._first_result = time.monotonic() - self._t_start
                self._marks["first"] = round(self._first_result, 3)
            self._after_iteration(0)
            while learner.iteration < cfg.iterations:
                self._control.checkpoint()
                iteration = learner.iteration + 1
                with self._lock:
                    self._iter_started = time.monotonic()
                    self._progress.iteration, self._progress.epoch = iteration, 0
                    self._progress.recon, self._progress.kl = [], []
                result = learner.step()
                with self._lock:
                    self._history.append(result)
                    self._iter_seconds.append(time.monotonic() - self._iter_started)
                self._after_iteration(result.iteration)
        except StopRequested:
            self._finish(STOPPED, self._message)
        except _Failure as e:
            self._finish(FAILED, str(e))
        except Exception as e:  # shown on the page; the history so far is kept
            text = str(e) or type(e).__name__
            if not text.startswith(f"iteration {iteration}"):
                text = f"iteration {iteration}: {type(e).__name__}: {text}"
            self._finish(FAILED, f"failed in {text}")
        else:
            self._finish(FINISHED, "")
        finally:
            self._learner = None  # frees the model, optimiser and data tensor; history keeps decoder weights
            slots.release(self)

    def _mark(self, name: str) -> None:
        with self._lock:
            self._marks[name] = round(time.monotonic() - self._t_start, 3)

    def _after_iteration(self, it: int) -> None:
        with self._lock:
            self._progress.phase = "done"
            if self._pause_after is not None and it >= self._pause_after and it < self.config.iterations:
                self._pause_after = None
                self._control.pause()
                if self._state == RUNNING:
                    self._state = PAUSED

    def _finish(self, state: str, message: str) -> None:
        with self._lock:
            self._state = state
            self._message = message
            self._progress.phase = "done"
            self._iter_started = None


class _Failure(Exception):
    """A failure whose message is already written for the user."""
