"""A sweep's results, read back from the store: one row per run, a table per cell (mean, std and 95 % CI over
seeds), and paired comparisons of two cells over the seeds both finished (:mod:`vaegmm.sweeps.stats`).
"""
from __future__ import annotations

from typing import Mapping

import pandas as pd

from vaegmm.model.params import FIELDS, format_value, parse_values
from vaegmm.sweeps.spec import Cell, SweepError, SweepSpec, parse_cell
from vaegmm.sweeps.stats import paired, summarize

FINAL_METRICS = ("accuracy", "nmi", "ari", "heldout_accuracy", "heldout_nmi")  # of the last iteration, per run
METRIC_WORDS = {"heldout_accuracy": "held-out accuracy", "heldout_nmi": "held-out NMI"}  # in the sentences


def sweep_results(store, sweep: str | int):
    """The sweep's spec and its runs as a pandas DataFrame, one row per run linked to the sweep: ``cell``, the
    axis values (one column per axis), ``seed``, ``run_id``, ``status``, ``message``, ``seconds``, and the final
    ``accuracy``, ``nmi``, ``ari``, ``heldout_accuracy``, ``heldout_nmi`` (of the last iteration; the held-out ones
    on the images the run set aside, None for runs without them) plus ``iterations_done``. Also returns the
    per-iteration frame. ``(sweep_dict, runs_df, iterations_df)``; raises ``SweepError`` for an unknown sweep."""
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
            rec.update(iterations_done=int(row["iteration"]), **{m: row[m] for m in FINAL_METRICS})
        else:
            rec.update(iterations_done=0, **{m: None for m in FINAL_METRICS})
        recs.append(rec)
    cols = ["cell"] + [a.name for a in spec.axes] + ["seed", "run_id", "status", "message", "seconds", "source",
                                                      "host", "iterations_done", *FINAL_METRICS]
    runs = pd.DataFrame(recs, columns=cols)
    if len(runs):
        runs["_order"] = runs["cell"].map(order).fillna(len(order))
        runs = runs.sort_values(["_order", "seed"]).drop(columns="_order").reset_index(drop=True)
    return info, runs, its


def cell_table(spec: SweepSpec, runs, metrics=FINAL_METRICS):
    """Per cell: runs finished / planned, and for each metric (final iteration, finished runs only) the mean,
    std, 95 % CI over seeds; plus mean seconds per run. A pandas DataFrame in the grid's order."""
    out = []
    fin = runs[runs["status"] == "finished"] if len(runs) else runs
    for cell in spec.cells():
        sub = fin[fin["cell"] == cell.name] if len(fin) else fin
        failed = int(((runs["cell"] == cell.name) & (runs["status"] == "failed")).sum()) if len(runs) else 0
        rec = {"cell": cell.name, **cell.labels, "seeds done": f"{len(sub)}/{len(spec.seeds)}", "n": len(sub),
               "failed": failed}
        for m in metrics:
            s = summarize(pd.to_numeric(sub[m], errors="coerce").tolist() if len(sub) else [])
            rec.update({f"{m} mean": s.mean, f"{m} std": s.std, f"{m} ci low": s.ci_low, f"{m} ci high": s.ci_high})
        rec["s / run"] = float(sub["seconds"].astype(float).mean()) if len(sub) else float("nan")
        out.append(rec)
    return pd.DataFrame(out)


def compare_cells(spec: SweepSpec, runs, a: str | Mapping, b: str | Mapping, metric: str = "accuracy"):
    """Paired comparison of two cells over the seeds both finished (:func:`vaegmm.sweeps.stats.paired`) and both
    have ``metric`` for (runs stored before the held-out set existed have no held-out metrics)."""
    ca, cb = resolve_cell(spec, a), resolve_cell(spec, b)
    fin = runs[runs["status"] == "finished"]
    va = pd.to_numeric(fin[fin["cell"] == ca.name].set_index("seed")[metric], errors="coerce").dropna()
    vb = pd.to_numeric(fin[fin["cell"] == cb.name].set_index("seed")[metric], errors="coerce").dropna()
    seeds = sorted(set(va.index) & set(vb.index))
    return paired([float(va[s]) for s in seeds], [float(vb[s]) for s in seeds], _differing_labels(ca, cb),
                  _differing_labels(cb, ca), seeds=seeds, metric=METRIC_WORDS.get(metric, metric))


def _differing_labels(c: Cell, other: Cell) -> str:
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
