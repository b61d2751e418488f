"""vaegmm: Serket's VAE+GMM mutual learning on MNIST, as a reusable package (no Streamlit in here)."""
import os

# Before torch loads OpenMP: an idle worker thread spins ~10 us (GOMP_SPINCOUNT=10000), then sleeps. With a free
# second core that nearly halves a VAE update (passive waiting wastes the second thread); each run takes a second
# thread only when a core is free (vaegmm/core/threads.py has the measurements). A policy the user set wins.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")

from vaegmm.model.config import DataConfig, GMMConfig, RunConfig, VAEConfig, preset
from vaegmm.model.data import DataSourceError, load_mnist
from vaegmm.model.mutual import IterationResult, MutualLearner, ProgressEvent

__all__ = ["DataConfig", "GMMConfig", "RunConfig", "VAEConfig", "preset", "DataSourceError", "load_mnist",
           "IterationResult", "MutualLearner", "ProgressEvent"]
__version__ = "0.1.0"
