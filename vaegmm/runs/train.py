"""The one way to train a run: :func:`train_run` loads the data, builds the
:class:`~vaegmm.model.mutual.MutualLearner`, computes iteration 0 and then every mutual iteration of the config,
and returns what happened as a :class:`TrainedRun`. The dashboard's worker process
(:mod:`vaegmm.runs.worker`), a sweep's cell (:func:`vaegmm.sweeps.cell.run_one`) and ``python -m vaegmm run``
all call it; each turns the outcome into its own messages.

The loop knows nothing about printing, pipes or stores: it reports through ``callbacks`` (the learner's
:class:`~vaegmm.model.mutual.ProgressEvent` records) and three hooks, ``on_data``, ``on_learner`` and
``on_result``.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping, Optional, Sequence

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from vaegmm.model.config import RunConfig
from vaegmm.model.control import RunControl, StopRequested
from vaegmm.model.data import DataSplit, HeldOut, heldout_summary, load_mnist, load_split
from vaegmm.model.mutual import IterationResult, MutualLearner
from vaegmm.runs.state import FAILED, FINISHED, STOPPED

Loader = Callable[..., tuple]  # (n, digits, seed, source) -> (images (N, 784) float32 in [0, 1], labels (N,))
AUTO = "auto"  # train_run's heldout: the config's own held-out set (vaegmm.model.data.load_split)


@dataclass
class TrainedRun:
    """The outcome of :func:`train_run`. ``status`` is FINISHED, STOPPED or FAILED (:mod:`vaegmm.runs.state`); on a failure
    ``error`` is the exception, ``failed_loading`` tells whether the data could not be loaded, and ``iteration``
    is the iteration that was in progress (0 = the untrained picture; None before the learner existed)."""

    config: Optional[RunConfig]  # None when the settings given could not be read
    status: str = FINISHED
    history: list[IterationResult] = field(default_factory=list)
    labels: Optional[np.ndarray] = None  # (N,)
    error: Optional[BaseException] = None
    failed_loading: bool = False
    iteration: Optional[int] = None
    load_seconds: float = 0.0  # loading the data (0 when it failed)
    train_seconds: float = 0.0  # building the learner and training, until the end (finished or not)
    heldout: Optional[HeldOut] = None  # the images set aside (None: no held-out set)
    no_heldout: str = ""  # why there is no held-out set, in words

    def error_text(self) -> str:
        """The error's message, or its type's name when it has none ("" without an error)."""
        if self.error is None:
            return ""
        return str(self.error) or type(self.error).__name__


def load_data(config: RunConfig, loader: Optional[Loader] = None) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """``(images (N, 784) float32, labels (N,) or None)`` of ``config.data`` from ``loader`` (default
    :func:`~vaegmm.model.data.load_mnist`). A source that cannot deliver raises ``ValueError``."""
    loader = load_mnist if loader is None else loader
    images, labels = loader(config.data.n, config.data.digits, config.seed, config.data.source)
    return images, None if labels is None else np.asarray(labels)


def load_data_split(config: RunConfig) -> DataSplit:
    """The training images and labels of ``config.data`` and its held-out set
    (:func:`~vaegmm.model.data.load_split`). A source that cannot deliver raises ``ValueError``."""
    return load_split(config.data.n, config.data.digits, config.seed, config.data.source)


@contextlib.contextmanager
def pinned_threads(threads: Optional[int]) -> Iterator[None]:
    """Torch and BLAS at ``threads`` threads inside the block (torch's count restored after it); ``None``
    leaves both as they are. Runs side by side must not oversubscribe the cores."""
    if threads is None:
        yield
        return
    n = max(1, int(threads))
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(n):
            yield
    finally:
        torch.set_num_threads(previous)


def train_run(config: RunConfig | Mapping, callbacks: Sequence[Callable] = (), control: Optional[RunControl] = None,
              loader: Optional[Loader] = None, data: Optional[tuple] = None, threads: Optional[int] = None,
              on_data: Optional[Callable] = None, on_learner: Optional[Callable] = None,
              on_result: Optional[Callable] = None, stop_on_interrupt: bool = False,
              heldout: Optional[HeldOut] | str = AUTO, on_heldout: Optional[Callable] = None) -> TrainedRun:
    """Train one run of ``config`` (a :class:`~vaegmm.model.config.RunConfig` or its ``to_dict()``) and return
    its :class:`TrainedRun`; never raises for a failed run (bad settings included).

    ``callbacks``: called with every :class:`~vaegmm.model.mutual.ProgressEvent` of the learner. ``control``:
    a :class:`~vaegmm.model.control.RunControl` checked between mini-batches and iterations (pause, stop).
    ``data``: ``(images, labels)`` already loaded, else :func:`load_data` with ``loader``. ``threads``: pin torch
    and BLAS to that many threads for the run (:func:`pinned_threads`). Hooks: ``on_data(images, labels)`` once
    the data is loaded, ``on_learner(learner)`` before iteration 0 (to add callbacks that need the learner),
    ``on_result(result, seconds)`` after each finished iteration (0 first; ``seconds`` is its wall time).
    ``stop_on_interrupt``: a Ctrl-C (``KeyboardInterrupt``) ends the run as stopped instead of propagating.
    ``heldout``: the images recognised after each iteration (:class:`~vaegmm.model.data.HeldOut`), None for none,
    or ``"auto"``: the config's held-out set when the data comes from the config's source (no ``data``, no
    ``loader``), else none. ``on_heldout(summary)`` is called once after ``on_data`` with
    :func:`~vaegmm.model.data.heldout_summary` (how many held-out images, from where, or why there are none).
    """
    out = TrainedRun(config if isinstance(config, RunConfig) else None)
    control = control if control is not None else RunControl()
    learner: Optional[MutualLearner] = None
    t0 = time.perf_counter()
    loaded = False
    try:
        with pinned_threads(threads):
            if not isinstance(config, RunConfig):
                config = RunConfig.from_dict(dict(config))
            config = out.config = config.validate()
            control.checkpoint()
            if data is None:
                try:
                    if loader is None and heldout == AUTO:
                        split = load_data_split(config)
                        data, heldout, out.no_heldout = (split.images, split.labels), split.heldout, split.no_heldout
                    else:
                        data = load_data(config, loader)
                except ValueError:  # a DataSourceError is a ValueError
                    out.failed_loading = True
                    raise
            if isinstance(heldout, str):  # "auto" with data or a loader given: no held-out set
                heldout, out.no_heldout = None, out.no_heldout or "the run's data was given without a held-out set"
            out.heldout = heldout
            images, labels = data
            out.labels = None if labels is None else np.asarray(labels)
            out.load_seconds, loaded = time.perf_counter() - t0, True
            if on_data is not None:
                on_data(images, out.labels)
            if on_heldout is not None:
                on_heldout(heldout_summary(out.heldout, out.no_heldout))
            control.checkpoint()
            learner = MutualLearner(config, images, out.labels, callbacks=list(callbacks), control=control,
                                    heldout=heldout)
            out.history = learner.history
            if on_learner is not None:
                on_learner(learner)
            _iterate(learner, control, on_result)
    except StopRequested:
        out.status = STOPPED
    except KeyboardInterrupt as e:
        if not stop_on_interrupt:
            raise
        out.status, out.error = STOPPED, e
    except Exception as e:  # a failed run: the caller writes the message; the history so far is kept
        out.status, out.error = FAILED, e
        out.iteration = learner.iteration + 1 if learner is not None else None
    if loaded:
        out.train_seconds = time.perf_counter() - t0 - out.load_seconds
    return out


def _iterate(learner: MutualLearner, control: RunControl, on_result: Optional[Callable]) -> None:
    """Iteration 0, then every remaining iteration, each reported to ``on_result(result, seconds)``."""
    t0 = time.perf_counter()
    result = learner.begin()
    if on_result is not None:
        on_result(result, time.perf_counter() - t0)
    while learner.iteration < learner.config.iterations:
        control.checkpoint()
        t0 = time.perf_counter()
        result = learner.step()
        if on_result is not None:
            on_result(result, time.perf_counter() - t0)
