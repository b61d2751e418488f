"""The ``sweeps`` and ``sweep_runs`` tables: a named sweep with its spec and status, and which run stands for
each of its (cell, seed) pairs. A sweep never trains a key that has a finished run already, whatever made it."""
from __future__ import annotations

import json
import sqlite3
import time
from typing import Any, Mapping, Optional

from vaegmm.store.database import Database, StoreError
from vaegmm.store.keys import config_with_seed, run_key, to_json
from vaegmm.store.locks import SweepLock, lock_is_free, sweep_lock_path
from vaegmm.store.runs import RunTable
from vaegmm.store.schema import SWEEP_STATES

REUSE, BUSY, NEW = "reuse", "busy", "new"


def claim_decision(finished_run: Optional[int], trained_elsewhere: Optional[int]) -> str:
    """The sweep's rule for one (config, seed), given what the store holds for its key:

    * :data:`REUSE` when a finished run exists (from any source): it stands for the pair, nothing is trained;
    * :data:`BUSY` when another live driver trains the key now: the sweep comes back to it later;
    * :data:`NEW` otherwise: the sweep trains a new run.
    """
    if finished_run is not None:
        return REUSE
    if trained_elsewhere is not None:
        return BUSY
    return NEW


def _sweep_runs_row(row: sqlite3.Row) -> dict:
    d = dict(row)
    d["extra"] = json.loads(d["extra"] or "{}")
    return d


class SweepTable:
    """Creates, locks and reads sweeps, and claims their runs (the claim is one transaction with the run table)."""

    def __init__(self, db: Database, runs: RunTable):
        self.db = db
        self.runs = runs

    def create(self, name: str, spec: Mapping[str, Any]) -> int:
        """A new sweep (status ``running``), or the existing one of that name when its spec is the same.
        Another spec under the same name is refused."""
        text = to_json(spec)
        with self.db.transaction() as conn:
            row = conn.execute("SELECT id, spec FROM sweeps WHERE name = ?", (name,)).fetchone()
            if row is not None:
                if row["spec"] != text:
                    raise StoreError(f"a sweep named {name!r} already exists in {self.db.path} with other settings: "
                                     f"choose another name, or resume it as it was")
                return int(row["id"])
            cur = conn.execute("INSERT INTO sweeps (name, spec, created, status, updated) VALUES (?, ?, ?, ?, ?)",
                               (name, text, time.time(), "running", time.time()))
            return int(cur.lastrowid)

    def _sweep_dict(self, row: sqlite3.Row) -> dict:
        d = dict(row)
        d["spec"] = json.loads(d["spec"])
        if d["status"] == "running" and lock_is_free(sweep_lock_path(self.db.path, d["id"])):
            d["status"] = "interrupted"  # its driver died: resume it
        return d

    def get(self, name_or_id: str | int) -> Optional[dict]:
        """A sweep by name or id (``spec`` parsed), or None."""
        col = "id" if isinstance(name_or_id, int) else "name"
        rows = self.db.read(f"SELECT * FROM sweeps WHERE {col} = ?", (name_or_id,))
        return self._sweep_dict(rows[0]) if rows else None

    def all(self) -> list[dict]:
        """Every sweep, newest first; a ``running`` one whose driver died reads ``interrupted``."""
        return [self._sweep_dict(r) for r in self.db.read("SELECT * FROM sweeps ORDER BY id DESC")]

    def set_status(self, sweep_id: int, status: str, message: str = "") -> None:
        if status not in SWEEP_STATES:
            raise ValueError(f"sweep status must be one of {SWEEP_STATES}, got {status!r}")
        with self.db.transaction() as conn:
            conn.execute("UPDATE sweeps SET status = ?, message = ?, updated = ? WHERE id = ?",
                         (status, message, time.time(), sweep_id))

    def lock(self, sweep_id: int, name: str = "") -> SweepLock:
        """The right to drive this sweep; :class:`StoreError` when another live process has it."""
        return SweepLock.acquire(self.db.path, sweep_id, name)

    def claim_run(self, sweep_id: int, cell: str, config: Any, seed: int, label: str = "",
                  preset: str = "") -> tuple[str, int]:
        """In one transaction: look up the key of (config, seed), apply :func:`claim_decision`, and act on it:
        ``("reuse", run_id)``: the finished run is linked to the sweep's cell, not trained;
        ``("busy", run_id)``: the run another driver trains; nothing is written;
        ``("new", run_id)``: a new ``running`` run, linked to the sweep's cell: train it."""
        key = run_key(config_with_seed(config, seed), seed)
        with self.db.transaction() as conn:
            finished = self.runs.latest_finished(conn, key)
            elsewhere = None if finished is not None else self.runs.trained_elsewhere(conn, key)
            decision = claim_decision(finished, elsewhere)
            if decision == REUSE:
                run_id = finished
            elif decision == BUSY:
                return BUSY, elsewhere
            else:
                run_id = self.runs.insert(conn, config, seed, "sweep", label, preset)
            conn.execute("INSERT OR REPLACE INTO sweep_runs (sweep_id, cell, seed, run_id) VALUES (?, ?, ?, ?)",
                         (sweep_id, cell, int(seed), run_id))
            return decision, run_id

    def runs_of(self, sweep_id: int) -> list[dict]:
        """The runs linked to a sweep: ``cell, seed, run_id, status, message, seconds, host, source, started,
        finished, extra`` (one row per cell and seed: the latest attempt)."""
        rows = self.db.read("SELECT sr.cell, sr.seed, r.id AS run_id, r.status, r.message, r.seconds, r.host, "
                            "r.source, r.started, r.finished, r.extra FROM sweep_runs sr JOIN runs r ON "
                            "r.id = sr.run_id WHERE sr.sweep_id = ? ORDER BY r.id", (sweep_id,))
        return [_sweep_runs_row(r) for r in rows]
