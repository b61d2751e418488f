"""Two runs of one seed side by side: with and without the GMM's feedback (issue 19, the lecture's pair).

Both runs are the same :class:`~vaegmm.model.config.RunConfig` except ``feedback``: the same seed gives the same
image subset, the same initial weights (torch generator), the same mini-batch order and reparameterisation noise
and the same GMM random numbers, so until feedback first reaches the prior (iteration 2) the two runs compute
the same numbers, and every difference after that is the prior's doing (tests/test_pair.py checks it).

Why two worker processes and not one worker training both in turn: each run is an ordinary
:class:`~vaegmm.runs.runner.TrainingRun`, so both get the live snapshots, views, Stop, the run library and the
reconnect grace that every run has, and on a machine with two free slots both pictures move at the same time at
the speed of a single run (each worker gets ``cores // slots`` threads; 1 each on 2 cores, and a single run gains
little from a second thread at these sizes). One worker alternating the two would halve the speed of each and need
its own snapshot protocol. The price: the pair needs two free slots to move together; the two runs queue one
behind the other in the FIFO queue, so when one slot is busy the second waits (the page shows it) and starts as
soon as a slot frees.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from vaegmm.model.config import RunConfig

WITH, WITHOUT = "with feedback", "without feedback"
SIDES = (WITH, WITHOUT)


def pair_configs(config: RunConfig) -> tuple[RunConfig, RunConfig]:
    """``(with feedback, without feedback)``: copies of ``config`` that differ only in ``feedback``."""
    return config.replace(feedback=True), config.replace(feedback=False)


@dataclass
class Gap:
    """The accuracy gap at the latest iteration both runs have finished."""

    iteration: int
    with_feedback: float  # accuracy in [0, 1]
    without_feedback: float

    @property
    def points(self) -> float:
        """With minus without, in accuracy points (percentage points)."""
        return 100.0 * (self.with_feedback - self.without_feedback)

    def label(self) -> str:
        """e.g. ``"feedback +4.2 points (iteration 7)"``."""
        return f"feedback {self.points:+.1f} points (iteration {self.iteration})"


def accuracy_gap(with_history: Sequence, without_history: Sequence) -> Optional[Gap]:
    """The :class:`Gap` at the latest iteration present in both histories (lists of
    :class:`~vaegmm.model.mutual.IterationResult`), None before iteration 1 has finished in both (at iteration 0
    both are the same untrained picture)."""
    a = {r.iteration: r.accuracy for r in with_history}
    b = {r.iteration: r.accuracy for r in without_history}
    common = sorted(set(a) & set(b))
    if not common or common[-1] < 1:
        return None
    i = common[-1]
    return Gap(i, float(a[i]), float(b[i]))


class PairRun:
    """Two :class:`~vaegmm.runs.runner.TrainingRun` objects (or anything with ``start``, ``stop``, ``snapshot``),
    with feedback and without, started and stopped together."""

    def __init__(self, with_run, without_run):
        self.runs = {WITH: with_run, WITHOUT: without_run}

    @property
    def with_run(self):
        return self.runs[WITH]

    @property
    def without_run(self):
        return self.runs[WITHOUT]

    def start(self) -> bool:
        """Start both (with feedback first, so it is first in the queue); True when both started."""
        return all([self.with_run.start(), self.without_run.start()])

    def stop(self, reason: str = "") -> None:
        for run in self.runs.values():
            run.stop(reason)

    def snapshots(self) -> dict:
        """``{side: run.snapshot()}``, both taken now."""
        return {side: run.snapshot() for side, run in self.runs.items()}

    def gap(self) -> Optional[Gap]:
        return accuracy_gap(self.with_run.history, self.without_run.history)
