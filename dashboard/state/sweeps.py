"""Sweeps started from the page: where they run (the local process pool, sharing the server's run cap with live
runs, or Ray when the server was started with ``$VAEGMM_RAY_ADDRESS``), and the selected sweep's tables."""
from __future__ import annotations

import hashlib
from typing import Optional

import streamlit as st

from vaegmm.core.env import env_str
from vaegmm.core.threads import cpu_count
from vaegmm.runs.slots import default_slots
from vaegmm.store import RunStore
from vaegmm.sweeps.executors import RAY_ADDRESS_ENV, make_executor
from vaegmm.sweeps.results import cell_table, sweep_results
from vaegmm.sweeps.spec import SweepSpec


def ray_address() -> str:
    """The Ray cluster sweeps go to (``$VAEGMM_RAY_ADDRESS``), or ``""`` for the local pool."""
    return env_str(RAY_ADDRESS_ENV)


def lanes() -> int:
    """Runs at once on the local pool: the server's cap (shared with live runs), at most the cores."""
    return max(1, min(default_slots().capacity, cpu_count()))


def executor():
    """A new executor for a sweep (the manager calls it when the sweep starts or resumes)."""
    address = ray_address()
    return make_executor(None, address) if address else make_executor(lanes())


def slots():
    """The run cap a local sweep shares with live runs (None on Ray)."""
    return None if ray_address() else default_slots()


def _version(rows: list) -> str:
    return hashlib.sha1(repr([(r["run_id"], r["status"]) for r in rows]).encode()).hexdigest()


def load(store: RunStore, name: str) -> Optional[dict]:
    """The sweep's tables (``info``, ``spec``, ``runs``, ``its``, ``table``), recomputed only when one of its runs
    changed (the page's fragment polls every second); None when there is no such sweep."""
    info = store.get_sweep(name)
    if info is None:
        return None
    rows = store.sweep_runs(info["id"])
    key = (name, info["status"], _version(rows))
    cache = st.session_state.get("_sw_cache")
    if cache is not None and cache["key"] == key:
        return cache["data"]
    info, runs, its = sweep_results(store, name)
    spec = SweepSpec.from_dict(info["spec"])
    data = {"info": info, "spec": spec, "runs": runs, "its": its, "table": cell_table(spec, runs)}
    st.session_state["_sw_cache"] = {"key": key, "data": data}
    return data
