"""What a sweep is: a base config, axes (each a list of labelled changes) and seeds.

:meth:`SweepSpec.from_grid` builds one from the dashboard's vocabulary (``alpha=0.5,1,2``, ``feedback=on,off``; a
single value fixes a setting). It expands to cells (one config each) x seeds = runs. A spec round-trips through
:meth:`SweepSpec.to_dict` / :meth:`SweepSpec.from_dict`, which is how the store keeps it.
"""
from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from vaegmm.model.config import PRESETS, RunConfig, preset as make_preset
from vaegmm.model.params import FIELDS, apply_settings, check_settings, format_value, parse_values, settings_from_config

MAX_RUNS = 500  # default cap on the runs of one sweep
MAX_PAGE_AXES = 3  # the Sweeps page offers this many axes (the CLI takes any number)


class SweepError(ValueError):
    """A sweep that cannot run as asked (unknown axis, value out of range, empty grid, too many runs...)."""


@dataclass
class AxisValue:
    """One value of an axis: its label and the config changes it makes."""

    label: str  # as written in the grid and the tables: "0.5", "on", "0123"
    changes: dict  # RunConfig.replace keys -> JSON values


@dataclass
class Axis:
    """A setting that varies across the grid, with its values in the order given."""

    name: str  # a URL parameter name ("alpha") or a free name ("variant")
    values: list  # of AxisValue


@dataclass
class Cell:
    """One point of the grid: ``labels`` ``{axis: value label}``, its name ``"feedback=on alpha=0.5"`` and its
    config (a ``RunConfig.to_dict()``; the seed is set per run)."""

    labels: dict
    name: str
    config: dict


def cell_name(labels: Mapping[str, str]) -> str:
    """``{"feedback": "on", "alpha": "0.5"}`` -> ``"feedback=on alpha=0.5"``; ``"all"`` for a sweep without axes."""
    return " ".join(f"{k}={v}" for k, v in labels.items()) if labels else "all"


def parse_cell(text: str) -> dict:
    """``"feedback=on alpha=0.5"`` (or with ``,`` / ``&`` between the pairs) -> ``{"feedback": "on", "alpha": "0.5"}``."""
    out = {}
    for part in text.replace("&", " ").replace(",", " ").split():
        if "=" not in part:
            raise SweepError(f"a cell is written name=value pairs, e.g. 'feedback=on alpha=1', got {text!r}")
        k, v = part.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _jsonable(x: Any) -> Any:
    """``x`` as JSON would give it back (tuples -> lists), so a spec equals its stored copy."""
    return json.loads(json.dumps(x, default=lambda o: list(o) if isinstance(o, tuple) else str(o)))


