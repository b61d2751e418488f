"""EM for full-covariance Gaussian mixtures, all restarts at once (issue 17).

scikit-learn's ``GaussianMixture(n_init=R)`` runs its R restarts one after another, each a Python loop of small
(N, D) x (D, D) products per class. Here the R restarts are one batched EM: per iteration two matrix multiplies
over all R * K classes together, on the packed second moments ``z_i z_j`` (i <= j) of the points:

    E-step   (z - mu)^T P (z - mu) = zz . vec(P) - 2 z . (P mu) + mu^T P mu     (P = Sigma^-1, all R K at once)
    M-step   Sigma_k = sum_n r_nk z_n z_n^T / N_k - mu_k mu_k^T + reg I          (one (R K, N) x (N, D(D+1)/2))

The maths is scikit-learn's, step for step: the same k-means starts (``KMeans(n_init=1)`` drawn from the same
``RandomState`` in the same order), the same M-step (``nk + 10 eps``, the covariance floor ``reg_covar``), the
same lower bound (mean log-likelihood per point at each E-step) and stopping rule (its change below ``tol``, or
``max_iter``), and the restart with the highest lower bound is kept. A restart that has converged stops
updating while the others go on, as it would have alone. Results equal ``GaussianMixture``'s to rounding
(checked in the tests).
"""
from __future__ import annotations

import numpy as np


class GaussianMixtureFit:
    """One fitted full-covariance Gaussian mixture with scikit-learn's read-out: ``weights_ (K,)``,
    ``means_ (K, D)``, ``covariances_ (K, D, D)``, ``precisions_cholesky_ (K, D, D)``, ``lower_bound_`` (mean
    log-likelihood per point at the last E-step), ``n_iter_``, ``converged_``."""

    def __init__(self, weights, means, covariances, precisions_cholesky, lower_bound, n_iter, converged):
        self.weights_ = weights
        self.means_ = means
        self.covariances_ = covariances
        self.precisions_cholesky_ = precisions_cholesky
        self.lower_bound_ = float(lower_bound)
        self.n_iter_ = int(n_iter)
        self.converged_ = bool(converged)

    def _weighted_log_prob(self, z: np.ndarray) -> np.ndarray:
        """``log pi_k + log N(z_n | mu_k, Sigma_k)``: (N, K)."""
        z = np.asarray(z, dtype=np.float64)
        d = z.shape[1]
        y = np.einsum("nd,kde->kne", z, self.precisions_cholesky_) \
            - np.einsum("kd,kde->ke", self.means_, self.precisions_cholesky_)[:, None, :]
        log_det = np.log(np.diagonal(self.precisions_cholesky_, axis1=1, axis2=2)).sum(axis=1)
        return (-0.5 * (d * np.log(2 * np.pi) + (y ** 2).sum(axis=2)) + (log_det + np.log(self.weights_))[:, None]).T

    def predict_proba(self, z) -> np.ndarray:
        """Responsibilities ``(N, K)``."""
        wlp = self._weighted_log_prob(z)
        wlp -= wlp.max(axis=1, keepdims=True)
        resp = np.exp(wlp)
        return resp / resp.sum(axis=1, keepdims=True)

    def predict(self, z) -> np.ndarray:
        """The most probable class of each point ``(N,)``."""
        return self._weighted_log_prob(z).argmax(axis=1)

    def score(self, z) -> float:
        """Mean log-likelihood per point."""
        wlp = self._weighted_log_prob(z)
        top = wlp.max(axis=1, keepdims=True)
        return float((top[:, 0] + np.log(np.exp(wlp - top).sum(axis=1))).mean())


def kmeans_starts(z: np.ndarray, k: int, random_states: list) -> np.ndarray:
    """scikit-learn's EM start, once per restart: the labels of ``KMeans(k, n_init=1, random_state=rs)`` for each
    ``rs`` of ``random_states`` in order (one shared ``RandomState`` repeated R times draws the R starts that
    ``GaussianMixture(n_init=R)`` draws): ``(R, N) int``."""
    from sklearn.cluster import KMeans

    return np.stack([KMeans(n_clusters=k, n_init=1, random_state=rs).fit(z).labels_ for rs in random_states])


def _packed_outer(x: np.ndarray, iu: tuple) -> np.ndarray:
    """``x_i x_j`` for ``i <= j`` (the upper triangle ``iu``) of every row: (N, D(D+1)/2)."""
    return x[:, iu[0]] * x[:, iu[1]]


def _unpack(packed: np.ndarray, d: int, iu: tuple) -> np.ndarray:
    """Symmetric matrices (..., D, D) from their packed upper triangles (..., D(D+1)/2)."""
    out = np.empty(packed.shape[:-1] + (d, d))
    out[..., iu[0], iu[1]] = packed
    out[..., iu[1], iu[0]] = packed
    return out


