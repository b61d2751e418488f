"""Process plumbing shared by training runs and the dashboard's one-off jobs: one *fork server* whose
interpreter has preloaded torch, scikit-learn and this package (:mod:`vaegmm.runs.preload`), and processes forked
from it without re-running the parent's ``__main__``.

Why a fork server (measured, ``python bench/script_latency.py``; issue 8): training inside the Streamlit server
made its page scripts 4-10x slower (the GIL); forked workers at ``nice 10`` leave them as fast as on an idle
server, start in tens of milliseconds instead of the seconds a cold ``spawn`` needs, and give all their memory
back when they end.
"""
from __future__ import annotations

import io
import multiprocessing as mp
import os
import threading
import time
from multiprocessing import forkserver, popen_forkserver, reduction, spawn, util
from multiprocessing.context import ForkServerProcess, set_spawning_popen
from typing import Callable, Optional

PRELOAD = "vaegmm.runs.preload"  # imported once by the fork server, before it forks anything
NICE_ENV = "VAEGMM_WORKER_NICE"
DEFAULT_NICE = 10

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
            ctx.set_forkserver_preload([PRELOAD])
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
