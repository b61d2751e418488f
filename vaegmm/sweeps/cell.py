"""One cell run of a sweep: :func:`run_one` trains one (config, seed) and returns a JSON-able result dict. The
local pool and Ray both call it, so the two engines cannot drift apart."""
from __future__ import annotations

import os
import socket
import time
from typing import Any, Mapping

from vaegmm.model.config import RunConfig


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
    import torch
    from threadpoolctl import threadpool_limits

    from vaegmm.model.control import StopRequested
    from vaegmm.model.data import load_mnist
    from vaegmm.model.mutual import MutualLearner

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    status, message, learner = "finished", "", None
    load_s = train_s = 0.0
    try:
        with threadpool_limits(1):
            cfg = RunConfig.from_dict(dict(config_dict)).replace(seed=int(seed)).validate()
            images, labels = load_mnist(cfg.data.n, cfg.data.digits, cfg.seed, cfg.data.source)
            load_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            learner = MutualLearner(cfg, images, labels, control=control)
            learner.run()
            train_s = time.perf_counter() - t1
    except StopRequested:
        status, message = "stopped", "stopped"
    except Exception as e:  # a run that raises is a failed run with its message; the sweep goes on
        it = (learner.iteration + 1) if learner is not None else None
        text = str(e) or type(e).__name__
        where = "" if it is None or text.startswith("iteration") else f"iteration {it}: "
        status, message = "failed", f"{where}{type(e).__name__}: {text}"
    finally:
        torch.set_num_threads(previous)
    history = learner.history if learner is not None else []
    iterations = []
    for r in history:
        m = r.metrics()
        m["recon"] = [round(v, 4) for v in m["recon"]]
        m["kl"] = [round(v, 4) for v in m["kl"]]
        iterations.append(m)
    return {"status": status, "message": message, "iterations": iterations,
            "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
            "load_seconds": load_s, "train_seconds": train_s, "host": socket.gethostname(), "pid": os.getpid()}
