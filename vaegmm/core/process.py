"""Process plumbing shared by training runs and the dashboard's one-off jobs: one *fork server* whose
interpreter has preloaded torch, scikit-learn and this package (:mod:`vaegmm.runs.preload`), and processes forked
from it (multiprocessing's standard ``forkserver`` context) without re-running the parent's ``__main__``.

Why a fork server (measured, ``python bench/script_latency.py``; issue 8): training inside the Streamlit server
made its page scripts 4-10x slower (the GIL); forked workers at ``nice 10`` leave them as fast as on an idle
server, start in tens of milliseconds instead of the seconds a cold ``spawn`` needs, and give all their memory
back when they end.
"""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import sys
import threading
import time
import types
from typing import Callable, Iterator, Optional

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


# Multiprocessing's child re-runs the parent's main module before it unpickles its target (``spawn.prepare``):
# ``spawn.get_preparation_data`` sends ``__main__.__spec__.name`` or, for a script, ``__main__.__file__``. In the
# dashboard ``sys.modules["__main__"]`` is the page script Streamlit is running, so a worker would execute
# ``app.py``. Our workers need nothing from ``__main__`` (targets and arguments live in this package), so while
# a worker starts, ``sys.modules["__main__"]`` is a module with neither a spec nor a file: the preparation data
# then names no main module and the child keeps its own. The swap lasts the few milliseconds of ``start()``,
# under a lock; Streamlit only ever *writes* ``sys.modules["__main__"]`` (at the start of each script run), and
# if it does so meanwhile its module is kept, not ours.
_NO_MAIN = types.ModuleType("__main__", "Stands in for the parent's __main__ while a worker starts.")
_start_lock = threading.Lock()


@contextlib.contextmanager
def _main_module_left_out() -> Iterator[None]:
    with _start_lock:
        parent_main = sys.modules.get("__main__")
        sys.modules["__main__"] = _NO_MAIN
        try:
            yield
        finally:
            if sys.modules.get("__main__") is _NO_MAIN:
                sys.modules["__main__"] = parent_main


class WorkerProcess(mp.get_context("forkserver").Process):
    """A process forked by the training fork server (:func:`worker_context`) that does not re-run the parent's
    ``__main__`` (the Streamlit page script): the standard ``forkserver`` process, started with the main module
    left out of its preparation data (see :func:`_main_module_left_out`)."""

    def start(self) -> None:
        worker_context()
        with _main_module_left_out():
            super().start()


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
