"""vaegmm: Serket's VAE+GMM mutual learning on MNIST, as a reusable package (no Streamlit in here)."""
import os

# Before torch loads OpenMP: idle worker threads sleep instead of spinning (see vaegmm/core/threads.py for the
# measurement that made this the default). A value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from vaegmm.model.config import DataConfig, GMMConfig, RunConfig, VAEConfig, preset
from vaegmm.model.data import DataSourceError, load_mnist
from vaegmm.model.mutual import IterationResult, MutualLearner, ProgressEvent

__all__ = ["DataConfig", "GMMConfig", "RunConfig", "VAEConfig", "preset", "DataSourceError", "load_mnist",
           "IterationResult", "MutualLearner", "ProgressEvent"]
__version__ = "0.1.0"
