"""The ``iterations`` table: one row of metrics per run and mutual-learning iteration."""
from __future__ import annotations

import json
import sqlite3
from typing import Any, Iterable, Mapping

import pandas as pd

from vaegmm.store.database import Database
from vaegmm.store.keys import to_json

METRIC_COLUMNS = ("accuracy", "nmi", "ari", "seconds_vae", "seconds_gmm", "heldout_accuracy", "heldout_nmi")
_PARAMETER_LIMIT = 500  # run ids per query: under SQLite's limit on host parameters (999 before SQLite 3.32)


class IterationTable:
    """Writes and reads per-iteration metrics. Writes take the caller's transaction's ``conn``."""

    def __init__(self, db: Database):
        self.db = db

    @staticmethod
    def insert(conn: sqlite3.Connection, run_id: int, rows: Iterable[Mapping[str, Any]]) -> None:
        """Metrics dicts with ``iteration`` and any of :data:`METRIC_COLUMNS`; every other key goes to ``extra``
        (JSON). A row with the same (run, iteration) is replaced."""
        data = []
        for m in rows:
            extra = {k: v for k, v in m.items() if k not in METRIC_COLUMNS and k != "iteration"}
            data.append((run_id, int(m["iteration"]),
                         *[None if m.get(c) is None else float(m[c]) for c in METRIC_COLUMNS], to_json(extra)))
        conn.executemany(f"INSERT OR REPLACE INTO iterations (run_id, iteration, {', '.join(METRIC_COLUMNS)}, extra) "
                         f"VALUES ({', '.join('?' * (len(METRIC_COLUMNS) + 3))})", data)

    def frame(self, run_ids: Iterable[int], extra: bool = False) -> pd.DataFrame:
        """Per-iteration metrics of these runs: ``run_id, iteration, accuracy, nmi, ari, seconds_vae,
        seconds_gmm, heldout_accuracy, heldout_nmi`` and, with ``extra=True``, a dict column ``extra``; one row
        per (run, iteration), sorted. An older store opened read-only (not migrated) gives NULL held-out
        metrics."""
        ids = [int(i) for i in run_ids]
        cols = ["run_id", "iteration", *METRIC_COLUMNS] + (["extra"] if extra else [])
        present = {r["name"] for r in self.db.read("PRAGMA table_info(iterations)")}
        select = ", ".join(c if c in present else f"NULL AS {c}" for c in cols)
        rows = []
        for start in range(0, len(ids), _PARAMETER_LIMIT):
            chunk = ids[start:start + _PARAMETER_LIMIT]
            rows += self.db.read(f"SELECT {select} FROM iterations WHERE run_id IN "
                                 f"({','.join('?' * len(chunk))}) ORDER BY run_id, iteration", chunk)
        df = pd.DataFrame([tuple(r) for r in rows], columns=cols)
        if extra and len(df):
            df["extra"] = df["extra"].map(json.loads)
        return df
