"""Training in a worker process: the child side of a :class:`~vaegmm.runner.TrainingRun`.

Why a process and not a thread (measured, ``python bench/script_latency.py``; issue 8): six runs training as
threads inside the Streamlit server made one script run of the live page 4x slower at the median and up to 10x
at the 90th percentile (the training loop's Python holds the GIL), and under that load the browser pages fell
apart. Six runs in processes at ``nice 10`` left the script runs as fast as on an idle server, because the OS
schedules the server first and there is no shared GIL.

Each run gets a fresh process forked from a *fork server* (``multiprocessing``'s ``forkserver`` context) that has
already imported torch, scikit-learn and this package and built one optimiser, so a worker is ready in tens of
milliseconds instead of the seconds a cold ``spawn`` needs, and every run starts from the same clean state and
gives all its memory back when it ends. The fork server is a fresh interpreter (not a fork of the Streamlit
server), started once by :func:`start_fork_server`.

Protocol (two one-way pipes, so neither side ever reads what it wrote):

* server -> worker, on ``commands``: ``("pause",)``, ``("resume",)``, ``("stop",)``, ``("pause_after", i)``.
  A listener thread in the worker applies them to a :class:`~vaegmm.control.RunControl`, which the training loop
  checks between mini-batches. If the pipe closes (the server died, even by ``kill -9``), the worker exits at once.
* worker -> server, on ``events``: ``("mark", name)``, ``("data", labels, images_u8)``,
  ``("progress", event, recon, kl)`` (at most ~10 a second; ``recon``/``kl`` are the epochs since the last one),
  ``("result", IterationResult, seconds)``, ``("snapshot", ...)`` (a CodeSnapshot of the codes during a VAE update, see
  :mod:`vaegmm.snapshots`), ``("paused", iteration)`` (a Step finished), and last ``("end", state, message)``.
"""
from __future__ import annotations

import io
import multiprocessing as mp
import os
import threading
import time
from dataclasses import dataclass, field
from multiprocessing import forkserver, popen_forkserver, reduction, spawn, util
from multiprocessing.context import ForkServerProcess, set_spawning_popen
from typing import Any, Callable, Optional

NICE_ENV = "VAEGMM_WORKER_NICE"
DEFAULT_NICE = 10
PROGRESS_EVERY = 0.1  # seconds between progress messages (the epochs in between travel together)

_lock = threading.Lock()
_warm_lock = threading.Lock()
_context = None
_ready = False


def worker_context():
    """The ``forkserver`` multiprocessing context whose server preloads torch and this package."""
    global _context
    with _lock:
        if _context is None:
            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload(["vaegmm.worker_preload"])
            _context = ctx
        return _context


class _WorkerPopen(popen_forkserver.Popen):
    """Python's forkserver ``Popen`` (3.11), minus the re-import of the parent's ``__main__`` in the child.

    Multiprocessing normally re-runs the parent's main module in every child. In the dashboard that module is
    the running Streamlit page (Streamlit installs it as ``__main__``): a worker would execute ``app.py``. Our
    workers need nothing from ``__main__`` (their target and arguments live in this package), so the
    preparation data leaves it out; the rest is Python's own ``_launch``."""

    def _launch(self, process_obj):
        prep_data = spawn.get_preparation_data(process_obj._name)
        prep_data.pop("init_main_from_name", None)
        prep_data.pop("init_main_from_path", None)
        buf = io.BytesIO()
        set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            set_spawning_popen(None)
        self.sentinel, w = forkserver.connect_to_new_process(self._fds)
        _parent_w = os.dup(w)  # the child's sentinel of this process, as in Python's own _launch
        self.finalizer = util.Finalize(self, util.close_fds, (_parent_w, self.sentinel))
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


class WorkerProcess(ForkServerProcess):
    """A process forked by the training fork server, without the ``__main__`` re-import (:class:`_WorkerPopen`)."""

    @staticmethod
    def _Popen(process_obj):
        worker_context()
        return _WorkerPopen(process_obj)


