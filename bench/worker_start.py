"""Worker start latency: how long ``WorkerProcess(...).start()`` and a whole empty worker (start, run, exit, join)
take once the fork server is warm, with ``__main__`` set up as Streamlit sets it (a page script's module with a
``__file__``). The page script writes a marker file if it is ever executed, so the run also checks that no worker
ran it.

    python bench/worker_start.py [--n 200] [--baseline OLD/vaegmm/core/process.py]

``--baseline`` loads another version of ``vaegmm/core/process.py`` (e.g. from the commit before a change,
``git show REV:vaegmm/core/process.py > /tmp/ws/old_process.py``) and alternates the two, worker by worker, on
the same fork server: the machine is shared, so only interleaved starts compare fairly. Medians are quoted.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import sys
import tempfile
import time
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(path: str):
    """The module at ``path``, imported by its file name from its folder (the workers unpickle its class)."""
    sys.path.append(os.path.dirname(os.path.abspath(path)))
    return importlib.import_module(os.path.splitext(os.path.basename(path))[0])


def _time_one(worker_class) -> tuple[float, float]:
    proc = worker_class(target=time.sleep, args=(0,), daemon=True)
    t0 = time.perf_counter()
    proc.start()
    t1 = time.perf_counter()
    proc.join()
    t2 = time.perf_counter()
    assert proc.exitcode == 0, proc.exitcode
    return t1 - t0, t2 - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200, help="workers to start (per version)")
    ap.add_argument("--baseline", help="another vaegmm/core/process.py to alternate with")
    a = ap.parse_args()
    sys.path.insert(0, ROOT)
    os.chdir(ROOT)  # the fork server (a fresh interpreter) finds the package from its working directory
    from vaegmm.core.process import WorkerProcess, start_fork_server

    versions = {"current": WorkerProcess}
    if a.baseline:
        versions["baseline"] = _load(a.baseline).WorkerProcess
    start_fork_server()
    tmp = tempfile.mkdtemp()
    marker = os.path.join(tmp, "page-ran")
    page = os.path.join(tmp, "page.py")
    with open(page, "w") as f:
        f.write(f"open({marker!r}, 'a').write('ran\\n')\n")
    fake = types.ModuleType("__main__")  # what Streamlit installs while a page script runs
    fake.__file__ = page
    times = {name: ([], []) for name in versions}
    real, sys.modules["__main__"] = sys.modules["__main__"], fake
    try:
        for _ in range(3):  # warm both paths
            for cls in versions.values():
                _time_one(cls)
        for _ in range(a.n):
            for name, cls in versions.items():
                start, whole = _time_one(cls)
                times[name][0].append(start)
                times[name][1].append(whole)
    finally:
        sys.modules["__main__"] = real
    out = {"n": a.n, "page_script_ran": os.path.exists(marker)}
    for name, (starts, wholes) in times.items():
        out[name] = {"start_ms_median": round(1e3 * statistics.median(starts), 2),
                     "whole_ms_median": round(1e3 * statistics.median(wholes), 2)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
