"""Identical runs are not trained twice (issue 18): the key that says two runs are the same, the live runs by
key (a second Start with the same key joins the one training), and the library's finished run with that key.

What makes two runs equal, measured on this server (an AMD EPYC, AVX2 only, 2 cores; ``/tmp`` scripts quoted in
the commit): the same ``RunConfig.to_dict()`` and seed give bit-identical codes and the same accuracies on 1 and
on 2 torch threads (quick-demo and Serket-classic shrunk to 300 images, and both at full size, 3000 images,
batch 500, 2 epochs), and ``precision="auto"`` gives exactly what ``"fp32"`` gives, because ``auto`` resolves to
fp32 on a CPU without native bf16. So the key is the config with ``precision`` replaced by the *resolved*
precision (``fp32`` or ``bf16``: bf16 rounds differently), ``device`` by the resolved device type, and the seed;
the thread count is left out (it does not change the accuracies, measured below). On a CPU with native bf16,
``auto`` resolves to bf16 and keys with ``bf16``. Measured again on a 2-core AMD EPYC Zen 4 with AVX512-BF16 (``python
bench/determinism.py``, 2026-12-07): 1 and 2 threads give bit-identical codes in bf16 and for serket-classic in
fp32; quick-demo's fp32 codes differ in the last bits (MKL's fp32 multiplies split differently), its accuracies
do not, so a replayed run may differ from a fresh one in the codes' last bits, not in what the page shows.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Optional

import torch

from vaegmm.core.env import env_str
from vaegmm.core.singleton import process_singleton
from vaegmm.model.config import PRECISIONS, RunConfig
from vaegmm.model.vae import compute_dtype, resolve_device
from vaegmm.runs.state import ACTIVE
from vaegmm.store.keys import config_hash, run_key


REUSE_ENV = "VAEGMM_REUSE"


def reuse_enabled() -> bool:
    """Whether Start joins or replays identical runs (``$VAEGMM_REUSE``: on unless ``off``/``0``/``no``; the test
    suite turns it off so that its many identical tiny runs still train, tests/conftest.py)."""
    return env_str(REUSE_ENV, "on").lower() not in ("off", "0", "no", "false")


def resolved_precision(config: RunConfig) -> str:
    """``"fp32"`` or ``"bf16"``: what the run's matrix multiplies really use on this machine."""
    dtype = compute_dtype(config.vae.precision, resolve_device(config.vae.device))
    return "bf16" if dtype == torch.bfloat16 else "fp32"


def reuse_key(config: RunConfig) -> str:
    """``<hash>-<seed>``: equal for runs that give the same numbers on this server (see the module docstring)."""
    d = config.to_dict()
    d["vae"]["precision"] = resolved_precision(config)
    d["vae"]["device"] = resolve_device(config.vae.device).type
    return f"{config_hash(d)}-{int(config.seed)}"


def equivalent_store_keys(config: RunConfig) -> list[str]:
    """The store's run keys (:func:`vaegmm.store.keys.run_key`, which ignores the device) of every precision
    setting that resolves like ``config``'s here: on this CPU ``auto`` and ``fp32`` find each other's runs."""
    mine = resolved_precision(config)
    keys = []
    for p in PRECISIONS:
        other = config.replace(vae__precision=p)
        if resolved_precision(other) == mine:
            keys.append(run_key(other, config.seed))
    return keys


def finished_in_store(store, config: RunConfig) -> Optional[dict]:
    """The newest finished run of the store with ``config``'s key (any equivalent precision), or None."""
    rows = []
    for key in equivalent_store_keys(config):
        rows += store.list_runs(status="finished", key=key, newest_first=True, limit=5)
    rows.sort(key=lambda r: r["id"], reverse=True)
    return rows[0] if rows else None


@dataclass
class LiveEntry:
    """A live run by key: the run (a :class:`~vaegmm.runs.runner.TrainingRun`), when it was started
    (``time.time()``) and who follows it besides its owner (the dashboard's sessions)."""

    run: object
    started: float
    followers: set = field(default_factory=set)


class LiveRuns:
    """The runs training now, by :func:`reuse_key` (thread-safe). A run is found while it is active (queued,
    running or paused); a finished, stopped or failed one is forgotten when next looked up."""

    def __init__(self) -> None:
        self._runs: dict[str, LiveEntry] = {}
        self._lock = threading.Lock()

    def add(self, key: str, run, started: Optional[float] = None) -> LiveEntry:
        with self._lock:
            entry = self._runs[key] = LiveEntry(run, time.time() if started is None else started)
            return entry

    def find(self, key: str) -> Optional[LiveEntry]:
        """The active run with ``key``, or None."""
        with self._lock:
            entry = self._runs.get(key)
            if entry is None:
                return None
            if entry.run.state not in ACTIVE:
                del self._runs[key]
                return None
            return entry

    def followers_of(self, run) -> list:
        """Who follows ``run`` (empty when it is not live here)."""
        with self._lock:
            return [f for e in self._runs.values() if e.run is run for f in e.followers]

    def follow(self, entry: LiveEntry, follower) -> None:
        """``follower`` follows ``entry``'s run (under the lock: other sessions read the followers meanwhile)."""
        with self._lock:
            entry.followers.add(follower)

    def unfollow(self, run, follower) -> None:
        """``follower`` no longer follows ``run``."""
        with self._lock:
            for e in self._runs.values():
                if e.run is run:
                    e.followers.discard(follower)

    def __len__(self) -> int:
        with self._lock:
            return len(self._runs)


@process_singleton
def live_runs() -> LiveRuns:
    """The server's live runs by key (one per process: every session's Start looks here)."""
    return LiveRuns()
