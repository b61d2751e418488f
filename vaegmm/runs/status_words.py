"""A run's status in words, from its :class:`~vaegmm.runs.state.Snapshot`, one place for every page that shows it:
the owner's status line (``dashboard/components/status.py``) and a follower's frame (``dashboard/follow/frames.py``)
say the same thing in the same words, e.g. ``"run 3 · iteration 2 of 5 · 1.2 s per iteration"``, with the
progress bar's ``(fraction, text)`` beside it.

The run's name is its **library id** when it has one (the share link's ``?run=<id>``, the follower page's
title "Run #<id>"), else the server's own ``run <n>`` (a run without a library, or before it took its slot).
"""
from __future__ import annotations

import time
from typing import Optional

from vaegmm.runs.state import FINISHED, PAUSED, QUEUED, RUNNING


def seconds_text(s: Optional[float]) -> str:
    """``"4.2 s"`` or, from two minutes, ``"3.5 min"``; ``"–"`` when unknown."""
    if s is None:
        return "–"
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def run_name(snap, library_id: Optional[int] = None) -> str:
    """``"run <library id>"`` when the run has one, else the snapshot's own name (``"run <server id>"``)."""
    return snap.name if library_id is None else f"run {int(library_id)}"


def in_progress(snap) -> bool:
    """Whether an iteration is under way (running or paused inside it)."""
    cfg, p, done = snap.config, snap.progress, snap.iterations_done
    return snap.state in (RUNNING, PAUSED) and p.phase not in ("done", "") and done < cfg.iterations


def iteration_text(snap) -> str:
    """``"iteration i of n"``: the one under way, else the number finished."""
    i = snap.progress.iteration if in_progress(snap) else snap.iterations_done
    return f"iteration {i} of {snap.config.iterations}"


def per_iteration_text(snap) -> str:
    """``"1.2 s per iteration"``, or ``"4.0 s so far in this iteration"`` before the first one ended."""
    per_it = snap.seconds_per_iteration
    if per_it is None and snap.iteration_started is not None and snap.state == RUNNING and snap.progress.iteration > 0:
        return f"{seconds_text(time.monotonic() - snap.iteration_started)} so far in this iteration"
    return f"{seconds_text(per_it)} per iteration"


def status_text(snap, library_id: Optional[int] = None) -> str:
    """The status line without its badge: ``"<name> · iteration i of n · <time per iteration>"``."""
    return f"{run_name(snap, library_id)} · {iteration_text(snap)} · {per_iteration_text(snap)}"


def queue_text(snap) -> str:
    """Where a queued run stands: ``"position 2 in the queue"``, or ``"joining the queue"`` for the instant
    between Start and joining it."""
    pos = snap.queue_position
    return f"position {pos} in the queue" if pos else "joining the queue"


def progress_of(snap) -> tuple[float, str]:
    """``(fraction 0..1, text)`` of the progress bar: the VAE update's epochs, the GMM update, the queue."""
    cfg, p = snap.config, snap.progress
    if snap.state == QUEUED:
        return 0.0, f"waiting for a free training slot ({queue_text(snap)})"
    if p.phase == "loading" and snap.state == RUNNING:
        return 0.0, "loading the images…"
    going = in_progress(snap)
    if going and p.phase == "vae":
        return min(1.0, max(0.0, p.epoch / max(1, p.epochs))), f"iteration {p.iteration}: VAE epoch {p.epoch} of {p.epochs}"
    if going and p.phase == "gmm":
        return 1.0, f"iteration {p.iteration}: GMM update"
    if going:
        return 0.0, f"iteration {p.iteration}: VAE epoch 0 of {cfg.vae.epochs}"
    finished = snap.state == FINISHED
    return (1.0 if finished else 0.0), f"epoch {cfg.vae.epochs if finished else 0} of {cfg.vae.epochs}"
