"""Durations and scores as the pages write them."""
from __future__ import annotations

from typing import Optional


def fmt_duration(s: Optional[float]) -> str:
    """A rougher duration for estimates: ``"40 s"``, ``"12 min"``, ``"1.5 h"``; ``"–"`` when unknown."""
    if s is None:
        return "–"
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


NO_LABELS = "no labels"


def metric_text(value: Optional[float], missing: str = NO_LABELS) -> str:
    """A score as the pages write it, ``"0.791"``; ``missing`` (default "no labels") when it is None: the data
    had no labels to score against."""
    return missing if value is None else f"{value:.3f}"
