#!/usr/bin/env python
"""Turn the effect-map sweeps in the store into ``vaegmm/sweeps/feedback_map.json`` (issue 19), the file the How it
works page draws "Where feedback matters" from.

    python bench/feedback_map.py --db /tmp/vaegmm-bench/map.db \\
        --sweep issue19-map-seeds0-4 --sweep issue19-refine-seeds0-4 \\
        --confirm issue19-heldout=feedback-lesson \\
        --size "Quick-demo size: 2000 images, K = 10, batch 250, EM GMM, sampled codes" \\
        --note "tuning seeds 0-4; confirmed on held-out seeds 100-109"

Each ``--sweep`` needs a ``feedback`` axis (on, off): every cell with feedback on is paired with the same cell
with feedback off over the seeds both finished (``vaegmm.sweeps.feedback_map.map_rows``, i.e.
``vaegmm.sweeps.results.compare_cells``: mean difference, t interval, paired t-test, wins). When a setting (D,
alpha, epochs, iterations) appears in several sweeps, the later ``--sweep`` wins. Each ``--confirm SWEEP=NAME``
(held-out seeds) becomes the page's table of confirmed settings, NAME being the preset or setting's name.
``--print`` shows the rows without writing.
"""
from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vaegmm.store import RunStore  # noqa: E402
from vaegmm.sweeps.feedback_map import MAP_FILE, map_rows, write_feedback_map  # noqa: E402


def _key(row) -> tuple:
    return row.latent_dim, row.alpha, row.epochs, row.iterations


def build(store, sweeps: list[str], confirms: list[str]) -> tuple[list, list]:
    """``(rows, confirmed)`` from the named sweeps (later ones replace a setting measured before)."""
    rows: dict = {}
    for name in sweeps:
        for row in map_rows(store, name):
            if row.n < 3:  # a cell of a stopped sweep with fewer than 3 finished pairs: no usable interval
                continue
            rows.pop(_key(row), None)
            rows[_key(row)] = row
    confirmed = []
    for item in confirms:
        sweep, _, label = item.partition("=")
        for row in map_rows(store, sweep, source=f"held-out ({sweep})"):
            row.name = label or sweep
            confirmed.append(row)
    return list(rows.values()), confirmed


def draw_png(rows: list, path: Path, title: str) -> Path:
    """The map as a picture for BENCHMARKS/docs: one heat map per VAE schedule, D down, alpha across, each cell the
    paired effect of feedback on final accuracy (points) with its 95 % CI and the seeds it won."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r.n > 0 and r.effect_acc is not None]
    schedules = sorted({(r.epochs, r.iterations) for r in rows})
    ds = sorted({r.latent_dim for r in rows})
    alphas = sorted({r.alpha for r in rows})
    lim = max(5.0, max(abs(r.points()) for r in rows))
    fig, axes = plt.subplots(1, len(schedules), figsize=(4.8 * len(schedules), 1.2 + 1.1 * len(ds)), squeeze=False,
                             gridspec_kw={"wspace": 0.35})
    for ax, (ep, it) in zip(axes[0], schedules):
        grid = [[None] * len(alphas) for _ in ds]
        for r in rows:
            if (r.epochs, r.iterations) == (ep, it):
                grid[ds.index(r.latent_dim)][alphas.index(r.alpha)] = r
        values = [[float("nan") if c is None else c.points() for c in line] for line in grid]
        im = ax.imshow(values, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
        for i, line in enumerate(grid):
            for j, c in enumerate(line):
                text = "not run" if c is None else (f"{c.points():+.1f}\n[{c.ci_text()}]\n{c.wins}/{c.n} seeds"
                                                     if c.ci_text() else f"{c.points():+.1f}\n{c.n} seeds")
                dark = c is not None and abs(c.points()) > 0.6 * lim
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if dark else "black")
        ax.set_xticks(range(len(alphas)), [f"{a:g}" for a in alphas])
        ax.set_yticks(range(len(ds)), [str(d) for d in ds])
        ax.set_xlabel("alpha (KL weight)")
        ax.set_ylabel("latent dimension D")
        ax.set_title(f"{ep} epochs x {it} iterations")
    fig.colorbar(im, ax=axes[0].tolist(), label="feedback on - off, accuracy points")
    fig.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", required=True, help="the sweep store (SQLite)")
    ap.add_argument("--sweep", action="append", default=[], help="a map sweep (with a feedback axis); repeatable")
    ap.add_argument("--confirm", action="append", default=[], help="SWEEP=NAME: a held-out confirmation; repeatable")
    ap.add_argument("--out", default=str(MAP_FILE), help=f"the JSON to write (default {MAP_FILE.relative_to(ROOT)})")
    ap.add_argument("--size", default="", help="what stays fixed over the map, for the page")
    ap.add_argument("--note", default="", help="a line for the page (seeds, what was refined)")
    ap.add_argument("--print", action="store_true", help="print the rows, write nothing")
    ap.add_argument("--png", help="also draw the map as a picture here (e.g. docs/feedback_map.png)")
    a = ap.parse_args(argv)
    with RunStore(a.db, readonly=True) as store:
        rows, confirmed = build(store, a.sweep, a.confirm)
    for r in rows + confirmed:
        pts = r.points()
        print(f"{r.name or r.source:>24}  D={r.latent_dim:<3} alpha={r.alpha:<4g} {r.schedule:<16} n={r.n:<3} "
              f"acc {'n/a' if pts is None else f'{pts:+.1f}'} pts [{r.ci_text()}]  wins {r.wins}")
    if a.print:
        return 0
    command = "python bench/feedback_map.py " + " ".join(sys.argv[1:] if argv is None else argv)
    path = write_feedback_map(Path(a.out), rows, confirmed, made=datetime.date.today().isoformat(), size=a.size,
                              note=a.note, command=command, sweeps=a.sweep + [c.partition("=")[0] for c in a.confirm])
    print(f"wrote {path}")
    if a.png:
        print(f"wrote {draw_png(rows, Path(a.png), 'Paired effect of feedback on final accuracy (tuning seeds; ' + a.size + ')')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
