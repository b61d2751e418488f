"""What a follower of a live run sees, as one JSON frame (issue 18 part 1: "Share a live run"). Pure Python.

A frame is built from a run's :class:`~vaegmm.runs.state.Snapshot` and its digit labels, **encoded once** and
sent as the same bytes to every follower (:mod:`dashboard.follow.hub`). Its content (keys of the JSON object):

- ``v``: the frame's number for this run (1, 2, ...); ``t``: the server's ``time.time()`` when it was encoded.
- ``run``: the run's library id (the share link's ``?run=``); ``state``: ``queued``, ``running``, ``paused``,
  ``finished``, ``stopped`` or ``failed``; ``terminal``: whether the run has ended and its saved record is final
  (the follower's page then becomes the saved run's page).
- ``status``: the owner's status line in the same words (``"run 3 · iteration 2 of 5 · 1.2 s per iteration"``,
  :func:`vaegmm.runs.status_words.status_text`: the run named by its library id, as the follower's title),
  ``message``: the stop or error reason; ``progress``: ``[fraction 0..1, text]``, the owner's progress bar and
  its one line of progress.
- ``picture``: ``None`` or ``{"title", "x", "y", "label", "range"}``: the 2-D PCA view of the codes the owner's
  page draws now (:func:`vaegmm.runs.state.live_picture`: during a VAE update the latest in-update snapshot, else
  the last finished iteration); ``title`` says which, without repeating the progress line; ``x``, ``y``: ``(P,)``
  rounded to 3 decimals, ``label``: ``(P,)`` digits, ``P <= MAX_POINTS`` (an evenly strided subset of the ``N``
  images, the same subset in every frame), ``range``: ``[x0, x1, y0, y1]``.
- ``accuracy``: ``[[iteration, accuracy], ...]`` of the finished iterations.
"""
from __future__ import annotations

import json
import time
from typing import Optional

import numpy as np

from vaegmm.runs.state import FAILED, TERMINAL, live_picture
from vaegmm.runs.status_words import progress_of, status_text

MAX_POINTS = 2000  # points per picture: a phone draws them in a few ms; a frame is about 40 kB


def subset(n: int, max_points: int = MAX_POINTS) -> np.ndarray:
    """``(P,)`` indices of the points drawn: all ``n``, or every ``ceil(n / max_points)``-th."""
    step = max(1, -(-n // max_points))
    return np.arange(0, n, step)


def live_xy(snap) -> tuple[Optional[np.ndarray], str]:
    """``((N, 2) PCA coordinates, title)`` of what the owner's big scatter shows in PCA with "latest"
    (:func:`~vaegmm.runs.state.live_picture`); ``(None, "")`` before iteration 0. The title names the picture, not
    the epoch: the frame's one progress line says how far the VAE update is (the snapshot is a little older)."""
    h = snap.history
    if not h:
        return None, ""
    live = live_picture(snap)
    if live is not None:
        return np.asarray(live.projection, dtype=np.float32), "the codes right now, during the VAE update"
    last = h[-1]
    return np.asarray(last.projection, dtype=np.float32), f"iteration {last.iteration}: accuracy {last.accuracy:.3f}"


def picture(snap, labels: Optional[np.ndarray], max_points: int = MAX_POINTS) -> Optional[dict]:
    """The frame's ``picture`` (see the module docstring), or None (no codes or no labels yet)."""
    xy, title = live_xy(snap)
    if xy is None or labels is None or len(labels) != len(xy):
        return None
    idx = subset(len(xy), max_points)
    pts = np.nan_to_num(xy[idx], nan=0.0, posinf=0.0, neginf=0.0)
    base = np.nan_to_num(np.asarray(snap.history[-1].projection, dtype=np.float32)[idx])
    both = np.concatenate([pts, base])  # the frame holds the last iteration's points too: the picture moves less
    lo, hi = both.min(axis=0), both.max(axis=0)
    pad = np.maximum(1e-6, (hi - lo) * 0.05)
    lo, hi = lo - pad, hi + pad
    return {"title": title, "x": np.round(pts[:, 0], 3).tolist(), "y": np.round(pts[:, 1], 3).tolist(),
            "label": np.asarray(labels)[idx].astype(int).tolist(),
            "range": [round(float(lo[0]), 3), round(float(hi[0]), 3), round(float(lo[1]), 3), round(float(hi[1]), 3)]}


def frame_key(snap) -> tuple:
    """What changes when a follower's view must change (a new frame is encoded only then)."""
    p = snap.progress
    live = snap.live
    return (snap.state, snap.queue_position, len(snap.history), p.phase, p.iteration, p.epoch,
            id(live) if live is not None else None, snap.seconds_per_iteration is None, snap.message)


def frame(snap, labels: Optional[np.ndarray], run_id: int, version: int, ended: Optional[bool] = None) -> dict:
    """The frame of ``snap`` as a dict (see the module docstring); ``ended``: the run's record is final (default:
    its state is terminal)."""
    frac, text = progress_of(snap)
    terminal = snap.state in TERMINAL if ended is None else bool(ended)
    return {"v": version, "t": round(time.time(), 3), "run": run_id, "state": snap.state,
            "terminal": terminal, "failed": snap.state == FAILED, "status": status_text(snap, run_id),
            "message": snap.message or "", "progress": [round(frac, 4), text], "picture": picture(snap, labels),
            "accuracy": [[r.iteration, round(float(r.accuracy), 4)] for r in snap.history]}


def frame_json(frame_dict: dict) -> str:
    """A frame as compact JSON (no NaN: a browser's ``JSON.parse`` would refuse it)."""
    return json.dumps(frame_dict, separators=(",", ":"), allow_nan=False)


def sse_event(version: int, data: str) -> bytes:
    """One Server-Sent Event: ``id: <version>``, ``event: frame``, ``data: <data>`` and a blank line (UTF-8)."""
    return f"id: {int(version)}\nevent: frame\ndata: {data}\n\n".encode()
