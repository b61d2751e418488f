"""A training run in a worker process, for the dashboard (no Streamlit in here).

:class:`TrainingRun` trains one run in its own process (:mod:`vaegmm.runs.worker`): load the data, build a
:class:`~vaegmm.model.mutual.MutualLearner`, compute iteration 0 (the untrained picture) and then one mutual iteration
after the other. The page never waits on it: it calls :meth:`TrainingRun.snapshot` (a consistent copy taken under
a lock) and sends commands (:meth:`start`, :meth:`pause`, :meth:`resume`, :meth:`step`, :meth:`stop`). The
commands reach the worker through a pipe; its training loop checks them between mini-batches, so they take
effect within a fraction of a second even in the middle of a VAE update.

A server-wide :class:`SlotManager` caps how many runs train at once (default: the number of CPU cores, or
``$VAEGMM_MAX_RUNS``). A run beyond the cap waits in a FIFO queue, shows its position, starts by itself when a
slot frees, and can be stopped while it waits.

Threads: each worker runs ``max(1, cores // cap)`` torch and BLAS threads (or ``$VAEGMM_TORCH_THREADS``), so
that ``cap`` runs side by side use about all cores without oversubscribing them, at a lower priority than the
server (``$VAEGMM_WORKER_NICE``). Every run shares the same cores.
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

from vaegmm.model.config import RunConfig
from vaegmm.model.mutual import IterationResult, ProgressEvent
from vaegmm.runs.snapshots import LogFrame, SnapshotLog, to_half
from vaegmm.views.latent2d import RunViews
from vaegmm.core.threads import TORCH_THREADS_ENV, configure_torch_threads, cpu_count  # noqa: F401 (re-exported)

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
    """Start the training fork server (:mod:`vaegmm.runs.worker`: it imports torch, builds the first optimiser and
    loads the collapsed Gibbs sampler's compiled loop, ~2-4 s; compiling that loop where no numba cache is on
    disk yet, ~5 s) before the first Start, so iteration 0 appears quickly. Idempotent; returns the warm-up
    thread."""
    global _warm_thread
    from vaegmm.core.process import start_fork_server

    with _default_lock:
        if _warm_thread is None:
            _warm_thread = threading.Thread(target=start_fork_server, name="vaegmm-warm-up", daemon=True)
            _warm_thread.start()
    if not background:
        _warm_thread.join()
    return _warm_thread


def threads_per_run(capacity: int) -> int:
    """Torch and BLAS threads of each run: ``$VAEGMM_TORCH_THREADS``, else ``max(1, cores // capacity)`` so that
    ``capacity`` runs side by side fill the cores without oversubscribing them."""
    raw = os.environ.get(TORCH_THREADS_ENV, "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    return max(1, cpu_count() // max(1, capacity))


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


_ids = itertools.count(1)

Loader = Callable[..., tuple]
STOP_GRACE = 5.0  # seconds a worker gets to end by itself after Stop before it is killed


class TrainingRun:
    """One mutual-learning run, trained in its own worker process (:mod:`vaegmm.runs.worker`). Thread-safe; every
    public method returns at once.

    A thread of this process (the *pump*) waits for a slot, starts the worker, and applies what the worker
    reports (progress, finished iterations, the end) to this object under a lock; the commands go to the worker
    through a pipe and take effect at its next mini-batch.

    ``slots``: the :class:`SlotManager` to queue on (default :func:`default_slots`). ``loader``: the data loader,
    ``load_mnist`` by default; it runs in the worker, so it must be picklable (a module-level function).
    ``keep_images``: keep a uint8 copy of the images for the latent explorer.
    """

    def __init__(self, config: RunConfig, slots: Optional[SlotManager] = None, loader: Optional[Loader] = None,
                 name: str = "", keep_images: bool = True, snapshot_every: Optional[float] = None):
        self.config = config
        self.id = next(_ids)
        self.name = name or f"run {self.id}"
        self._slots = slots
        self._loader = loader
        self._keep_images = keep_images
        self._snapshot_every = snapshot_every
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._cancel = threading.Event()  # set by stop(): leaves the queue / ends the worker
        self._paused_request = False  # Pause pressed while queued
        self._state = IDLE
        self._message = ""
        self._history: list[IterationResult] = []
        self._live = None  # the latest vaegmm.runs.snapshots.CodeSnapshot of the VAE update in progress, or None
        self.replay_log = SnapshotLog()  # bounded record of every in-update snapshot, for Replay
        self.views = RunViews(seed=config.seed)  # LDA axes, t-SNE embeddings and axis ranges of this run
        self._progress = Progress(iterations=config.iterations, epochs=config.vae.epochs)
        self._pause_after: Optional[int] = None  # pause once this iteration has finished (Step)
        self._thread: Optional[threading.Thread] = None
        self._commands = None  # the pipe to the worker, while it runs
        self._started_at: Optional[float] = None
        self._t_start: Optional[float] = None
        self._first_result: Optional[float] = None
        self._marks: dict = {}
        self._iter_started: Optional[float] = None
        self._iter_seconds: list[float] = []
        self._stop_sent: Optional[float] = None
        self._queue_entry: Optional[tuple] = None  # (priority, arrival, self) in the slot queue, set by start()
        self.worker_pid: Optional[int] = None
        self.recorder = None  # a vaegmm.runs.library.RunRecorder: the run is saved as it goes (set before start())
        self.labels: Optional[np.ndarray] = None
        self.images_u8: Optional[np.ndarray] = None  # (N, 784) uint8, for the explorer

    # ------------------------------------------------------------------------------------------ commands
    @property
    def slots(self) -> SlotManager:
        if self._slots is None:
            self._slots = default_slots()
        return self._slots

    def start(self) -> bool:
        """Start the run (queues when the server is full). Only from ``idle``; returns whether it started."""
        with self._lock:
            if self._state != IDLE:
                return False
            self._state = QUEUED
            self._started_at = time.time()
            self._t_start = time.monotonic()
            # in the queue before the pump thread starts: the page can show the run's place at once
            self._queue_entry = self.slots.enqueue(self)
            self._thread = threading.Thread(target=self._pump, name=f"vaegmm-run-{self.id}", daemon=True)
            self._thread.start()
            return True

    def pause(self) -> None:
        """Pause at the next mini-batch boundary (a queued run pauses as soon as it gets its slot)."""
        with self._lock:
            if self._state in (QUEUED, RUNNING):
                self._pause_after = None
                self._send("pause_after", None)
                if self._state == RUNNING:
                    self._state = PAUSED
                    self._send("pause")
                else:
                    self._paused_request = True

    def resume(self) -> None:
        with self._lock:
            self._pause_after = None
            self._send("pause_after", None)
            if self._state == PAUSED:
                self._state = RUNNING
                self._send("resume")
            elif self._state == QUEUED:
                self._paused_request = False

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
                self._send("pause_after", done + 1)
                if self._state == PAUSED:
                    self._state = RUNNING
                    self._send("resume")
                elif self._state == QUEUED:
                    self._paused_request = False

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
            self._stop_sent = time.monotonic()
            self._send("stop")
        if self._slots is not None:
            self._slots.wake()

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait for the run to end; True when it has (or never started)."""
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
    def snapshots(self) -> list:
        """The in-update snapshots kept for Replay, over all iterations (:class:`vaegmm.runs.snapshots.LogFrame`,
        oldest first; bounded by :class:`~vaegmm.runs.snapshots.SnapshotLog`)."""
        return self.replay_log.frames()

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
            snap.live = self._live
        if state == QUEUED and self._slots is not None:
            snap.queue_position = self._slots.position(self)
        return snap

    # ------------------------------------------------------------------------------------------ the pump
    def _send(self, *msg) -> None:
        """A command to the worker, if one runs (callers may hold ``_lock``)."""
        conn = self._commands
        if conn is None:
            return
        with self._send_lock:
            try:
                conn.send(msg)
            except (OSError, ValueError):  # the worker has just ended
                pass

    def _record(self, what: str, *args) -> None:
        """Pass an event to the recorder, if any; a recorder's own failure never ends the training."""
        if self.recorder is None:
            return
        try:
            getattr(self.recorder, what)(*args)
        except Exception as e:  # pragma: no cover - the recorder keeps its own errors; this is a last guard
            if not getattr(self.recorder, "error", ""):
                try:
                    self.recorder.error = f"could not save the run ({what}): {e}"
                except Exception:
                    pass

    def _pump(self) -> None:
        slots = self.slots
        if not slots.acquire(self, self._cancel, entry=self._queue_entry):
            self._finish(STOPPED, self._message or "stopped while waiting in the queue")
            return
        with self._lock:  # at once: a run holding a slot is never shown as queued
            if self._state == QUEUED:
                self._state = PAUSED if self._paused_request else RUNNING
                self._progress.phase = "loading"
        self._mark("slot")
        self._record("begin")
        try:
            self._run_worker(slots.capacity)
        except Exception as e:  # pragma: no cover - a bug on this side; shown, never silent
            self._finish(FAILED, f"failed: {type(e).__name__}: {e}")
        finally:
            slots.release(self)
        with self._lock:
            state, message = self._state, self._message
        self._record("end", state, message)  # after the slot is free: the export must not hold up the queue

    def _run_worker(self, capacity: int) -> None:
        from multiprocessing.connection import wait

        from vaegmm.core.process import WorkerProcess, worker_context, worker_nice
        from vaegmm.runs.worker import Job, serve_run

        ctx = worker_context()
        with self._lock:
            if self._cancel.is_set():
                self._state, self._progress.phase = STOPPED, "done"
                return
            paused = self._state == PAUSED
            job = Job(self.config.to_dict(), threads=threads_per_run(capacity), nice=worker_nice(),
                      loader=self._loader, keep_images=self._keep_images, paused=paused,
                      pause_after=self._pause_after,
                      snapshots={} if self._snapshot_every is None else {"every": self._snapshot_every})
        cmd_recv, cmd_send = ctx.Pipe(duplex=False)
        ev_recv, ev_send = ctx.Pipe(duplex=False)
        proc = WorkerProcess(target=serve_run, args=(job, cmd_recv, ev_send), name=f"vaegmm-worker-{self.id}",
                           daemon=True)
        ended = False
        try:
            proc.start()
            cmd_recv.close()
            ev_send.close()
            with self._lock:
                self.worker_pid = proc.pid
                self._commands = cmd_send
                # commands given while the worker was starting
                self._send("pause_after", self._pause_after)
                if self._state == PAUSED and not job.paused:
                    self._send("pause")
                elif self._state == RUNNING and job.paused:
                    self._send("resume")
                if self._cancel.is_set():
                    self._send("stop")
            self._set(_iter_started=time.monotonic())
            while not ended:
                ready = wait([ev_recv, proc.sentinel], timeout=0.25)
                if ev_recv in ready or ev_recv.poll():
                    try:
                        msg = ev_recv.recv()
                    except (EOFError, OSError):
                        msg = None
                    if msg is not None:
                        ended = self._on_message(msg)
                        continue
                if not proc.is_alive() or (ready and proc.sentinel in ready and not ev_recv.poll()):
                    proc.join(1)
                    self._finish(STOPPED if self._cancel.is_set() else FAILED,
                                 self._message if self._cancel.is_set() else
                                 f"the training process ended unexpectedly (exit code {proc.exitcode})")
                    ended = True
                elif self._stop_sent is not None and time.monotonic() - self._stop_sent > STOP_GRACE:
                    proc.kill()  # it did not stop by itself: a stuck data source, say
        finally:
            with self._lock:
                self._commands = None
            for conn in (cmd_send, ev_recv):
                conn.close()
            proc.join(2)
            if proc.is_alive():
                proc.kill()
                proc.join(2)

    def _on_message(self, msg: tuple) -> bool:
        """Apply one message of the worker; True for the last one."""
        kind = msg[0]
        if kind == "progress":
            self._on_progress(msg[1], msg[2], msg[3])
        elif kind == "snapshot":
            self._on_snapshot(msg[1])
        elif kind == "result":
            result, seconds = msg[1], msg[2]
            with self._lock:
                self._history.append(result)
                self._live = None
                self._progress.phase = "done"
                if result.iteration == 0:
                    self._first_result = time.monotonic() - self._t_start
                    self._marks["first"] = round(self._first_result, 3)
                else:
                    self._iter_seconds.append(seconds)
                self._iter_started = time.monotonic()
            self._record("iteration", result)
        elif kind == "paused":
            with self._lock:
                if self._pause_after is not None and msg[1] >= self._pause_after:
                    self._pause_after = None
                if self._state == RUNNING:
                    self._state = PAUSED
        elif kind == "data":
            self.labels, self.images_u8 = msg[1], msg[2]
            self._record("data", msg[1], msg[2])
        elif kind == "mark":
            self._mark(msg[1])
        elif kind == "end":
            self._finish(msg[1], msg[2] or (self._message if msg[1] == STOPPED else ""))
            return True
        return False

    def _on_snapshot(self, snap) -> None:
        """Keep the latest snapshot for the live picture, and its 2-D PCA and LDA projections in the replay log
        (LDA in the axes of the last finished iteration: fitted once per iteration, in milliseconds)."""
        with self._lock:
            if self._history and self._history[-1].iteration >= snap.iteration:
                return  # late: its iteration has already finished
            self._live = snap
            history = list(self._history)
        if not self.replay_log.wants_next():
            self.replay_log.skip()
            return
        try:
            lda = to_half(self.views.lda_axes(history, snap.iteration - 1).transform(snap.codes))
        except (ValueError, StopIteration, KeyError):
            lda = None
        self.replay_log.add(LogFrame(snap.iteration, snap.epoch, snap.epochs, snap.seconds,
                                     to_half(snap.projection), lda))

    def _set(self, **kw) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self, k, v)

    def _on_progress(self, ev: ProgressEvent, recon: list, kl: list) -> None:
        with self._lock:
            p = self._progress
            if ev.iteration != p.iteration:
                p.recon, p.kl = [], []
            p.recon.extend(recon)
            p.kl.extend(kl)
            p.phase, p.iteration, p.iterations = ev.phase, ev.iteration, ev.iterations
            p.epoch, p.epochs, p.seconds = ev.epoch, (ev.epochs or p.epochs), ev.seconds

    def _mark(self, name: str) -> None:
        with self._lock:
            self._marks[name] = round(time.monotonic() - self._t_start, 3)

    def _finish(self, state: str, message: str) -> None:
        with self._lock:
            self._state = state
            self._message = message
            self._progress.phase = "done"
            self._iter_started = None
