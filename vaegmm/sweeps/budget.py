"""A run's compute budget (issue 18): what a run will cost before it starts, and the server's limit.

The cost of a run (:func:`run_cost`) is its VAE image-steps (images x epochs x iterations: each image through
the encoder and decoder once per epoch), its GMM point-updates (images x sweeps or EM restarts x the GMM fits,
iteration 0 included) and the seconds both take at this server's measured rate: the rate in seconds per work
unit of :mod:`vaegmm.sweeps.estimate` (the store's recent runs on this host, else the calibration run, else the
benchmark's constant), plus a per-mini-batch overhead that the rate, measured at batches of hundreds, does not
see: a run at batch 1 pays ~2.2 ms per mini-batch here (quick-demo network, 400 images x 3 epochs, one thread:
2.69 s of VAE update at batch 1, 0.31 s at batch 10, 0.055 s at batch 500).

The limit is ``$VAEGMM_MAX_RUN_MINUTES``: the dashboard refuses a run whose estimate is above it (default 10
minutes there, :data:`DASHBOARD_DEFAULT_MINUTES`); the CLI and sweeps have no limit unless the variable is set
(:func:`max_run_seconds` with ``default_minutes=None``). ``0`` or a negative value means no limit. A run that is
allowed is stopped when it has trained for more than :data:`OVERTIME_FACTOR` times its estimate
(:func:`overtime_seconds`; the runner's watchdog, :mod:`vaegmm.runs.runner`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from vaegmm.core.env import env_str
from vaegmm.sweeps.estimate import DEFAULT_SECONDS_PER_IMAGE_EPOCH, seconds_per_unit, work_units

MAX_MINUTES_ENV = "VAEGMM_MAX_RUN_MINUTES"
DASHBOARD_DEFAULT_MINUTES = 10.0
OVERTIME_FACTOR = 2.0
OVERTIME_SLACK_S = 120.0  # start-up, loading, a busy machine: a short run is not stopped in its first 2 minutes
# (a 200-image run, estimated at 1 s, was stopped at 30 s while iteration 0 waited on 2 cores at load 5-6)
STARTUP_SECONDS = 1.0  # a run's start-up, as in estimate_seconds
MINIBATCH_SECONDS = 2.2e-3  # measured here (module docstring): the cost of one mini-batch beyond its images


MIN_RATE_UNITS = 1e5  # runs smaller than this are left out of the rate: their start-up dominates (a 200 x 2 x 2 run
# of the test suite takes ~3 s for 800 units, 100x the rate of a quick-demo run)


class _BigRuns:
    """A store seen through :func:`~vaegmm.sweeps.estimate.seconds_per_unit` with only the runs of at least
    :data:`MIN_RATE_UNITS` work units (the estimate's own rule, on the runs whose time is their training)."""

    def __init__(self, store):
        self._store = store

    def list_runs(self, **kw):
        rows = self._store.list_runs(**kw)
        out = []
        for r in rows:
            try:
                if work_units(r["config"]) >= MIN_RATE_UNITS:
                    out.append(r)
            except (KeyError, TypeError, ValueError):
                continue
        return out


def measured_rate(store) -> tuple[Optional[float], str]:
    """Seconds per work unit from ``store``'s recent finished runs on this host of at least
    :data:`MIN_RATE_UNITS` units (:func:`~vaegmm.sweeps.estimate.seconds_per_unit`); ``(None, "")`` when none."""
    return seconds_per_unit(_BigRuns(store)) if store is not None else (None, "")


def max_run_seconds(default_minutes: Optional[float] = None) -> Optional[float]:
    """The longest estimated run allowed, in seconds: ``$VAEGMM_MAX_RUN_MINUTES`` when set (a number > 0;
    ``0`` or less = no limit), else ``default_minutes`` (None = no limit). An unparsable value is ignored."""
    raw = env_str(MAX_MINUTES_ENV)
    minutes = default_minutes
    if raw:
        try:
            minutes = float(raw)
        except ValueError:
            minutes = default_minutes
        if minutes is not None and (minutes != minutes or minutes <= 0):  # NaN, 0, negative: no limit
            return None
    return None if minutes is None else float(minutes) * 60.0


@dataclass(frozen=True)
class RunCost:
    """What one run costs. ``vae_image_steps``: images x epochs x iterations; ``gmm_point_steps``: images x (Gibbs
    sweeps or EM restarts) x (iterations + 1); ``seconds``: the estimate at ``rate`` s per work unit; ``basis``:
    where the rate comes from (for the page)."""

    vae_image_steps: float
    gmm_point_steps: float
    mini_batches: float
    seconds: float
    rate: float
    basis: str

    @property
    def image_steps(self) -> float:
        return self.vae_image_steps + self.gmm_point_steps


def run_cost(config: Mapping[str, Any], rate: Optional[float] = None, basis: str = "") -> RunCost:
    """The :class:`RunCost` of a ``RunConfig.to_dict()`` at ``rate`` seconds per work unit (default: the
    benchmark's, :data:`~vaegmm.sweeps.estimate.DEFAULT_SECONDS_PER_IMAGE_EPOCH`)."""
    rate = DEFAULT_SECONDS_PER_IMAGE_EPOCH if rate is None else float(rate)
    n, vae, gmm = int(config["data"]["n"]), config["vae"], config["gmm"]
    iterations = max(1, int(config["iterations"]))
    units = work_units(config)  # n x epochs x iterations: the VAE image-steps
    per_fit = int(gmm["n_init"]) if gmm.get("backend", "em") == "em" else int(gmm["sweeps"]) * int(gmm.get("chains", 1))
    batches = math.ceil(n / max(1, int(vae["batch_size"]))) * int(vae["epochs"]) * iterations
    seconds = units * rate + batches * MINIBATCH_SECONDS + STARTUP_SECONDS
    return RunCost(units, float(n * per_fit * (iterations + 1)), float(batches), seconds, rate, basis)


def refusal(cost: RunCost, limit_s: Optional[float]) -> str:
    """Why a run of ``cost`` may not start under ``limit_s`` seconds (:func:`max_run_seconds`), or ``""``."""
    if limit_s is None or cost.seconds <= limit_s:
        return ""
    return (f"This run is too big for this server: about {_minutes(cost.seconds)} of training "
            f"({cost.vae_image_steps:,.0f} VAE image-steps) at this server's speed, and the limit is "
            f"{_minutes(limit_s)} per run (${MAX_MINUTES_ENV}). Use fewer images, epochs or iterations, or a "
            f"bigger batch.")


def limit_refusal(config: Mapping[str, Any], store=None, default_minutes: Optional[float] = None) -> str:
    """For the CLI: why ``config`` may not run under ``$VAEGMM_MAX_RUN_MINUTES`` (no limit unless it is set), at
    the rate of ``store``'s runs on this host (else the benchmark's); ``""`` when it may. Nothing is read from
    the store when there is no limit."""
    limit = max_run_seconds(default_minutes)
    if limit is None:
        return ""
    rate, basis = measured_rate(store)
    return refusal(run_cost(config, rate, basis), limit)


def overtime_seconds(cost: RunCost) -> float:
    """Training seconds after which a run is stopped: :data:`OVERTIME_FACTOR` x its estimate, at least
    :data:`OVERTIME_SLACK_S` more than the estimate."""
    return max(OVERTIME_FACTOR * cost.seconds, cost.seconds + OVERTIME_SLACK_S)


def _minutes(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
