"""Liveness through file locks: a process holds an exclusive ``flock`` on a small file while it lives, and the
kernel drops it when the process dies, however it dies. A free lock therefore means "its holder is gone".

flock is per machine: keep the database on a local disk, beside the process that drives it.
"""
from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path
from typing import Optional

from vaegmm.store.database import StoreError


def holder_note() -> str:
    """What a lock file says about its holder: ``pid <pid> on <host>``."""
    return f"pid {os.getpid()} on {socket.gethostname()}"


class FileLock:
    """An exclusive, non-blocking ``flock`` on a small file that names its holder."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: Optional[int] = None

    def try_acquire(self, note: str = "") -> bool:
        """Take the lock if it is free (then write ``note`` into the file); False when another process has it."""
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
        """The note its holder wrote, or ``""``."""
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


def lock_is_free(path: Path) -> bool:
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


def sweep_lock_path(db_path: Path, sweep_id: int) -> Path:
    """``<db>.sweep-<id>.lock``: held by the one process that drives the sweep."""
    return Path(f"{db_path}.sweep-{sweep_id}.lock")


class SweepLock:
    """Held by the one process that drives a sweep; released on :meth:`release` or when that process dies."""

    def __init__(self, lock: FileLock):
        self._lock = lock

    @classmethod
    def acquire(cls, db_path: Path, sweep_id: int, name: str = "") -> "SweepLock":
        """The right to drive this sweep; :class:`StoreError` when another live process has it."""
        lock = FileLock(sweep_lock_path(db_path, sweep_id))
        ok = False
        for attempt in range(5):  # a reader probing the lock holds it for microseconds
            try:
                ok = lock.try_acquire(holder_note())
            except OSError as e:
                raise StoreError(f"cannot lock sweep {name or sweep_id} next to {db_path}: {e.strerror}") from None
            if ok:
                break
            time.sleep(0.05)
        if not ok:
            who = lock.holder() or "another process"
            raise StoreError(f"sweep {name or sweep_id!r} is already running in {who}; stop it there, or wait")
        return cls(lock)

    def release(self) -> None:
        self._lock.release(unlink=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