def start_fork_server() -> None:
    """Start the fork server now (about 2-4 s: it imports torch and warms the optimiser) rather than at the
    first Start. Idempotent; safe to call from several threads."""
    global _ready
    worker_context()
    with _warm_lock:
        if _ready:
            return
        # a first, empty worker: it is forked only once the server has finished its preload
        proc = WorkerProcess(target=_ping, name="vaegmm-warm-up", daemon=True)
        proc.start()
        proc.join()
        _ready = True


def _ping() -> None:
    """An empty worker (see :func:`start_fork_server`)."""


def worker_nice() -> int:
    """Niceness added to each worker: ``$VAEGMM_WORKER_NICE`` (default 10, so the server's pages come first)."""
    raw = os.environ.get(NICE_ENV, "").strip()
    try:
        return max(0, min(19, int(raw))) if raw else DEFAULT_NICE
    except ValueError:
        return DEFAULT_NICE


@dataclass
class Job:
    """What one worker trains. ``loader`` must be picklable (a module-level function) or None for
    :func:`vaegmm.data.load_mnist`."""

    config: dict  # RunConfig.to_dict()
    threads: int = 1  # torch and BLAS threads of this run
    nice: int = DEFAULT_NICE
    loader: Optional[Callable[..., tuple]] = None
    keep_images: bool = True
    paused: bool = False  # start paused (Pause pressed while queued)
    pause_after: Optional[int] = None  # pause once this iteration has finished (Step)
    snapshots: dict = field(default_factory=dict)  # options of the in-update snapshots (vaegmm.snapshots)
    env: dict = field(default_factory=lambda: vaegmm_environment())  # $VAEGMM_* of the server, now


def vaegmm_environment() -> dict:
    """This process's ``VAEGMM_*`` variables. A worker is forked from the fork server, whose environment is the
    one it started with: the job carries the server's current settings (e.g. ``VAEGMM_MNIST_DIR``)."""
    return {k: v for k, v in os.environ.items() if k.startswith("VAEGMM_")}


class Failure(Exception):
    """A failure whose message is already written for the user."""


def serve_run(job: Job, commands, events) -> None:
    """Entry point of a worker process: train ``job`` and report on ``events`` (see the module docstring)."""
    for key in [k for k in os.environ if k.startswith("VAEGMM_")]:
        del os.environ[key]
    os.environ.update(job.env)
    if job.nice:
        try:
            os.nice(job.nice)
        except OSError:  # pragma: no cover - not allowed here: run at the server's priority
            pass
    send_lock = threading.Lock()

    def send(*msg: Any) -> None:
        with send_lock:
            events.send(msg)

    from .control import RunControl

    control = RunControl()
    if job.paused:
        control.pause()
    steps = {"pause_after": job.pause_after}

    def listen() -> None:
        while True:
            try:
                msg = commands.recv()
            except (EOFError, OSError):
                os._exit(3)  # the server is gone: nobody will ever read this run
            kind = msg[0]
            if kind == "pause":
                control.pause()
            elif kind == "resume":
                control.resume()
            elif kind == "stop":
                control.stop()
            elif kind == "pause_after":
                steps["pause_after"] = msg[1]

    threading.Thread(target=listen, name="vaegmm-commands", daemon=True).start()
    state, message = _train(job, control, steps, send)
    send("end", state, message)


