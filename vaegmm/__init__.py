"""vaegmm: Serket's VAE+GMM mutual learning on MNIST, as a reusable package (no Streamlit in here)."""
from .config import DataConfig, GMMConfig, RunConfig, VAEConfig, preset
from .data import DataSourceError, load_mnist
from .mutual import IterationResult, MutualLearner, ProgressEvent

__all__ = ["DataConfig", "GMMConfig", "RunConfig", "VAEConfig", "preset", "DataSourceError", "load_mnist",
           "IterationResult", "MutualLearner", "ProgressEvent"]
__version__ = "0.1.0"
