"""Worker start latency: how long ``WorkerProcess(...).start()`` and a whole empty worker (start, run, exit, join)
take once the fork server is warm, with ``__main__`` set up as Streamlit sets it (a page script's module with a
``__file__``). The page script writes a marker file if it is ever executed, so the run also checks that no worker
ran it.

    python bench/worker_start.py [--n 40] [--root CHECKOUT]

``--root`` measures another checkout (e.g. the commit before a change, unpacked with ``git archive``); compare
two checkouts by running them alternately (the machine is shared: quote medians of interleaved runs).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import types


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40, help="workers to start")
    ap.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    a = ap.parse_args()
    sys.path.insert(0, a.root)
    os.chdir(a.root)  # the fork server (a fresh interpreter) finds the package from its working directory
    from vaegmm.core.process import WorkerProcess, start_fork_server

    start_fork_server()
    tmp = tempfile.mkdtemp()
    marker = os.path.join(tmp, "page-ran")
    page = os.path.join(tmp, "page.py")
    with open(page, "w") as f:
        f.write(f"open({marker!r}, 'a').write('ran\\n')\n")
    fake = types.ModuleType("__main__")  # what Streamlit installs while a page script runs
    fake.__file__ = page
    real, sys.modules["__main__"] = sys.modules["__main__"], fake
    starts, wholes = [], []
    try:
        for _ in range(a.n):
            proc = WorkerProcess(target=time.sleep, args=(0,), daemon=True)
            t0 = time.perf_counter()
            proc.start()
            t1 = time.perf_counter()
            proc.join()
            t2 = time.perf_counter()
            assert proc.exitcode == 0, proc.exitcode
            starts.append(t1 - t0)
            wholes.append(t2 - t0)
    finally:
        sys.modules["__main__"] = real
    print(json.dumps({"root": a.root, "n": a.n, "start_ms_median": round(1e3 * statistics.median(starts), 2),
                      "whole_ms_median": round(1e3 * statistics.median(wholes), 2),
                      "page_script_ran": os.path.exists(marker)}))


if __name__ == "__main__":
    main()
