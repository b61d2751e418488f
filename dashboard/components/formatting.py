"""Durations as the pages write them."""
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
