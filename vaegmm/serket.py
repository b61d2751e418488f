"""A Serket-style facade over the vaegmm engine, so Serket's VAE+GMM tutorial runs almost verbatim::

    import vaegmm.serket as srk
    obs = srk.Observation(images)                 # (N, 784) in [0, 1]
    vae1 = srk.VAE(18, itr=200, batch_size=500)
    gmm1 = srk.GMM(10, category=labels)
    vae1.connect(obs)
    gmm1.connect(vae1)
    for i in range(5):
        vae1.update()   # trains with the class means the GMM last sent (0 before the first GMM update)
        gmm1.update()   # clusters the VAE's codes (Serket's collapsed Gibbs sampler) and sends each point's class
                        # mean back

Learning modules are numbered in creation order (``module001_vae``, ``module002_gmm``) as Serket does, and each
update writes the module's files at the top of its folder and in a numbered sub-folder (``001/``, ``002/``...).
Folders go to the working directory, or under :func:`set_save_dir` / the ``save_dir`` argument.

Recognition (Serket's recognition mode: the trained modules label new data, nothing learns)::

    z = vae1.recog(test_images)              # encoder means of new images (M, D); writes z_recog.txt
    classes = gmm1.recog(category=test_labels)  # the fitted GMM's classes of those codes; writes class_recog.txt
                                                # and acc_recog.txt (matched to digits on the training images)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from vaegmm.model.config import CODE_KINDS
from vaegmm.model.gmm import make_gmm
from vaegmm.model.metrics import clustering_accuracy
from vaegmm.model.recognition import digit_matching
from vaegmm.model.vae import VAE as _VAEModel
from vaegmm.model.vae import encode_all, make_optimizer, resolve_device, train_epochs

_state = {"count": 0, "save_dir": None}


def reset(save_dir: Optional[str | os.PathLike] = None) -> None:
    """Restart module numbering at 001 and set where module folders go (default: the working directory)."""
    _state["count"] = 0
    _state["save_dir"] = None if save_dir is None else Path(save_dir)


def set_save_dir(save_dir: str | os.PathLike) -> None:
    """Module folders created from now on go under ``save_dir``."""
    _state["save_dir"] = Path(save_dir)


class Observation:
    """The data as a message source: ``data (N, F)``."""

    def __init__(self, data):
        self.data = np.asarray(data, dtype=np.float32)
        if self.data.ndim != 2:
            raise ValueError(f"Observation data must be 2-D (N, F), got shape {self.data.shape}")

    def get_forward_msg(self) -> np.ndarray:
        return self.data


class _Module:
    def __init__(self, kind: str, save_dir=None):
        _state["count"] += 1
        self.number = _state["count"]
        self.name = f"module{self.number:03d}_{kind}"
        root = Path(save_dir) if save_dir is not None else (_state["save_dir"] or Path.cwd())
        self.folder = root / self.name
        self.parent = None
        self.child = None
        self.n_updates = 0

    def _folders(self) -> list[Path]:
        sub = self.folder / f"{self.n_updates:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        return [self.folder, sub]

    def connect(self, parent) -> None:
        """Receive forward messages from ``parent`` (an Observation or a module) and send it backward ones."""
        self.parent = parent
        if isinstance(parent, _Module):
            parent.child = self


class VAE(_Module):
    """Serket's VAE module: ``VAE(latent_dim, itr=epochs, batch_size=...)``; ``alpha`` weights the KL to the class
    mean sent back by the connected GMM."""

    def __init__(self, latent_dim: int, itr: int = 200, batch_size: int = 500, alpha: float = 1.0,
                 hidden: int = 128, lr: float = 1e-3, codes: str = "sample", seed: int = 0,
                 device: str = "auto", save_dir=None):
        super().__init__("vae", save_dir)
        if codes not in CODE_KINDS:
            raise ValueError(f"codes must be 'sample' or 'mean', got {codes!r}")
        self.latent_dim, self.itr, self.batch_size = int(latent_dim), int(itr), int(batch_size)
        self.alpha, self.hidden, self.lr, self.codes_kind = float(alpha), int(hidden), float(lr), codes
        self.device = resolve_device(device)
        self._gen = torch.Generator().manual_seed(seed)
        self._rng = np.random.default_rng(seed)
        self.model = _VAEModel(self.latent_dim, self.hidden, generator=self._gen).to(self.device)
        self.optimizer = make_optimizer(self.model, self.lr)
        self.prior_mu: Optional[np.ndarray] = None  # backward message: (N, D) class means
        self.codes: Optional[np.ndarray] = None  # forward message: (N, D)
        self.recog_codes: Optional[np.ndarray] = None  # codes of the last recog() data: (M, D)
        self.losses = []

    def get_forward_msg(self) -> np.ndarray:
        if self.codes is None:
            raise RuntimeError(f"{self.name} has not been updated yet: call update() first")
        return self.codes

    def set_backward_msg(self, prior_mu: np.ndarray) -> None:
        self.prior_mu = np.asarray(prior_mu, dtype=np.float32)

    def update(self) -> np.ndarray:
        """Train ``itr`` epochs with the current backward message, then send the codes forward: ``(N, D)``."""
        if self.parent is None:
            raise RuntimeError(f"{self.name} is not connected: call connect(observation) first")
        x = torch.from_numpy(np.asarray(self.parent.get_forward_msg(), dtype=np.float32)).to(self.device)
        prior = np.zeros((x.shape[0], self.latent_dim), np.float32) if self.prior_mu is None else self.prior_mu
        self.losses = train_epochs(self.model, self.optimizer, x, torch.from_numpy(prior).to(self.device),
                                   self.alpha, self.itr, self.batch_size, self._gen)
        mu, logvar = encode_all(self.model, x)
        if self.codes_kind == "sample":
            mu = mu + self._rng.standard_normal(mu.shape).astype(np.float32) * np.exp(0.5 * logvar)
        self.codes = mu.astype(np.float32)
        self.n_updates += 1
        for folder in self._folders():
            np.savetxt(folder / "z_learn.txt", self.codes, fmt="%.6f")
            np.savetxt(folder / "loss.txt", [[l.recon, l.kl] for l in self.losses], fmt="%.6f",
                       header="recon kl (mean per image, per epoch)")
        return self.codes

    def recog(self, data) -> np.ndarray:
        """Recognition: encode new images ``data (M, 784)`` with the trained encoder (its means; nothing learns)
        and keep them for the connected GMM's :meth:`GMM.recog`. Writes ``z_recog.txt``; returns ``(M, D)``."""
        if self.codes is None:
            raise RuntimeError(f"{self.name} has not been trained yet: call update() first")
        x = torch.from_numpy(np.asarray(data, dtype=np.float32)).to(self.device)
        if x.ndim != 2 or x.shape[1] != self.model.enc_hidden.in_features:
            raise ValueError(f"recog data must be (M, {self.model.enc_hidden.in_features}), got {tuple(x.shape)}")
        self.recog_codes, _ = encode_all(self.model, x)
        self.folder.mkdir(parents=True, exist_ok=True)
        np.savetxt(self.folder / "z_recog.txt", self.recog_codes, fmt="%.6f")
        return self.recog_codes


