"""Training in a worker process: the child side of a :class:`~vaegmm.runs.runner.TrainingRun`.

Why a process and not a thread (measured in issue 8 by ``bench/script_latency.py``, in git history since issue 27):
six runs training as threads inside the Streamlit server made one script run of the live page 4x slower at the
median and up to 10x at the 90th percentile (the training loop's Python holds the GIL), and under that load the
browser pages fell apart. Six runs in processes at ``nice 10`` left the script runs as fast as on an idle server,
because the OS schedules the server first and there is no shared GIL.

Each run gets a fresh process forked from a *fork server* (``multiprocessing``'s ``forkserver`` context) that has
already imported torch, scikit-learn and this package and built one optimiser, so a worker is ready in tens of
milliseconds instead of the seconds a cold ``spawn`` needs, and every run starts from the same clean state and
gives all its memory back when it ends. The fork server is a fresh interpreter (not a fork of the Streamlit
server), started once by :func:`vaegmm.core.process.start_fork_server`.

Protocol (two one-way pipes, so neither side ever reads what it wrote):

* server -> worker, on ``commands``: ``("pause",)``, ``("resume",)``, ``("stop",)``, ``("pause_after", i)``.
  A listener thread in the worker applies them to a :class:`~vaegmm.model.control.RunControl`, which the training loop
  checks between mini-batches. If the pipe closes (the server died, even by ``kill -9``), the worker exits at once.
* worker -> server, on ``events``: ``("mark", name)``, ``("data", labels, images_u8)`` (labels None when
  unlabelled), ``("heldout", summary)`` (the held-out set: :func:`vaegmm.model.data.heldout_summary`),
  ``("progress", event, recon, kl)`` (at most ~10 a second; ``recon``/``kl`` are the epochs since the last one),
  ``("result", IterationResult, seconds)``, ``("snapshot", ...)`` (a CodeSnapshot of the codes during a VAE update, see
  :mod:`vaegmm.runs.snapshots`), ``("paused", iteration)`` (a Step finished), and last ``("end", state, message)``.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from vaegmm.core.env import vaegmm_environment
from vaegmm.core.process import DEFAULT_NICE
from vaegmm.model.control import RunControl
from vaegmm.runs.snapshots import SnapshotTaker
from vaegmm.runs.state import FAILED, FINISHED, STOPPED
from vaegmm.runs.train import train_run

PROGRESS_EVERY = 0.1  # seconds between progress messages (the epochs in between travel together)


@dataclass
class Job:
    """What one worker trains. ``loader`` must be picklable (a module-level function) or None for
    :func:`vaegmm.model.data.load_mnist`."""

    config: dict  # RunConfig.to_dict()
    threads: int = 1  # torch and BLAS threads of this run
    nice: int = DEFAULT_NICE
    loader: Optional[Callable[..., tuple]] = None
    keep_images: bool = True
    paused: bool = False  # start paused (Pause pressed while queued)
    pause_after: Optional[int] = None  # pause once this iteration has finished (Step)
    snapshots: dict = field(default_factory=dict)  # options of the in-update snapshots (vaegmm.runs.snapshots)
    # $VAEGMM_* of the server, now: a worker is forked from the fork server, whose environment is the one it started
    # with, so the job carries the server's current settings (e.g. VAEGMM_MNIST_DIR)
    env: dict = field(default_factory=vaegmm_environment)


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
    """Train ``job`` with :func:`~vaegmm.runs.train.train_run`, reporting on ``send``; ``(state, message)``."""
    progress = _ProgressSender(send)
    iterations = int(job.config["iterations"])

    def on_data(images, labels) -> None:
        images_u8 = None
        if job.keep_images:
            images_u8 = np.clip(np.rint(np.asarray(images) * 255.0), 0, 255).astype(np.uint8)
        send("data", labels, images_u8)
        send("mark", "data")

    def on_learner(learner) -> None:
        learner.callbacks.append(SnapshotTaker(learner, send, **job.snapshots))
        send("mark", "model")

    def on_result(result, seconds: float) -> None:
        progress.flush()  # the epochs' losses arrive before the iteration they belong to
        send("result", result, seconds)
        pause_after = steps["pause_after"]  # a Step: pause once that iteration is done (never after the last)
        if pause_after is not None and 0 < result.iteration < iterations and result.iteration >= pause_after:
            steps["pause_after"] = None
            control.pause()
            send("paused", result.iteration)

    trained = train_run(job.config, callbacks=[progress], control=control, loader=job.loader, threads=job.threads,
                        on_data=on_data, on_learner=on_learner, on_result=on_result,
                        on_heldout=lambda summary: send("heldout", summary))
    if trained.status == STOPPED:
        return STOPPED, ""
    if trained.status == FAILED:
        text = trained.error_text()
        if trained.failed_loading:
            return FAILED, f"could not load the data: {text}"
        iteration = trained.iteration or 0
        if not text.startswith(f"iteration {iteration}"):
            text = f"iteration {iteration}: {type(trained.error).__name__}: {text}"
        return FAILED, f"failed in {text}"
    return FINISHED, ""


class _ProgressSender:
    """Forwards the loop's :class:`~vaegmm.model.mutual.ProgressEvent` records, at most one message per
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


