"""The latent space while the VAE trains: snapshots of all codes during a VAE update.

Every ``every`` seconds of a VAE update (checked after each epoch) the worker encodes all images (the encoder's
means: about 0.3 GFLOP for 3000 images, a few milliseconds) and sends them with the 2-D PCA of the last finished
iteration applied, so the points move in a fixed frame while the classes drift toward their means. The codes
travel as float16 (``N x D x 2`` bytes: 108 kB for 3000 x 18) for the other 2-D views; what a run keeps of them is
bounded by :class:`SnapshotLog`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

DEFAULT_EVERY = 0.5  # seconds between snapshots during a VAE update


@dataclass
class CodeSnapshot:
    """Codes during the VAE update of ``iteration`` (1-based), after ``epoch`` of ``epochs`` epochs."""

    iteration: int
    epoch: int
    epochs: int
    codes: np.ndarray  # (N, D) float16: encoder means
    projection: np.ndarray  # (N, 2) float32: in the 2-D PCA axes of iteration ``iteration - 1``
    seconds: float  # since the VAE update started


class SnapshotTaker:
    """A progress callback for :class:`~vaegmm.mutual.MutualLearner` that sends ``("snapshot", CodeSnapshot)``.

    ``every``: seconds between snapshots (0 or None: never). The first snapshot of an update comes after its first
    epoch, so a long update shows motion at once."""

    def __init__(self, learner, send, every: Optional[float] = DEFAULT_EVERY):
        self.learner = learner
        self.send = send
        self.every = every
        self._last = -1e9
        self._iteration = -1
        self._started = 0.0
        self.seconds_spent = 0.0  # encoding time, for the overhead measurement

    def __call__(self, ev) -> None:
        if not self.every or ev.phase != "vae" or ev.epoch >= ev.epochs:
            return  # the iteration's final codes come with its result
        now = time.monotonic()
        if ev.iteration != self._iteration:
            self._iteration, self._started, self._last = ev.iteration, now, -1e9
        if now - self._last < self.every:
            return
        t0 = time.perf_counter()
        snap = self.take(ev.iteration, ev.epoch, ev.epochs, now - self._started)
        self.seconds_spent += time.perf_counter() - t0
        self._last = time.monotonic()
        if snap is not None:
            self.send("snapshot", snap)

    def take(self, iteration: int, epoch: int, epochs: int, seconds: float) -> Optional[CodeSnapshot]:
        from .vae import encode_all

        history = self.learner.history
        if not history or history[-1].pca is None:
            return None
        mu, _ = encode_all(self.learner.model, self.learner.x)
        self.learner.model.train()
        return CodeSnapshot(iteration, epoch, epochs, mu.astype(np.float16), history[-1].pca.transform(mu), seconds)
