"""One cell run of a sweep: :func:`run_one` trains one (config, seed) and returns a JSON-able result dict. The
local pool and Ray both call it, so the two engines cannot drift apart."""
from __future__ import annotations

import os
import socket
import time
from typing import Any, Mapping

from vaegmm.runs.state import FAILED, STOPPED
from vaegmm.runs.train import train_run


class WorkerDied(RuntimeError):
    """The process running a task ended without a result (killed, out of memory, a crash in native code)."""


def run_one(config_dict: Mapping[str, Any], seed: int, control=None) -> dict:
    """Train one run; return its result as a JSON-able dict. Pure and picklable: it loads MNIST itself and
    never touches the store, so it runs the same in a local worker process and as a Ray task.

    Torch and numpy's BLAS are pinned to one thread for the run (``threadpoolctl``): runs side by side must not
    oversubscribe the cores (measured: an EM fit with BLAS at 2 threads on a busy 2-core box took 3.0-4.9 s, pinned
    0.5-0.9 s). ``control``: an optional :class:`~vaegmm.model.control.RunControl` to stop it.

    Returns ``status`` ("finished", "failed" or "stopped"), ``message``, ``iterations`` (per iteration:
    iteration, accuracy, nmi, ari, seconds_vae, seconds_gmm, class_counts, recon, kl), ``seconds`` (wall),
    ``cpu_seconds``, ``load_seconds``, ``train_seconds``, ``host``, ``pid``.
    """
    t0, c0 = time.perf_counter(), time.process_time()
    trained = train_run({**config_dict, "seed": int(seed)}, control=control, threads=1)
    status, message = trained.status, ""
    if status == STOPPED:
        message = "stopped"
    elif status == FAILED:  # a run that raises is a failed run with its message; the sweep goes on
        text = trained.error_text()
        where = "" if trained.iteration is None or text.startswith("iteration") else f"iteration {trained.iteration}: "
        message = f"{where}{type(trained.error).__name__}: {text}"
    iterations = []
    for r in trained.history:
        m = r.metrics()
        m["recon"] = [round(v, 4) for v in m["recon"]]
        m["kl"] = [round(v, 4) for v in m["kl"]]
        iterations.append(m)
    return {"status": status, "message": message, "iterations": iterations,
            "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
            "load_seconds": trained.load_seconds, "train_seconds": trained.train_seconds if status == "finished" else 0.0,
            "host": socket.gethostname(), "pid": os.getpid()}
