"""Where feedback matters (issue 19): the paired effect of the GMM's feedback over a grid of settings, and its
confirmation on held-out seeds, as the How it works page draws them.

``feedback_map.json`` beside this module holds the map: ``rows``, one per setting (``latent_dim``, ``alpha``,
``epochs``, ``iterations``, the ``seeds`` paired, ``n``, and feedback on minus off of the final accuracy
``effect_acc`` with its 95 % CI ``ci_low`` / ``ci_high``, paired t-test ``p``, ``wins`` (seeds where feedback
won), the same for NMI ``effect_nmi`` / ``nmi_ci_low`` / ``nmi_ci_high``, both sides' means ``acc_on`` /
``acc_off``, and ``source``, e.g. "probe (3 seeds)" or a sweep's name), and ``confirmed``, the settings re-run on
held-out seeds, with the same fields plus ``name``. Effects are fractions (0.034 = +3.4 accuracy points); a value
not measured is null. ``bench/feedback_map.py`` writes the file from sweeps in the store with :func:`map_rows`,
which pairs each cell with feedback on against the same cell with feedback off
(:func:`vaegmm.sweeps.results.compare_cells`, the paired statistics of :mod:`vaegmm.sweeps.stats`).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Optional

from vaegmm.core.atomic import atomic_write
from vaegmm.model.config import RunConfig
from vaegmm.sweeps.results import compare_cells, sweep_results
from vaegmm.sweeps.spec import SweepError, SweepSpec

MAP_FILE = Path(__file__).with_name("feedback_map.json")
SCHEMA = 1


@dataclass
class MapRow:
    """One setting's paired effect of feedback (on minus off; fractions; None = not measured)."""

    latent_dim: int
    alpha: float
    epochs: int
    iterations: int
    seeds: list = field(default_factory=list)
    n: int = 0
    effect_acc: Optional[float] = None
    ci_low: Optional[float] = None
    ci_high: Optional[float] = None
    p: Optional[float] = None
    wins: Optional[int] = None
    effect_nmi: Optional[float] = None
    nmi_ci_low: Optional[float] = None
    nmi_ci_high: Optional[float] = None
    acc_on: Optional[float] = None
    acc_off: Optional[float] = None
    source: str = ""
    name: str = ""  # a confirmed setting's name (e.g. the preset "feedback-lesson")
    note: str = ""

    @property
    def schedule(self) -> str:
        """``"25 ep x 20 it"``: the VAE epochs per update and the iterations."""
        return f"{self.epochs} ep x {self.iterations} it"

    def points(self) -> Optional[float]:
        return None if self.effect_acc is None else 100.0 * self.effect_acc

    def ci_text(self) -> str:
        """``"0.7 to 6.0"`` (accuracy points) or "" when no CI was measured."""
        if self.ci_low is None or self.ci_high is None:
            return ""
        return f"{100 * self.ci_low:.1f} to {100 * self.ci_high:.1f}"

    @classmethod
    def from_dict(cls, d: dict) -> "MapRow":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class FeedbackMap:
    rows: list  # [MapRow]
    confirmed: list  # [MapRow] on held-out seeds
    made: str = ""
    size: str = ""  # what stays fixed, e.g. "Quick-demo size: 2000 images, K = 10, batch 250, EM GMM"
    note: str = ""
    command: str = ""
    sweeps: list = field(default_factory=list)


def load_feedback_map(path: Optional[Path] = None) -> Optional[FeedbackMap]:
    """The stored map, or None when the file is missing or unreadable (the page then says so)."""
    p = Path(path) if path is not None else MAP_FILE
    try:
        data = json.loads(p.read_text())
        rows = [MapRow.from_dict(r) for r in data["rows"]]
        confirmed = [MapRow.from_dict(r) for r in data.get("confirmed", [])]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return FeedbackMap(rows, confirmed, str(data.get("made", "")), str(data.get("size", "")),
                       str(data.get("note", "")), str(data.get("command", "")), list(data.get("sweeps", [])))


def _num(x: float) -> Optional[float]:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def map_rows(store, sweep: str, source: str = "") -> list[MapRow]:
    """One :class:`MapRow` per cell of ``sweep`` with feedback on: paired with the same cell with feedback off,
    over the seeds both finished. The sweep's grid must have a ``feedback`` axis with ``on`` and ``off``; its other
    axes (any of latent, alpha, epochs, iterations, ...) vary the setting, read from each cell's config."""
    info, runs, _its = sweep_results(store, sweep)
    spec = SweepSpec.from_dict(info["spec"])
    if "feedback" not in {a.name for a in spec.axes}:
        raise SweepError(f"sweep {sweep!r} has no feedback axis: nothing to pair")
    out = []
    for cell in spec.cells():
        if cell.labels.get("feedback") != "on":
            continue
        off = dict(cell.labels, feedback="off")
        acc = compare_cells(spec, runs, cell.labels, off, "accuracy")
        nmi = compare_cells(spec, runs, cell.labels, off, "nmi")
        cfg = RunConfig.from_dict(cell.config)
        rest = " ".join(f"{k}={v}" for k, v in cell.labels.items() if k != "feedback")
        out.append(MapRow(cfg.vae.latent_dim, float(cfg.vae.alpha), cfg.vae.epochs, cfg.iterations,
                          [int(s) for s in acc.seeds], acc.n, _num(acc.mean_diff), _num(acc.ci_low),
                          _num(acc.ci_high), _num(acc.t_p), acc.wins, _num(nmi.mean_diff), _num(nmi.ci_low),
                          _num(nmi.ci_high), _num(acc.mean_a), _num(acc.mean_b), source or str(info["name"]),
                          note=rest))
    return out


def write_feedback_map(path: Path, rows: list, confirmed: list, **meta) -> Path:
    """Write the map's JSON (``meta``: made, size, note, command, sweeps)."""
    data = {"schema": SCHEMA, **meta, "units": "effects are fractions: 0.034 = +3.4 accuracy points",
            "rows": [asdict(r) for r in rows], "confirmed": [asdict(r) for r in confirmed]}
    text = json.dumps(data, indent=1) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))
