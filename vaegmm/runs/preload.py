"""Imported once by the training fork server (:mod:`vaegmm.core.process`), before it forks any worker: the heavy
imports and torch's first optimiser (about 2-3 s together) are paid here, once, instead of in every run.

The fork server keeps one torch thread and runs only tiny operations, so no OpenMP thread pool exists when it
forks; each worker then sets its own thread count.
"""
import numpy  # noqa: F401
import scipy.optimize  # noqa: F401  (Hungarian matching)
import sklearn.metrics  # noqa: F401
import sklearn.mixture  # noqa: F401
import threadpoolctl  # noqa: F401
import torch

from vaegmm.model import data
from vaegmm.model import mutual
from vaegmm.runs import snapshots  # noqa: F401
from vaegmm.runs import train  # noqa: F401
from vaegmm.runs import worker  # noqa: F401
from vaegmm.model.gmm import CollapsedGibbsGMM
from vaegmm.model.vae import VAE, make_optimizer

torch.set_num_threads(1)
make_optimizer(VAE(2, 4), 1e-3)
# numba's import and the collapsed Gibbs sampler's compiled loop (from numba's disk cache; compiled once if absent)
CollapsedGibbsGMM(2, n_sweeps=1, random_state=0).fit(numpy.arange(8.0).reshape(4, 2))
