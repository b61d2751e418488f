"""The results store: one SQLite file (stdlib ``sqlite3``, WAL) holding runs, their per-iteration metrics and
sweeps. No server to start."""
from vaegmm.store.runstore import (APP_ID, SCHEMA_VERSION, RunStore, StoreError, config_hash, default_db_path,
                                   run_key)

__all__ = ["APP_ID", "SCHEMA_VERSION", "RunStore", "StoreError", "config_hash", "default_db_path", "run_key"]
