"""The one reader of environment variables. Every ``VAEGMM_*`` setting is read through these functions, so a
bad value behaves the same everywhere: it is ignored (the default is used), never an exception at a random place.
"""
from __future__ import annotations

import os
from typing import Optional


def env_str(name: str, default: str = "") -> str:
    """``$name`` stripped, or ``default`` when unset or blank."""
    raw = os.environ.get(name, "").strip()
    return raw if raw else default


def _env_number(name: str, default, parse, lo, hi):
    """``parse($name)`` clamped to [lo, hi]; ``default`` when unset, blank, unparsable or NaN."""
    raw = os.environ.get(name, "").strip()
    try:
        value = parse(raw) if raw else default
    except ValueError:
        value = default
    if value != value:  # NaN
        value = default
    if lo is not None:
        value = max(lo, value)
    if hi is not None:
        value = min(hi, value)
    return value


def env_int(name: str, default: int, lo: Optional[int] = None, hi: Optional[int] = None) -> int:
    """``$name`` as an int clamped to [lo, hi]; ``default`` when unset, blank or not an integer."""
    return _env_number(name, default, int, lo, hi)


def env_float(name: str, default: float, lo: Optional[float] = None, hi: Optional[float] = None) -> float:
    """``$name`` as a float clamped to [lo, hi]; ``default`` when unset, blank, not a number or NaN."""
    return _env_number(name, default, float, lo, hi)


def env_positive_int(name: str) -> Optional[int]:
    """``$name`` as an int > 0, or None when unset, blank, not an integer or not positive (then the caller
    decides, e.g. from the cores)."""
    raw = os.environ.get(name, "").strip()
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value > 0 else None


def vaegmm_environment() -> dict[str, str]:
    """This process's ``VAEGMM_*`` variables (what a job carries to a worker forked from an older process)."""
    return {k: v for k, v in os.environ.items() if k.startswith("VAEGMM_")}
