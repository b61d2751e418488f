"""Three Gaussian mixtures with one interface (scikit-learn style).

``fit(z (N, D))`` returns self; fitted state: ``labels_ (N,)`` (the classes reported and scored),
``means_ (K, D)``, ``point_means_ (N, D)`` (the message sent back to the VAE), ``resp_ (N, K)``, ``posterior_``
(a dict of arrays, :mod:`vaegmm.model.predictive`). ``predict_proba(z)`` / ``predict(z)`` classify new codes with
the fitted state and learn nothing (Serket's recognition mode).

* :class:`CollapsedGibbsGMM` - Serket's own sampler (``naka-lab/Serket`` ``gmm/gmm.py``): per-point collapsed
  Gibbs sampling of the Bayesian GMM (Gauss-Wishart prior: m0 = data mean, S0 = 0.1 I, nu0 = D + 2, r0 = 1;
  class weight N_k), with Serket's read-out. Backend ``"collapsed"``.
* :class:`GibbsGMM` - the same model with Dirichlet(1) weights, fitted by blocked Gibbs sampling. Backend
  ``"gibbs"``.
* :class:`EMGMM` - scikit-learn's ``GaussianMixture`` (EM, full covariance). Backend ``"em"``.

What they share sits in base classes, as scikit-learn's ``BaseMixture`` holds its mixtures' common parameters and
checks: :class:`BaseGMM` (``n_components``, ``n_init``, ``warm_start``, ``random_state``, their validation, and
``predict_proba`` / ``predict``) and,
for the two samplers, :class:`GaussWishartGMM` (the prior ``s0``, ``r0``, ``nu0``, ``n_sweeps``, ``init`` and the
starting labels). ``__init__`` only stores; ``_validate`` raises ``ValueError`` naming the bad value.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from vaegmm.model import em as batched_em
from vaegmm.model import predictive
from vaegmm.model.config import GMM_BACKENDS, GMM_INITS, GMM_SELECTS
from vaegmm.model.metrics import clustering_accuracy


def _check_count(name: str, value) -> None:
    """``value`` must be an integer >= 1 (bools refused); the error names the parameter and the value."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _check_labels(name: str, labels, n: int, k: int) -> np.ndarray:
    """``labels`` as ``(n,) int64`` with values in ``0..k-1``, else ``ValueError`` naming ``name``."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (n,) or labels.min() < 0 or labels.max() >= k:
        raise ValueError(f"{name} must be (N,) ints in 0..{k - 1}")
    return labels


def _check_data(z, n_components) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"z must be a 2-D array (N, D), got shape {z.shape}")
    if z.shape[0] < n_components:
        raise ValueError(f"n_components={n_components} exceeds the number of points ({z.shape[0]})")
    if not np.all(np.isfinite(z)):
        raise ValueError("z holds NaN or infinite values")
    return z


def _rng_of(random_state) -> np.random.Generator:
    return random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)


def _check_positive(name: str, v) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) or not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {v!r}")


def _fitted_posterior(gmm) -> dict:
    posterior = getattr(gmm, "posterior_", None)
    if posterior is None:
        from sklearn.exceptions import NotFittedError

        raise NotFittedError(f"this {type(gmm).__name__} is not fitted yet: call fit(z) first")
    return posterior


class BaseGMM:
    """The parameters every mixture here has, stored by ``__init__`` and checked by :meth:`_validate` (then each
    class's own :meth:`_check_parameters`), as scikit-learn's ``BaseMixture``. Fitted state (set by ``fit``):
    ``labels_ (N,)``, ``means_ (K, D)``, ``point_means_ (N, D)`` (the message to the VAE), ``resp_ (N, K)``."""

    def __init__(self, n_components: int, n_init: int, warm_start: bool, random_state):
        self.n_components = n_components
        self.n_init = n_init  # restarts (EM) or chains (blocked Gibbs); the best is kept
        self.warm_start = warm_start
        self.random_state = random_state  # None, an int or a numpy Generator

    def _validate(self) -> None:
        _check_count("n_components", self.n_components)
        _check_count("n_init", self.n_init)
        if self.random_state is not None and not isinstance(self.random_state, (int, np.integer, np.random.Generator)):
            raise ValueError(f"random_state must be None, an int or a numpy Generator, got {self.random_state!r}")
        self._check_parameters()

    def _check_parameters(self) -> None:
        """The subclass's own parameters (``ValueError`` naming the bad value)."""

    def predict_proba(self, z) -> np.ndarray:
        """Class probabilities ``(M, K)`` of new codes ``z (M, D)`` under the fitted state; nothing learns. EM: the
        mixture's posterior; the Gibbs samplers: each class's posterior predictive (a Student-t) times its weight
        (:mod:`vaegmm.model.predictive`)."""
        return predictive.predict_proba(_fitted_posterior(self), z)

    def predict(self, z) -> np.ndarray:
        """The most probable class ``(M,) int64`` of new codes ``z (M, D)`` (the argmax of :meth:`predict_proba`)."""
        return predictive.predict(_fitted_posterior(self), z)


class GaussWishartGMM(BaseGMM):
    """The Bayesian GMM both samplers draw from: class means and precisions under a Gauss-Wishart prior (mean
    m0 = the data mean, scale S0 = ``s0`` I, ``nu0`` (None: D + 2), ``r0``), ``n_sweeps`` Gibbs sweeps from
    starting labels drawn by ``init`` ("random", as Serket, or each point's nearest "kmeans++" seed)."""

    def __init__(self, n_components: int, n_sweeps: int, s0: float, r0: float, nu0: Optional[float], init: str,
                 n_init: int, warm_start: bool, random_state):
        super().__init__(n_components, n_init, warm_start, random_state)
        self.n_sweeps = n_sweeps
        self.s0 = s0  # S0 = s0 * I (Serket: 0.1)
        self.r0 = r0
        self.nu0 = nu0  # None: D + 2 (Serket)
        self.init = init

    def _check_parameters(self) -> None:
        _check_count("n_sweeps", self.n_sweeps)
        if self.init not in GMM_INITS:
            raise ValueError(f"init must be 'random' (Serket) or 'kmeans++', got {self.init!r}")
        _check_positive("s0", self.s0)
        _check_positive("r0", self.r0)
        if self.nu0 is not None and (isinstance(self.nu0, bool) or not isinstance(self.nu0, (int, float, np.floating))
                                     or not np.isfinite(self.nu0)):
            raise ValueError(f"nu0 must be None (D + 2) or a finite number, got {self.nu0!r}")

    def _nu0(self, d: int) -> float:
        nu0 = float(d + 2 if self.nu0 is None else self.nu0)
        if nu0 <= d - 1:
            raise ValueError(f"nu0 must be > D - 1 = {d - 1}, got {nu0!r}")
        return nu0

    def _start_labels(self, z: np.ndarray, rng: np.random.Generator, init_labels: Optional[np.ndarray],
                      previous: Optional[np.ndarray]) -> np.ndarray:
        """Starting labels ``(N,)``: ``init_labels``, else ``previous`` (the last fit's) when ``warm_start`` and
        the size matches, else by ``init``."""
        n, k = len(z), int(self.n_components)
        if init_labels is not None:
            return _check_labels("init_labels", init_labels, n, k).copy()
        if self.warm_start and previous is not None and len(previous) == n:
            return previous.copy()
        if self.init == "kmeans++":
            return kmeanspp_labels(z, k, rng)
        return rng.integers(0, k, size=n)


class CollapsedGibbsGMM(GaussWishartGMM):
    """Serket's Bayesian GMM sampler, exactly: per-point collapsed Gibbs sampling (naka-lab/Serket ``gmm/gmm.py``).

    Model: class ``k`` has a Gauss-Wishart prior (mean m0 = the data mean, scale S0 = ``s0`` I, nu0 = D + 2,
    r0 = 1); means and precisions are integrated out. Start: uniformly random labels. One sweep visits the points
    in order: the point leaves its class; class ``k`` gets weight ``N_k * p(z_i | z of class k's other points)``
    (the Student-t posterior predictive, computed as Serket's ratio of marginal likelihoods); the class is drawn
    by inverse CDF with one uniform per point; the point joins it. The weight is ``N_k``, not ``N_k + alpha``: a
    class that empties gets weight 0 and never comes back (Serket's classes can die).

    Read-out after the last sweep, as Serket's ``gmm.train``:

    * ``resp_ (N, K)``: ``Pdz[n, k] ∝ N_k p(z_n | class k)``, normalised per point, with every class's full
      final sample (a point's own class includes it);
    * ``labels_ (N,)``: ``argmax_k Pdz[n, k]``, the classes Serket reports and scores (what our accuracy uses);
    * ``sampled_labels_ (N,)``: the last sample itself;
    * ``means_ (K, D)``: each class's posterior mean ``(sum of its z + r0 m0) / (r0 + N_k)`` given
      ``sampled_labels_`` (m0 for an empty class);
    * ``point_means_ (N, D)``: ``means_[sampled_labels_]``, the mean of each point's last sampled class: Serket's
      ``mu`` message to the VAE (note: not ``means_[labels_]``; the two differ for points whose argmax class is not
      their sampled one);
    * ``counts_ (K,)``: ``N_k`` of the last sample; ``n_iter_``; ``moves_ (n_sweeps,)``: points that changed
      class in each sweep.

    Serket's backward message ``bias_dz`` multiplies the weights; in the VAE+GMM tutorial nothing sends the GMM
    one, so it is uniform and left out here. The inner loop is compiled with numba (``vaegmm/model/_collapsed.py``):
    about 0.5 s of CPU for 100 sweeps of 3000 x 18 codes with K = 10 (Serket's Python loop: about 3 min).
    """

    def __init__(self, n_components: int = 10, n_sweeps: int = 100, s0: float = 0.1, r0: float = 1.0,
                 nu0: Optional[float] = None, init: str = "random", warm_start: bool = False, random_state=None):
        # one chain, as Serket; warm_start: start from the previous fit's *sampled* labels when the size matches
        super().__init__(n_components, n_sweeps, s0, r0, nu0, init, 1, warm_start, random_state)

    def fit(self, z, init_labels: Optional[np.ndarray] = None, checkpoint=None) -> "CollapsedGibbsGMM":
        """Sample ``n_sweeps`` sweeps on ``z (N, D)`` and read out as Serket does (see the class docstring).

        Initial labels: ``init_labels (N,)``, else the previous fit's ``sampled_labels_`` when ``warm_start`` and
        the size matches, else by ``init``. Random draws, all from one ``numpy.random.Generator``: the random
        start ``integers(0, K, N)``, then per sweep ``random(N)``, one uniform per point (so a plain
        re-implementation fed the same generator must give the same labels, sweep for sweep).
        ``checkpoint()`` is called before every sweep (it may block to pause or raise to stop)."""
        self._validate()
        z = np.ascontiguousarray(_check_data(z, self.n_components))
        n, d = z.shape
        k = int(self.n_components)
        nu0 = self._nu0(d)
        rng = _rng_of(self.random_state)
        labels = self._start_labels(z, rng, init_labels, getattr(self, "sampled_labels_", None))
        labels = np.ascontiguousarray(labels, dtype=np.int64)
        from vaegmm.model import _collapsed  # numba is loaded on the first fit only

        m0 = z.mean(axis=0)
        s0, r0 = float(self.s0), float(self.r0)
        counts, sums = np.zeros(k), np.zeros((k, d))
        outer, chol = np.zeros((k, d, d)), np.zeros((k, d, d))
        means, half_logdet, const = np.zeros((k, d)), np.zeros(k), np.zeros(k)
        moves = np.zeros(int(self.n_sweeps), dtype=np.int64)
        for s in range(int(self.n_sweeps)):
            if checkpoint is not None:
                checkpoint()
            u = rng.random(n)
            moves[s] = _collapsed.sweep(z, labels, u, m0, s0, r0, nu0, counts, sums, outer, means, chol,
                                        half_logdet, const)
        self.sampled_labels_ = labels
        self.counts_ = np.bincount(labels, minlength=k).astype(np.int64)
        self.means_ = _class_means(z, labels, k, m0, r0)
        self.point_means_ = self.means_[labels]
        log_pdz = self._log_pdz(z, labels, k, m0, s0, r0, nu0)
        top = log_pdz.max(axis=1, keepdims=True)
        resp = np.exp(log_pdz - top)
        self.resp_ = resp / resp.sum(axis=1, keepdims=True)
        self.labels_ = np.argmax(log_pdz, axis=1).astype(np.int64)
        with np.errstate(divide="ignore"):  # a class that died has weight N_k = 0, as in Serket
            log_counts = np.log(self.counts_.astype(np.float64))
        self.posterior_ = predictive.gauss_wishart_posterior(z, labels, k, m0, s0, r0, nu0, log_counts)
        self.moves_ = moves
        self.n_iter_ = int(self.n_sweeps)
        return self


    @staticmethod
    def _log_pdz(z, labels, k, m0, s0, r0, nu0) -> np.ndarray:
        """``log N_k + log p(z_n | X_k) (N, K)`` for every point and class, ``X_k`` = class k's points under
        ``labels`` (including ``z_n`` itself when it is in k): Serket's ``Pdz`` before normalising; ``-inf`` for
        an empty class."""
        from scipy.linalg import solve_triangular
        from scipy.special import gammaln

        n, d = z.shape
        out = np.full((n, k), -np.inf)
        for c in range(k):
            members = z[labels == c]
            cnt = len(members)
            if cnt == 0:
                continue
            r, nu = r0 + cnt, nu0 + cnt
            mean = (members.sum(axis=0) + r0 * m0) / r
            diff0 = members - members.mean(axis=0)
            dm = members.mean(axis=0) - m0
            s = s0 * np.eye(d) + diff0.T @ diff0 + (r0 * cnt / r) * np.outer(dm, dm)
            chol = np.linalg.cholesky(s)
            q = (solve_triangular(chol, (z - mean).T, lower=True) ** 2).sum(axis=0)
            out[:, c] = (np.log(cnt) - 0.5 * d * np.log(np.pi) + 0.5 * d * np.log(r / (r + 1))
                         - np.log(np.diag(chol)).sum() - 0.5 * (nu + 1) * np.log1p(r / (r + 1) * q)
                         + gammaln(0.5 * (nu + 1)) - gammaln(0.5 * (nu + 1 - d)))
        return out


def _class_means(z, labels, k, m0, r0) -> np.ndarray:
    """Posterior mean of each class's mean, ``(sum of its z + r0 m0) / (r0 + N_k)``: ``(K, D)``."""
    sums = np.zeros((k, z.shape[1]))
    np.add.at(sums, labels, z)
    return (sums + r0 * m0[None]) / (r0 + np.bincount(labels, minlength=k))[:, None]


class GibbsGMM(GaussWishartGMM):
    """Bayesian GMM by blocked Gibbs sampling (backend ``"gibbs"``; not Serket's sampler: that is
    :class:`CollapsedGibbsGMM`).

    One sweep: (1) given the assignments, draw each class's precision from its Wishart posterior and its mean
    from its Normal posterior, and the weights from their Dirichlet posterior; (2) given those, draw every
    point's class at once from ``p(c=k | z) ∝ pi_k N(z | mu_k, Lambda_k^-1)``. The class prior is the same
    Gauss-Wishart as Serket's, but the weights are Dirichlet(N_k + ``dirichlet``), so an empty class can come back,
    and blocked sweeps mix differently from Serket's per-point ones (BENCHMARKS.md, "Collapsed vs blocked Gibbs").

    After the last sweep, ``labels_`` are the last sample, ``means_`` the posterior mean of each class's mean given
    those labels (``m_n``), and ``resp_`` the last sweep's conditional class probabilities.
    """

    def __init__(self, n_components: int = 10, n_sweeps: int = 100, s0: float = 0.1, r0: float = 1.0,
                 nu0: Optional[float] = None, dirichlet: float = 1.0, init: str = "random",
                 warm_start: bool = False, random_state=None, n_init: int = 1):
        # n_init: independent chains; the one whose last sample has the highest log p(z, c) is kept
        super().__init__(n_components, n_sweeps, s0, r0, nu0, init, n_init, warm_start, random_state)
        self.dirichlet = dirichlet

    def _check_parameters(self) -> None:
        super()._check_parameters()
        _check_positive("dirichlet", self.dirichlet)

    def fit(self, z, init_labels: Optional[np.ndarray] = None, checkpoint=None) -> "GibbsGMM":
        """Sample ``n_sweeps`` sweeps on ``z (N, D)``. Initial labels: ``init_labels``, else the previous fit's
        labels when ``warm_start`` and the size matches, else by ``init``: uniform at random (as Serket does) or
        each point's nearest k-means++ seed (a start that rarely leaves two true clusters merged).

        With ``n_init > 1`` that many chains are run (the first from the start above, the others from fresh
        ``init`` starts) and the chain whose final sample has the highest collapsed log joint
        ``log p(z, c)`` (:meth:`log_joint`) is kept, as scikit-learn keeps the best of ``n_init`` EM fits.
        ``log_joint_`` holds the kept chain's value."""
        self._validate()
        # The sweeps multiply tiny matrices ((N, D) by (D, D)): a multi-threaded BLAS only adds hand-offs, and on a
        # busy machine its spinning threads made a fit 5-10x slower (bench/speed.py), so one BLAS thread here.
        try:
            from threadpoolctl import threadpool_limits
            one_blas_thread = threadpool_limits(1, user_api="blas")
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
            import contextlib
            one_blas_thread = contextlib.nullcontext()
        with one_blas_thread:
            if int(self.n_init) == 1:
                return self._fit_chain(z, init_labels, checkpoint)
            # one generator for all chains, so that an int seed does not give n_init identical chains
            rng = _rng_of(self.random_state)
            best = None
            for i in range(int(self.n_init)):
                if i > 0:  # later chains never reuse the caller's or the previous fit's labels
                    init_labels = None
                state = self._fit_chain(z, init_labels, checkpoint, fresh=i > 0, rng=rng).__dict__.copy()
                if best is None or state["log_joint_"] > best["log_joint_"]:
                    best = state
            self.__dict__.update(best)
            return self

    def _fit_chain(self, z, init_labels=None, checkpoint=None, fresh: bool = False, rng=None) -> "GibbsGMM":
        """One Gibbs chain (see :meth:`fit`); ``fresh`` ignores ``warm_start``; ``rng`` overrides ``random_state``."""
        z = _check_data(z, self.n_components)
        n, d = z.shape
        k = int(self.n_components)
        nu0 = self._nu0(d)
        rng = _rng_of(self.random_state) if rng is None else rng
        m0 = z.mean(axis=0)
        s0 = np.eye(d) * self.s0
        r0 = float(self.r0)
        labels = self._start_labels(z, rng, init_labels, None if fresh else getattr(self, "labels_", None))
        zz = (z[:, :, None] * z[:, None, :]).reshape(n, d * d)  # (N, D*D) second moments, once
        log2pi = d * np.log(2 * np.pi)
        tri = np.tril_indices(d, -1)
        for sweep in range(int(self.n_sweeps)):
            if checkpoint is not None and sweep % 10 == 0:
                checkpoint()
            counts, m_n, r_n, nu_n, s_n = self._posterior(z, zz, labels, k, m0, s0, r0, nu0)
            # Precision Lambda_k ~ Wishart(S_n^-1, nu_n) via Bartlett: Lambda = (L A)(L A)^T, L = chol(S_n^-1)
            l_chol = np.linalg.cholesky(np.linalg.inv(s_n))  # (K, D, D)
            a = np.zeros((k, d, d))
            dof = nu_n[:, None] - np.arange(d)[None, :]  # (K, D)
            a[:, np.arange(d), np.arange(d)] = np.sqrt(rng.chisquare(dof))
            a[:, tri[0], tri[1]] = rng.standard_normal((k, len(tri[0])))
            u = l_chol @ a  # (K, D, D) lower triangular, Lambda_k = U U^T
            # mean_k ~ N(m_n, (r_n Lambda)^-1) = m_n + U^-T eps / sqrt(r_n)
            eps = rng.standard_normal((k, d, 1))
            mean = m_n + np.linalg.solve(np.swapaxes(u, 1, 2), eps)[:, :, 0] / np.sqrt(r_n)[:, None]
            weights = rng.dirichlet(counts + self.dirichlet)
            # log pi_k N(z | mean_k, Lambda_k^-1) for all points and classes: (N, K)
            proj = z[None] @ u - (mean[:, None, :] @ u)  # (K, N, D) = (z - mean_k)^T U_k
            logdet = np.log(np.abs(np.diagonal(u, axis1=1, axis2=2))).sum(axis=1)  # log |Lambda_k|^(1/2)
            logp = (-0.5 * (proj ** 2).sum(axis=2) + (logdet - 0.5 * log2pi + np.log(weights))[:, None]).T
            logp -= logp.max(axis=1, keepdims=True)
            labels = np.argmax(logp - np.log(-np.log(rng.random(logp.shape))), axis=1)  # Gumbel-max sample
        resp = np.exp(logp)
        resp /= resp.sum(axis=1, keepdims=True)
        counts, m_n, *_ = self._posterior(z, zz, labels, k, m0, s0, r0, nu0)
        self.labels_ = labels.astype(np.int64)
        self.means_ = m_n
        self.point_means_ = m_n[self.labels_]
        self.resp_ = resp
        self.counts_ = counts
        self.n_iter_ = int(self.n_sweeps)
        self.log_joint_ = self._log_joint(z, zz, self.labels_, k, m0, s0, r0, nu0)
        a = float(self.dirichlet)  # the weights' Dirichlet posterior mean
        self.posterior_ = predictive.gauss_wishart_posterior(z, self.labels_, k, m0, float(self.s0), r0, nu0,
                                                             np.log((counts + a) / (n + k * a)))
        return self


    def log_joint(self, z, labels) -> float:
        """Collapsed log joint ``log p(z, c)`` of ``z (N, D)`` and labels ``c (N,)`` under this model's prior
        (Normal-inverse-Wishart per class, Dirichlet weights integrated out): the score that picks among chains."""
        self._validate()
        z = _check_data(z, self.n_components)
        n, d = z.shape
        k = int(self.n_components)
        labels = _check_labels("labels", labels, n, k)
        nu0 = self._nu0(d)
        zz = (z[:, :, None] * z[:, None, :]).reshape(n, d * d)
        return self._log_joint(z, zz, labels, k, z.mean(axis=0), np.eye(d) * self.s0, float(self.r0), nu0)

    def _log_joint(self, z, zz, labels, k, m0, s0, r0, nu0) -> float:
        from scipy.special import gammaln, multigammaln

        n, d = z.shape
        counts, _m_n, r_n, nu_n, s_n = self._posterior(z, zz, labels, k, m0, s0, r0, nu0)
        logdet_n = np.linalg.slogdet(s_n)[1]
        logdet_0 = np.linalg.slogdet(s0)[1]
        # Marginal likelihood of each class's points under NIW(m0, r0, S0, nu0) (Murphy 2007, eq. 266)
        lml = (-0.5 * counts * d * np.log(np.pi) + 0.5 * d * (np.log(r0) - np.log(r_n))
               + 0.5 * nu0 * logdet_0 - 0.5 * nu_n * logdet_n
               + np.array([multigammaln(0.5 * v, d) for v in nu_n]) - multigammaln(0.5 * nu0, d))
        a = float(self.dirichlet)
        # Dirichlet-multinomial probability of the labels
        lp_c = gammaln(k * a) - gammaln(n + k * a) + np.sum(gammaln(counts + a) - gammaln(a))
        return float(lml.sum() + lp_c)

    @staticmethod
    def _posterior(z, zz, labels, k, m0, s0, r0, nu0):
        """Normal-inverse-Wishart posterior of each class given the labels: counts (K,), m_n (K, D), r_n (K,),
        nu_n (K,), S_n (K, D, D)."""
        n, d = z.shape
        onehot = np.zeros((n, k))
        onehot[np.arange(n), labels] = 1.0
        counts = onehot.sum(axis=0)
        sums = onehot.T @ z  # (K, D)
        second = (onehot.T @ zz).reshape(k, d, d)  # sum z z^T per class
        safe = np.maximum(counts, 1.0)[:, None]
        xbar = sums / safe
        scatter = second - counts[:, None, None] * xbar[:, :, None] * xbar[:, None, :]
        r_n = r0 + counts
        nu_n = nu0 + counts
        m_n = (r0 * m0[None] + sums) / r_n[:, None]
        diff = xbar - m0[None]
        s_n = s0[None] + scatter + (r0 * counts / r_n)[:, None, None] * diff[:, :, None] * diff[:, None, :]
        s_n = 0.5 * (s_n + np.swapaxes(s_n, 1, 2))
        return counts, m_n, r_n, nu_n, s_n


def kmeanspp_labels(z: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Labels ``(N,)`` of the nearest of ``k`` k-means++ seeds drawn from ``z (N, D)``."""
    from sklearn.cluster import kmeans_plusplus

    centers, _ = kmeans_plusplus(z, k, random_state=int(rng.integers(2 ** 31 - 1)))
    d2 = (z ** 2).sum(1)[:, None] - 2 * z @ centers.T + (centers ** 2).sum(1)[None]
    return d2.argmin(axis=1)


class EMGMM(BaseGMM):
    """scikit-learn ``GaussianMixture`` (EM, full covariance) behind the same interface; with ``warm_start`` the
    next fit starts from the previous fit's means.

    Which of the ``n_init`` restarts is kept (``select``):

    * ``"likelihood"``: the highest likelihood, as scikit-learn does (the default);
    * ``"consensus"``: the restart whose partition agrees most, on average, with the other restarts' partitions
      (Hungarian-matched agreement): the typical solution rather than a lucky or merged one;
    * ``"previous"``: the restart whose partition agrees most with the previous fit's labels (stability).

    ``keep_previous``: one more candidate, started from the previous fit's partition (its class means on the new
    codes); under ``"likelihood"`` it is kept only when its likelihood wins, so the partition carries over
    without the lock-in of a full warm start. ``candidates_`` records every candidate's likelihood and agreement.
    """

    def __init__(self, n_components: int = 10, n_init: int = 1, max_iter: int = 200, reg_covar: float = 1e-6,
                 warm_start: bool = False, random_state=None, select: str = "likelihood",
                 keep_previous: bool = False):
        super().__init__(n_components, n_init, warm_start, random_state)
        self.max_iter = max_iter
        self.reg_covar = reg_covar
        self.select = select
        self.keep_previous = keep_previous

    def _check_parameters(self) -> None:
        if isinstance(self.reg_covar, bool) or not isinstance(self.reg_covar, (int, float)) \
                or not np.isfinite(self.reg_covar) or self.reg_covar < 0:
            raise ValueError(f"reg_covar must be a finite number >= 0, got {self.reg_covar!r}")
        if self.select not in GMM_SELECTS:
            raise ValueError(f"select must be one of {GMM_SELECTS}, got {self.select!r}")

    def fit(self, z, checkpoint=None) -> "EMGMM":
        """Fit by EM on ``z (N, D)``: the restarts as one batched EM (:mod:`vaegmm.model.em`, scikit-learn's maths and
        starts), with one BLAS/OpenMP thread: its products are small, and on a busy machine spinning threads made
        a fit 10-100x slower (bench/speed.py)."""
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            return self._fit(z, checkpoint)

    def _fit(self, z, checkpoint=None) -> "EMGMM":
        from sklearn.mixture import GaussianMixture
        from sklearn.utils import check_random_state

        self._validate()
        z = _check_data(z, self.n_components)
        if checkpoint is not None:
            checkpoint()
        previous = getattr(self, "labels_", None)
        if previous is not None and len(previous) != len(z):
            previous = None
        means_init = None
        if self.warm_start and getattr(self, "means_", None) is not None and self.means_.shape[1] == z.shape[1]:
            means_init = self.means_
        seed = self.random_state
        if isinstance(seed, np.random.Generator):
            seed = int(seed.integers(2 ** 31 - 1))
        k = int(self.n_components)

        def em(n_init=1, random_state=seed, means=None):
            return GaussianMixture(n_components=k, covariance_type="full", n_init=n_init, max_iter=self.max_iter,
                                   reg_covar=self.reg_covar, means_init=means, random_state=random_state).fit(z)

        def restarts(random_states: list) -> list:
            """EM from one k-means start per random state, all restarts as one batched EM (vaegmm.model.em)."""
            starts = batched_em.kmeans_starts(z, k, random_states)
            return batched_em.em_restarts(z, starts, k, self.reg_covar, self.max_iter, checkpoint=checkpoint)

        self.candidates_ = []
        if means_init is not None:
            gm = em(means=means_init)
        elif self.select == "likelihood":
            # scikit-learn's best of n_init: its n_init k-means starts come from one RandomState, in order
            rs = check_random_state(seed)
            fits = [("restart", batched_em.best_restart(restarts([rs] * int(self.n_init))))]
            previous_fit = self._previous_fit(em, z, previous, seed)
            if previous_fit is None:
                gm = fits[0][1]
            else:
                gm = self._choose(fits + [previous_fit], z, previous)
        else:
            seeds = np.random.default_rng(seed).integers(2 ** 31 - 1, size=int(self.n_init))
            fits = [("restart", fit) for fit in restarts([int(s) for s in seeds])]
            previous_fit = self._previous_fit(em, z, previous, int(seeds[0]))
            gm = self._choose(fits + ([previous_fit] if previous_fit else []), z, previous)
        self.model_ = gm
        self.resp_ = gm.predict_proba(z)
        self.labels_ = self.resp_.argmax(axis=1).astype(np.int64)
        self.means_ = gm.means_.copy()
        self.point_means_ = self.means_[self.labels_]
        self.n_iter_ = int(gm.n_iter_)
        self.posterior_ = predictive.gaussian_posterior(gm.weights_, gm.means_, gm.precisions_cholesky_)
        return self


    def _previous_fit(self, em, z: np.ndarray, previous: Optional[np.ndarray], seed):
        """With ``keep_previous``: EM started from the previous partition's class means on ``z`` (None when there
        is no previous partition or one of its classes is empty)."""
        k = int(self.n_components)
        if not self.keep_previous or previous is None or np.bincount(previous, minlength=k).min() == 0:
            return None
        means = np.stack([z[previous == c].mean(axis=0) for c in range(k)])
        return ("previous", em(random_state=seed, means=means))

    def _choose(self, fits: list, z: np.ndarray, previous: Optional[np.ndarray]):
        """The kept candidate of ``fits = [(kind, GaussianMixture), ...]`` by ``select``; fills ``candidates_``."""
        labels = [gm.predict(z) for _, gm in fits]
        loglik = np.array([gm.score(z) for _, gm in fits])  # mean log-likelihood per point
        n = len(fits)
        if self.select == "consensus" and n > 1:
            agree = np.array([[clustering_accuracy(labels[i], labels[j]) if i != j else 0.0 for j in range(n)]
                              for i in range(n)])
            score = agree.sum(axis=1) / (n - 1)
        elif self.select == "previous" and previous is not None:
            score = np.array([clustering_accuracy(lab, previous) for lab in labels])
        else:
            score = loglik
        # ties (identical partitions) go to the higher likelihood
        best = max(range(n), key=lambda i: (round(float(score[i]), 9), loglik[i]))
        self.candidates_ = [{"kind": kind, "loglik": float(loglik[i]), "score": float(score[i]), "kept": i == best}
                            for i, (kind, _) in enumerate(fits)]
        return fits[best][1]


def make_gmm(backend: str, n_components: int, sweeps: int = 100, n_init: int = 1, init: str = "random",
             warm_start: bool = False, random_state=None, reg_covar: float = 1e-6, chains: int = 1,
             select: str = "likelihood", keep_previous: bool = False):
    """The GMM named by ``backend``: ``"collapsed"`` (:class:`CollapsedGibbsGMM`, Serket's sampler), ``"gibbs"``
    (:class:`GibbsGMM`, blocked) or ``"em"`` (:class:`EMGMM`). ``n_init``, ``reg_covar``, ``select`` and
    ``keep_previous`` are EM's restarts, covariance floor and restart choice; ``chains`` is the blocked sampler's
    number of chains (its ``n_init``; the collapsed sampler runs one chain, as Serket does)."""
    if backend == "collapsed":
        if chains != 1:
            raise ValueError(f"chains must be 1 for the collapsed sampler (one chain, as Serket), got {chains!r}")
        return CollapsedGibbsGMM(n_components, n_sweeps=sweeps, init=init, warm_start=warm_start,
                                 random_state=random_state)
    if backend == "gibbs":
        return GibbsGMM(n_components, n_sweeps=sweeps, init=init, warm_start=warm_start, random_state=random_state,
                        n_init=chains)
    if backend == "em":
        return EMGMM(n_components, n_init=n_init, warm_start=warm_start, random_state=random_state,
                     reg_covar=reg_covar, select=select, keep_previous=keep_previous)
    raise ValueError(f"gmm backend must be one of {GMM_BACKENDS}, got {backend!r}")