class GMM(_Module):
    """Serket's GMM module: ``GMM(K, itr=sweeps, category=labels)``; by default Serket's own sampler
    (:class:`vaegmm.model.gmm.CollapsedGibbsGMM`: per-point collapsed Gibbs, classes = argmax of Pdz, each point sent the
    mean of its last sampled class). ``backend`` ``"gibbs"`` (blocked) or ``"em"`` swaps in another GMM."""

    def __init__(self, n_classes: int, itr: int = 100, category=None, backend: str = "collapsed", seed: int = 0,
                 init: str = "random", save_dir=None):
        super().__init__("gmm", save_dir)
        self.category = None if category is None else np.asarray(category).astype(np.int64)
        self.gmm = make_gmm(backend, int(n_classes), sweeps=int(itr), init=init,
                            random_state=np.random.default_rng(seed))
        self.classes: Optional[np.ndarray] = None
        self.accuracy: Optional[float] = None
        self.digit_of_class: Optional[np.ndarray] = None  # (K,) matching learned on the training data
        self.recog_classes: Optional[np.ndarray] = None
        self.recog_accuracy: Optional[float] = None

    def update(self) -> np.ndarray:
        """Cluster the parent's codes, send each point's class mean back; returns the classes ``(N,)``."""
        if self.parent is None:
            raise RuntimeError(f"{self.name} is not connected: call connect(vae) first")
        z = self.parent.get_forward_msg()
        self.gmm.fit(z)
        self.classes = self.gmm.labels_
        if isinstance(self.parent, VAE):
            self.parent.set_backward_msg(self.gmm.point_means_)
        self.n_updates += 1
        if self.category is not None:
            self.accuracy = clustering_accuracy(self.classes, self.category)
            self.digit_of_class = digit_matching(self.classes, self.category, self.gmm.n_components)
        for folder in self._folders():
            np.savetxt(folder / "class_learn.txt", self.classes, fmt="%d")
            np.savetxt(folder / "mu_learn.txt", self.gmm.means_, fmt="%.6f")
            if self.accuracy is not None:
                np.savetxt(folder / "acc_learn.txt", [self.accuracy], fmt="%.6f")
        return self.classes

    def recog(self, codes=None, category=None) -> np.ndarray:
        """Recognition: classify new codes with the fitted GMM, nothing learns (EM: its posterior; the samplers:
        each class's Student-t posterior predictive times its weight, as Serket's recognition mode). ``codes
        (M, D)``: default the connected VAE's last :meth:`VAE.recog` codes. ``category (M,)``: their labels, scored
        with the class -> digit matching learned on the training data (never re-matched). Writes
        ``class_recog.txt`` (and ``acc_recog.txt`` with labels); returns the classes ``(M,)``."""
        if self.classes is None:
            raise RuntimeError(f"{self.name} has not been trained yet: call update() first")
        if codes is None:
            codes = getattr(self.parent, "recog_codes", None)
            if codes is None:
                raise RuntimeError("no codes to recognise: call the VAE's recog(data) first, or pass codes")
        self.recog_classes = self.gmm.predict(codes)
        self.recog_accuracy = None
        self.folder.mkdir(parents=True, exist_ok=True)
        np.savetxt(self.folder / "class_recog.txt", self.recog_classes, fmt="%d")
        if category is not None:
            if self.digit_of_class is None:
                raise RuntimeError("scoring recognition needs the training labels: GMM(..., category=labels)")
            category = np.asarray(category).astype(np.int64)
            if category.shape != self.recog_classes.shape:
                raise ValueError(f"{len(category)} labels for {len(self.recog_classes)} codes")
            self.recog_accuracy = float(np.mean(self.digit_of_class[self.recog_classes] == category))
            np.savetxt(self.folder / "acc_recog.txt", [self.recog_accuracy], fmt="%.6f")
        return self.recog_classes
