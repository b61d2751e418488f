"""Imported once by the training fork server (:mod:`vaegmm.core.process`), before it forks any worker: the heavy
imports and torch's first optimiser (about 2-3 s together) are paid here, once, instead of in every run; and the
presets' compiled training steps (:func:`vaegmm.model.vae.warm_compiled_step`: a few seconds in all from
Inductor's on-disk cache; the first time on a machine 20-40 s of CPU per step shape), so a forked run of a preset
trains at once.

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
from vaegmm.model.config import PRESETS, preset
from vaegmm.model.gmm import CollapsedGibbsGMM
from vaegmm.model.vae import VAE, make_optimizer, warm_compiled_step

torch.set_num_threads(1)  # before the compiled steps run: no OpenMP thread pool may exist when the server forks
make_optimizer(VAE(2, 4), 1e-3)
for shape in sorted(set().union(*(mutual.step_shapes(preset(name)) for name in PRESETS))):
    warm_compiled_step(*shape)
# numba's import and the collapsed Gibbs sampler's compiled loop (from numba's disk cache; compiled once if absent)
CollapsedGibbsGMM(2, n_sweeps=1, random_state=0).fit(numpy.arange(8.0).reshape(4, 2))
