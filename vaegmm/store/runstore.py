"""The results store: every run (from a sweep, the dashboard or the CLI) and its per-iteration metrics, kept for
good in one SQLite file. :class:`RunStore` is the one object the rest of vaegmm uses; it composes the parts:

* :mod:`~vaegmm.store.database`: where the file is (``$VAEGMM_DB``, else ``<cache>/runs.db``, i.e.
  ``~/.cache/vaegmm/runs.db``; ``$VAEGMM_CACHE_DIR`` moves it), its checks on open (a corrupt or foreign file, or a
  newer schema, gives a one-line :class:`StoreError` and the file is not touched), WAL and transactions. Only a
  *driver* process writes (the CLI, or the dashboard's server); workers return results.
* :mod:`~vaegmm.store.keys`: a run's key ``<config hash>-<seed>``.
* :mod:`~vaegmm.store.drivers` and :mod:`~vaegmm.store.locks`: each writer holds an ``flock`` while it lives; a run
  left ``running`` by a dead driver is marked ``interrupted`` by :meth:`RunStore.recover`. One sweep is driven by
  one process at a time.
* :mod:`~vaegmm.store.runs`, :mod:`~vaegmm.store.iterations`, :mod:`~vaegmm.store.sweeps`: the tables.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

from vaegmm.store.database import Database, default_db_path
from vaegmm.store.drivers import DriverRegistry
from vaegmm.store.iterations import IterationTable
from vaegmm.store.locks import SweepLock
from vaegmm.store.runs import RunTable
from vaegmm.store.sweeps import SweepTable


class RunStore:
    """The SQLite results store. Thread-safe (one connection behind a lock). ``readonly=True`` opens for reading
    only (e.g. ``report``), which also works in a read-only folder.

    Writers: :meth:`begin_run`, :meth:`add_iteration`, :meth:`finish_run` (the dashboard's live runs, the CLI's
    ``run``), :meth:`claim_run` and :meth:`record_result` (sweeps). Readers: :meth:`list_runs`, :meth:`get_run`,
    :meth:`iterations`, :meth:`list_sweeps`, :meth:`get_sweep`, :meth:`sweep_runs`. Each method is one call to
    a table (``store.runs``, ``store.sweeps``, ``store.iteration_table``), whose docstring says more.
    """

    def __init__(self, path: Optional[os.PathLike | str] = None, readonly: bool = False, timeout: float = 30.0):
        self.db = Database(path if path is not None else default_db_path(), readonly, timeout)
        self.drivers = DriverRegistry(self.db.path)
        self.iteration_table = IterationTable(self.db)
        self.runs = RunTable(self.db, self.drivers, self.iteration_table)
        self.sweeps = SweepTable(self.db, self.runs)

    @property
    def path(self) -> Path:
        return self.db.path

    @property
    def readonly(self) -> bool:
        return self.db.readonly

    def close(self) -> None:
        """Close the connection and drop this process's driver lock (its unfinished runs become recoverable)."""
        self.db.close()
        self.drivers.release()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    # ------------------------------------------------------------------------------------------ runs
    def begin_run(self, config: Any, seed: int, source: str, label: str = "", preset: str = "",
                  export_dir: Optional[str] = None, status: str = "running") -> int:
        """A new run row (``running``); returns its id. ``config``: a RunConfig or its dict."""
        return self.runs.begin(config, seed, source, label, preset, export_dir, status)

    def add_iteration(self, run_id: int, metrics: Mapping[str, Any]) -> None:
        """One iteration's metrics (``iteration``, ``accuracy``, ``nmi``, ``ari``, ``seconds_vae``,
        ``seconds_gmm``; anything else goes to ``extra``), in its own transaction. Replaces a row with the same
        iteration number."""
        self.runs.add_iteration(run_id, metrics)

    def finish_run(self, run_id: int, status: str, message: str = "", seconds: Optional[float] = None,
                   extra: Optional[Mapping[str, Any]] = None, export_dir: Optional[str] = None) -> None:
        """End a run: ``finished``, ``failed``, ``stopped`` or ``interrupted``, with a message and its seconds."""
        self.runs.finish(run_id, status, message, seconds, extra, export_dir)

    def set_export_dir(self, run_id: int, path: Optional[str]) -> None:
        """Where the run's files are (or ``None`` once they have been deleted)."""
        self.runs.set_export_dir(run_id, path)

    def record_result(self, run_id: int, result: Mapping[str, Any]) -> None:
        """A sweep run's result from :func:`vaegmm.sweeps.cell.run_one`: its iterations and its end."""
        self.runs.record_result(run_id, result)

    def recover(self) -> int:
        """Mark ``running`` runs whose driver process has died as ``interrupted``; returns how many."""
        return self.runs.recover()

    def get_run(self, run_id: int) -> Optional[dict]:
        """One run as a dict (``config`` and ``extra`` parsed), or None."""
        return self.runs.get(run_id)

    def list_runs(self, source: Optional[str] = None, status: Optional[str | Sequence[str]] = None,
                  key: Optional[str] = None, config_hash: Optional[str] = None, sweep: Optional[str | int] = None,
                  limit: Optional[int] = None, newest_first: bool = False) -> list[dict]:
        """Runs as dicts (``config`` and ``extra`` parsed), filtered by any of the arguments."""
        return self.runs.find(source, status, key, config_hash, sweep, limit, newest_first)

    def iterations(self, run_ids: Iterable[int], extra: bool = False):
        """Per-iteration metrics of these runs as a pandas DataFrame (``run_id, iteration, accuracy, nmi, ari,
        seconds_vae, seconds_gmm`` and, with ``extra=True``, a dict column ``extra``), sorted."""
        return self.iteration_table.frame(run_ids, extra)

    # ------------------------------------------------------------------------------------------ sweeps
    def create_sweep(self, name: str, spec: Mapping[str, Any]) -> int:
        """A new sweep, or the existing one of that name when its spec is the same; another spec is refused."""
        return self.sweeps.create(name, spec)

    def get_sweep(self, name_or_id: str | int) -> Optional[dict]:
        return self.sweeps.get(name_or_id)

    def list_sweeps(self) -> list[dict]:
        """Every sweep, newest first; a ``running`` one whose driver died reads ``interrupted``."""
        return self.sweeps.all()

    def set_sweep_status(self, sweep_id: int, status: str, message: str = "") -> None:
        self.sweeps.set_status(sweep_id, status, message)

    def lock_sweep(self, sweep_id: int, name: str = "") -> SweepLock:
        """The right to drive this sweep; :class:`StoreError` when another live process has it."""
        return self.sweeps.lock(sweep_id, name)

    def claim_run(self, sweep_id: int, cell: str, config: Any, seed: int, label: str = "",
                  preset: str = "") -> tuple[str, int]:
        """What the sweep does with (config, seed), decided and written in one transaction:
        ``("reuse", run_id)``, ``("busy", run_id)`` or ``("new", run_id)`` (see
        :func:`vaegmm.store.sweeps.claim_decision`)."""
        return self.sweeps.claim_run(sweep_id, cell, config, seed, label, preset)

    def sweep_runs(self, sweep_id: int) -> list[dict]:
        """The runs linked to a sweep, one row per cell and seed (see :meth:`SweepTable.runs_of`)."""
        return self.sweeps.runs_of(sweep_id)
