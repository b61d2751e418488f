"""Mutual learning of the VAE and the GMM (Serket's VAE+GMM): one iteration = VAE update with the current
per-point prior means, then a GMM update on the latent codes, whose class means become the next prior means.

The loop prints nothing: progress goes to callbacks as :class:`ProgressEvent` records.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from vaegmm.model.config import RunConfig
from vaegmm.model.control import RunControl
from vaegmm.model.data import HeldOut
from vaegmm.model.gmm import make_gmm
from vaegmm.model.metrics import ari, clustering_accuracy, nmi
from vaegmm.model.predictive import predict
from vaegmm.model.projection import Projection2D, fit_pca2d
from vaegmm.model.recognition import TrainedIteration, ask, digit_matching, recognition_scores
from vaegmm.model.vae import (VAE, EpochLoss, TrainingDiverged, encode_all, make_optimizer, resolve_device,
                              train_epochs)


@dataclass
class ProgressEvent:
    """What the loop is doing now. ``phase``: "vae" (after each epoch), "gmm" (GMM update starts),
    "iteration" (an iteration finished)."""

    phase: str
    iteration: int  # the iteration in progress (1-based; 0 = the untrained picture)
    iterations: int  # total iterations planned
    epoch: int = 0  # epochs done in this VAE update
    epochs: int = 0
    recon: float = float("nan")  # mean BCE per image of the last epoch
    kl: float = float("nan")  # mean KL per image of the last epoch (unweighted)
    seconds: float = 0.0  # seconds since this iteration started


@dataclass
class IterationResult:
    """One finished iteration. ``N`` images, ``D`` latent dims, ``K`` classes, ``E`` epochs, ``M`` held-out
    images. Without labels the accuracy, NMI and ARI are None. What answering needs (:mod:`vaegmm.model.recognition`:
    ``TrainedIteration.from_result``) is kept too: the encoder's and decoder's weights, the PCA, the GMM's
    posterior and the training matching; a run saved before these were kept has them empty."""

    iteration: int  # 0 = untrained encoder, 1.. = after each mutual iteration
    codes: np.ndarray  # (N, D) float32: the codes the GMM clustered
    encoder_mean: np.ndarray  # (N, D) float32: mu of q(z|o)
    projection: np.ndarray  # (N, 2) float32: 2-D PCA of the codes, aligned with the previous iteration
    classes: np.ndarray  # (N,) int64: GMM class of each image
    class_means: np.ndarray  # (K, D) float32: GMM class means (the messages to the VAE)
    class_means_2d: np.ndarray  # (K, 2) float32: class means in the same 2-D projection
    class_counts: np.ndarray  # (K,) int64
    accuracy: Optional[float]  # Hungarian accuracy against the true digits (None: no labels)
    nmi: Optional[float]
    ari: Optional[float]
    recon: list = field(default_factory=list)  # (E,) mean BCE per image per epoch
    kl: list = field(default_factory=list)  # (E,) mean KL per image per epoch (unweighted)
    seconds_vae: float = 0.0
    seconds_gmm: float = 0.0
    decoder_state: dict = field(default_factory=dict, repr=False)  # numpy copies of the decoder's weights
    pca: Optional[Projection2D] = field(default=None, repr=False)
    encoder_state: dict = field(default_factory=dict, repr=False)  # numpy copies of the encoder's weights
    gmm_posterior: dict = field(default_factory=dict, repr=False)  # the GMM's fitted state (vaegmm.model.predictive)
    digit_of_class: Optional[np.ndarray] = None  # (K,) int64: the training matching class -> digit (-1: none)
    heldout_codes: Optional[np.ndarray] = field(default=None, repr=False)  # (M, D) float32: held-out encoder means
    heldout_classes: Optional[np.ndarray] = field(default=None, repr=False)  # (M,) int64: their GMM classes
    heldout_accuracy: Optional[float] = None  # held-out accuracy by the training matching (None: no held-out labels)
    heldout_nmi: Optional[float] = None
    # the training images recognised as the held-out ones are (encoder means, the fitted GMM's most probable
    # class, the same matching): the like-for-like baseline of heldout_accuracy when the GMM clustered sampled codes
    recognised_accuracy: Optional[float] = None

    def metrics(self) -> dict:
        """The scalar summary kept in ``history.json``."""
        return {"iteration": self.iteration, "accuracy": self.accuracy, "nmi": self.nmi, "ari": self.ari,
                "heldout_accuracy": self.heldout_accuracy, "heldout_nmi": self.heldout_nmi,
                "heldout_n": 0 if self.heldout_classes is None else int(len(self.heldout_classes)),
                "recognised_accuracy": self.recognised_accuracy,
                "seconds_vae": self.seconds_vae, "seconds_gmm": self.seconds_gmm,
                "recon": [float(v) for v in self.recon], "kl": [float(v) for v in self.kl],
                "class_counts": [int(c) for c in self.class_counts]}


Callback = Callable[[ProgressEvent], None]


class MutualLearner:
    """Holds the VAE, its optimiser (both carry over between updates), the GMM and the prior means.

    ``images (N, 784) float32 in [0, 1]``, ``labels (N,)`` (used only for the metrics; None: unlabelled, the
    metrics are None). ``heldout``: images training never sees (:class:`~vaegmm.model.data.HeldOut`), recognised
    after every iteration (Serket's recognition mode) and scored with the training matching. Call :meth:`begin`
    for iteration 0 (the untrained picture), then :meth:`step` once per mutual iteration.
    """

    def __init__(self, config: RunConfig, images: np.ndarray, labels: Optional[np.ndarray],
                 callbacks: Optional[list[Callback]] = None, control: Optional[RunControl] = None,
                 heldout: Optional[HeldOut] = None):
        self.config = config.validate()
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 2 or images.shape[1] != 784:
            raise ValueError(f"images must be (N, 784), got {images.shape}")
        if labels is not None and len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.labels = None if labels is None else np.asarray(labels)
        self.heldout = heldout
        self.callbacks = list(callbacks or [])
        self.control = control or RunControl()
        self.device = resolve_device(config.vae.device)
        seed = config.seed
        self._torch_gen = torch.Generator().manual_seed(seed)
        self._np_rng = np.random.default_rng(seed)
        self.model = VAE(config.vae.latent_dim, config.vae.hidden, generator=self._torch_gen).to(self.device)
        self.optimizer = make_optimizer(self.model, config.vae.lr)
        self.x = torch.from_numpy(images).to(self.device)
        self.prior_mu = torch.zeros(len(images), config.vae.latent_dim, device=self.device)
        g = config.gmm
        self.gmm = make_gmm(g.backend, g.n_classes, sweeps=g.sweeps, n_init=g.n_init, init=g.init,
                            warm_start=g.warm_start, random_state=self._np_rng, reg_covar=g.reg_covar,
                            chains=g.chains, select=g.select, keep_previous=g.keep_previous)
        self.history: list[IterationResult] = []

    # ------------------------------------------------------------------------------------------------
    @property
    def iteration(self) -> int:
        """Iterations finished (0 after :meth:`begin`, -1 before)."""
        return self.history[-1].iteration if self.history else -1

    def _emit(self, event: ProgressEvent) -> None:
        for cb in self.callbacks:
            cb(event)

    def _codes(self) -> tuple[np.ndarray, np.ndarray]:
        mu, logvar = encode_all(self.model, self.x)
        if self.config.codes == "mean":
            return mu, mu
        eps = self._np_rng.standard_normal(mu.shape).astype(np.float32)
        return mu + eps * np.exp(0.5 * logvar), mu

    def _cluster(self, iteration: int, losses: list[EpochLoss], seconds_vae: float, t0: float) -> IterationResult:
        self._emit(ProgressEvent("gmm", iteration, self.config.iterations, seconds=time.perf_counter() - t0))
        self.control.checkpoint()
        codes, mean = self._codes()
        t_gmm = time.perf_counter()
        self.gmm.fit(codes, checkpoint=self.control.checkpoint)
        seconds_gmm = time.perf_counter() - t_gmm
        classes = self.gmm.labels_
        means = np.asarray(self.gmm.means_, dtype=np.float32)
        previous = self.history[-1].projection if self.history else None
        pca = fit_pca2d(codes, previous)
        k = self.config.gmm.n_classes
        labels = self.labels
        result = IterationResult(
            iteration=iteration, codes=codes.astype(np.float32), encoder_mean=mean.astype(np.float32),
            projection=pca.transform(codes), classes=classes, class_means=means,
            class_means_2d=pca.transform(means), class_counts=np.bincount(classes, minlength=k),
            accuracy=None if labels is None else clustering_accuracy(classes, labels),
            nmi=None if labels is None else nmi(classes, labels), ari=None if labels is None else ari(classes, labels),
            recon=[l.recon for l in losses], kl=[l.kl for l in losses],
            seconds_vae=seconds_vae, seconds_gmm=seconds_gmm,
            decoder_state=self._weights("dec_"), pca=pca, encoder_state=self._weights("enc_"),
            gmm_posterior=self.gmm.posterior_,
            digit_of_class=None if labels is None else digit_matching(classes, labels, k))
        self._recognise_heldout(result)
        return result

    def _weights(self, prefix: str) -> dict:
        """Numpy copies of the VAE's weights whose names start with ``prefix`` ("enc_" or "dec_")."""
        return {k: v.detach().cpu().numpy().copy() for k, v in self.model.state_dict().items() if k.startswith(prefix)}

    def _recognise_heldout(self, result: IterationResult) -> None:
        """Serket's recognition of the held-out images with this iteration's encoder and GMM (nothing learns),
        scored with the matching learned on the training images; and of the training images the same way."""
        if result.digit_of_class is not None:
            recognised = predict(result.gmm_posterior, result.encoder_mean)
            result.recognised_accuracy = float(np.mean(result.digit_of_class[recognised] == self.labels))
        if self.heldout is None:
            return
        trained = TrainedIteration(result.encoder_state, result.decoder_state, result.gmm_posterior, result.pca,
                                   result.digit_of_class, vae=self.model)
        answer = ask(trained, self.heldout.images, neighbours=0, reconstruct=False)
        result.heldout_codes, result.heldout_classes = answer.codes, answer.classes
        result.heldout_accuracy, result.heldout_nmi = recognition_scores(answer, self.heldout.labels)

    def begin(self) -> IterationResult:
        """Iteration 0: the untrained encoder's codes, clustered. The prior stays N(0, I) for iteration 1, as in
        Serket (the first VAE update is a plain VAE)."""
        if self.history:
            return self.history[0]
        t0 = time.perf_counter()
        result = self._cluster(0, [], 0.0, t0)
        self.history.append(result)
        self._emit(ProgressEvent("iteration", 0, self.config.iterations, seconds=time.perf_counter() - t0))
        return result

    def step(self) -> IterationResult:
        """One mutual iteration: VAE update with the current prior means, then GMM update, then new prior means
        (the class mean of each point; kept at 0 when feedback is off). Runs :meth:`begin` first if needed."""
        if not self.history:
            self.begin()
        cfg = self.config
        it = self.iteration + 1
        t0 = time.perf_counter()

        def on_epoch(rec: EpochLoss) -> None:
            self._emit(ProgressEvent("vae", it, cfg.iterations, rec.epoch, cfg.vae.epochs, rec.recon, rec.kl,
                                     time.perf_counter() - t0))

        try:
            # the message N(mu_c, v I) exists from iteration 2 on (with feedback); iteration 1 is a plain VAE
            message = cfg.feedback and it > 1
            losses = train_epochs(self.model, self.optimizer, self.x, self.prior_mu, cfg.alpha_at(it), cfg.vae.epochs,
                                  cfg.vae.batch_size, self._torch_gen, on_epoch, self.control.checkpoint,
                                  prior_var=cfg.vae.message_var if message else 1.0,
                                  warmup=cfg.vae.warmup_epochs if it == 1 else 0, precision=cfg.vae.precision)
        except TrainingDiverged as e:
            raise TrainingDiverged(f"iteration {it}: {e}") from None
        seconds_vae = time.perf_counter() - t0
        result = self._cluster(it, losses, seconds_vae, t0)
        if cfg.feedback:
            self.prior_mu = torch.from_numpy(np.asarray(self.gmm.point_means_, dtype=np.float32)).to(self.device)
        self.history.append(result)
        self._emit(ProgressEvent("iteration", it, cfg.iterations, cfg.vae.epochs, cfg.vae.epochs,
                                 seconds=time.perf_counter() - t0))
        return result

    def run(self) -> list[IterationResult]:
        """Iteration 0 and then every remaining iteration of the config."""
        self.begin()
        while self.iteration < self.config.iterations:
            self.step()
        return self.history
