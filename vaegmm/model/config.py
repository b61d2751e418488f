"""Typed run configuration, validation and named presets.

Everything a run needs is in one :class:`RunConfig` passed whole to the learner, the CLI and the app.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

ALL_DIGITS: tuple[int, ...] = tuple(range(10))
# The allowed values of the settings that name a choice, each written once (the CLI, the sidebar, the GMM
# factory and vaegmm.serket import them from here).
GMM_BACKENDS = ("collapsed", "gibbs", "em")  # GMMConfig.backend (vaegmm.model.gmm.make_gmm)
GMM_INITS = ("random", "kmeans++")  # GMMConfig.init: the Gibbs samplers' start
GMM_SELECTS = ("likelihood", "consensus", "previous")  # GMMConfig.select: which EM restart is kept
CODE_KINDS = ("mean", "sample")  # RunConfig.codes
DEVICES = ("auto", "cpu", "cuda")  # VAEConfig.device
PRECISIONS = ("auto", "bf16", "fp32")  # VAEConfig.precision (vaegmm.model.vae.compute_dtype)
DATA_SOURCES = ("auto", "bundled", "openml")  # DataConfig.source, besides the prefixed ones below
DATA_SOURCE_PREFIXES = ("idx:", "serket:", "upload:")  # "idx:<folder>", "serket:<folder>", "upload:<id>"


@dataclass
class DataConfig:
    n: int = 3000  # number of images, split evenly over the digits
    digits: tuple[int, ...] = ALL_DIGITS  # which MNIST digits to include
    source: str = "auto"  # "auto", "bundled", "openml", "idx:<folder>", "serket:<folder>" or "upload:<id>"


@dataclass
class VAEConfig:
    latent_dim: int = 18  # D, size of the latent code z
    hidden: int = 128  # width of the single hidden layer of encoder and decoder
    epochs: int = 200  # passes over the data per VAE update
    batch_size: int = 500  # images per mini-batch
    lr: float = 1e-3  # Adam learning rate
    alpha: float = 1.0  # weight of KL(q(z|o) || N(mu_c, I)) in the objective
    message_var: float = 1.0  # v in the message N(mu_c, v I) from the GMM (1 = Serket; < 1 pulls harder)
    warmup_epochs: int = 0  # KL warm-up over the first update's first epochs (0 = none, as Serket)
    device: str = "auto"  # "auto" (CUDA when present), "cpu" or "cuda"
    precision: str = "fp32"  # VAE matrix multiplies: "fp32" (exact), "bf16" (mixed precision, float32 master
    # weights; ~2x faster), "auto" = bf16 where the device multiplies it natively (AVX512-BF16/AMX, CUDA), else fp32.
    # fp32 stays the default: issue 26's paired check (BENCHMARKS.md "Speed") passes for project-default (30 pairs)
    # but misses on serket-classic by 0.08 points (75 pairs: auto - fp32 = +0.34, 95 % CI -1.41 to +2.08; limit +-2)


@dataclass
class GMMConfig:
    n_classes: int = 10  # K, number of mixture components
    backend: str = "em"  # "em" (scikit-learn; default, see BENCHMARKS.md), "collapsed" (Serket's own per-point
    # collapsed Gibbs sampler) or "gibbs" (the same Bayesian GMM by blocked Gibbs sampling, Dirichlet(1) weights)
    sweeps: int = 100  # Gibbs sweeps per GMM update (both samplers)
    n_init: int = 10  # EM restarts (best likelihood kept)
    init: str = "random"  # Gibbs start: "random" labels (Serket) or nearest "kmeans++" seed
    warm_start: bool = False  # start each GMM update from the previous one's state
    chains: int = 1  # blocked Gibbs only: independent chains, the one whose last sample has the highest log p(z, c) kept
    reg_covar: float = 0.1  # EM only: added to each class covariance's diagonal (scikit-learn's own default: 1e-6)
    select: str = "likelihood"  # EM only: which restart is kept: "likelihood", "consensus" or "previous" (stability)
    keep_previous: bool = False  # EM only: the previous partition as one more restart, kept when it wins


@dataclass
class RunConfig:
    """One run, passed whole. The defaults (EM GMM, best of 10 restarts, covariance floor 0.1, fresh each update,
    sampled codes, alpha = 1, 5 iterations) were chosen by bench/quality.py: see BENCHMARKS.md, "## Quality"."""

    data: DataConfig = field(default_factory=DataConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    gmm: GMMConfig = field(default_factory=GMMConfig)
    iterations: int = 5  # mutual iterations (VAE update, then GMM update)
    codes: str = "sample"  # codes sent to the GMM: one "sample" of q(z|o) (Serket) or its "mean"
    feedback: bool = True  # send class means back to the VAE; False = prior stays N(0, I)
    alpha_schedule: tuple[float, ...] = ()  # alpha per mutual iteration (the last repeats); () = vae.alpha always
    seed: int = 0  # seeds data subset, torch and the GMMs

    def validate(self) -> "RunConfig":
        """Raise ``ValueError`` naming the first bad value; return self when all are valid."""
        d, v, g = self.data, self.vae, self.gmm
        _check(isinstance(d.n, int) and d.n >= 1, f"n must be an integer >= 1, got {d.n!r}")
        digits = tuple(d.digits)
        _check(len(digits) > 0, "digits must not be empty")
        bad = [x for x in digits if not isinstance(x, int) or not 0 <= x <= 9]
        _check(not bad, f"digits must be integers 0..9, got {bad!r}")
        _check(len(set(digits)) == len(digits), f"digits must not repeat, got {digits!r}")
        _check(isinstance(d.source, str) and (d.source in DATA_SOURCES or any(
            d.source.startswith(p) and len(d.source) > len(p) for p in DATA_SOURCE_PREFIXES)),
            "source must be 'auto', 'bundled', 'openml', 'idx:<folder>', 'serket:<folder>' or 'upload:<id>', "
            f"got {d.source!r}")
        _check(isinstance(v.latent_dim, int) and 1 <= v.latent_dim <= 256, f"latent_dim must be 1..256, got {v.latent_dim!r}")
        _check(isinstance(v.hidden, int) and v.hidden >= 1, f"hidden must be >= 1, got {v.hidden!r}")
        _check(isinstance(v.epochs, int) and v.epochs >= 1, f"epochs must be >= 1, got {v.epochs!r}")
        _check(isinstance(v.batch_size, int) and v.batch_size >= 1, f"batch_size must be >= 1, got {v.batch_size!r}")
        _check(_finite(v.lr) and v.lr > 0, f"lr must be > 0, got {v.lr!r}")
        _check(_finite(v.alpha) and v.alpha >= 0, f"alpha must be a finite number >= 0, got {v.alpha!r}")
        _check(_finite(v.message_var) and v.message_var > 0,
               f"message_var must be a finite number > 0, got {v.message_var!r}")
        _check(isinstance(v.warmup_epochs, int) and not isinstance(v.warmup_epochs, bool) and v.warmup_epochs >= 0,
               f"warmup_epochs must be an integer >= 0, got {v.warmup_epochs!r}")
        _check(v.device in DEVICES, f"device must be one of {DEVICES}, got {v.device!r}")
        _check(v.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {v.precision!r}")
        _check(isinstance(g.n_classes, int) and g.n_classes >= 1, f"n_classes must be >= 1, got {g.n_classes!r}")
        _check(g.n_classes <= d.n, f"n_classes ({g.n_classes}) must not exceed the number of images ({d.n})")
        _check(g.backend in GMM_BACKENDS, f"gmm backend must be one of {GMM_BACKENDS}, got {g.backend!r}")
        _check(isinstance(g.sweeps, int) and g.sweeps >= 1, f"sweeps must be >= 1, got {g.sweeps!r}")
        _check(isinstance(g.n_init, int) and g.n_init >= 1, f"n_init must be >= 1, got {g.n_init!r}")
        _check(g.init in GMM_INITS, f"gmm init must be one of {GMM_INITS}, got {g.init!r}")
        _check(isinstance(g.chains, int) and not isinstance(g.chains, bool) and g.chains >= 1,
               f"chains must be an integer >= 1, got {g.chains!r}")
        _check(g.chains == 1 or g.backend != "collapsed",
               f"chains = {g.chains!r} is the blocked 'gibbs' backend's option; 'collapsed' runs one chain, as Serket")
        _check(isinstance(g.reg_covar, (int, float)) and not isinstance(g.reg_covar, bool) and _finite(g.reg_covar)
               and g.reg_covar >= 0,
               f"reg_covar must be a finite number >= 0, got {g.reg_covar!r}")
        _check(isinstance(self.iterations, int) and self.iterations >= 0, f"iterations must be >= 0, got {self.iterations!r}")
        _check(g.select in GMM_SELECTS, f"gmm select must be one of {GMM_SELECTS}, got {g.select!r}")
        _check(isinstance(g.keep_previous, bool), f"keep_previous must be True or False, got {g.keep_previous!r}")
        _check(self.codes in CODE_KINDS, f"codes must be one of {CODE_KINDS}, got {self.codes!r}")
        _check(all(_finite(a) and a >= 0 for a in self.alpha_schedule),
               f"alpha_schedule must hold finite numbers >= 0, got {self.alpha_schedule!r}")
        _check(isinstance(self.seed, int) and self.seed >= 0, f"seed must be an integer >= 0, got {self.seed!r}")
        return self

    def to_dict(self) -> dict:
        """Plain JSON-able dict (tuples become lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        d = dict(d)
        parts = {}
        for name, sub in (("data", DataConfig), ("vae", VAEConfig), ("gmm", GMMConfig)):
            raw = dict(d.pop(name, {}) or {})
            unknown = set(raw) - {f.name for f in dataclasses.fields(sub)}
            _check(not unknown, f"unknown {name} settings: {sorted(unknown)}")
            if "digits" in raw:
                raw["digits"] = tuple(raw["digits"])
            parts[name] = sub(**raw)
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        _check(not unknown, f"unknown settings: {sorted(unknown)}")
        if "alpha_schedule" in d:
            d["alpha_schedule"] = tuple(d["alpha_schedule"] or ())
        return cls(**parts, **d)

    def alpha_at(self, iteration: int) -> float:
        """The KL weight of mutual iteration ``iteration`` (1-based): ``alpha_schedule`` (its last value repeats
        past its end), else ``vae.alpha``."""
        if not self.alpha_schedule:
            return float(self.vae.alpha)
        return float(self.alpha_schedule[min(iteration, len(self.alpha_schedule)) - 1])

    def replace(self, **changes) -> "RunConfig":
        """Copy with changes; nested fields as ``vae__alpha=0.5``."""
        d = self.to_dict()
        for key, value in changes.items():
            if "__" in key:
                part, name = key.split("__", 1)
                d[part][name] = value
            else:
                d[key] = value
        return RunConfig.from_dict(d)


def _finite(x) -> bool:
    try:
        return float(x) == float(x) and abs(float(x)) != float("inf")
    except (TypeError, ValueError):
        return False


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def serket_classic() -> RunConfig:
    """Serket's tutorial: 3000 images, D=18, K=10, alpha=1, 200 epochs, batch 500, 5 iterations,
    sampled codes, Serket's own GMM sampler (per-point collapsed Gibbs, 100 sweeps from random labels each
    update)."""
    return RunConfig(
        data=DataConfig(n=3000),
        vae=VAEConfig(latent_dim=18, epochs=200, batch_size=500, alpha=1.0),
        gmm=GMMConfig(n_classes=10, backend="collapsed", sweeps=100, init="random", chains=1, warm_start=False),
        iterations=5,
        codes="sample",
        feedback=True,
    )


def project_default() -> RunConfig:
    """The classic VAE with the GMM settings that measured best (EM, best of 10, covariance floor 0.1, sampled
    codes): ``RunConfig()``; see BENCHMARKS.md, "## Quality"."""
    return RunConfig()


def quick_demo() -> RunConfig:
    """The project default, smaller (2000 images, D=12, 100 epochs of batch 250): about 25 s on one core, and
    the accuracy still climbs from chance to about 0.75."""
    return RunConfig().replace(data__n=2000, vae__latent_dim=12, vae__epochs=100, vae__batch_size=250)


def no_feedback_baseline() -> RunConfig:
    """The project default with the prior fixed at N(0, I): the same VAE and GMM trained apart."""
    return project_default().replace(feedback=False)


def feedback_lesson() -> RunConfig:
    """The lecture's with/without-feedback setting (issue 19): Quick-demo size (2000 images, D = 12, batch 250,
    EM GMM) with a strong pull (alpha = 8) and short, many VAE updates (10 epochs x 20 iterations: the same 200
    epochs in all as the map's other schedules), the setting with the largest effect of the effect map.

    Measured (BENCHMARKS.md, "Where feedback matters"; chosen on tuning seeds 0-4: +15.8 points, 5 of 5 seeds),
    reported on held-out seeds 100-109: feedback beats no feedback by **+12.4 accuracy points** (0.526 vs 0.403;
    paired 95 % CI 8.0 to 16.7, t-test p < 0.001, Wilcoxon p = 0.002, better on 10 of 10 seeds; NMI 0.49 vs 0.29).
    Why: at alpha = 8 the plain VAE's KL term pulls every code toward the origin and the digits overlap; the GMM's
    class means give each class its own centre to be pulled to, so the classes stay apart. The price: both sides
    cluster worse than at alpha = 1 (about 0.75 with or without feedback), where feedback changes little."""
    return quick_demo().replace(vae__alpha=8.0, vae__epochs=10, iterations=20)


PRESETS = {
    "serket-classic": serket_classic,
    "project-default": project_default,
    "quick-demo": quick_demo,
    "no-feedback": no_feedback_baseline,
    "feedback-lesson": feedback_lesson,
}


def preset(name: str) -> RunConfig:
    """A fresh copy of a named preset (``serket-classic``, ``project-default``, ``quick-demo``, ``no-feedback``,
    ``feedback-lesson``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]()
