"""The results file: where it is, opening it (checks first, so a foreign or damaged file is never touched), WAL
mode, the schema version and app id, and one ``BEGIN IMMEDIATE`` transaction per write.

SQLite in WAL mode lets readers (e.g. a page that polls) never block the writer; a busy timeout makes a second
writer wait instead of failing. One connection, behind a lock, serves every thread of the process.
"""
from __future__ import annotations

import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence

from vaegmm.core.env import env_str
from vaegmm.model.data import cache_dir
from vaegmm.store.schema import APP_ID, MIGRATIONS, SCHEMA, SCHEMA_VERSION

DB_ENV = "VAEGMM_DB"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_ANOTHER_FILE = f"choose another file with --db or {DB_ENV}"


class StoreError(ValueError):
    """The results store cannot be used: corrupt or foreign file, newer schema, read-only folder, a sweep
    already driven by another process... The message is one line and says what to do."""


def default_db_path() -> Path:
    """``$VAEGMM_DB``, else ``runs.db`` in vaegmm's cache folder (``~/.cache/vaegmm``)."""
    raw = env_str(DB_ENV)
    return Path(raw).expanduser() if raw else cache_dir() / "runs.db"


def check_file(path: Path, readonly: bool) -> None:
    """Refuse a folder, a file that is not SQLite, or (read-only) a missing file; create an empty file to write.
    Nothing but that empty new file is written."""
    if path.is_dir():
        raise StoreError(f"the results store {path} is a folder, not a file; give a file path (--db or {DB_ENV})")
    if path.exists() and path.stat().st_size > 0:
        try:
            with open(path, "rb") as f:
                head = f.read(16)
        except OSError as e:
            raise StoreError(f"cannot read the results store {path}: {e.strerror}") from None
        if head != _SQLITE_MAGIC:
            raise StoreError(f"{path} is not a SQLite database (a corrupt or foreign file); it was left untouched: "
                             f"{_ANOTHER_FILE}")
        return
    if readonly:
        raise StoreError(f"there is no results store at {path} (set --db or {DB_ENV})")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            with open(path, "ab"):
                pass
    except OSError as e:
        raise StoreError(f"cannot create the results store {path}: {e.strerror} (is {path.parent} read-only? "
                         f"set --db or {DB_ENV} to a writable file)") from None


def connect(path: Path, readonly: bool, timeout: float) -> sqlite3.Connection:
    """A connection with ``sqlite3.Row`` rows and a busy timeout of ``timeout`` seconds. Read-only opens with
    ``mode=ro``, else ``immutable=1`` (a WAL file in a folder we cannot write cannot be opened otherwise)."""
    if not readonly:
        conn = sqlite3.connect(str(path), timeout=timeout, check_same_thread=False)
    else:
        conn = None
        for query in ("mode=ro", "immutable=1"):
            try:
                conn = sqlite3.connect(f"file:{path}?{query}", uri=True, timeout=timeout, check_same_thread=False)
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                break
            except sqlite3.OperationalError:
                if conn is not None:
                    conn.close()
                conn = None
        if conn is None:
            raise StoreError(f"cannot open the results store {path} for reading")
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    return conn


