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
            rows.pop(_key(row), None)
            rows[_key(row)] = row
    confirmed = []
    for item in confirms:
        sweep, _, label = item.partition("=")
        for row in map_rows(store, sweep, source=f"held-out ({sweep})"):
            row.name = label or sweep
            confirmed.append(row)
    return list(rows.values()), confirmed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", required=True, help="the sweep store (SQLite)")
    ap.add_argument("--sweep", action="append", default=[], help="a map sweep (with a feedback axis); repeatable")
    ap.add_argument("--confirm", action="append", default=[], help="SWEEP=NAME: a held-out confirmation; repeatable")
    ap.add_argument("--out", default=str(MAP_FILE), help=f"the JSON to write (default {MAP_FILE.relative_to(ROOT)})")
    ap.add_argument("--size", default="", help="what stays fixed over the map, for the page")
    ap.add_argument("--note", default="", help="a line for the page (seeds, what was refined)")
    ap.add_argument("--print", action="store_true", help="print the rows, write nothing")
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
