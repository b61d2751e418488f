"""A training run in a worker process, for the dashboard (no Streamlit in here).

:class:`TrainingRun` trains one run in its own process (:mod:`vaegmm.runs.worker`): load the data, build a
:class:`~vaegmm.model.mutual.MutualLearner`, compute iteration 0 (the untrained picture) and then one mutual iteration
after the other. The page never waits on it: it calls :meth:`TrainingRun.snapshot` (a consistent copy taken under
a lock) and sends commands (:meth:`start`, :meth:`pause`, :meth:`resume`, :meth:`step`, :meth:`stop`). The
commands reach the worker through a pipe; its training loop checks them between mini-batches, so they take
effect within a fraction of a second even in the middle of a VAE update.

A server-wide :class:`~vaegmm.runs.slots.SlotManager` caps how many runs train at once (default: the number of
CPU cores, or ``$VAEGMM_MAX_RUNS``). A run beyond the cap waits in a FIFO queue, shows its position, starts by
itself when a slot frees, and can be stopped while it waits. Each worker runs
:func:`vaegmm.core.threads.threads_for_run` torch and BLAS threads (its share of the cores, capped at the free
ones, or ``$VAEGMM_TORCH_THREADS``), at a lower priority than the server (``$VAEGMM_WORKER_NICE``). A run may
name its ``slot_owner`` (fair share in the queue, :mod:`vaegmm.runs.slots`) and a ``time_limit`` (seconds of
training, paused time not counted, after which a watchdog stops it: issue 18's "past twice its estimate").

The jobs are split: :mod:`vaegmm.runs.state` (the states and their transitions), :mod:`vaegmm.runs.slots` (the
cap and its queue), :mod:`vaegmm.runs.channel` (the worker process: pipes and supervision),
:mod:`vaegmm.runs.snapshots` (the replay log) and this module, which ties them together for one run.
"""
from __future__ import annotations

import itertools
import threading
import time
from typing import Callable, Optional

import numpy as np

from vaegmm.core.process import start_fork_server, worker_nice
from vaegmm.core.singleton import process_singleton
from vaegmm.model.config import RunConfig
from vaegmm.model.mutual import IterationResult
from vaegmm.runs.channel import WorkerChannel
from vaegmm.runs.slots import SlotManager, default_slots, threads_per_run
from vaegmm.runs.snapshots import SnapshotLog, replay_frame
from vaegmm.runs.state import FAILED, QUEUED, RUNNING, STOPPED, TERMINAL, RunState, Snapshot
from vaegmm.runs.train import Loader
from vaegmm.runs.worker import Job
from vaegmm.views.latent2d import RunViews

_ids = itertools.count(1)


@process_singleton
def _fork_server_warm_up() -> threading.Thread:
    thread = threading.Thread(target=start_fork_server, name="vaegmm-warm-up", daemon=True)
    thread.start()
    return thread


def warm_up(background: bool = True) -> threading.Thread:
    """Start the training fork server (:mod:`vaegmm.core.process`: it imports torch, builds the first optimiser and
    loads the collapsed Gibbs sampler's compiled loop, ~2-4 s; compiling that loop where no numba cache is on
    disk yet, ~5 s) before the first Start, so iteration 0 appears quickly. Idempotent; returns the warm-up
    thread."""
    thread = _fork_server_warm_up()
    if not background:
        thread.join()
    return thread


def tell_recorder(recorder, what: str, *args) -> None:
    """Pass an event to a run's recorder, if any; a recorder's own failure never ends the training."""
    if recorder is None:
        return
    try:
        getattr(recorder, what)(*args)
    except Exception as e:  # pragma: no cover - the recorder keeps its own errors; this is a last guard
        if not getattr(recorder, "error", ""):
            try:
                recorder.error = f"could not save the run ({what}): {e}"
            except Exception:
                pass


def watch_time(run: "TrainingRun", poll: float = 0.5, done: Optional[threading.Event] = None) -> None:
    """The watchdog of a run with a ``time_limit``: stop it once it has been ``running`` (paused and queued time
    not counted) for more than that many seconds, with its ``time_limit_message``; returns when ``done`` is set."""
    trained, last = 0.0, time.monotonic()
    done = done or threading.Event()
    while True:
        if done.wait(poll):
            return
        now, state = time.monotonic(), run.state
        if state in TERMINAL:
            return
        if state == RUNNING:
            trained += now - last
        last = now
        if trained > run.time_limit:
            run.stop(run.time_limit_message or f"it trained for more than {run.time_limit:.0f} s")
            return


