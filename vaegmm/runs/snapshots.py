"""The latent space while the VAE trains: snapshots of all codes during a VAE update.

About every ``every`` seconds of a VAE update (checked after each epoch) the worker encodes all images (the
encoder's means: about 0.6 GFLOP for 3000 images, about 10 ms of CPU) and sends them with the 2-D PCA of the last
finished iteration applied, so the points move in a fixed frame while the classes drift toward their means.
"Seconds" are the training thread's CPU seconds, so that on a busy machine (where an update's wall time
stretches) a snapshot still costs the same share of the training, about 2 % at 0.5 s; but never more than
``max_gap`` wall seconds pass between two, so the picture keeps moving. The codes
travel as float16 (``N x D x 2`` bytes: 108 kB for 3000 x 18) for the other 2-D views; what a run keeps of them is
bounded by :class:`SnapshotLog`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

from vaegmm.model.vae import encode_all

HALF_MAX = float(np.finfo(np.float16).max)


def to_half(a) -> np.ndarray:
    """``a`` as float16, values beyond float16's range clipped to it (a diverging run's codes would otherwise
    overflow to inf, with a RuntimeWarning); NaN stays NaN. Same shape as ``a``."""
    return np.clip(np.asarray(a, dtype=np.float32), -HALF_MAX, HALF_MAX).astype(np.float16)


DEFAULT_EVERY = 0.5  # CPU seconds of training between snapshots during a VAE update
DEFAULT_MAX_GAP = 1.5  # ... but at most this many wall seconds


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
    """A progress callback for :class:`~vaegmm.model.mutual.MutualLearner` that sends ``("snapshot", CodeSnapshot)``.

    ``every``: CPU seconds of the training thread between snapshots (0 or None: never); ``max_gap``: wall seconds
    after which a snapshot is taken anyway. The first snapshot of an update comes after its first epoch, so a long
    update shows motion at once."""

    def __init__(self, learner, send, every: Optional[float] = DEFAULT_EVERY, max_gap: float = DEFAULT_MAX_GAP):
        self.learner = learner
        self.send = send
        self.every = every
        self.max_gap = max_gap
        self._last = -1e9  # wall clock (monotonic) of the last snapshot
        self._last_cpu = -1e9  # the training thread's CPU clock then
        self._iteration = -1
        self._started = 0.0
        self.seconds_spent = 0.0  # CPU seconds spent taking snapshots, for the overhead measurement
        self.count = 0  # snapshots sent

    def __call__(self, ev) -> None:
        if not self.every or ev.phase != "vae" or ev.epoch >= ev.epochs:
            return  # the iteration's final codes come with its result
        now = time.monotonic()
        cpu = time.thread_time()
        if ev.iteration != self._iteration:
            self._iteration, self._started, self._last, self._last_cpu = ev.iteration, now, -1e9, -1e9
        if cpu - self._last_cpu < self.every and now - self._last < max(self.every, self.max_gap):
            return
        snap = self.take(ev.iteration, ev.epoch, ev.epochs, now - self._started)
        self._last, self._last_cpu = time.monotonic(), time.thread_time()
        self.seconds_spent += self._last_cpu - cpu
        if snap is not None:
            self.count += 1
            self.send("snapshot", snap)

    def take(self, iteration: int, epoch: int, epochs: int, seconds: float) -> Optional[CodeSnapshot]:

        history = self.learner.history
        if not history or history[-1].pca is None:
            return None
        mu, _ = encode_all(self.learner.model, self.learner.x)
        self.learner.model.train()
        return CodeSnapshot(iteration, epoch, epochs, to_half(mu), history[-1].pca.transform(mu), seconds)


@dataclass
class LogFrame:
    """One in-update snapshot as kept for Replay: 2-D projections only (float16: a screen needs no more)."""

    iteration: int  # the iteration whose VAE update it shows (1-based)
    epoch: int
    epochs: int
    seconds: float  # since that VAE update started
    pca: np.ndarray  # (N, 2) float16, in the PCA axes of iteration ``iteration - 1``
    lda: Optional[np.ndarray]  # (N, 2) float16 in the LDA axes of iteration ``iteration - 1``; None: no LDA

    @property
    def nbytes(self) -> int:
        return self.pca.nbytes + (0 if self.lda is None else self.lda.nbytes)


DEFAULT_LOG_BYTES = 8 << 20  # 8 MiB of frames per run: 349 frames of 3000 points


class SnapshotLog:
    """A bounded record of a run's in-update snapshots across all its iterations, for Replay and the animation.

    Memory bound: the frames take at most ``max_bytes`` (default 8 MiB) plus one frame: a frame is its PCA and LDA
    projections as float16, ``N x 8`` bytes (24 kB for 3000 points: 349 frames, about 17 VAE updates of the classic
    preset at one snapshot per 0.5 s). No codes are kept here (the run keeps the latest snapshot's codes only).
    When the next frame would pass the bound, every other frame is dropped and from then on only every 2nd (then
    4th, ...) snapshot is taken in, so the frames stay evenly spaced over the whole run, at least ``min_frames``
    of them. Thread-safe."""

    def __init__(self, max_bytes: int = DEFAULT_LOG_BYTES, min_frames: int = 16):
        self.max_bytes = int(max_bytes)
        self.min_frames = int(min_frames)
        self.stride = 1  # take in every stride-th snapshot
        self._seen = 0
        self._frames: list[LogFrame] = []
        self._bytes = 0
        import threading

        self._lock = threading.Lock()

    def wants_next(self) -> bool:
        """Whether the next snapshot offered will be kept (so a caller can skip computing its projections)."""
        with self._lock:
            return self._seen % self.stride == 0

    def skip(self) -> None:
        """Count a snapshot that :meth:`wants_next` said would not be kept."""
        with self._lock:
            self._seen += 1

    def add(self, frame: LogFrame) -> bool:
        """Offer the next snapshot; returns whether it was kept."""
        with self._lock:
            seen, self._seen = self._seen, self._seen + 1
            if seen % self.stride:
                return False
            while (self._bytes + frame.nbytes > self.max_bytes and len(self._frames) >= self.min_frames):
                self._frames = self._frames[::2]
                self._bytes = sum(f.nbytes for f in self._frames)
                self.stride *= 2
            if seen % self.stride:  # not on the new, coarser grid
                return False
            self._frames.append(frame)
            self._bytes += frame.nbytes
            return True

    def frames(self) -> list[LogFrame]:
        with self._lock:
            return list(self._frames)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._bytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._frames)


def replay_frame(snap: CodeSnapshot, views, history: list) -> LogFrame:
    """The replay log's frame of an in-update snapshot: its 2-D PCA projection and its codes in the LDA axes of
    the last finished iteration (``views``: the run's :class:`~vaegmm.views.latent2d.RunViews`; the axes are
    fitted once per iteration, in milliseconds). No LDA picture when the axes cannot be fitted."""
    try:
        lda = to_half(views.lda_axes(history, snap.iteration - 1).transform(snap.codes))
    except (ValueError, StopIteration, KeyError):
        lda = None
    return LogFrame(snap.iteration, snap.epoch, snap.epochs, snap.seconds, to_half(snap.projection), lda)
