"""How long a sweep will take, said before it starts.

A run's time grows with its work units (images x epochs x iterations: the VAE updates dominate). The rate, in
seconds per unit, comes from the store's recent finished runs on this host (:func:`seconds_per_unit`), else from
a short calibration run measured once per server process (:func:`server_calibration`), else from the benchmark's
constant.
"""
from __future__ import annotations

import socket
import threading
from typing import Any, Mapping, Optional

from vaegmm.core.singleton import process_singleton
from vaegmm.model.config import preset as make_preset
from vaegmm.sweeps.executors import LocalPoolExecutor
from vaegmm.sweeps.spec import SweepSpec

DEFAULT_SECONDS_PER_IMAGE_EPOCH = 3.4e-5  # BENCHMARKS.md: a classic run (3000 x 200 x 5) ~100 s at 2 side by side


def work_units(config: Mapping[str, Any]) -> float:
    """Images x epochs x iterations of a ``RunConfig.to_dict()``: what a run's time grows with."""
    return float(config["data"]["n"]) * float(config["vae"]["epochs"]) * max(1, int(config["iterations"]))


def seconds_per_unit(store, limit: int = 100) -> tuple[Optional[float], str]:
    """The median wall seconds per work unit of the store's recent finished runs on this host, and where it comes
    from; (None, "") when none. Runs shorter than 2 s are skipped (their start-up costs dominate)."""
    host = socket.gethostname()
    rates = []
    for r in store.list_runs(status="finished", limit=limit * 3, newest_first=True):
        if r.get("host") not in (None, host) or not r.get("seconds") or r["seconds"] < 2:
            continue
        try:
            rates.append(r["seconds"] / work_units(r["config"]))
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            continue
        if len(rates) >= limit:
            break
    if not rates:
        return None, ""
    rates.sort()
    return rates[len(rates) // 2], f"from {len(rates)} earlier run{'s' if len(rates) != 1 else ''} on this server"


def estimate_seconds(spec: SweepSpec, lanes: int, rate: Optional[float] = None) -> float:
    """Seconds the sweep's runs take at ``lanes`` side by side, from a seconds-per-work-unit ``rate`` (default:
    the benchmark's); each run also pays about 1 s of start-up."""
    rate = rate if rate is not None else DEFAULT_SECONDS_PER_IMAGE_EPOCH
    total = sum(work_units(c.config) * rate + 1.0 for c in spec.cells()) * len(spec.seeds)
    return total / max(1, lanes)


def calibration_config() -> dict:
    """The calibration run: project default shrunk to 500 images x 10 epochs x 1 iteration."""
    return make_preset("project-default").replace(data__n=500, vae__epochs=10, iterations=1, gmm__n_init=2).to_dict()


def calibrate() -> float:
    """Seconds per work unit measured now: one short run (about 2 s of one core) in a worker process, so the
    caller's threads (a server's live runs) are not touched."""
    ex = LocalPoolExecutor(1)
    try:
        res = ex.run(0, calibration_config(), 0, threading.Event())
    finally:
        ex.close()
    if res.get("status") != "finished":
        raise RuntimeError(f"calibration run {res.get('status')}: {res.get('message')}")
    return res["train_seconds"] / work_units(calibration_config())


class Calibration:
    """A calibration in a background thread, started once: ``rate`` is None until it has finished, ``error``
    says why it failed (the estimate then falls back to the benchmark's constant)."""

    def __init__(self) -> None:
        self.rate: Optional[float] = None
        self.error = ""
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._measure, name="vaegmm-calibrate", daemon=True)
            self._thread.start()

    def _measure(self) -> None:
        try:
            self.rate = calibrate()
        except Exception as e:  # the estimate falls back to the benchmark's constant
            self.error = str(e)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait for a calibration under way to end; True when none is running any more."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.running


@process_singleton
def server_calibration() -> Calibration:
    """The process-wide :class:`Calibration` (one per server: its rate is this machine's)."""
    return Calibration()


def rate_or_calibration(rate: Optional[float], basis: str) -> tuple[Optional[float], str]:
    """``(rate, basis)`` measured from the store, else this server's calibration run's rate (started here once
    when there is none), else ``(None, why)``: the benchmark's constant applies, and ``why`` says so."""
    if rate is not None:
        return rate, basis
    cal = server_calibration()
    if cal.rate is None and not cal.error:
        cal.start()
    if cal.rate is not None:
        return cal.rate, "from a calibration run on this server"
    return None, "rough: from BENCHMARKS.md, " + ("measuring this server now…" if cal.running
                                                 else "no run measured on this server yet")
