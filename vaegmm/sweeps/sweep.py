"""Parameter sweeps: a grid of settings x seeds, run in parallel by an executor, every result kept in the store.

* :class:`SweepSpec` = a base config + axes (each a list of labelled changes) + seeds; :meth:`SweepSpec.from_grid`
  builds one from the dashboard's vocabulary (``alpha=0.5,1,2``, ``feedback=on,off``; a single value fixes a
  setting). It expands to cells (one config each) x seeds = runs.
* :func:`run_one` ``(config_dict, seed) -> result dict`` trains one run: pure and picklable, it loads MNIST
  itself, pins torch and BLAS to one thread, and never touches the store. The local pool and Ray both call it,
  so the two engines cannot drift apart.
* :class:`SweepDriver` (and :func:`run_sweep`) is the only writer: it skips runs the store has finished
  already (same config and seed, from any source), hands the rest to the executor lane by lane, each lane
  taking a slot of a :class:`~vaegmm.runs.runner.SlotManager` first (priority 1: live runs go first), and writes each
  result as it arrives. A crash loses at most the runs in flight.
* :class:`SweepManager` / :func:`get_manager`: sweeps started from the dashboard run in a driver thread inside
  the server process and outlive the browser tab; the page only reads the store and asks the manager.

No Streamlit here.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

from vaegmm.model.config import PRESETS, RunConfig, preset as make_preset
from vaegmm.sweeps.cell import WorkerDied
from vaegmm.model.params import FIELDS, apply_settings, check_settings, format_value, parse_values, settings_from_config

MAX_RUNS = 500  # default cap on the runs of one sweep
MAX_PAGE_AXES = 3


class SweepError(ValueError):
    """A sweep that cannot run as asked (unknown axis, value out of range, empty grid, too many runs...)."""


# ---------------------------------------------------------------------------------------------- spec
@dataclass
class AxisValue:
    label: str  # as written in the grid and the tables: "0.5", "on", "0123"
    changes: dict  # RunConfig.replace keys -> JSON values


@dataclass
class Axis:
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


# ---------------------------------------------------------------------------------------------- events
@dataclass
class SweepEvent:
    """What the driver just did. ``kind``: "started" (a run went to a worker), "finished" (its result is
    stored: ``status`` finished / failed / stopped), "reused" (already in the store), "worker_died" (it will be
    retried once), "end"."""

    kind: str
    cell: str = ""
    seed: int = -1
    run_id: int = 0
    status: str = ""
    message: str = ""
    seconds: float = 0.0
    progress: Optional["Progress"] = None


@dataclass
class Progress:
    """Counts of one sweep: ``done`` = finished + failed + reused (they will not run again)."""

    total: int
    done: int = 0
    finished: int = 0
    failed: int = 0
    reused: int = 0
    running: int = 0
    stopped: int = 0
    run_seconds: list = field(default_factory=list)  # wall seconds of the runs trained by this driver
    started_at: float = field(default_factory=time.time)
    lanes: int = 1

    def eta_seconds(self) -> Optional[float]:
        """Runs left x median seconds per run / lanes; None before the first run ended."""
        if not self.run_seconds:
            return None
        left = max(0, self.total - self.done)
        per = sorted(self.run_seconds)[len(self.run_seconds) // 2]
        return left * per / max(1, self.lanes)


# ---------------------------------------------------------------------------------------------- driver
class SweepDriver:
    """Drives one sweep: create or reopen it in the store, lock it against a second driver, mark runs of dead
    drivers ``interrupted``, link runs the store has finished already, and train the rest.

    Construction does every check that can fail (and raises :class:`~vaegmm.store.StoreError` or
    :class:`SweepError` with one line); :meth:`run` then blocks until the sweep ends or :meth:`stop` is called.
    ``slots``: the cap shared with other work (the dashboard passes the server's ``default_slots()``); default a
    private ``SlotManager(executor.lanes)``.
    """

    def __init__(self, store, spec: SweepSpec, name: str, executor, slots=None,
                 on_event: Optional[Callable[[SweepEvent], None]] = None, retry_failed: bool = False,
                 stop: Optional[threading.Event] = None):
        if not name or not str(name).strip():
            raise SweepError("a sweep needs a name")
        self.store, self.spec, self.name, self.executor = store, spec, str(name).strip(), executor
        self.slots = slots  # default: a private SlotManager(executor.lanes), made once the executor has started
        self.on_event = on_event
        self.stop_event = stop or threading.Event()
        self._lock = threading.Lock()
        self._errors: list = []
        spec.validate()
        self.sweep_id = store.create_sweep(self.name, spec.to_dict())
        self._sweep_lock = store.lock_sweep(self.sweep_id, self.name)
        try:
            store.recover()
            store.set_sweep_status(self.sweep_id, "running")
            done = {(r["cell"], r["seed"]): r for r in store.sweep_runs(self.sweep_id)}
            self.progress = Progress(total=spec.n_runs, lanes=executor.lanes)
            self._todo = []
            for cell, seed in spec.runs():
                prev = done.get((cell.name, seed))
                if prev is not None and prev["status"] == "finished":
                    self.progress.done += 1
                    self.progress.finished += 1
                elif prev is not None and prev["status"] == "failed" and not retry_failed:
                    self.progress.done += 1
                    self.progress.failed += 1
                else:
                    self._todo.append((cell, seed))
        except BaseException:
            self._sweep_lock.release()
            raise

    # ------------------------------------------------------------------------------------------ control
    def stop(self) -> None:
        """End the sweep soon: no new runs; runs in flight are stopped (their workers ended) within seconds."""
        self.stop_event.set()
        if self.slots is not None:
            self.slots.wake()

    def _emit(self, ev: SweepEvent) -> None:
        ev.progress = self.progress
        if self.on_event is not None:
            try:
                self.on_event(ev)
            except Exception:  # a broken progress display must not end the sweep
                pass

    def _next(self):
        with self._lock:
            return self._todo.pop(0) if self._todo else None

    # ------------------------------------------------------------------------------------------ running
    def run(self) -> Progress:
        """Train every run not in the store yet, ``executor.lanes`` at a time; returns the final counts."""
        from vaegmm.runs.runner import SlotManager

        p = self.progress
        lanes = []
        status, message = "finished", ""
        try:
            if self._todo and not self.stop_event.is_set():
                self.executor.start()  # Ray learns its lanes (the cluster's CPUs) here
                if self.slots is None:
                    self.slots = SlotManager(max(1, self.executor.lanes))
                p.lanes = self.executor.lanes
                lanes = [threading.Thread(target=self._lane, args=(i,), name=f"vaegmm-sweep-lane-{i}", daemon=True)
                         for i in range(max(1, min(self.executor.lanes, len(self._todo))))]
                for t in lanes:
                    t.start()
                for t in lanes:
                    while t.is_alive():
                        t.join(0.2)
        except BaseException as e:  # KeyboardInterrupt in the CLI: stop the lanes, keep what is stored
            self.stop()
            for t in lanes:
                t.join(30)
            status, message = "stopped", f"stopped: {type(e).__name__}"
            raise
        finally:
            try:
                self.executor.close()
            finally:
                if self._errors:
                    status, message = "failed", str(self._errors[0])
                elif self.stop_event.is_set() and p.done < p.total:
                    status, message = "stopped", message or "stopped"
                elif p.failed:
                    message = f"{p.failed} run{'s' if p.failed != 1 else ''} failed"
                try:
                    self.store.set_sweep_status(self.sweep_id, status, message)
                finally:
                    self._sweep_lock.release()
                    self._emit(SweepEvent("end", status=status, message=message))
        if self._errors:
            raise self._errors[0]
        return p

    def _lane(self, lane: int) -> None:
        try:
            while not self.stop_event.is_set():
                ticket = object()
                if not self.slots.acquire(ticket, self.stop_event, poll=0.2, priority=1):
                    return
                try:
                    task = self._next()
                    if task is None:
                        return
                    self._do(lane, *task)
                finally:
                    self.slots.release(ticket)
        except BaseException as e:  # a store error: end the sweep, report it
            self._errors.append(e)
            self.stop()

    def _do(self, lane: int, cell: Cell, seed: int) -> None:
        p = self.progress
        what, run_id = self.store.claim_run(self.sweep_id, cell.name, cell.config, seed,
                                            label=f"{self.name}: {cell.name}", preset=self.spec.preset)
        if what == "reuse":
            with self._lock:
                p.done += 1
                p.reused += 1
            self._emit(SweepEvent("reused", cell.name, seed, run_id, "finished"))
            return
        if what == "busy":  # another driver trains this (config, seed) now: come back to it later
            with self._lock:
                self._todo.append((cell, seed))
            self.stop_event.wait(1.0)
            return
        with self._lock:
            p.running += 1
        self._emit(SweepEvent("started", cell.name, seed, run_id))
        result = None
        try:
            for attempt in (1, 2):
                try:
                    result = self.executor.run(lane, cell.config, seed, self.stop_event)
                    result["attempts"] = attempt
                    break
                except WorkerDied as e:
                    self._emit(SweepEvent("worker_died", cell.name, seed, run_id, message=str(e)))
                    if self.stop_event.is_set():
                        result = {"status": "stopped", "attempts": attempt}
                    elif attempt == 2:
                        result = {"status": "failed", "attempts": attempt,
                                  "message": f"its worker process died twice ({e})"}
        finally:
            with self._lock:
                p.running -= 1
        if result is None:  # pragma: no cover - defensive
            result = {"status": "failed", "message": "no result"}
        result.setdefault("executor", self.executor.name)
        status = result.get("status", "failed")
        if status == "stopped":
            result["message"] = "the sweep was stopped"
        self.store.record_result(run_id, result)
        with self._lock:
            if status == "finished":
                p.done += 1
                p.finished += 1
                p.run_seconds.append(float(result.get("seconds") or 0.0))
            elif status == "failed":
                p.done += 1
                p.failed += 1
            else:
                p.stopped += 1
        self._emit(SweepEvent("finished", cell.name, seed, run_id, status, result.get("message", ""),
                              float(result.get("seconds") or 0.0)))


def run_sweep(store, spec: SweepSpec, name: str, executor, slots=None, on_event=None, stop=None,
              retry_failed: bool = False) -> Progress:
    """Create (or reopen) the sweep ``name`` in ``store`` and run what is missing; see :class:`SweepDriver`."""
    return SweepDriver(store, spec, name, executor, slots=slots, on_event=on_event, stop=stop,
                       retry_failed=retry_failed).run()


def default_sweep_name(spec: SweepSpec) -> str:
    axes = "-".join(a.name for a in spec.axes) or "seeds"
    return f"{axes}-{time.strftime('%Y%m%d-%H%M%S')}"


# ---------------------------------------------------------------------------------------------- results
def sweep_results(store, sweep: str | int):
    """The sweep's spec and its runs as a pandas DataFrame, one row per run linked to the sweep: ``cell``, the
    axis values (one column per axis), ``seed``, ``run_id``, ``status``, ``message``, ``seconds``, and the final
    ``accuracy``, ``nmi``, ``ari`` (of the last iteration) plus ``iterations_done``. Also returns the
    per-iteration frame. ``(sweep_dict, runs_df, iterations_df)``; raises ``SweepError`` for an unknown sweep."""
    import pandas as pd

    info = store.get_sweep(sweep)
    if info is None:
        names = [s["name"] for s in store.list_sweeps()][:10]
        raise SweepError(f"no sweep named {sweep!r} in {store.path}" + (f"; sweeps: {', '.join(names)}" if names else ""))
    spec = SweepSpec.from_dict(info["spec"])
    rows = store.sweep_runs(info["id"])
    its = store.iterations([r["run_id"] for r in rows])
    last = its.sort_values("iteration").groupby("run_id").tail(1).set_index("run_id") if len(its) else None
    order = {c.name: i for i, c in enumerate(spec.cells())}
    recs = []
    for r in rows:
        labels = parse_cell(r["cell"]) if r["cell"] != "all" else {}
        rec = {"cell": r["cell"], **{a.name: labels.get(a.name) for a in spec.axes}, "seed": r["seed"],
               "run_id": r["run_id"], "status": r["status"], "message": r["message"], "seconds": r["seconds"],
               "source": r["source"], "host": r["host"]}
        if last is not None and r["run_id"] in last.index:
            row = last.loc[r["run_id"]]
            rec.update(iterations_done=int(row["iteration"]), accuracy=row["accuracy"], nmi=row["nmi"], ari=row["ari"])
        else:
            rec.update(iterations_done=0, accuracy=None, nmi=None, ari=None)
        recs.append(rec)
    cols = ["cell"] + [a.name for a in spec.axes] + ["seed", "run_id", "status", "message", "seconds", "source",
                                                      "host", "iterations_done", "accuracy", "nmi", "ari"]
    runs = pd.DataFrame(recs, columns=cols)
    if len(runs):
        runs["_order"] = runs["cell"].map(order).fillna(len(order))
        runs = runs.sort_values(["_order", "seed"]).drop(columns="_order").reset_index(drop=True)
    return info, runs, its


def cell_table(spec: SweepSpec, runs, metrics=("accuracy", "nmi", "ari")):
    """Per cell: runs finished / planned, and for each metric (final iteration, finished runs only) the mean,
    std, 95 % CI over seeds; plus mean seconds per run. A pandas DataFrame in the grid's order."""
    import pandas as pd

    from vaegmm.sweeps.stats import summarize

    out = []
    fin = runs[runs["status"] == "finished"] if len(runs) else runs
    for cell in spec.cells():
        sub = fin[fin["cell"] == cell.name] if len(fin) else fin
        failed = int(((runs["cell"] == cell.name) & (runs["status"] == "failed")).sum()) if len(runs) else 0
        rec = {"cell": cell.name, **cell.labels, "seeds done": f"{len(sub)}/{len(spec.seeds)}", "n": len(sub),
               "failed": failed}
        for m in metrics:
            s = summarize(sub[m].astype(float).tolist() if len(sub) else [])
            rec.update({f"{m} mean": s.mean, f"{m} std": s.std, f"{m} ci low": s.ci_low, f"{m} ci high": s.ci_high})
        rec["s / run"] = float(sub["seconds"].astype(float).mean()) if len(sub) else float("nan")
        out.append(rec)
    return pd.DataFrame(out)


def compare_cells(spec: SweepSpec, runs, a: str | Mapping, b: str | Mapping, metric: str = "accuracy"):
    """Paired comparison of two cells over the seeds both finished (:func:`vaegmm.sweeps.stats.paired`)."""
    from vaegmm.sweeps.stats import paired

    ca, cb = resolve_cell(spec, a), resolve_cell(spec, b)
    fin = runs[runs["status"] == "finished"]
    va = fin[fin["cell"] == ca.name].set_index("seed")[metric]
    vb = fin[fin["cell"] == cb.name].set_index("seed")[metric]
    seeds = sorted(set(va.index) & set(vb.index))
    return paired([float(va[s]) for s in seeds], [float(vb[s]) for s in seeds], _short(spec, ca, cb),
                  _short(spec, cb, ca), seeds=seeds, metric=metric)


def _short(spec: SweepSpec, c: Cell, other: Cell) -> str:
    """The part of a cell's name that differs from the other cell ("feedback=on"), for the sentence."""
    diff = [f"{k}={v}" for k, v in c.labels.items() if other.labels.get(k) != v]
    return " ".join(diff) if diff else c.name


def resolve_cell(spec: SweepSpec, cell: str | Mapping) -> Cell:
    """The cell named by ``"feedback=on alpha=1"`` (values as in the grid; every axis named). SweepError if none."""
    want = parse_cell(cell) if isinstance(cell, str) else dict(cell)
    cells = spec.cells()
    names = {a.name for a in spec.axes}
    unknown = set(want) - names
    if unknown:
        raise SweepError(f"cell {cell!r}: {', '.join(sorted(unknown))} is not an axis of this sweep "
                         f"(axes: {', '.join(a.name for a in spec.axes) or 'none'})")
    if set(want) != names:
        raise SweepError(f"cell {cell!r} must name every axis ({', '.join(a.name for a in spec.axes)}), e.g. "
                         f"{cells[0].name!r}")
    norm = {}
    for k, v in want.items():
        try:
            norm[k] = format_value(k, parse_values(k, v)[0]) if k in FIELDS else str(v)
        except ValueError as e:
            raise SweepError(str(e)) from None
    for c in cells:
        if c.labels == norm:
            return c
    raise SweepError(f"no cell {cell!r} in this sweep; cells: {', '.join(c.name for c in cells[:12])}")


def default_comparisons(spec: SweepSpec) -> list[tuple[Cell, Cell]]:
    """For each axis and each combination of the other axes' values: the axis's first value against each of
    its other values (``--grid feedback=on,off``: feedback=on vs feedback=off, at each alpha)."""
    cells = spec.cells()
    by_labels = {tuple(c.labels.items()): c for c in cells}
    pairs = []
    for axis in spec.axes:
        first = axis.values[0].label
        for c in cells:
            if c.labels[axis.name] == first:
                continue
            ref = dict(c.labels)
            ref[axis.name] = first
            pairs.append((by_labels[tuple(ref.items())], c))
    return pairs


def common_labels(a: Cell, b: Cell) -> str:
    """What two cells share ("alpha=0.5"): the context of their comparison; "" when nothing."""
    return " ".join(f"{k}={v}" for k, v in a.labels.items() if b.labels.get(k) == v)


# ---------------------------------------------------------------------------------------------- estimate
DEFAULT_SECONDS_PER_IMAGE_EPOCH = 3.4e-5  # BENCHMARKS.md: a classic run (3000 x 200 x 5) ~100 s at 2 side by side


def work_units(config: Mapping[str, Any]) -> float:
    """Images x epochs x iterations: what a run's time grows with (the VAE updates dominate)."""
    return float(config["data"]["n"]) * float(config["vae"]["epochs"]) * max(1, int(config["iterations"]))


def seconds_per_unit(store, limit: int = 100) -> tuple[Optional[float], str]:
    """The median wall seconds per work unit of the store's recent finished runs on this host; (None, "") when
    none. Runs shorter than 2 s are skipped (their start-up costs dominate)."""
    host = socket.gethostname()
    rates = []
    for r in store.list_runs(status="finished", limit=limit * 3, newest_first=True):
        if r.get("host") not in (None, host) or not r.get("seconds") or r["seconds"] < 2:
            continue
        try:
            rates.append(r["seconds"] / work_units(r["config"]))
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            continue
        if len(rates) >= limit:
            break
    if not rates:
        return None, ""
    rates.sort()
    return rates[len(rates) // 2], f"from {len(rates)} earlier run{'s' if len(rates) != 1 else ''} on this server"


def estimate_seconds(spec: SweepSpec, lanes: int, rate: Optional[float] = None) -> float:
    """Seconds the sweep's runs take at ``lanes`` side by side, from a seconds-per-work-unit ``rate``."""
    rate = rate if rate is not None else DEFAULT_SECONDS_PER_IMAGE_EPOCH
    total = sum(work_units(c.config) * rate + 1.0 for c in spec.cells()) * len(spec.seeds)
    return total / max(1, lanes)


def calibration_config() -> dict:
    return make_preset("project-default").replace(data__n=500, vae__epochs=10, iterations=1, gmm__n_init=2).to_dict()


def calibrate() -> float:
    """Seconds per work unit measured now: one short run (about 2 s of one core) in a worker process, so the
    caller's threads (a server's live runs) are not touched."""
    from vaegmm.sweeps.executors import LocalPoolExecutor

    ex = LocalPoolExecutor(1)
    try:
        res = ex.run(0, calibration_config(), 0, threading.Event())
    finally:
        ex.close()
    if res.get("status") != "finished":
        raise RuntimeError(f"calibration run {res.get('status')}: {res.get('message')}")
    return res["train_seconds"] / work_units(calibration_config())


class Calibration:
    """A calibration in a background thread, once per process: ``rate`` is None until it has finished."""

    def __init__(self) -> None:
        self.rate: Optional[float] = None
        self.error = ""
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._go, name="vaegmm-calibrate", daemon=True)
            self._thread.start()

    def _go(self) -> None:
        try:
            self.rate = calibrate()
        except Exception as e:  # the estimate falls back to the benchmark's constant
            self.error = str(e)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


_calibration = Calibration()


def server_calibration() -> Calibration:
    return _calibration


# ---------------------------------------------------------------------------------------------- manager
@dataclass
class _Running:
    driver: SweepDriver
    thread: threading.Thread
    error: Optional[BaseException] = None


class SweepManager:
    """The sweeps this process drives in background threads, by (database, name). The dashboard keeps one for
    the whole server (:func:`get_manager`): a sweep outlives the browser tab that started it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict = {}

    @staticmethod
    def _key(db_path, name: str) -> tuple:
        return (str(Path(db_path).expanduser().resolve()), name)

    def start(self, db_path, spec: SweepSpec, name: str, executor_factory: Callable[[], Any], slots=None,
              retry_failed: bool = False) -> SweepDriver:
        """Start (or resume) a sweep in a thread. Every check runs here, so bad input raises at once
        (``SweepError`` / ``StoreError``); the executor is built by ``executor_factory`` (it may connect to Ray)."""
        from vaegmm.store import RunStore

        key = self._key(db_path, name)
        with self._lock:
            cur = self._running.get(key)
            if cur is not None and cur.thread.is_alive():
                raise SweepError(f"sweep {name!r} is already running")
        store = RunStore(db_path)
        try:
            executor = executor_factory()
            driver = SweepDriver(store, spec, name, executor, slots=slots, retry_failed=retry_failed)
        except BaseException:
            store.close()
            raise
        entry = _Running(driver, None)  # type: ignore[arg-type]

        def go():
            try:
                driver.run()
            except BaseException as e:  # shown by the page through status()
                entry.error = e
            finally:
                store.close()

        entry.thread = threading.Thread(target=go, name=f"vaegmm-sweep-{name}", daemon=True)
        with self._lock:
            self._running[key] = entry
        entry.thread.start()
        return driver

    def resume(self, db_path, name: str, executor_factory: Callable[[], Any], slots=None,
               retry_failed: bool = False) -> SweepDriver:
        """Resume a stored sweep with its own spec: only the runs not finished yet are trained."""
        from vaegmm.store import RunStore

        with RunStore(db_path) as store:
            info = store.get_sweep(name)
        if info is None:
            raise SweepError(f"no sweep named {name!r} to resume")
        return self.start(db_path, SweepSpec.from_dict(info["spec"]), name, executor_factory, slots, retry_failed)

    def stop(self, db_path, name: str, wait: float = 0.0) -> bool:
        """Ask the sweep to stop (runs in flight end within seconds); True when it was running here."""
        with self._lock:
            entry = self._running.get(self._key(db_path, name))
        if entry is None or not entry.thread.is_alive():
            return False
        entry.driver.stop()
        if wait:
            entry.thread.join(wait)
        return True

    def status(self, db_path, name: str) -> Optional[dict]:
        """``{"alive", "progress", "error"}`` for a sweep this process drives (or drove); None otherwise."""
        with self._lock:
            entry = self._running.get(self._key(db_path, name))
        if entry is None:
            return None
        return {"alive": entry.thread.is_alive(), "progress": entry.driver.progress,
                "error": None if entry.error is None else str(entry.error),
                "lanes": entry.driver.executor.lanes, "executor": entry.driver.executor.describe()}

    def join(self, db_path, name: str, timeout: Optional[float] = None) -> bool:
        with self._lock:
            entry = self._running.get(self._key(db_path, name))
        if entry is None:
            return True
        entry.thread.join(timeout)
        return not entry.thread.is_alive()

    def running(self) -> list[tuple[str, str]]:
        with self._lock:
            return [k for k, e in self._running.items() if e.thread.is_alive()]

    def stop_all(self, wait: float = 10.0) -> None:
        with self._lock:
            entries = list(self._running.values())
        for e in entries:
            e.driver.stop()
        for e in entries:
            e.thread.join(wait)


_manager: Optional[SweepManager] = None
_manager_lock = threading.Lock()


def get_manager() -> SweepManager:
    """The process-wide :class:`SweepManager`."""
    global _manager
    with _manager_lock:
        if _manager is None:
            _manager = SweepManager()
        return _manager
