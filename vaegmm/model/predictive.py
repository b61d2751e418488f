"""A fitted GMM's class probabilities for new codes, from a small dict of arrays (Serket's recognition mode).

Each GMM keeps its fitted state as ``posterior_``, a plain dict of numpy arrays that a saved run stores in its
iteration file and loads back, so a saved run classifies new codes exactly as the live one did:

* ``family == "gaussian"`` (EM): ``weights (K,)``, ``means (K, D)``, ``precisions_cholesky (K, D, D)``
  (scikit-learn's: precision = U U^T, U upper triangular). ``p(k | z) ∝ w_k N(z | mu_k, Sigma_k)``, scikit-learn's
  ``GaussianMixture.predict_proba``.
* ``family == "student_t"`` (both Gibbs samplers): each class's Gauss-Wishart posterior given the last sample,
  ``means (K, D)`` (m_k), ``scale_cholesky (K, D, D)`` (lower Cholesky factor of the posterior scale S_k, Serket's
  ``GaussWishart.__S``), ``r (K,)`` = r0 + N_k, ``nu (K,)`` = nu0 + N_k, and ``log_weights (K,)``. A new code's
  class probability is ``p(k | z) ∝ w_k St(z | m_k, S_k (r_k + 1) / (r_k (nu_k - D + 1)), nu_k - D + 1)``, the
  class's posterior predictive (a multivariate Student-t) times its weight: Serket's ``calc_probability``
  (``N_k * exp(calc_loglik(z))``) in recognition mode, where the weight is ``N_k``, so a class that died
  (N_k = 0) gets probability 0. The blocked sampler's weights are its Dirichlet posterior mean,
  ``(N_k + a) / (N + K a)``.

Nothing here learns: the dict is only read.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular
from scipy.special import gammaln

GAUSSIAN, STUDENT_T = "gaussian", "student_t"


def gaussian_posterior(weights, means, precisions_cholesky) -> dict:
    """The ``posterior_`` dict of a full-covariance Gaussian mixture (scikit-learn's fitted attributes)."""
    return {"family": np.array(GAUSSIAN), "weights": np.asarray(weights, dtype=np.float64),
            "means": np.asarray(means, dtype=np.float64),
            "precisions_cholesky": np.asarray(precisions_cholesky, dtype=np.float64)}


def gauss_wishart_posterior(z: np.ndarray, labels: np.ndarray, k: int, m0: np.ndarray, s0: float, r0: float,
                            nu0: float, log_weights: np.ndarray) -> dict:
    """The ``posterior_`` dict of a Bayesian GMM: each class's Gauss-Wishart posterior given ``labels (N,)`` of
    ``z (N, D)`` (prior m0 ``(D,)``, S0 = ``s0`` I, r0, nu0), with ``log_weights (K,)`` (``-inf`` for a class
    that may never be chosen). An empty class keeps the prior (m0, S0, r0, nu0)."""
    z = np.asarray(z, dtype=np.float64)
    n, d = z.shape
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    sums = np.zeros((k, d))
    np.add.at(sums, labels, z)
    r, nu = r0 + counts, nu0 + counts
    means = (sums + r0 * m0[None]) / r[:, None]
    chol = np.empty((k, d, d))
    for c in range(k):
        members = z[labels == c]
        # S_k = S0 + sum (z - zbar)(z - zbar)^T + r0 N / (r0 + N) (zbar - m0)(zbar - m0)^T  (= Serket's __S)
        scale = s0 * np.eye(d)
        if len(members):
            centred = members - members.mean(axis=0)
            dm = members.mean(axis=0) - m0
            scale = scale + centred.T @ centred + (r0 * len(members) / r[c]) * np.outer(dm, dm)
        chol[c] = np.linalg.cholesky(0.5 * (scale + scale.T))
    return {"family": np.array(STUDENT_T), "log_weights": np.asarray(log_weights, dtype=np.float64),
            "means": means, "scale_cholesky": chol, "r": r, "nu": nu}


def family(posterior: dict) -> str:
    """``"gaussian"`` or ``"student_t"``; ``ValueError`` for anything else."""
    kind = str(np.asarray(posterior.get("family", "")))
    if kind not in (GAUSSIAN, STUDENT_T):
        raise ValueError(f"not a GMM posterior (family {kind!r})")
    return kind


def log_weighted_density(posterior: dict, z) -> np.ndarray:
    """``log w_k + log p(z_m | class k)`` for every code and class: ``(M, K) float64`` (``-inf`` for a class of
    weight 0). ``z (M, D)``."""
    z = np.atleast_2d(np.asarray(z, dtype=np.float64))
    means = np.asarray(posterior["means"])
    if z.shape[1] != means.shape[1]:
        raise ValueError(f"codes have {z.shape[1]} dimensions, the GMM was fitted on {means.shape[1]}")
    d = z.shape[1]
    if family(posterior) == GAUSSIAN:
        prec = np.asarray(posterior["precisions_cholesky"])
        y = np.einsum("md,kde->kme", z, prec) - np.einsum("kd,kde->ke", means, prec)[:, None, :]
        log_det = np.log(np.diagonal(prec, axis1=1, axis2=2)).sum(axis=1)
        with np.errstate(divide="ignore"):
            log_w = np.log(np.asarray(posterior["weights"]))
        return (-0.5 * (d * np.log(2 * np.pi) + (y ** 2).sum(axis=2)) + (log_det + log_w)[:, None]).T
    chol, r, nu = (np.asarray(posterior[key]) for key in ("scale_cholesky", "r", "nu"))
    out = np.empty((len(z), len(means)))
    for c in range(len(means)):
        q = (solve_triangular(chol[c], (z - means[c]).T, lower=True) ** 2).sum(axis=0)  # (z-m)^T S^-1 (z-m)
        # Serket's calc_loglik in closed form (the Student-t density with the scale folded in)
        out[:, c] = (-0.5 * d * np.log(np.pi) + 0.5 * d * np.log(r[c] / (r[c] + 1))
                     - np.log(np.diag(chol[c])).sum() - 0.5 * (nu[c] + 1) * np.log1p(r[c] / (r[c] + 1) * q)
                     + gammaln(0.5 * (nu[c] + 1)) - gammaln(0.5 * (nu[c] + 1 - d)))
    return out + np.asarray(posterior["log_weights"])[None, :]


def predict_proba(posterior: dict, z) -> np.ndarray:
    """Class probabilities of new codes ``z (M, D)`` under a fitted GMM's ``posterior_``: ``(M, K)``, rows sum
    to 1."""
    logp = log_weighted_density(posterior, z)
    logp = logp - logp.max(axis=1, keepdims=True)
    p = np.exp(logp)
    return p / p.sum(axis=1, keepdims=True)


def predict(posterior: dict, z) -> np.ndarray:
    """The most probable class of each new code ``(M,) int64``."""
    return log_weighted_density(posterior, z).argmax(axis=1).astype(np.int64)


def student_t_parameters(posterior: dict, k: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Class ``k``'s posterior predictive as ``(loc (D,), shape (D, D), df)``, in scipy.stats.multivariate_t's
    terms (the tests' oracle)."""
    chol, r, nu = posterior["scale_cholesky"][k], float(posterior["r"][k]), float(posterior["nu"][k])
    d = chol.shape[0]
    df = nu - d + 1
    return np.asarray(posterior["means"][k]), chol @ chol.T * (r + 1) / (r * df), df
