"""Entry point of a local sweep worker process: ``python -m vaegmm.sweeps.pool_worker FD`` (see vaegmm/sweeps/executors.py)."""
import sys

from vaegmm.sweeps.executors import worker_main

if __name__ == "__main__":
    worker_main(int(sys.argv[1]))
