"""The live page's compute budget (issue 18): this server's measured rate, a run's cost at it, and the limit.

The rate is the one the Sweeps page's estimate uses (:mod:`vaegmm.sweeps.estimate`: the store's recent finished
runs on this host, here only those of at least 10^5 work units, whose time is their training, not their start-up;
else the server's calibration run, started here once when there are none, else the benchmark's constant); it is read from the store at most every :data:`RATE_TTL_S` seconds per server, not at
every refresh of every page.
"""
from __future__ import annotations

import threading
import time
from typing import Optional

from vaegmm.model.config import RunConfig
from vaegmm.sweeps.budget import (DASHBOARD_DEFAULT_MINUTES, RunCost, max_run_seconds, measured_rate, refusal,
                                  run_cost)
from vaegmm.sweeps.estimate import rate_or_calibration

RATE_TTL_S = 30.0
_lock = threading.Lock()
_cached: dict = {}  # "rate" -> (monotonic time, rate, basis)


def server_rate(store) -> tuple[Optional[float], str]:
    """Seconds per work unit on this server and where it comes from; ``(None, why)`` for the benchmark's."""
    with _lock:
        hit = _cached.get("rate")
        if hit is not None and time.monotonic() - hit[0] < RATE_TTL_S:
            return hit[1], hit[2]
    rate, basis = rate_or_calibration(*measured_rate(store))
    with _lock:
        if rate is not None:  # the rough one is not cached: the calibration may finish any moment
            _cached["rate"] = (time.monotonic(), rate, basis)
    return rate, basis


def forget_rate() -> None:
    """Read the rate again at the next call (tests; a run just finished)."""
    with _lock:
        _cached.clear()


def dashboard_limit_s() -> Optional[float]:
    """The dashboard's limit per run, in seconds (``$VAEGMM_MAX_RUN_MINUTES``, default 10 minutes)."""
    return max_run_seconds(DASHBOARD_DEFAULT_MINUTES)


def cost_of(config: RunConfig, store) -> RunCost:
    """What a run of ``config`` costs at this server's rate."""
    rate, basis = server_rate(store)
    return run_cost(config.to_dict(), rate, basis)


def budget_problem(config: Optional[RunConfig], store) -> str:
    """Why ``config`` may not start on this page (above the limit), or ``""``."""
    if config is None:
        return ""
    return refusal(cost_of(config, store), dashboard_limit_s())
