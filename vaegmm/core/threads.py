"""CPU threads for torch: how many a run gets, decided per run from the cores that are free when it starts.

Measured on the 2-core machine this project targets (issue 17; its table is in git history: ``git show
86603c0:BENCHMARKS.md``, section "Speed (issue 17)"): one classic VAE update takes 8.7 s on 1 thread; 2 threads
with OpenMP's passive waiting 8.9 s (the second thread buys nothing, every small parallel region pays a wake-up); 2 threads whose idle threads spin a little before they sleep
(``GOMP_SPINCOUNT=10000``, set in ``vaegmm/__init__.py`` unless the user chose a policy) 4.7 s. But with one core
held by another process the same 2 spinning threads take 22.6 s, against 9.2 s on 1 thread: a second thread pays
only when its core is free. So each run takes ``min(cores // capacity, free cores)`` threads (``capacity`` = runs
that may train at once), where the free cores are the idle share of all cores over a short look at
``/proc/stat``; ``$VAEGMM_TORCH_THREADS`` overrides the choice.
"""
from __future__ import annotations

import os
import threading
import time

from vaegmm.core.env import env_positive_int

TORCH_THREADS_ENV = "VAEGMM_TORCH_THREADS"
_lock = threading.Lock()
_configured = False


def cpu_count() -> int:
    """Cores this process may use (affinity-aware where the OS tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies of all cores together from ``/proc/stat``; None where there is none."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):  # pragma: no cover - not Linux
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return idle, sum(fields[:8])  # guest time is already counted in user time


def free_cores(window: float = 0.2) -> float:
    """How many cores were idle, on average, over the next ``window`` seconds (0 .. ``os.cpu_count()``); all of
    them where the OS does not say. The caller's own thread is counted as busy only while it runs (it sleeps)."""
    first = _cpu_times()
    if first is None:  # pragma: no cover - not Linux
        return float(cpu_count())
    time.sleep(window)
    second = _cpu_times()
    total = second[1] - first[1]
    if total <= 0:
        return float(cpu_count())
    return (second[0] - first[0]) / total * (os.cpu_count() or 1)


def threads_for_run(capacity: int = 1, free: float | None = None) -> int:
    """Torch threads for one run: ``$VAEGMM_TORCH_THREADS``, else ``min(cores // capacity, free cores)`` with a
    core counted free when at least 3/4 of it is idle (``free``: :func:`free_cores`, measured when not given);
    at least 1."""
    forced = env_positive_int(TORCH_THREADS_ENV)
    if forced:
        return forced
    share = max(1, cpu_count() // max(1, capacity))
    if share == 1:
        return 1
    idle = free_cores() if free is None else free
    return max(1, min(share, int(idle + 0.25)))


def configure_torch_threads(capacity: int | None = None) -> int:
    """Set ``torch.set_num_threads`` once per process to :func:`threads_for_run` ``(capacity)`` (``capacity`` = how
    many runs may train at once). Later calls return the value already set."""
    global _configured
    import torch

    with _lock:
        if not _configured:
            torch.set_num_threads(threads_for_run(capacity or 1))
            _configured = True
        return torch.get_num_threads()