def _m_step(zc, zz, resp, reg_covar, iu):
    """scikit-learn's M-step for every (restart, class) at once. ``resp (N, A, K)`` -> weights (A, K),
    means (A, K, D), covariances (A, K, D, D), precision Choleskys (A, K, D, D), their log-determinants (A, K)."""
    n, a, k = resp.shape
    d = zc.shape[1]
    nk = resp.sum(axis=0) + 10 * np.finfo(resp.dtype).eps  # (A, K)
    rt = resp.reshape(n, a * k).T  # (A K, N), a transposed view: BLAS reads it as it is
    means = (rt @ zc).reshape(a, k, d) / nk[..., None]
    second = _unpack((rt @ zz).reshape(a, k, -1), d, iu) / nk[..., None, None]
    cov = second - means[..., :, None] * means[..., None, :]
    cov[..., np.arange(d), np.arange(d)] += reg_covar
    try:
        cov_chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise ValueError("Fitting the mixture model failed because some components have ill-defined empirical "
                         "covariance (for instance caused by singleton or collapsed samples). Try to decrease the "
                         "number of components, or increase reg_covar.") from None
    prec_chol = np.swapaxes(np.linalg.inv(cov_chol), -1, -2)  # upper triangular, P = U U^T
    log_det = np.log(np.diagonal(prec_chol, axis1=-2, axis2=-1)).sum(axis=-1)
    return nk / nk.sum(axis=1, keepdims=True), means, cov, prec_chol, log_det


def _e_step(zc, zz, weights, means, prec_chol, log_det, iu):
    """Log-likelihood per point ``(N, A)`` and responsibilities ``(N, A, K)`` of every restart at once, by the
    packed quadratic form (module docstring)."""
    a, k, d = means.shape
    prec = prec_chol @ np.swapaxes(prec_chol, -1, -2)  # (A, K, D, D)
    off = np.where(iu[0] == iu[1], 1.0, 2.0)  # z_i z_j and z_j z_i share one packed column
    p_packed = prec[..., iu[0], iu[1]] * off  # (A, K, T)
    p_mu = np.einsum("akde,ake->akd", prec, means)  # (A, K, D)
    wlp = zz @ p_packed.reshape(a * k, -1).T  # (N, A K): z^T P z
    wlp -= 2.0 * (zc @ p_mu.reshape(a * k, d).T)
    wlp += (np.einsum("akd,akd->ak", means, p_mu) + d * np.log(2 * np.pi)).reshape(1, a * k)
    wlp *= -0.5
    wlp += (log_det + np.log(weights)).reshape(1, a * k)
    wlp = wlp.reshape(-1, a, k)  # log pi_k N(z_n | mu_k, Sigma_k), (N, A, K)
    top = wlp.max(axis=2, keepdims=True)
    resp = np.exp(wlp - top)
    total = resp.sum(axis=2, keepdims=True)
    resp /= total
    return top[..., 0] + np.log(total[..., 0]), resp


def em_restarts(z: np.ndarray, starts: np.ndarray, k: int, reg_covar: float = 1e-6, max_iter: int = 100,
                tol: float = 1e-3, checkpoint=None) -> list[GaussianMixtureFit]:
    """Full-covariance EM from every start at once: ``z (N, D)``, ``starts (R, N)`` initial labels in ``0..k-1``.
    Returns the R fits in order (each as scikit-learn's ``GaussianMixture`` would have fitted it from that start).
    ``checkpoint()`` is called before every iteration (it may block to pause or raise to stop)."""
    z = np.asarray(z, dtype=np.float64)
    n, d = z.shape
    r = len(starts)
    center = z.mean(axis=0)  # the algebra of the packed form loses less to rounding on centred data
    zc = z - center
    iu = np.triu_indices(d)
    zz = _packed_outer(zc, iu)
    resp = np.zeros((n, r, k))
    resp[np.arange(n)[:, None], np.arange(r)[None, :], np.asarray(starts).T] = 1.0
    state = list(_m_step(zc, zz, resp, reg_covar, iu))  # weights, means, cov, prec_chol, log_det: (R, ...)
    lower = np.full(r, -np.inf)
    n_iter = np.zeros(r, dtype=int)
    converged = np.zeros(r, dtype=bool)
    for it in range(1, max_iter + 1):
        active = np.flatnonzero(~converged)
        if len(active) == 0:
            break
        if checkpoint is not None:
            checkpoint()
        weights, means, _cov, prec_chol, log_det = (s[active] for s in state)
        log_norm, resp = _e_step(zc, zz, weights, means, prec_chol, log_det, iu)
        for s, v in zip(state, _m_step(zc, zz, resp, reg_covar, iu)):
            s[active] = v
        bound = log_norm.mean(axis=0)
        converged[active] = np.abs(bound - lower[active]) < tol
        lower[active] = bound
        n_iter[active] = it
    weights, means, cov, prec_chol, _ = state
    return [GaussianMixtureFit(weights[i], means[i] + center, cov[i], prec_chol[i], lower[i], n_iter[i],
                               converged[i]) for i in range(r)]


def best_restart(fits: list[GaussianMixtureFit]) -> GaussianMixtureFit:
    """The fit with the highest lower bound, the first of equals (scikit-learn's choice among its restarts)."""
    best = fits[0]
    for fit in fits[1:]:
        if fit.lower_bound_ > best.lower_bound_:
            best = fit
    return best
