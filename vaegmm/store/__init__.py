"""The results store: one SQLite file (stdlib ``sqlite3``, WAL) holding runs, their per-iteration metrics and
sweeps. No server to start. :class:`RunStore` (in :mod:`~vaegmm.store.runstore`) is the one entry point; its
parts are the file (:mod:`~vaegmm.store.database`, :mod:`~vaegmm.store.schema`), run keys
(:mod:`~vaegmm.store.keys`), process liveness (:mod:`~vaegmm.store.locks`, :mod:`~vaegmm.store.drivers`) and the
tables (:mod:`~vaegmm.store.runs`, :mod:`~vaegmm.store.iterations`, :mod:`~vaegmm.store.sweeps`)."""
from vaegmm.store.database import StoreError, default_db_path
from vaegmm.store.keys import config_hash, run_key
from vaegmm.store.runstore import RunStore
from vaegmm.store.schema import APP_ID, SCHEMA_VERSION

__all__ = ["APP_ID", "SCHEMA_VERSION", "RunStore", "StoreError", "config_hash", "default_db_path", "run_key"]
