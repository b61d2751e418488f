"""vaegmm: Serket's VAE+GMM mutual learning on MNIST, as a reusable package (no Streamlit in here)."""
import importlib
import os

# Before torch loads OpenMP: an idle worker thread spins ~10 us (GOMP_SPINCOUNT=10000), then sleeps. With a free
# second core that nearly halves a VAE update (passive waiting wastes the second thread); each run takes a second
# thread only when a core is free (vaegmm/core/threads.py has the measurements). A policy the user set wins.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")

# The package's names, each imported where it lives when first used (PEP 562), so that a light process such as
# ``python -m vaegmm --help`` does not import torch and scikit-learn (~3 s): ``from vaegmm import MutualLearner``
# works as before.
_HOMES = {"DataConfig": "vaegmm.model.config", "GMMConfig": "vaegmm.model.config", "RunConfig": "vaegmm.model.config",
          "VAEConfig": "vaegmm.model.config", "preset": "vaegmm.model.config",
          "DataSourceError": "vaegmm.model.data", "load_mnist": "vaegmm.model.data",
          "IterationResult": "vaegmm.model.mutual", "MutualLearner": "vaegmm.model.mutual",
          "ProgressEvent": "vaegmm.model.mutual"}
__all__ = list(_HOMES)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'vaegmm' has no attribute {name!r}")
