"""A local pool's worker process: ``python -m vaegmm.sweeps.pool_worker FD`` (started by
:class:`~vaegmm.sweeps.executors.LocalPoolExecutor`). It warms up once, then trains the (config, seed) tasks it
receives on the socket ``FD`` with :func:`~vaegmm.sweeps.cell.run_one`, one at a time, sending each result back.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection

from vaegmm.model.vae import VAE, make_optimizer
from vaegmm.sweeps.cell import run_one


def warm_up() -> None:
    """Pay torch's one-time costs before the first run: its first optimiser imports a lot (~2 s). A Ray worker
    calls this too, so both engines start their first run equally warm."""
    make_optimizer(VAE(2, 4), 1e-3)


def _exit_when_orphaned(parent: int) -> None:
    """A driver killed with SIGKILL cannot end us: do not train on for nobody."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(3)


def worker_main(fd: int) -> None:
    """Serve tasks on the socket ``fd``: send ``("ready", pid, warm-up seconds)``, then for each ``(config, seed)``
    received send ``("result", run_one(config, seed))``, until ``None`` arrives or the driver goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's: it stops the workers itself
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), name="vaegmm-orphan-watch",
                     daemon=True).start()
    conn = Connection(fd)
    t0 = time.perf_counter()
    warm_up()
    conn.send(("ready", os.getpid(), time.perf_counter() - t0))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):  # the driver is gone
            return
        if msg is None:
            return
        config, seed = msg
        result = run_one(config, seed)
        try:
            conn.send(("result", result))
        except (BrokenPipeError, OSError):
            return


if __name__ == "__main__":
    worker_main(int(sys.argv[1]))
