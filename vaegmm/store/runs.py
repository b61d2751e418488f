"""The ``runs`` table: every run (from a sweep, the dashboard or the CLI), its status, timings and where it
trained. A run row starts ``running`` and ends ``finished``, ``failed``, ``stopped`` or ``interrupted``."""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from typing import Any, Mapping, Optional, Sequence

from vaegmm.store.database import Database, StoreError
from vaegmm.store.drivers import DriverRegistry
from vaegmm.store.iterations import IterationTable
from vaegmm.store.keys import config_hash, config_with_seed, run_key, to_json
from vaegmm.store.schema import RUN_STATES, SOURCES

RESULT_EXTRAS = ("cpu_seconds", "load_seconds", "train_seconds", "attempts", "worker", "executor")


def _optional_str(x: Any) -> Optional[str]:
    return None if x is None else str(x)


def run_dict(row: sqlite3.Row) -> dict:
    """A run row as a dict, its ``config`` and ``extra`` JSON parsed."""
    d = dict(row)
    d["config"] = json.loads(d["config"])
    d["extra"] = json.loads(d.get("extra") or "{}")
    return d


class RunTable:
    """Creates, ends and reads runs. The ``conn`` methods run inside the caller's transaction (a sweep's claim);
    the others open their own."""

    def __init__(self, db: Database, drivers: DriverRegistry, iterations: IterationTable):
        self.db = db
        self.drivers = drivers
        self.iterations = iterations

    # ------------------------------------------------------------------------------------------ writes
    def insert(self, conn: sqlite3.Connection, config: Any, seed: int, source: str, label: str = "",
               preset: str = "", status: str = "running", export_dir: Optional[str] = None,
               host: Optional[str] = None, pid: Optional[int] = None) -> int:
        """A new run row driven by this process; returns its id. ``config``: a RunConfig or its dict."""
        cfg = config_with_seed(config, seed)
        now = time.time()
        cur = conn.execute(
            "INSERT INTO runs (key, config, config_hash, seed, source, label, preset, status, created, started, "
            "host, pid, export_dir, driver_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_key(cfg, seed), to_json(cfg), config_hash(cfg), int(seed), source, label, preset, status, now, now,
             host, pid, _optional_str(export_dir), self.drivers.register(conn)))
        return int(cur.lastrowid)

    def begin(self, config: Any, seed: int, source: str, label: str = "", preset: str = "",
              export_dir: Optional[str] = None, status: str = "running") -> int:
        """A new run row (``running``) training in this process; returns its id."""
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
        if status not in RUN_STATES:
            raise ValueError(f"status must be one of {RUN_STATES}, got {status!r}")
        with self.db.transaction() as conn:
            return self.insert(conn, config, seed, source, label, preset, status, export_dir,
                               host=socket.gethostname(), pid=os.getpid())

    def add_iteration(self, run_id: int, metrics: Mapping[str, Any]) -> None:
        """One iteration's metrics (see :meth:`IterationTable.insert`), in its own transaction."""
        with self.db.transaction() as conn:
            self.iterations.insert(conn, run_id, [metrics])

    def finish(self, run_id: int, status: str, message: str = "", seconds: Optional[float] = None,
               extra: Optional[Mapping[str, Any]] = None, export_dir: Optional[str] = None) -> None:
        """End a run: ``finished``, ``failed``, ``stopped`` or ``interrupted``, with a message and its seconds."""
        if status not in RUN_STATES or status == "running":
            raise ValueError(f"a run ends as one of {RUN_STATES[1:]}, got {status!r}")
        with self.db.transaction() as conn:
            self._end(conn, run_id, status, message, seconds, extra, export_dir)

    def _end(self, conn, run_id, status, message, seconds, extra, export_dir=None, host=None, pid=None) -> None:
        """Set a run's end; ``extra`` is merged into the stored one, ``None`` arguments keep the stored value."""
        old = conn.execute("SELECT extra FROM runs WHERE id = ?", (run_id,)).fetchone()
        if old is None:
            raise StoreError(f"no run {run_id} in {self.db.path}")
        merged = {**json.loads(old["extra"] or "{}"), **dict(extra or {})}
        conn.execute("UPDATE runs SET status = ?, message = ?, finished = ?, seconds = coalesce(?, seconds), "
                     "extra = ?, export_dir = coalesce(?, export_dir), host = coalesce(?, host), "
                     "pid = coalesce(?, pid) WHERE id = ?",
                     (status, message or "", time.time(), seconds, to_json(merged), _optional_str(export_dir),
                      host, pid, run_id))

    def record_result(self, run_id: int, result: Mapping[str, Any]) -> None:
        """A sweep run's result from :func:`vaegmm.sweeps.cell.run_one`: its iterations and its end, one
        transaction."""
        extra = {k: result[k] for k in RESULT_EXTRAS if k in result}
        with self.db.transaction() as conn:
            self.iterations.insert(conn, run_id, result.get("iterations") or [])
            self._end(conn, run_id, result.get("status", "failed"), result.get("message", ""),
                      result.get("seconds"), extra, host=result.get("host"), pid=result.get("pid"))

    def set_export_dir(self, run_id: int, path: Optional[str]) -> None:
        """Where the run's files are (or ``None`` once they have been deleted)."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE runs SET export_dir = ? WHERE id = ?", (_optional_str(path), run_id))

    def recover(self) -> int:
        """Mark ``running`` runs whose driver process has died as ``interrupted``; returns how many."""
        with self.db.transaction() as conn:
            rows = conn.execute("SELECT DISTINCT driver_id FROM runs WHERE status = 'running'").fetchall()
            dead = [r[0] for r in rows if not self.drivers.is_alive(conn, r[0])]
            count = 0
            for driver_id in dead:
                who = self.drivers.describe(conn, driver_id)
                cur = conn.execute(
                    "UPDATE runs SET status = 'interrupted', finished = ?, message = ? WHERE status = 'running' AND "
                    "driver_id IS ?", (time.time(), f"interrupted: the process that ran it ({who}) ended", driver_id))
                count += cur.rowcount
                self.drivers.remove_lock_file(conn, driver_id)
            return count

    # ------------------------------------------------------------------------------------------ reads
    @staticmethod
    def latest_finished(conn: sqlite3.Connection, key: str) -> Optional[int]:
        """The newest ``finished`` run with this key (from any source), or None."""
        row = conn.execute("SELECT id FROM runs WHERE key = ? AND status = 'finished' ORDER BY id DESC LIMIT 1",
                           (key,)).fetchone()
        return None if row is None else int(row["id"])

    def trained_elsewhere(self, conn: sqlite3.Connection, key: str) -> Optional[int]:
        """A ``running`` run with this key that another live driver trains now, or None."""
        for r in conn.execute("SELECT id, driver_id FROM runs WHERE key = ? AND status = 'running'", (key,)):
            if r["driver_id"] != self.drivers.id and self.drivers.is_alive(conn, r["driver_id"]):
                return int(r["id"])
        return None

    def get(self, run_id: int) -> Optional[dict]:
        rows = self.db.read("SELECT * FROM runs WHERE id = ?", (int(run_id),))
        return run_dict(rows[0]) if rows else None

    def find(self, source: Optional[str] = None, status: Optional[str | Sequence[str]] = None,
             key: Optional[str] = None, config_hash: Optional[str] = None, sweep: Optional[str | int] = None,
             limit: Optional[int] = None, newest_first: bool = False) -> list[dict]:
        """Runs as dicts (``config`` and ``extra`` parsed), filtered by any of the arguments."""
        where, args = [], []
        for column, value in (("r.source", source), ("r.key", key), ("r.config_hash", config_hash)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if status is not None:
            states = [status] if isinstance(status, str) else list(status)
            where.append(f"r.status IN ({','.join('?' * len(states))})")
            args += states
        join = ""
        if sweep is not None:
            join = "JOIN sweep_runs sr ON sr.run_id = r.id JOIN sweeps s ON s.id = sr.sweep_id"
            where.append("s.id = ?" if isinstance(sweep, int) else "s.name = ?")
            args.append(sweep)
        sql = (f"SELECT r.* FROM runs r {join} {'WHERE ' + ' AND '.join(where) if where else ''} "
               f"ORDER BY r.id {'DESC' if newest_first else 'ASC'}")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [run_dict(r) for r in self.db.read(sql, args)]
