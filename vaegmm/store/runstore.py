"""The results store: every run (from a sweep, the dashboard or the CLI) and its per-iteration metrics, kept for
good in one SQLite file.

* Where: ``$VAEGMM_DB``, else ``<cache>/runs.db`` (``~/.cache/vaegmm/runs.db``; ``$VAEGMM_CACHE_DIR`` moves it).
* SQLite in WAL mode (readers, e.g. a page that polls, never block the writer), a busy timeout, one transaction
  per write. Only a *driver* process writes (the CLI, or the dashboard's server); workers return results.
* A run's **key** is ``<config hash>-<seed>``. The hash is a SHA-256 of the canonical JSON of
  ``RunConfig.to_dict()`` without ``seed`` (it is in the key on its own) and without ``vae.device`` (where a run
  trains does not change the experiment; float rounding differs between machines anyway). A sweep never trains a
  key that has a finished run already, whatever made it.
* Each writer registers as a *driver* and holds an ``flock`` on ``<db>.driver-<id>.lock`` while it lives. A run
  left ``running`` by a driver whose lock is free (the process died) is marked ``interrupted`` by
  :meth:`RunStore.recover`. One sweep is driven by one process at a time: ``<db>.sweep-<id>.lock``.
  (flock is per machine: keep the database on a local disk, beside the driver.)
* The file's schema version (``PRAGMA user_version`` and the ``meta`` table, whose ``app_id`` marks the file as
  ours) is checked on open; a corrupt or foreign file, or a newer schema, gives a :class:`StoreError` with one
  line and the file is not touched.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

DB_ENV = "VAEGMM_DB"
APP_ID = "vaegmm-runs"
SCHEMA_VERSION = 1
SOURCES = ("sweep", "dashboard", "cli")
RUN_STATES = ("running", "finished", "failed", "stopped", "interrupted")
SWEEP_STATES = ("running", "finished", "stopped", "interrupted", "failed")
_SQLITE_MAGIC = b"SQLite format 3\x00"

_SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE drivers (
    id INTEGER PRIMARY KEY, pid INTEGER NOT NULL, host TEXT NOT NULL, started REAL NOT NULL, lock TEXT NOT NULL);
CREATE TABLE sweeps (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, spec TEXT NOT NULL, created REAL NOT NULL,
    status TEXT NOT NULL CHECK (status IN {SWEEP_STATES}), message TEXT NOT NULL DEFAULT '', updated REAL);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,                -- config_hash-seed
    config TEXT NOT NULL,             -- RunConfig.to_dict() as JSON, seed included
    config_hash TEXT NOT NULL,
    seed INTEGER NOT NULL,
    source TEXT NOT NULL CHECK (source IN {SOURCES}),
    label TEXT NOT NULL DEFAULT '',
    preset TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL CHECK (status IN {RUN_STATES}),
    message TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL, started REAL, finished REAL,
    seconds REAL,                     -- wall seconds of the run
    host TEXT, pid INTEGER,           -- where it trained
    export_dir TEXT,                  -- a folder written by the run (CLI --out, dashboard export), if any
    driver_id INTEGER REFERENCES drivers(id),
    extra TEXT NOT NULL DEFAULT '{{}}'  -- timings (load, cpu), attempts, worker details
);
CREATE INDEX runs_key ON runs(key, status);
CREATE INDEX runs_status ON runs(status);
CREATE TABLE sweep_runs (
    sweep_id INTEGER NOT NULL REFERENCES sweeps(id), cell TEXT NOT NULL, seed INTEGER NOT NULL,
    run_id INTEGER NOT NULL REFERENCES runs(id), PRIMARY KEY (sweep_id, cell, seed));
CREATE INDEX sweep_runs_run ON sweep_runs(run_id);
CREATE TABLE iterations (
    run_id INTEGER NOT NULL REFERENCES runs(id), iteration INTEGER NOT NULL,
    accuracy REAL, nmi REAL, ari REAL, seconds_vae REAL, seconds_gmm REAL,
    extra TEXT NOT NULL DEFAULT '{{}}',  -- class_counts, per-epoch recon / kl
    PRIMARY KEY (run_id, iteration));
"""


class StoreError(ValueError):
    """The results store cannot be used: corrupt or foreign file, newer schema, read-only folder, a sweep
    already driven by another process... The message is one line and says what to do."""


