"""The server's side of one worker process (:mod:`vaegmm.runs.worker`): start it, send it commands, read its
events, and supervise it. A worker that dies without saying goodbye is reported; one that has not ended
``STOP_GRACE`` seconds after a stop (a stuck data source, say) is killed."""
from __future__ import annotations

import threading
import time
from multiprocessing.connection import wait
from typing import Callable, Iterator, Optional

from vaegmm.core.process import WorkerProcess, worker_context
from vaegmm.runs.worker import Job, serve_run

STOP_GRACE = 5.0  # seconds a worker gets to end by itself after Stop before it is killed
POLL = 0.25  # seconds between checks of the worker's health while it says nothing


class WorkerChannel:
    """One worker process training ``job``, with its two one-way pipes (commands down, events up: neither side
    ever reads what it wrote). Use :meth:`start`, then :meth:`events` until the last event, then :meth:`close`."""

    def __init__(self, job: Job, name: str) -> None:
        ctx = worker_context()
        self._cmd_recv, self._cmd_send = ctx.Pipe(duplex=False)
        self._ev_recv, self._ev_send = ctx.Pipe(duplex=False)
        self._send_lock = threading.Lock()
        self._open = False
        self.process = WorkerProcess(target=serve_run, args=(job, self._cmd_recv, self._ev_send), name=name,
                                     daemon=True)

    def start(self) -> int:
        """Fork the worker; its pid."""
        self.process.start()
        self._cmd_recv.close()  # the child's ends: only the child holds them now
        self._ev_send.close()
        self._open = True
        return self.process.pid

    def send(self, *msg) -> None:
        """A command to the worker; nothing when it has ended (or has not started)."""
        if not self._open:
            return
        with self._send_lock:
            try:
                self._cmd_send.send(msg)
            except (OSError, ValueError):  # the worker has just ended
                pass

    def events(self, stop_sent: Callable[[], Optional[float]]) -> Iterator[tuple]:
        """The worker's events as they come. When it ends without its last event, one ``("died", exit code)``
        ends the stream. ``stop_sent()``: when a stop was sent (time.monotonic()), or None."""
        proc, events = self.process, self._ev_recv
        while True:
            ready = wait([events, proc.sentinel], timeout=POLL)
            if events in ready or events.poll():
                try:
                    msg = events.recv()
                except (EOFError, OSError):
                    msg = None
                if msg is not None:
                    yield msg
                    continue
            if not proc.is_alive() or (ready and proc.sentinel in ready and not events.poll()):
                proc.join(1)
                yield "died", proc.exitcode
                return
            sent = stop_sent()
            if sent is not None and time.monotonic() - sent > STOP_GRACE:
                proc.kill()  # it did not stop by itself

    def close(self) -> None:
        """Close the pipes and make sure the process is gone."""
        with self._send_lock:
            self._open = False
        for conn in (self._cmd_send, self._ev_recv, self._cmd_recv, self._ev_send):
            conn.close()
        proc = self.process
        if proc.pid is None:  # never started
            return
        proc.join(2)
        if proc.is_alive():
            proc.kill()
            proc.join(2)
