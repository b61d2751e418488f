"""CPU threads for torch, set once per process, deliberately.

Measured on the 2-core machine this project targets (BENCHMARKS.md, Speed): with OpenMP's default *active*
waiting, two torch threads made a VAE update 40x slower (9 s -> 420 s) whenever another process held one of the
cores, because every small parallel region waits for a thread the OS has not scheduled. ``OMP_WAIT_POLICY=PASSIVE``
(set in ``vaegmm/__init__.py`` unless the user set it) makes waiting threads sleep, so the worst case is one
thread's speed. Every run in a process shares the same cores: the dashboard gives each run cores // cap threads.
"""
from __future__ import annotations

import os
import threading

TORCH_THREADS_ENV = "VAEGMM_TORCH_THREADS"
_lock = threading.Lock()
_configured = False


def cpu_count() -> int:
    """Cores this process may use (affinity-aware where the OS tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def configure_torch_threads(capacity: int | None = None) -> int:
    """Set ``torch.set_num_threads`` once per process to ``$VAEGMM_TORCH_THREADS`` or, by default,
    ``max(1, cores // capacity)`` (``capacity`` = how many runs may train at once). Later calls return the value
    already set."""
    global _configured
    import torch

    with _lock:
        if not _configured:
            raw = os.environ.get(TORCH_THREADS_ENV, "").strip()
            n = int(raw) if raw.isdigit() and int(raw) > 0 else max(1, cpu_count() // max(1, capacity or 1))
            torch.set_num_threads(n)
            _configured = True
        return torch.get_num_threads()
