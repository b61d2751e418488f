"""Process plumbing shared by training runs and the dashboard's one-off jobs: one *fork server* whose
interpreter has preloaded torch, scikit-learn and this package (:mod:`vaegmm.runs.preload`), and processes forked
from it without re-running the parent's ``__main__`` (:class:`_WorkerPopen`).

Why a fork server (measured in issue 8 by ``bench/script_latency.py``, in git history since issue 27): training
inside the Streamlit server made its page scripts 4-10x slower (the GIL); forked workers at ``nice 10`` leave them
as fast as on an idle server, start in tens of milliseconds instead of the seconds a cold ``spawn`` needs, and give
all their memory back when they end.
"""
from __future__ import annotations

import io
import multiprocessing as mp
import os
import time
from multiprocessing import forkserver, popen_forkserver, reduction, spawn, util
from multiprocessing.context import ForkServerProcess, set_spawning_popen
from typing import Callable, Optional

from vaegmm.core.env import env_int
from vaegmm.core.singleton import process_singleton

PRELOAD = "vaegmm.runs.preload"  # imported once by the fork server, before it forks anything
NICE_ENV = "VAEGMM_WORKER_NICE"
DEFAULT_NICE = 10


@process_singleton
def worker_context():
    """The ``forkserver`` multiprocessing context whose server preloads torch and this package."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([PRELOAD])
    return ctx


class _WorkerPopen(popen_forkserver.Popen):
    """Python's forkserver ``Popen`` (3.11), minus the re-import of the parent's ``__main__`` in the child.

    Multiprocessing re-runs the parent's main module in every child before it unpickles the target
    (``spawn.prepare``): ``spawn.get_preparation_data`` names ``__main__.__spec__.name`` or ``__main__.__file__``.
    In the dashboard ``sys.modules["__main__"]`` is the page script Streamlit is running, so a worker would execute
    ``app.py``. Our workers need nothing from ``__main__`` (their target and arguments live in this package), so
    the preparation data leaves it out; the rest is Python's own ``_launch``.

    Why not a public mechanism: the one that exists is to make ``sys.modules["__main__"]`` a module without spec
    or file while ``start()`` runs. We tried it (under a lock, for the few ms of ``start()``) and it raced with
    Streamlit, which installs the page's module as ``__main__`` at the start of every script run: in a full test
    run the classroom test's warm-up worker saw ``app.py`` again, re-ran it in the child and died, so 1 of 8 runs
    failed (``RuntimeError: An attempt has been made to start a new process before the current process has
    finished its bootstrapping phase``, from app.py's ``session_runs()``). Streamlit's write cannot be put under
    our lock, so only leaving ``__main__`` out of the data, as here, is free of that race."""

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
    """A process forked by the training fork server (:func:`worker_context`) that does not re-run the parent's
    ``__main__`` (the Streamlit page script): see :class:`_WorkerPopen`."""

    @staticmethod
    def _Popen(process_obj):
        worker_context()
        return _WorkerPopen(process_obj)


@process_singleton
def start_fork_server() -> None:
    """Start the fork server now (about 2-4 s: it imports torch and warms the optimiser) rather than at the
    first Start. Idempotent; safe to call from several threads (later callers wait for the first)."""
    # a first, empty worker: it is forked only once the server has finished its preload
    proc = WorkerProcess(target=_ping, name="vaegmm-warm-up", daemon=True)
    proc.start()
    proc.join()


def _ping() -> None:
    """An empty worker (see :func:`start_fork_server`)."""


def worker_nice() -> int:
    """Niceness added to each worker: ``$VAEGMM_WORKER_NICE`` in [0, 19] (default 10, so the server's pages
    come first)."""
    return env_int(NICE_ENV, DEFAULT_NICE, lo=0, hi=19)


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