def _train(job: Job, control, steps: dict, send) -> tuple[str, str]:
    import numpy as np
    import torch
    from threadpoolctl import threadpool_limits

    from .config import RunConfig
    from .control import StopRequested
    from .mutual import MutualLearner
    from .snapshots import SnapshotTaker

    torch.set_num_threads(max(1, int(job.threads)))
    iteration = 0
    try:
        with threadpool_limits(max(1, int(job.threads))):
            cfg = RunConfig.from_dict(job.config).validate()
            control.checkpoint()
            try:
                loader = job.loader
                if loader is None:
                    from .data import load_mnist as loader
                images, labels = loader(cfg.data.n, cfg.data.digits, cfg.seed, cfg.data.source)
            except ValueError as e:  # DataSourceError is a ValueError
                raise Failure(f"could not load the data: {e}") from None
            labels = np.asarray(labels)
            images_u8 = None
            if job.keep_images:
                images_u8 = np.clip(np.rint(np.asarray(images) * 255.0), 0, 255).astype(np.uint8)
            send("data", labels, images_u8)
            send("mark", "data")
            control.checkpoint()
            progress = _ProgressSender(send)
            learner = MutualLearner(cfg, images, labels, callbacks=[progress], control=control)
            taker = SnapshotTaker(learner, send, **job.snapshots)
            learner.callbacks.append(taker)
            send("mark", "model")
            t0 = time.monotonic()
            first = learner.begin()
            send("result", first, time.monotonic() - t0)
            while learner.iteration < cfg.iterations:
                control.checkpoint()
                iteration = learner.iteration + 1
                t0 = time.monotonic()
                result = learner.step()
                progress.flush()
                send("result", result, time.monotonic() - t0)
                pause_after = steps["pause_after"]
                if pause_after is not None and result.iteration >= pause_after and result.iteration < cfg.iterations:
                    steps["pause_after"] = None
                    control.pause()
                    send("paused", result.iteration)
    except StopRequested:
        return "stopped", ""
    except Failure as e:
        return "failed", str(e)
    except Exception as e:  # shown on the page; the history so far is kept
        text = str(e) or type(e).__name__
        if not text.startswith(f"iteration {iteration}"):
            text = f"iteration {iteration}: {type(e).__name__}: {text}"
        return "failed", f"failed in {text}"
    return "finished", ""


class _ProgressSender:
    """Forwards the loop's :class:`~vaegmm.mutual.ProgressEvent` records, at most one message per
    ``PROGRESS_EVERY`` seconds: the per-epoch losses in between travel together, none is lost."""

    def __init__(self, send) -> None:
        self.send = send
        self.last = 0.0
        self.pending = None
        self.recon: list = []
        self.kl: list = []

    def __call__(self, ev) -> None:
        if ev.phase == "vae":
            self.recon.append(ev.recon)
            self.kl.append(ev.kl)
        self.pending = ev
        now = time.monotonic()
        if ev.phase != "vae" or ev.epoch == ev.epochs or now - self.last >= PROGRESS_EVERY:
            self.flush(now)

    def flush(self, now: Optional[float] = None) -> None:
        if self.pending is None:
            return
        self.send("progress", self.pending, self.recon, self.kl)
        self.pending, self.recon, self.kl = None, [], []
        self.last = time.monotonic() if now is None else now


# ---------------------------------------------------------------------------------------------- one-off jobs
def _call_entry(target, args, conn, nice: int) -> None:
    """Body of a one-off worker: ``target(*args, conn)`` sends the answer itself (see :func:`call_in_worker`)."""
    if nice:
        try:
            os.nice(nice)
        except OSError:  # pragma: no cover
            pass
    target(*args, conn)


def call_in_worker(target: Callable, args: tuple, timeout: float = 300.0, name: str = "vaegmm-job",
                   nice: Optional[int] = None):
    """Run ``target(*args, conn)`` in a fresh process forked from the training fork server, at the workers' low
    priority (``$VAEGMM_WORKER_NICE``), and return what it sends on ``conn``: ``("ok", value)`` gives ``value``,
    ``("error", message)`` raises ``ValueError(message)``. For seconds-long jobs of the dashboard (a t-SNE, an
    animated GIF) that must not hold the server's GIL or cores. ``target`` must be a module-level function.
    A job still running after ``timeout`` seconds is killed (TimeoutError); one that dies raises RuntimeError."""
    from multiprocessing.connection import wait

    ctx = worker_context()
    recv, send = ctx.Pipe(duplex=False)
    proc = WorkerProcess(target=_call_entry, args=(target, args, send, worker_nice() if nice is None else nice),
                         name=name, daemon=True)
    try:
        proc.start()
        send.close()
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{name} took more than {timeout:.0f} s")
            ready = wait([recv, proc.sentinel], timeout=min(left, 1.0))
            if recv in ready or recv.poll():
                try:
                    kind, value = recv.recv()
                except (EOFError, OSError):
                    raise RuntimeError(f"{name} ended without an answer (exit code {proc.exitcode})") from None
                if kind == "ok":
                    return value
                raise ValueError(value)
            if proc.sentinel in ready and not recv.poll():
                proc.join(1)
                raise RuntimeError(f"{name} ended without an answer (exit code {proc.exitcode})")
    finally:
        recv.close()
        proc.join(1)
        if proc.is_alive():
            proc.kill()
            proc.join(2)
