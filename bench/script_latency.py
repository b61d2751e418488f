#!/usr/bin/env python
"""Does training in the server's own process (threads) delay Streamlit's script runs? (issue 8)

A stand-in for one script run of the live page: build the 300-point latent scatter and the metrics chart as
Plotly figures and serialise them to JSON (what Streamlit sends to the browser), in the main thread, over and
over, while K tiny runs (the classroom's n=300 setting, made long) train
  (a) nowhere (idle baseline), (b) as K threads in this process (today's runner), (c) as K separate processes, (d) as K separate processes at nice 10.
Prints the median and 90th percentile of one "script run" in each case, measured in one script run, interleaved.

    python bench/script_latency.py --runs 6 --seconds 20
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CFG = dict(data__n=300, vae__latent_dim=4, vae__epochs=100000, vae__batch_size=100, iterations=1, gmm__backend="em")


def _train(stop_event, nice: int = 0) -> None:
    import torch

    if nice:
        os.nice(nice)

    from vaegmm.model.config import preset
    from vaegmm.model.control import RunControl, StopRequested
    from vaegmm.model.data import load_mnist
    from vaegmm.model.mutual import MutualLearner

    torch.set_num_threads(1)
    cfg = preset("quick-demo").replace(**CFG)
    x, y = load_mnist(cfg.data.n, cfg.data.digits, 0, "bundled")
    control = RunControl()
    learner = MutualLearner(cfg, x, y, control=control)
    threading.Thread(target=lambda: (stop_event.wait(), control.stop()), daemon=True).start()
    try:
        learner.step()
    except StopRequested:
        pass


def _script_run(result, labels) -> float:
    from dashboard import charts

    t0 = time.perf_counter()
    charts.latent_scatter(result, labels).to_json()
    charts.metrics_chart([result, result]).to_json()
    return time.perf_counter() - t0


def measure(seconds: float) -> list[float]:
    import numpy as np

    from vaegmm.model.mutual import IterationResult

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 30)
    r = IterationResult(0, rng.normal(size=(300, 4)).astype("f4"), rng.normal(size=(300, 4)).astype("f4"),
                        rng.normal(size=(300, 2)).astype("f4"), rng.integers(0, 10, 300), rng.normal(size=(10, 4)),
                        rng.normal(size=(10, 2)), np.full(10, 30), 0.5, 0.5, 0.5)
    out, t_end = [], time.monotonic() + seconds
    while time.monotonic() < t_end:
        out.append(_script_run(r, labels))
        time.sleep(0.05)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=6)
    p.add_argument("--seconds", type=float, default=20)
    a = p.parse_args()
    import torch

    torch.set_num_threads(1)
    measure(2)  # warm imports
    rows = []
    for mode in ("idle", "threads", "processes", "processes-nice", "idle"):
        if mode == "threads":
            ev = threading.Event()
            workers = [threading.Thread(target=_train, args=(ev,), daemon=True) for _ in range(a.runs)]
        elif mode.startswith("processes"):
            ctx = mp.get_context("spawn")
            ev = ctx.Event()
            nice = 10 if mode.endswith("nice") else 0
            workers = [ctx.Process(target=_train, args=(ev, nice), daemon=True) for _ in range(a.runs)]
        else:
            ev, workers = None, []
        for w in workers:
            w.start()
        time.sleep(8 if workers else 0)  # let them load torch and start training
        samples = measure(a.seconds)
        if ev is not None:
            ev.set()
        for w in workers:
            w.join(30)
        q = statistics.quantiles(samples, n=10)
        rows.append((mode, len(samples), statistics.median(samples) * 1000, q[-1] * 1000))
        print(f"{mode:>10}: {len(samples)} script runs, median {rows[-1][2]:.1f} ms, p90 {rows[-1][3]:.1f} ms",
              flush=True)


if __name__ == "__main__":
    main()
