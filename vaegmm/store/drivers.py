"""Drivers: the processes that write runs (the CLI, the dashboard's server, a sweep). Each registers a row in the
``drivers`` table on its first run and holds an ``flock`` on ``<db>.driver-<id>.lock`` while it lives, so a run
left ``running`` by a driver whose lock is free was orphaned (its process died) and can be marked
``interrupted``."""
from __future__ import annotations

import os
import socket
import sqlite3
import time
from pathlib import Path
from typing import Optional

from vaegmm.store.database import StoreError
from vaegmm.store.locks import FileLock, holder_note, lock_is_free


class DriverRegistry:
    """This process's driver registration for one store, and the liveness of the others'. Every method that
    takes ``conn`` runs inside the caller's transaction."""

    def __init__(self, db_path: Path):
        self.db_path = Path(db_path)
        self.id: Optional[int] = None
        self._lock: Optional[FileLock] = None

    def register(self, conn: sqlite3.Connection) -> int:
        """This store's driver id, registered on the first write of a run."""
        if self.id is None:
            cur = conn.execute("INSERT INTO drivers (pid, host, started, lock) VALUES (?, ?, ?, '')",
                               (os.getpid(), socket.gethostname(), time.time()))
            driver_id = cur.lastrowid
            lock = FileLock(Path(f"{self.db_path}.driver-{driver_id}.lock"))
            if not lock.try_acquire(holder_note()):
                raise StoreError(f"cannot lock {lock.path}")
            conn.execute("UPDATE drivers SET lock = ? WHERE id = ?", (str(lock.path), driver_id))
            self.id, self._lock = driver_id, lock
        return self.id

    def is_alive(self, conn: sqlite3.Connection, driver_id: Optional[int]) -> bool:
        """Whether that driver's process still holds its lock (this store's own driver always lives)."""
        if driver_id is None:
            return False
        if driver_id == self.id:
            return True
        row = conn.execute("SELECT lock FROM drivers WHERE id = ?", (driver_id,)).fetchone()
        return row is not None and bool(row["lock"]) and not lock_is_free(Path(row["lock"]))

    @staticmethod
    def describe(conn: sqlite3.Connection, driver_id: Optional[int]) -> str:
        """``pid <pid> on <host>`` of a driver, for messages."""
        row = conn.execute("SELECT pid, host FROM drivers WHERE id = ?", (driver_id,)).fetchone()
        return f"pid {row['pid']} on {row['host']}" if row else "an unknown process"

    @staticmethod
    def remove_lock_file(conn: sqlite3.Connection, driver_id: Optional[int]) -> None:
        """Delete a dead driver's leftover lock file."""
        row = conn.execute("SELECT lock FROM drivers WHERE id = ?", (driver_id,)).fetchone()
        if row is not None and row["lock"]:
            try:
                Path(row["lock"]).unlink()
            except OSError:
                pass

    def release(self) -> None:
        """Drop this process's driver lock (its runs still ``running`` become orphans to recover)."""
        if self._lock is not None:
            self._lock.release(unlink=True)
            self._lock = None