def default_db_path() -> Path:
    """``$VAEGMM_DB``, else ``runs.db`` in vaegmm's cache folder (``~/.cache/vaegmm``)."""
    raw = os.environ.get(DB_ENV, "").strip()
    if raw:
        return Path(raw).expanduser()
    from vaegmm.model.data import cache_dir

    return cache_dir() / "runs.db"


def canonical_config(config: Any) -> dict:
    """``RunConfig.to_dict()`` (or a dict of it) as JSON-able types, without the fields the hash ignores."""
    d = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    d = json.loads(json.dumps(d))  # tuples -> lists, a deep copy
    d.pop("seed", None)
    d.get("vae", {}).pop("device", None)
    return d


def config_hash(config: Any) -> str:
    """SHA-256 (first 20 hex digits) of the canonical JSON of the config, without seed and device."""
    text = json.dumps(canonical_config(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def run_key(config: Any, seed: int) -> str:
    return f"{config_hash(config)}-{int(seed)}"


def _json(x: Any) -> str:
    return json.dumps(x, sort_keys=True, separators=(",", ":"), default=_default)


def _default(x):
    import numpy as np

    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, tuple):
        return list(x)
    raise TypeError(f"not JSON-able: {type(x).__name__}")


class _FileLock:
    """An exclusive, non-blocking ``flock`` on a small file that names its holder."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: Optional[int] = None

    def try_acquire(self, note: str = "") -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # the holder before us may have unlinked the file between our open and our flock: then we locked an
            # orphan, and a newcomer could lock the new file at the same path; only the file at the path counts
            if os.fstat(fd).st_ino != os.stat(self.path).st_ino:
                raise OSError("lock file replaced")
        except OSError:
            os.close(fd)
            return False
        if note:
            os.ftruncate(fd, 0)
            os.write(fd, note.encode())
        self._fd = fd
        return True

    def holder(self) -> str:
        try:
            return self.path.read_text().strip()
        except OSError:
            return ""

    def release(self, unlink: bool = False) -> None:
        if self._fd is None:
            return
        if unlink:
            try:
                self.path.unlink()
            except OSError:
                pass
        os.close(self._fd)  # closing the descriptor drops the flock
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def _lock_is_free(path: Path) -> bool:
    """True when no process holds ``path``'s flock (its holder died, or it never existed)."""
    try:
        fd = os.open(path, os.O_RDONLY)  # read-only: probing must work in a read-only folder and create nothing
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # shared: two probes at once do not see each other
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


class SweepLock:
    """Held by the one process that drives a sweep; released on :meth:`release` or when that process dies."""

    def __init__(self, lock: _FileLock):
        self._lock = lock

    def release(self) -> None:
        self._lock.release(unlink=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


class RunStore:
    """The SQLite results store. Thread-safe (one connection behind a lock). ``readonly=True`` opens for reading
    only (e.g. ``report``), which also works in a read-only folder.

    Writers: :meth:`begin_run`, :meth:`add_iteration`, :meth:`finish_run` (the dashboard's live runs, the CLI's
    ``run``), :meth:`claim_run` and :meth:`record_result` (sweeps). Readers: :meth:`list_runs`, :meth:`get_run`,
    :meth:`iterations`, :meth:`list_sweeps`, :meth:`get_sweep`, :meth:`sweep_runs`.
    """

    def __init__(self, path: Optional[os.PathLike | str] = None, readonly: bool = False, timeout: float = 30.0):
        self.path = Path(path).expanduser() if path is not None else default_db_path()
        self.readonly = readonly
        self._lock = threading.RLock()
        self._driver_id: Optional[int] = None
        self._driver_lock: Optional[_FileLock] = None
        self._conn = self._open(timeout)

    # ------------------------------------------------------------------------------------------ opening
    def _open(self, timeout: float) -> sqlite3.Connection:
        p = self.path
        if p.is_dir():
            raise StoreError(f"the results store {p} is a folder, not a file; give a file path (--db or {DB_ENV})")
        exists = p.exists() and p.stat().st_size > 0
        if exists:
            try:
                with open(p, "rb") as f:
                    head = f.read(16)
            except OSError as e:
                raise StoreError(f"cannot read the results store {p}: {e.strerror}") from None
            if head != _SQLITE_MAGIC:
                raise StoreError(f"{p} is not a SQLite database (a corrupt or foreign file); it was left untouched: "
                                 f"choose another file with --db or {DB_ENV}")
        elif self.readonly:
            raise StoreError(f"there is no results store at {p} (set --db or {DB_ENV})")
        else:
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
                if not p.exists():
                    with open(p, "ab"):
                        pass
            except OSError as e:
                raise StoreError(f"cannot create the results store {p}: {e.strerror} (is {p.parent} read-only? "
                                 f"set --db or {DB_ENV} to a writable file)") from None
        conn = self._connect(timeout)
        try:
            self._check_and_init(conn, exists)
        except sqlite3.DatabaseError as e:
            conn.close()
            text = str(e)
            if "readonly" in text or "unable to open" in text or "read-only" in text:
                raise StoreError(f"cannot write the results store {p}: {text} (is {p.parent} read-only? set --db "
                                 f"or {DB_ENV} to a writable file)") from None
            raise StoreError(f"{p} is not a usable SQLite database ({text}); it was left untouched: choose another "
                             f"file with --db or {DB_ENV}") from None
        except StoreError:
            conn.close()
            raise
        return conn

    def _connect(self, timeout: float) -> sqlite3.Connection:
        p = self.path
        if not self.readonly:
            conn = sqlite3.connect(str(p), timeout=timeout, check_same_thread=False)
        else:
            conn = None
            for query in ("mode=ro", "immutable=1"):  # immutable: a WAL file in a folder we cannot write
                try:
                    conn = sqlite3.connect(f"file:{p}?{query}", uri=True, timeout=timeout, check_same_thread=False)
                    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                    break
                except sqlite3.OperationalError:
                    if conn is not None:
                        conn.close()
                    conn = None
            if conn is None:
                raise StoreError(f"cannot open the results store {p} for reading")
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        return conn

    def _check_and_init(self, conn: sqlite3.Connection, exists: bool) -> None:
        p = self.path
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if tables:
            if "meta" not in tables:
                raise StoreError(f"{p} is a SQLite database of another program (no vaegmm tables); it was left "
                                 f"untouched: choose another file with --db or {DB_ENV}")
            meta = {r[0]: r[1] for r in conn.execute("SELECT key, value FROM meta")}
            if meta.get("app_id") != APP_ID:
                raise StoreError(f"{p} is a SQLite database of another program (app_id {meta.get('app_id')!r}); it "
                                 f"was left untouched: choose another file with --db or {DB_ENV}")
            stored = int(meta.get("schema", version))
            if stored > SCHEMA_VERSION or version > SCHEMA_VERSION:
                raise StoreError(f"{p} was written by a newer vaegmm (store schema {max(stored, version)}; this one "
                                 f"reads {SCHEMA_VERSION}): upgrade vaegmm or use another file")
            if stored != version:
                raise StoreError(f"{p} has inconsistent schema marks (user_version {version}, meta {stored}); it "
                                 "was left untouched")
            if not self.readonly and conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        if version != 0:
            raise StoreError(f"{p} is a SQLite database of another program (user_version {version}); it was left "
                             "untouched")
        if self.readonly:
            raise StoreError(f"{p} is an empty database, not a results store yet")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"cannot switch {p} to WAL mode (got {mode!r}); is its folder read-only?")
        with conn:
            conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")
            conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                             [("app_id", APP_ID), ("schema", str(SCHEMA_VERSION)), ("created", str(time.time()))])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._driver_lock is not None:
                self._driver_lock.release(unlink=True)
                self._driver_lock = None

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    # ------------------------------------------------------------------------------------------ helpers
    def _q(self, sql: str, args: Sequence = ()) -> list[sqlite3.Row]:
        with self._lock:
            if self._conn is None:
                raise StoreError(f"the results store {self.path} is closed")
            try:
                return self._conn.execute(sql, args).fetchall()
            except sqlite3.DatabaseError as e:
                raise StoreError(f"cannot read the results store {self.path}: {e}") from None

    def _write(self):
        """``with self._write() as conn:`` one ``BEGIN IMMEDIATE`` transaction, committed or rolled back."""
        store = self

        class _Tx:
            def __enter__(self_inner):
                store._lock.acquire()
                if store.readonly:
                    store._lock.release()
                    raise StoreError(f"the results store {store.path} was opened read-only")
                if store._conn is None:
                    store._lock.release()
                    raise StoreError(f"the results store {store.path} is closed")
                try:
                    store._conn.execute("BEGIN IMMEDIATE")
                except sqlite3.DatabaseError as e:
                    store._lock.release()
                    raise StoreError(f"cannot write the results store {store.path}: {e}") from None
                return store._conn

            def __exit__(self_inner, exc_type, exc, tb):
                try:
                    if exc_type is None:
                        try:
                            store._conn.execute("COMMIT")
                        except sqlite3.DatabaseError as e:
                            store._conn.execute("ROLLBACK")
                            raise StoreError(f"cannot write the results store {store.path}: {e}") from None
                    else:
                        store._conn.execute("ROLLBACK")
                        if isinstance(exc, sqlite3.DatabaseError):
                            raise StoreError(f"cannot write the results store {store.path}: {exc}") from None
                finally:
                    store._lock.release()
                return False

        return _Tx()

    def _driver(self, conn: sqlite3.Connection) -> int:
        """This store's driver id, registered on the first write of a run (inside the caller's transaction)."""
        if self._driver_id is None:
            cur = conn.execute("INSERT INTO drivers (pid, host, started, lock) VALUES (?, ?, ?, '')",
                               (os.getpid(), socket.gethostname(), time.time()))
            driver_id = cur.lastrowid
            lock = _FileLock(Path(f"{self.path}.driver-{driver_id}.lock"))
            if not lock.try_acquire(f"pid {os.getpid()} on {socket.gethostname()}"):
                raise StoreError(f"cannot lock {lock.path}")
            conn.execute("UPDATE drivers SET lock = ? WHERE id = ?", (str(lock.path), driver_id))
            self._driver_id, self._driver_lock = driver_id, lock
        return self._driver_id

    def _driver_alive(self, driver_id: Optional[int]) -> bool:
        if driver_id is None:
            return False
        if driver_id == self._driver_id:
            return True
        row = self._conn.execute("SELECT lock FROM drivers WHERE id = ?", (driver_id,)).fetchone()
        return row is not None and bool(row["lock"]) and not _lock_is_free(Path(row["lock"]))

    # ------------------------------------------------------------------------------------------ runs
    def begin_run(self, config: Any, seed: int, source: str, label: str = "", preset: str = "",
                  export_dir: Optional[str] = None, status: str = "running") -> int:
        """A new run row (``running``); returns its id. ``config``: a RunConfig or its dict."""
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
        if status not in RUN_STATES:
            raise ValueError(f"status must be one of {RUN_STATES}, got {status!r}")
        cfg = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        cfg = json.loads(_json(cfg))
        cfg["seed"] = int(seed)
        now = time.time()
        with self._write() as conn:
            driver = self._driver(conn)
            cur = conn.execute(
                "INSERT INTO runs (key, config, config_hash, seed, source, label, preset, status, created, started, "
                "host, pid, export_dir, driver_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_key(cfg, seed), _json(cfg), config_hash(cfg), int(seed), source, label, preset, status, now, now,
                 socket.gethostname(), os.getpid(), None if export_dir is None else str(export_dir), driver))
            return int(cur.lastrowid)

    def add_iteration(self, run_id: int, metrics: Mapping[str, Any]) -> None:
        """One iteration's metrics (``iteration``, ``accuracy``, ``nmi``, ``ari``, ``seconds_vae``,
        ``seconds_gmm``; anything else goes to ``extra``), in its own transaction. Replaces a row with the same
        iteration number."""
        with self._write() as conn:
            self._insert_iterations(conn, run_id, [metrics])

    @staticmethod
    def _insert_iterations(conn: sqlite3.Connection, run_id: int, rows: Iterable[Mapping[str, Any]]) -> None:
        cols = ("accuracy", "nmi", "ari", "seconds_vae", "seconds_gmm")
        data = []
        for m in rows:
            extra = {k: v for k, v in m.items() if k not in cols and k != "iteration"}
            data.append((run_id, int(m["iteration"]), *[None if m.get(c) is None else float(m[c]) for c in cols],
                         _json(extra)))
        conn.executemany("INSERT OR REPLACE INTO iterations (run_id, iteration, accuracy, nmi, ari, seconds_vae, "
                         "seconds_gmm, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", data)

    def finish_run(self, run_id: int, status: str, message: str = "", seconds: Optional[float] = None,
                   extra: Optional[Mapping[str, Any]] = None, export_dir: Optional[str] = None) -> None:
        """End a run: ``finished``, ``failed``, ``stopped`` or ``interrupted``, with a message and its seconds."""
        if status not in RUN_STATES or status == "running":
            raise ValueError(f"a run ends as one of {RUN_STATES[1:]}, got {status!r}")
        with self._write() as conn:
            self._finish(conn, run_id, status, message, seconds, extra, export_dir)

    def _finish(self, conn, run_id, status, message, seconds, extra, export_dir=None, host=None, pid=None) -> None:
        old = conn.execute("SELECT extra FROM runs WHERE id = ?", (run_id,)).fetchone()
        if old is None:
            raise StoreError(f"no run {run_id} in {self.path}")
        merged = {**json.loads(old["extra"] or "{}"), **dict(extra or {})}
        conn.execute("UPDATE runs SET status = ?, message = ?, finished = ?, seconds = coalesce(?, seconds), "
                     "extra = ?, export_dir = coalesce(?, export_dir), host = coalesce(?, host), "
                     "pid = coalesce(?, pid) WHERE id = ?",
                     (status, message or "", time.time(), seconds, _json(merged),
                      None if export_dir is None else str(export_dir), host, pid, run_id))

    def set_export_dir(self, run_id: int, path: Optional[str]) -> None:
        """Where the run's files are (or ``None`` once they have been deleted)."""
        with self._write() as conn:
            conn.execute("UPDATE runs SET export_dir = ? WHERE id = ?", (None if path is None else str(path), run_id))

    def record_result(self, run_id: int, result: Mapping[str, Any]) -> None:
        """A sweep run's result from :func:`vaegmm.sweeps.sweep.run_one`: its iterations and its end, one transaction."""
        extra = {k: result[k] for k in ("cpu_seconds", "load_seconds", "train_seconds", "attempts", "worker",
                                        "executor") if k in result}
        with self._write() as conn:
            self._insert_iterations(conn, run_id, result.get("iterations") or [])
            self._finish(conn, run_id, result.get("status", "failed"), result.get("message", ""),
                         result.get("seconds"), extra, host=result.get("host"), pid=result.get("pid"))

    @staticmethod
    def _run_dict(row: sqlite3.Row) -> dict:
        d = dict(row)
        d["config"] = json.loads(d["config"])
        d["extra"] = json.loads(d.get("extra") or "{}")
        return d

    def get_run(self, run_id: int) -> Optional[dict]:
        rows = self._q("SELECT * FROM runs WHERE id = ?", (int(run_id),))
        return self._run_dict(rows[0]) if rows else None

    def list_runs(self, source: Optional[str] = None, status: Optional[str | Sequence[str]] = None,
                  key: Optional[str] = None, config_hash: Optional[str] = None, sweep: Optional[str | int] = None,
                  limit: Optional[int] = None, newest_first: bool = False) -> list[dict]:
        """Runs as dicts (``config`` and ``extra`` parsed), filtered by any of the arguments."""
        where, args = [], []
        if source is not None:
            where.append("r.source = ?")
            args.append(source)
        if status is not None:
            states = [status] if isinstance(status, str) else list(status)
            where.append(f"r.status IN ({','.join('?' * len(states))})")
            args += states
        if key is not None:
            where.append("r.key = ?")
            args.append(key)
        if config_hash is not None:
            where.append("r.config_hash = ?")
            args.append(config_hash)
        join = ""
        if sweep is not None:
            join = "JOIN sweep_runs sr ON sr.run_id = r.id JOIN sweeps s ON s.id = sr.sweep_id"
            where.append("s.id = ?" if isinstance(sweep, int) else "s.name = ?")
            args.append(sweep)
        sql = (f"SELECT r.* FROM runs r {join} {'WHERE ' + ' AND '.join(where) if where else ''} "
               f"ORDER BY r.id {'DESC' if newest_first else 'ASC'}")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [self._run_dict(r) for r in self._q(sql, args)]

    def iterations(self, run_ids: Iterable[int], extra: bool = False):
        """Per-iteration metrics of these runs as a pandas DataFrame (``run_id, iteration, accuracy, nmi, ari,
        seconds_vae, seconds_gmm`` and, with ``extra=True``, a dict column ``extra``), sorted."""
        import pandas as pd

        ids = [int(i) for i in run_ids]
        cols = ["run_id", "iteration", "accuracy", "nmi", "ari", "seconds_vae", "seconds_gmm"] + (
            ["extra"] if extra else [])
        rows = []
        for start in range(0, len(ids), 500):  # SQLite's limit on host parameters
            chunk = ids[start:start + 500]
            rows += self._q(f"SELECT {', '.join(cols)} FROM iterations WHERE run_id IN "
                            f"({','.join('?' * len(chunk))}) ORDER BY run_id, iteration", chunk)
        df = pd.DataFrame([tuple(r) for r in rows], columns=cols)
        if extra and len(df):
            df["extra"] = df["extra"].map(json.loads)
        return df

    # ------------------------------------------------------------------------------------------ recovery
    def recover(self) -> int:
        """Mark ``running`` runs whose driver process has died as ``interrupted``; returns how many."""
        with self._write() as conn:
            rows = conn.execute("SELECT DISTINCT driver_id FROM runs WHERE status = 'running'").fetchall()
            dead = [r[0] for r in rows if not self._driver_alive(r[0])]
            count = 0
            for driver_id in dead:
                info = conn.execute("SELECT pid, host, lock FROM drivers WHERE id = ?", (driver_id,)).fetchone()
                who = f"pid {info['pid']} on {info['host']}" if info else "an unknown process"
                cur = conn.execute(
                    "UPDATE runs SET status = 'interrupted', finished = ?, message = ? WHERE status = 'running' AND "
                    "driver_id IS ?", (time.time(), f"interrupted: the process that ran it ({who}) ended", driver_id))
                count += cur.rowcount
                if info is not None and info["lock"]:
                    try:
                        Path(info["lock"]).unlink()
                    except OSError:
                        pass
            return count

    # ------------------------------------------------------------------------------------------ sweeps
    def create_sweep(self, name: str, spec: Mapping[str, Any]) -> int:
        """A new sweep (status ``running``), or the existing one of that name when its spec is the same.
        Another spec under the same name is refused."""
        text = _json(spec)
        with self._write() as conn:
            row = conn.execute("SELECT id, spec FROM sweeps WHERE name = ?", (name,)).fetchone()
            if row is not None:
                if row["spec"] != text:
                    raise StoreError(f"a sweep named {name!r} already exists in {self.path} with other settings: "
                                     f"choose another name, or resume it as it was")
                return int(row["id"])
            cur = conn.execute("INSERT INTO sweeps (name, spec, created, status, updated) VALUES (?, ?, ?, ?, ?)",
                               (name, text, time.time(), "running", time.time()))
            return int(cur.lastrowid)

    def _sweep_dict(self, row: sqlite3.Row) -> dict:
        d = dict(row)
        d["spec"] = json.loads(d["spec"])
        if d["status"] == "running" and _lock_is_free(self.sweep_lock_path(d["id"])):
            d["status"] = "interrupted"  # its driver died: resume it
        return d

    def get_sweep(self, name_or_id: str | int) -> Optional[dict]:
        col = "id" if isinstance(name_or_id, int) else "name"
        rows = self._q(f"SELECT * FROM sweeps WHERE {col} = ?", (name_or_id,))
        return self._sweep_dict(rows[0]) if rows else None

    def list_sweeps(self) -> list[dict]:
        """Every sweep, newest first; a ``running`` one whose driver died reads ``interrupted``."""
        return [self._sweep_dict(r) for r in self._q("SELECT * FROM sweeps ORDER BY id DESC")]

    def set_sweep_status(self, sweep_id: int, status: str, message: str = "") -> None:
        if status not in SWEEP_STATES:
            raise ValueError(f"sweep status must be one of {SWEEP_STATES}, got {status!r}")
        with self._write() as conn:
            conn.execute("UPDATE sweeps SET status = ?, message = ?, updated = ? WHERE id = ?",
                         (status, message, time.time(), sweep_id))

    def sweep_lock_path(self, sweep_id: int) -> Path:
        return Path(f"{self.path}.sweep-{sweep_id}.lock")

    def lock_sweep(self, sweep_id: int, name: str = "") -> SweepLock:
        """The right to drive this sweep; :class:`StoreError` when another live process has it."""
        lock = _FileLock(self.sweep_lock_path(sweep_id))
        ok = False
        for attempt in range(5):  # a reader probing the lock holds it for microseconds
            try:
                ok = lock.try_acquire(f"pid {os.getpid()} on {socket.gethostname()}")
            except OSError as e:
                raise StoreError(f"cannot lock sweep {name or sweep_id} next to {self.path}: {e.strerror}") from None
            if ok:
                break
            time.sleep(0.05)
        if not ok:
            who = lock.holder() or "another process"
            raise StoreError(f"sweep {name or sweep_id!r} is already running in {who}; stop it there, or wait")
        return SweepLock(lock)

    def sweep_running_here_or_elsewhere(self, sweep_id: int) -> bool:
        return not _lock_is_free(self.sweep_lock_path(sweep_id))

    def claim_run(self, sweep_id: int, cell: str, config: Any, seed: int, label: str = "",
                  preset: str = "") -> tuple[str, int]:
        """Decide, in one transaction, what the sweep does with (config, seed):
        ``("reuse", run_id)``: a finished run with this key exists (from any source): linked, not trained;
        ``("busy", run_id)``: another live driver is training this key now: try again later;
        ``("new", run_id)``: a new ``running`` run, linked to the sweep's cell: train it."""
        cfg = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        cfg = json.loads(_json(cfg))
        cfg["seed"] = int(seed)
        key = run_key(cfg, seed)
        now = time.time()
        with self._write() as conn:
            row = conn.execute("SELECT id FROM runs WHERE key = ? AND status = 'finished' ORDER BY id DESC LIMIT 1",
                               (key,)).fetchone()
            if row is not None:
                self._link(conn, sweep_id, cell, seed, row["id"])
                return "reuse", int(row["id"])
            for r in conn.execute("SELECT id, driver_id FROM runs WHERE key = ? AND status = 'running'", (key,)):
                if r["driver_id"] != self._driver_id and self._driver_alive(r["driver_id"]):
                    return "busy", int(r["id"])
            driver = self._driver(conn)
            cur = conn.execute(
                "INSERT INTO runs (key, config, config_hash, seed, source, label, preset, status, created, started, "
                "driver_id) VALUES (?, ?, ?, ?, 'sweep', ?, ?, 'running', ?, ?, ?)",
                (key, _json(cfg), config_hash(cfg), int(seed), label, preset, now, now, driver))
            run_id = int(cur.lastrowid)
            self._link(conn, sweep_id, cell, seed, run_id)
            return "new", run_id

    @staticmethod
    def _link(conn, sweep_id: int, cell: str, seed: int, run_id: int) -> None:
        conn.execute("INSERT OR REPLACE INTO sweep_runs (sweep_id, cell, seed, run_id) VALUES (?, ?, ?, ?)",
                     (sweep_id, cell, int(seed), run_id))

    def sweep_runs(self, sweep_id: int) -> list[dict]:
        """The runs linked to a sweep: ``cell, seed, run_id, status, message, seconds, host, source`` (one row
        per cell and seed: the latest attempt)."""
        rows = self._q("SELECT sr.cell, sr.seed, r.id AS run_id, r.status, r.message, r.seconds, r.host, r.source, "
                       "r.started, r.finished, r.extra FROM sweep_runs sr JOIN runs r ON r.id = sr.run_id "
                       "WHERE sr.sweep_id = ? ORDER BY r.id", (sweep_id,))
        out = []
        for r in rows:
            d = dict(r)
            d["extra"] = json.loads(d["extra"] or "{}")
            out.append(d)
        return out

    def stats(self) -> dict:
        """Counts for a status line: runs by status, sweeps."""
        by = {r[0]: r[1] for r in self._q("SELECT status, count(*) FROM runs GROUP BY status")}
        return {"runs": sum(by.values()), "by_status": by,
                "sweeps": self._q("SELECT count(*) FROM sweeps")[0][0]}