@dataclass
class SweepSpec:
    """Base config + axes + seeds. ``base`` is a ``RunConfig.to_dict()``; each axis value's ``changes`` are
    applied to it with ``RunConfig.replace``; every cell runs with every seed."""

    base: dict
    axes: list = field(default_factory=list)  # of Axis
    seeds: list = field(default_factory=lambda: [0])
    preset: str = ""
    fixed: dict = field(default_factory=dict)  # URL-name settings fixed for every cell (for display)
    max_runs: int = MAX_RUNS

    # -------------------------------------------------------------------------------- building
    @classmethod
    def from_grid(cls, preset: str = "project-default", grid: Sequence[tuple[str, Any]] | Mapping[str, Any] = (),
                  seeds: Sequence[int] | int = 5, max_runs: int = MAX_RUNS, base: Optional[RunConfig] = None
                  ) -> "SweepSpec":
        """A sweep in the dashboard's vocabulary. ``grid``: ``[("feedback", "on,off"), ("alpha", [0.5, 1, 2])]``
        (text is parsed as in a link; a list is taken as values). An axis with one value fixes that setting for
        every run. ``seeds``: a count (0..N-1) or the seeds themselves. Raises :class:`SweepError` with one line."""
        if preset not in PRESETS:
            raise SweepError(f"unknown preset {preset!r}; choose one of {', '.join(sorted(PRESETS))}")
        base_cfg = base if base is not None else make_preset(preset)
        items = list(grid.items()) if isinstance(grid, Mapping) else list(grid)
        if not items:
            raise SweepError("empty grid: give at least one axis, e.g. alpha=0.5,1,2 (one value fixes a setting)")
        seen, axes_values = set(), []
        for key, raw in items:
            key = str(key).strip()
            if key == "seed":
                raise SweepError("seed is not an axis: give the seeds with --seeds (a count, a range 100-109 or a list)")
            if key in seen:
                raise SweepError(f"axis {key!r} is given twice")
            seen.add(key)
            try:
                if isinstance(raw, str):
                    values = parse_values(key, raw)
                else:
                    values = parse_values(key, ",".join(format_value(key, v) if key in FIELDS else str(v)
                                                        for v in raw))
            except ValueError as e:
                raise SweepError(str(e)) from None
            axes_values.append((key, values))
        fixed = {k: v[0] for k, v in axes_values if len(v) == 1}
        varying = [(k, v) for k, v in axes_values if len(v) > 1]
        if "digits" in fixed and "k" not in seen:
            fixed["k"] = len(fixed["digits"])  # K follows the digits, as on the page
        try:
            base_cfg = apply_settings(base_cfg, fixed)
        except ValueError as e:
            raise SweepError(str(e)) from None
        axes = []
        for key, values in varying:
            vals = []
            for v in values:
                changes = {FIELDS[key].path: _jsonable(v)}
                if key == "digits" and "k" not in seen:
                    changes[FIELDS["k"].path] = len(v)
                vals.append(AxisValue(format_value(key, v), changes))
            axes.append(Axis(key, vals))
        spec = cls(base=base_cfg.to_dict(), axes=axes, seeds=parse_seeds(seeds), preset=preset,
                   fixed={k: format_value(k, v) for k, v in fixed.items()}, max_runs=max_runs)
        spec.validate()
        return spec

    # -------------------------------------------------------------------------------- expanding
    def base_config(self) -> RunConfig:
        return RunConfig.from_dict(self.base)

    def cells(self) -> list[Cell]:
        """Every combination of axis values, first axis slowest; each with its validated config."""
        base = self.base_config()
        out = []
        for combo in itertools.product(*[a.values for a in self.axes]):
            labels = {a.name: v.label for a, v in zip(self.axes, combo)}
            changes = {}
            for v in combo:
                changes.update(v.changes)
            name = cell_name(labels)
            try:
                cfg = base.replace(**changes).validate()
            except (ValueError, TypeError) as e:
                raise SweepError(f"cell {name}: {e}") from None
            out.append(Cell(labels, name, cfg.to_dict()))
        return out

    def runs(self) -> list[tuple[Cell, int]]:
        """(cell, seed) for every run, cell by cell."""
        return [(c, s) for c in self.cells() for s in self.seeds]

    @property
    def n_cells(self) -> int:
        return math.prod(len(a.values) for a in self.axes) if self.axes else 1

    @property
    def n_runs(self) -> int:
        return self.n_cells * len(self.seeds)

    def validate(self) -> "SweepSpec":
        """Raise :class:`SweepError` naming the problem: no seeds, too many runs, a cell that cannot run."""
        if not self.seeds:
            raise SweepError("no seeds: give --seeds N (>= 1) or a list of seeds")
        if isinstance(self.max_runs, bool) or not isinstance(self.max_runs, int) or self.max_runs < 1:
            raise SweepError(f"max runs must be an integer >= 1, got {self.max_runs!r}")
        for a in self.axes:
            if not a.values:
                raise SweepError(f"axis {a.name!r} has no values")
            for text in [a.name] + [v.label for v in a.values]:
                if not text or any(c in text for c in " \t,&="):
                    raise SweepError(f"axis {a.name!r}: names and values must not be empty or contain spaces, "
                                     f"',', '&' or '=', got {text!r}")
        if self.n_runs > self.max_runs:
            raise SweepError(f"{self.n_cells} cells x {len(self.seeds)} seeds = {self.n_runs} runs, more than the "
                             f"maximum of {self.max_runs} (raise it with --max-runs, or use fewer values or seeds)")
        for cell in self.cells():
            s = settings_from_config(RunConfig.from_dict(cell.config))
            problems = check_settings(s)
            if problems:
                raise SweepError(f"cell {cell.name}: {problems[0]}")
        return self

    # -------------------------------------------------------------------------------- (de)serialising
    def to_dict(self) -> dict:
        return {"base": _jsonable(self.base), "axes": [{"name": a.name, "values": [
            {"label": v.label, "changes": _jsonable(v.changes)} for v in a.values]} for a in self.axes],
            "seeds": [int(s) for s in self.seeds], "preset": self.preset, "fixed": dict(self.fixed),
            "max_runs": int(self.max_runs)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SweepSpec":
        axes = [Axis(a["name"], [AxisValue(v["label"], dict(v["changes"])) for v in a["values"]])
                for a in d.get("axes", [])]
        return cls(base=dict(d["base"]), axes=axes, seeds=[int(s) for s in d["seeds"]], preset=d.get("preset", ""),
                   fixed=dict(d.get("fixed", {})), max_runs=int(d.get("max_runs", MAX_RUNS)))

    def describe(self) -> str:
        """``feedback (on, off) x alpha (0.5, 1, 2) x 5 seeds = 30 runs on project-default, epochs=50``."""
        parts = [f"{a.name} ({', '.join(v.label for v in a.values)})" for a in self.axes]
        seeds = _seeds_text(self.seeds)
        fixed = ", ".join(f"{k}={v}" for k, v in self.fixed.items())
        return (" x ".join(parts + [f"{len(self.seeds)} seed{'s' if len(self.seeds) != 1 else ''} ({seeds})"])
                + f" = {self.n_runs} runs" + (f" on {self.preset}" if self.preset else "") + (f", {fixed}" if fixed else ""))


def _seeds_text(seeds: Sequence[int]) -> str:
    """``[0, 1, 2, 3]`` -> ``"0-3"``; otherwise the seeds with commas."""
    s = list(seeds)
    if len(s) > 2 and s == list(range(s[0], s[0] + len(s))):
        return f"{s[0]}-{s[-1]}"
    return ", ".join(map(str, s))


def parse_seeds(seeds: Sequence[int] | int | str, first: int = 0) -> list[int]:
    """Seeds from a count (``5`` -> 0..4, from ``first``), a range (``"100-109"``), a list (``"3,7,11"`` or
    ``[3, 7, 11]``). Raises :class:`SweepError`."""
    if isinstance(seeds, bool):
        raise SweepError(f"seeds must be a count, a range or a list, got {seeds!r}")
    if isinstance(seeds, int):
        if seeds < 1:
            raise SweepError(f"the number of seeds must be >= 1, got {seeds}")
        out = list(range(first, first + seeds))
    elif isinstance(seeds, str):
        text = seeds.strip()
        try:
            if "-" in text and "," not in text and text.count("-") == 1 and not text.startswith("-"):
                lo, hi = (int(t) for t in text.split("-"))
                if hi < lo:
                    raise SweepError(f"seed range {text!r} ends before it starts")
                out = list(range(lo, hi + 1))
            elif "," in text or " " in text:
                out = [int(t) for t in text.replace(",", " ").split()]
            else:
                return parse_seeds(int(text), first)
        except ValueError as e:
            if isinstance(e, SweepError):
                raise
            raise SweepError(f"seeds must be a count (5), a range (100-109) or a list (3,7,11), got {text!r}") from None
    else:
        try:
            out = [int(s) for s in seeds]
        except (TypeError, ValueError):
            raise SweepError(f"seeds must be integers, got {seeds!r}") from None
    if not out:
        raise SweepError("no seeds")
    bad = [s for s in out if s < 0 or s > 2**31 - 1]
    if bad:
        raise SweepError(f"seeds must be integers from 0 to {2**31 - 1}, got {bad[0]}")
    if len(set(out)) != len(out):
        raise SweepError("a seed is given twice")
    return out