def start_watchdog(run: "TrainingRun") -> Callable[[], None]:
    """:func:`watch_time` of ``run`` in a thread; returns what ends that thread and waits for it (the run's pump
    calls it when the run ends, so no watchdog outlives its run)."""
    done = threading.Event()
    t = threading.Thread(target=watch_time, args=(run, 0.5, done), name=f"vaegmm-watchdog-{run.id}", daemon=True)
    t.start()

    def end() -> None:
        done.set()
        t.join()
    return end


def keep_snapshot(run: RunState, replay_log: SnapshotLog, views: RunViews, snap) -> None:
    """Keep an in-update snapshot as ``run``'s live picture, and its 2-D pictures in ``replay_log``."""
    history = run.on_live(snap)
    if history is None:  # late: its iteration has already finished
        return
    if not replay_log.wants_next():
        replay_log.skip()
        return
    replay_log.add(replay_frame(snap, views, history))


class TrainingRun:
    """One mutual-learning run, trained in its own worker process (:mod:`vaegmm.runs.worker`). Thread-safe; every
    public method returns at once.

    A thread of this process (the *pump*) waits for a slot, starts the worker, and applies what the worker
    reports (progress, finished iterations, the end) to the run's :class:`~vaegmm.runs.state.RunState`; the
    commands go to the worker through a pipe and take effect at its next mini-batch.

    ``slots``: the :class:`SlotManager` to queue on (default :func:`default_slots`). ``loader``: the data loader,
    ``load_mnist`` by default; it runs in the worker, so it must be picklable (a module-level function).
    ``keep_images``: keep a uint8 copy of the images for the latent explorer."""

    def __init__(self, config: RunConfig, slots: Optional[SlotManager] = None, loader: Optional[Loader] = None,
                 name: str = "", keep_images: bool = True, snapshot_every: Optional[float] = None):
        self.config = config
        self.id = next(_ids)
        self.name = name or f"run {self.id}"
        self._slots = slots
        self._loader = loader
        self._keep_images = keep_images
        self._snapshot_every = snapshot_every
        self._run = RunState(config)
        self.replay_log = SnapshotLog()  # bounded record of every in-update snapshot, for Replay
        self.views = RunViews(seed=config.seed)  # LDA axes, t-SNE embeddings and axis ranges of this run
        self._thread: Optional[threading.Thread] = None
        self._channel: Optional[WorkerChannel] = None  # the worker, while it runs
        self._queue_entry: Optional[tuple] = None  # (priority, arrival, self) in the slot queue, set by start()
        self.worker_pid: Optional[int] = None
        self.recorder = None  # a vaegmm.runs.library.RunRecorder: the run is saved as it goes (set before start())
        self.labels: Optional[np.ndarray] = None
        self.images_u8: Optional[np.ndarray] = None  # (N, 784) uint8, for the explorer
        self.heldout: Optional[dict] = None  # the held-out set (vaegmm.model.data.heldout_summary), once known
        self.slot_owner = None  # whose run this is in the slot queue (fair share; set before start())
        self.time_limit: Optional[float] = None  # training seconds before the watchdog stops it (set before start())
        self.time_limit_message = ""  # the stop message then

    # ------------------------------------------------------------------------------------------ commands
    @property
    def slots(self) -> SlotManager:
        if self._slots is None:
            self._slots = default_slots()
        return self._slots

    def start(self) -> bool:
        """Start the run (queues when the server is full). Only from ``idle``; returns whether it started."""
        if not self._run.start():
            return False
        # in the queue before the pump thread starts: the page can show the run's place at once
        self._queue_entry = self.slots.enqueue(self, owner=self.slot_owner)
        self._thread = threading.Thread(target=self._pump, name=f"vaegmm-run-{self.id}", daemon=True)
        self._thread.start()
        return True

    def pause(self) -> None:
        """Pause at the next mini-batch boundary (a queued run pauses as soon as it gets its slot)."""
        self._run.pause(self._send)

    def resume(self) -> None:
        self._run.resume(self._send)

    def step(self) -> None:
        """One more iteration, then pause. From ``idle`` this starts the run and pauses after iteration 1."""
        if self._run.step(self._send):
            self.start()

    def stop(self, reason: str = "") -> None:
        """Stop at the next mini-batch boundary (at once when idle or queued). The history so far is kept."""
        if self._run.stop(self._send, reason) and self._slots is not None:
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
        with self._run.lock:
            return self._run.state

    @property
    def history(self) -> list[IterationResult]:
        with self._run.lock:
            return list(self._run.history)

    @property
    def snapshots(self) -> list:
        """The in-update snapshots kept for Replay, over all iterations (:class:`vaegmm.runs.snapshots.LogFrame`,
        oldest first; bounded by :class:`~vaegmm.runs.snapshots.SnapshotLog`)."""
        return self.replay_log.frames()

    @property
    def thread_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def ended(self) -> bool:
        """Ended, and its pump is done: its record in the run library is final too (written after the state)."""
        return self.state in TERMINAL and not self.thread_alive

    @property
    def library_id(self) -> Optional[int]:
        """Its run library id (the share link's ``?run=``) from when it takes its slot; None without a recorder."""
        return getattr(self.recorder, "run_id", None)

    def snapshot(self) -> Snapshot:
        snap = self._run.snapshot(self.id, self.name, self.config)
        if snap.state == QUEUED and self._slots is not None:
            snap.queue_position = self._slots.position(self)
        return snap

    # ------------------------------------------------------------------------------------------ the pump
    def _send(self, *msg) -> None:
        """A command to the worker, if one runs (called under the run's lock: commands keep their order)."""
        channel = self._channel
        if channel is not None:
            channel.send(*msg)

    def _pump(self) -> None:
        slots, run = self.slots, self._run
        if not slots.acquire(self, run.cancel, entry=self._queue_entry):
            run.finish(STOPPED, run.stop_message() or "stopped while waiting in the queue")
            return
        run.slot_taken()
        run.mark("slot")
        tell_recorder(self.recorder, "begin")
        end_watchdog = start_watchdog(self) if self.time_limit is not None else (lambda: None)
        try:
            self._run_worker(slots.capacity)
        except Exception as e:  # pragma: no cover - a bug on this side; shown, never silent
            run.finish(FAILED, f"failed: {type(e).__name__}: {e}")
        finally:
            end_watchdog()
            slots.release(self)
        with run.lock:
            state, message = run.state, run.message
        tell_recorder(self.recorder, "end", state, message)  # after the slot is freed: the export holds up no queue

    def _run_worker(self, capacity: int) -> None:
        run = self._run
        options = run.worker_options()
        if options is None:  # stopped before the worker started
            return
        paused, pause_after = options
        job = Job(self.config.to_dict(), threads=threads_per_run(capacity), nice=worker_nice(), loader=self._loader,
                  keep_images=self._keep_images, paused=paused, pause_after=pause_after,
                  snapshots={} if self._snapshot_every is None else {"every": self._snapshot_every})
        channel = WorkerChannel(job, name=f"vaegmm-worker-{self.id}")
        try:
            self.worker_pid = channel.start()
            with run.lock:
                self._channel = channel
            run.worker_started(self._send, started_paused=paused)
            for msg in channel.events(lambda: run.stop_sent):
                if msg[0] == "died":
                    stopped = run.cancel.is_set()
                    run.finish(STOPPED if stopped else FAILED, run.stop_message() if stopped else
                               f"the training process ended unexpectedly (exit code {msg[1]})")
                    break
                if self._on_message(msg):
                    break
        finally:
            with run.lock:
                self._channel = None
            channel.close()

    def _on_message(self, msg: tuple) -> bool:
        """Apply one event of the worker (see :mod:`vaegmm.runs.worker`); True for the last one."""
        kind, run = msg[0], self._run
        if kind == "progress":
            run.on_progress(msg[1], msg[2], msg[3])
        elif kind == "snapshot":
            keep_snapshot(run, self.replay_log, self.views, msg[1])
        elif kind == "result":
            run.on_result(msg[1], msg[2])
            tell_recorder(self.recorder, "iteration", msg[1])
        elif kind == "paused":
            run.on_paused(msg[1])
        elif kind == "data":
            self.labels, self.images_u8 = msg[1], msg[2]
            tell_recorder(self.recorder, "data", msg[1], msg[2])
        elif kind == "heldout":
            self.heldout = msg[1]
            tell_recorder(self.recorder, "heldout", msg[1])
        elif kind == "mark":
            run.mark(msg[1])
        elif kind == "end":
            run.finish(msg[1], msg[2] or (run.stop_message() if msg[1] == STOPPED else ""))
            return True
        return False
