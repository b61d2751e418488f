"""Entry point of a local sweep worker process: ``python -m vaegmm._worker FD`` (see vaegmm/executors.py)."""
import sys

from vaegmm.executors import worker_main

if __name__ == "__main__":
    worker_main(int(sys.argv[1]))