def check_schema(conn: sqlite3.Connection, path: Path, readonly: bool) -> bool:
    """Check that a file with tables is ours (``meta.app_id``) and not newer (``PRAGMA user_version`` and
    ``meta.schema`` agree and are at most :data:`SCHEMA_VERSION`); switch a writable one to WAL. Returns False
    when the file has no tables yet (then :func:`create_schema`)."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if not tables:
        if version != 0:
            raise StoreError(f"{path} is a SQLite database of another program (user_version {version}); it was "
                             "left untouched")
        return False
    if "meta" not in tables:
        raise StoreError(f"{path} is a SQLite database of another program (no vaegmm tables); it was left "
                         f"untouched: {_ANOTHER_FILE}")
    meta = {r[0]: r[1] for r in conn.execute("SELECT key, value FROM meta")}
    if meta.get("app_id") != APP_ID:
        raise StoreError(f"{path} is a SQLite database of another program (app_id {meta.get('app_id')!r}); it "
                         f"was left untouched: {_ANOTHER_FILE}")
    stored = int(meta.get("schema", version))
    if stored > SCHEMA_VERSION or version > SCHEMA_VERSION:
        raise StoreError(f"{path} was written by a newer vaegmm (store schema {max(stored, version)}; this one "
                         f"reads {SCHEMA_VERSION}): upgrade vaegmm or use another file")
    if stored != version:
        raise StoreError(f"{path} has inconsistent schema marks (user_version {version}, meta {stored}); it "
                         "was left untouched")
    if not readonly and conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        conn.execute("PRAGMA journal_mode = WAL")
    if stored < SCHEMA_VERSION and not readonly:
        migrate(conn, path, stored)
    return True


def migrate(conn: sqlite3.Connection, path: Path, version: int) -> None:
    """Bring a file of schema ``version`` up to :data:`SCHEMA_VERSION` (:data:`MIGRATIONS`), in one transaction:
    all steps or none. A file opened read-only is read as it is (the new columns read as NULL)."""
    steps = "".join(MIGRATIONS[v] for v in range(version + 1, SCHEMA_VERSION + 1))
    with conn:  # rolled back on an error: the file stays at its version
        conn.executescript(f"BEGIN IMMEDIATE; {steps} PRAGMA user_version = {SCHEMA_VERSION}; "
                           f"UPDATE meta SET value = '{SCHEMA_VERSION}' WHERE key = 'schema';")


def create_schema(conn: sqlite3.Connection, path: Path) -> None:
    """Switch an empty file to WAL and create the tables and the ``meta`` marks, in one transaction."""
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StoreError(f"cannot switch {path} to WAL mode (got {mode!r}); is its folder read-only?")
    with conn:
        conn.executescript("BEGIN IMMEDIATE;" + SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")
        conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                         [("app_id", APP_ID), ("schema", str(SCHEMA_VERSION)), ("created", str(time.time()))])


def open_connection(path: Path, readonly: bool, timeout: float) -> sqlite3.Connection:
    """:func:`check_file`, :func:`connect`, :func:`check_schema` (and :func:`create_schema` for a new file).
    Every failure is a one-line :class:`StoreError`; the connection is closed on failure."""
    check_file(path, readonly)
    conn = connect(path, readonly, timeout)
    try:
        if not check_schema(conn, path, readonly):
            if readonly:
                raise StoreError(f"{path} is an empty database, not a results store yet")
            create_schema(conn, path)
    except sqlite3.DatabaseError as e:
        conn.close()
        text = str(e)
        if "readonly" in text or "unable to open" in text or "read-only" in text:
            raise StoreError(f"cannot write the results store {path}: {text} (is {path.parent} read-only? set --db "
                             f"or {DB_ENV} to a writable file)") from None
        raise StoreError(f"{path} is not a usable SQLite database ({text}); it was left untouched: "
                         f"{_ANOTHER_FILE}") from None
    except StoreError:
        conn.close()
        raise
    return conn


class Database:
    """One checked connection to the results file, shared by the threads of this process (behind a lock).

    ``read(sql, args)`` runs one query; ``with db.transaction() as conn:`` is one ``BEGIN IMMEDIATE`` write,
    committed when the block ends or rolled back on an exception. SQLite errors become :class:`StoreError`.
    """

    def __init__(self, path: os.PathLike | str, readonly: bool = False, timeout: float = 30.0):
        self.path = Path(path).expanduser()
        self.readonly = readonly
        self._lock = threading.RLock()
        self._conn: Optional[sqlite3.Connection] = open_connection(self.path, readonly, timeout)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"the results store {self.path} is closed")
        return self._conn

    def read(self, sql: str, args: Sequence = ()) -> list[sqlite3.Row]:
        with self._lock:
            conn = self._connection()
            try:
                return conn.execute(sql, args).fetchall()
            except sqlite3.DatabaseError as e:
                raise StoreError(f"cannot read the results store {self.path}: {e}") from None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` takes the write lock at the start, so two writers queue (busy timeout) instead of
        one failing when it upgrades a read lock."""
        with self._lock:
            if self.readonly:
                raise StoreError(f"the results store {self.path} was opened read-only")
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as e:
                raise StoreError(f"cannot write the results store {self.path}: {e}") from None
            try:
                yield conn
            except BaseException as e:
                conn.execute("ROLLBACK")
                if isinstance(e, sqlite3.DatabaseError):
                    raise StoreError(f"cannot write the results store {self.path}: {e}") from None
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.DatabaseError as e:
                conn.execute("ROLLBACK")
                raise StoreError(f"cannot write the results store {self.path}: {e}") from None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
