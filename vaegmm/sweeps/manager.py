"""Sweeps driven in the background: the dashboard starts a sweep in a driver thread inside the server process,
where it outlives the browser tab; the page only reads the store and asks :func:`get_manager` how it goes."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from vaegmm.core.singleton import process_singleton
from vaegmm.store import RunStore
from vaegmm.sweeps.driver import SweepDriver
from vaegmm.sweeps.spec import SweepError, SweepSpec


@dataclass
class _Running:
    """A sweep this process drives: its driver, the thread running it, and the error it ended with."""

    driver: SweepDriver
    thread: threading.Thread
    error: Optional[BaseException] = None


class SweepManager:
    """The sweeps this process drives in background threads, by (database, name). The dashboard keeps one for
    the whole server (:func:`get_manager`): a sweep outlives the browser tab that started it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict = {}

    @staticmethod
    def _key(db_path, name: str) -> tuple:
        return (str(Path(db_path).expanduser().resolve()), name)

    def _entry(self, db_path, name: str) -> Optional[_Running]:
        with self._lock:
            return self._running.get(self._key(db_path, name))

    def start(self, db_path, spec: SweepSpec, name: str, executor_factory: Callable[[], Any], slots=None,
              retry_failed: bool = False) -> SweepDriver:
        """Start (or resume) a sweep in a thread. Every check runs here, so bad input raises at once
        (``SweepError`` / ``StoreError``); the executor is built by ``executor_factory`` (it may connect to Ray)."""
        cur = self._entry(db_path, name)
        if cur is not None and cur.thread.is_alive():
            raise SweepError(f"sweep {name!r} is already running")
        store = RunStore(db_path)
        try:
            executor = executor_factory()
            driver = SweepDriver(store, spec, name, executor, slots=slots, retry_failed=retry_failed)
        except BaseException:
            store.close()
            raise
        entry = _Running(driver, None)  # type: ignore[arg-type]

        def drive():
            try:
                driver.run()
            except BaseException as e:  # shown by the page through status()
                entry.error = e
            finally:
                store.close()

        entry.thread = threading.Thread(target=drive, name=f"vaegmm-sweep-{name}", daemon=True)
        with self._lock:
            self._running[self._key(db_path, name)] = entry
        entry.thread.start()
        return driver

    def resume(self, db_path, name: str, executor_factory: Callable[[], Any], slots=None,
               retry_failed: bool = False) -> SweepDriver:
        """Resume a stored sweep with its own spec: only the runs not finished yet are trained."""
        with RunStore(db_path) as store:
            info = store.get_sweep(name)
        if info is None:
            raise SweepError(f"no sweep named {name!r} to resume")
        return self.start(db_path, SweepSpec.from_dict(info["spec"]), name, executor_factory, slots, retry_failed)

    def stop(self, db_path, name: str, wait: float = 0.0) -> bool:
        """Ask the sweep to stop (runs in flight end within seconds); True when it was running here."""
        entry = self._entry(db_path, name)
        if entry is None or not entry.thread.is_alive():
            return False
        entry.driver.stop()
        if wait:
            entry.thread.join(wait)
        return True

    def status(self, db_path, name: str) -> Optional[dict]:
        """``{"alive", "progress", "error", "lanes", "executor"}`` for a sweep this process drives (or drove);
        None otherwise."""
        entry = self._entry(db_path, name)
        if entry is None:
            return None
        return {"alive": entry.thread.is_alive(), "progress": entry.driver.progress,
                "error": None if entry.error is None else str(entry.error),
                "lanes": entry.driver.executor.lanes, "executor": entry.driver.executor.describe()}

    def join(self, db_path, name: str, timeout: Optional[float] = None) -> bool:
        """Wait for the sweep's thread; True when it has ended (or never ran here)."""
        entry = self._entry(db_path, name)
        if entry is None:
            return True
        entry.thread.join(timeout)
        return not entry.thread.is_alive()

    def stop_all(self, wait: float = 10.0) -> None:
        """Stop every sweep this process drives and wait up to ``wait`` seconds for each (tests, shutdown)."""
        with self._lock:
            entries = list(self._running.values())
        for e in entries:
            e.driver.stop()
        for e in entries:
            e.thread.join(wait)


@process_singleton
def get_manager() -> SweepManager:
    """The process-wide :class:`SweepManager`."""
    return SweepManager()
