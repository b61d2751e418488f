"""A plain, slow re-implementation of Serket's collapsed Gibbs GMM (naka-lab/Serket ``gmm/gmm.py``), written from
the equations, to check :class:`vaegmm.model.gmm.CollapsedGibbsGMM` against (``tests/test_gmm.py``) and to time what a
straightforward per-point sampler costs (``bench/speed.py``). Not used by the package.

Model: Gauss-Wishart prior per class (m0 = data mean, S0 = s0 I, nu0 = D + 2, r0 = 1); means and precisions
integrated out. One sweep: for each point in order, take it out of its class, weight every class k by
``N_k * t(x | class k's other points)`` (Student-t posterior predictive; weight N_k as Serket, so an empty class
gets 0), draw the class by inverse CDF (the first class whose cumulative weight reaches ``u * total``), put the
point back. Random draws as the fast sampler: ``rng.integers(0, K, N)`` for the start, then ``rng.random(N)``
per sweep.

The read-out (:func:`serket_readout`) uses Serket's other form of the same predictive: the log marginal
likelihood of the class's points with the point minus without it, with determinants taken directly.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln


def student_t_logpdf(x: np.ndarray, loc: np.ndarray, scale: np.ndarray, df: float) -> float:
    """log of the multivariate Student-t density with ``df`` degrees of freedom at ``x (D,)``."""
    d = x.shape[0]
    sign, logdet = np.linalg.slogdet(scale)
    diff = x - loc
    maha = diff @ np.linalg.solve(scale, diff)
    return float(gammaln((df + d) / 2) - gammaln(df / 2) - 0.5 * d * math.log(df * math.pi) - 0.5 * logdet
                 - 0.5 * (df + d) * math.log1p(maha / df))


def posterior(count: float, total: np.ndarray, outer: np.ndarray, m0: np.ndarray, s0m: np.ndarray, r0: float,
              nu0: float):
    """Gauss-Wishart posterior ``(r_n, nu_n, m_n (D,), S_n (D, D))`` of a class with ``count`` points whose sum is
    ``total (D,)`` and sum of outer products ``outer (D, D)`` (Serket's ``GaussWishart.__update_param``)."""
    r_n = r0 + count
    nu_n = nu0 + count
    m_n = (r0 * m0 + total) / r_n
    s_n = s0m + outer + r0 * np.outer(m0, m0) - r_n * np.outer(m_n, m_n)
    return r_n, nu_n, m_n, s_n


def collapsed_gibbs(z: np.ndarray, k: int, sweeps: int, rng: np.random.Generator, labels=None,
                    s0: float = 0.1, r0: float = 1.0, nu0=None, points: int | None = None,
                    trace: list | None = None) -> np.ndarray:
    """``sweeps`` sweeps of per-point collapsed Gibbs sampling on ``z (N, D)``; returns the labels ``(N,)``.
    ``points`` limits each sweep to the first that many points (for a quick timing); ``trace`` gets a copy of the
    labels after each sweep."""
    z = np.asarray(z, dtype=np.float64)
    n, d = z.shape
    nu0 = float(d + 2 if nu0 is None else nu0)
    m0 = z.mean(axis=0)
    s0m = np.eye(d) * s0
    labels = rng.integers(0, k, size=n) if labels is None else np.array(labels, dtype=np.int64)
    counts = np.zeros(k)
    sums = np.zeros((k, d))
    outer = np.zeros((k, d, d))
    for i in range(n):
        c = labels[i]
        counts[c] += 1
        sums[c] += z[i]
        outer[c] += np.outer(z[i], z[i])
    weight = np.empty(k)
    for _ in range(sweeps):
        u = rng.random(n)
        for i in range(n if points is None else min(points, n)):
            x = z[i]
            c = labels[i]
            counts[c] -= 1
            sums[c] -= x
            outer[c] -= np.outer(x, x)
            logp = np.full(k, -np.inf)
            for j in range(k):
                if counts[j] == 0:
                    continue  # weight N_k = 0
                r_n, nu_n, m_n, s_n = posterior(counts[j], sums[j], outer[j], m0, s0m, r0, nu0)
                df = nu_n - d + 1
                logp[j] = math.log(counts[j]) + student_t_logpdf(x, m_n, s_n * (r_n + 1) / (r_n * df), df)
            weight[:] = np.exp(logp - logp.max())
            cum = np.cumsum(weight)
            c = int(np.flatnonzero((cum >= u[i] * cum[-1]) & (weight > 0))[0])
            labels[i] = c
            counts[c] += 1
            sums[c] += x
            outer[c] += np.outer(x, x)
        if trace is not None:
            trace.append(labels.copy())
    return labels


def serket_readout(z: np.ndarray, labels: np.ndarray, k: int, s0: float = 0.1, r0: float = 1.0, nu0=None):
    """Serket's read-out after the last sweep: ``Pdz (N, K)`` normalised, ``Pdz[n, k] ∝ N_k p(z_n | X_k)`` with
    ``X_k`` the class's points including ``z_n`` when it is one of them, and ``mu (N, D)``, the posterior mean of
    each point's class. ``log p(z_n | X_k) = log p(X_k + z_n) - log p(X_k)`` from Serket's ``_calc_loglik``."""
    z = np.asarray(z, dtype=np.float64)
    n, d = z.shape
    nu0 = float(d + 2 if nu0 is None else nu0)
    m0 = z.mean(axis=0)
    s0m = np.eye(d) * s0

    def log_ml(count, total, outer):  # Serket's _calc_loglik (the prior's constants cancel in the ratio)
        r_n, nu_n, _, s_n = posterior(count, total, outer, m0, s0m, r0, nu0)
        return (-count * d * 0.5 * math.log(math.pi) - d * 0.5 * math.log(r_n)
                - nu_n * 0.5 * np.linalg.slogdet(s_n)[1] + sum(math.lgamma(0.5 * (nu_n + 1 - j)) for j in range(1, d + 1)))

    log_pdz = np.full((n, k), -np.inf)
    mu = np.zeros((n, d))
    for j in range(k):
        members = z[labels == j]
        count = len(members)
        if count == 0:
            continue
        total, outer = members.sum(axis=0), members.T @ members
        base = log_ml(count, total, outer)
        for i in range(n):
            log_pdz[i, j] = math.log(count) + log_ml(count + 1, total + z[i], outer + np.outer(z[i], z[i])) - base
        mu[labels == j] = posterior(count, total, outer, m0, s0m, r0, nu0)[2]
    pdz = np.exp(log_pdz - log_pdz.max(axis=1, keepdims=True))
    return pdz / pdz.sum(axis=1, keepdims=True), mu


def collapsed_gibbs_numpy(z: np.ndarray, k: int, sweeps: int, rng: np.random.Generator, labels=None,
                          s0: float = 0.1, r0: float = 1.0, nu0=None, points: int | None = None) -> np.ndarray:
    """The same sampler with numpy vectorised over the K classes of each point (per-class precision matrices
    kept up to date by Sherman-Morrison, log-determinants by the determinant lemma): the fastest plain-numpy form
    we found, timed by ``bench/speed.py`` to show why the package compiles the loop instead. Same random draws and
    labels as :func:`collapsed_gibbs`."""
    z = np.asarray(z, dtype=np.float64)
    n, d = z.shape
    nu0 = float(d + 2 if nu0 is None else nu0)
    m0 = z.mean(axis=0)
    labels = rng.integers(0, k, size=n) if labels is None else np.array(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=k).astype(float)
    sums = np.zeros((k, d))
    np.add.at(sums, labels, z)
    prec = np.empty((k, d, d))
    logdet = np.empty(k)
    for j in range(k):  # S_j = S0 + scatter + r0 N/(r0 + N) (xbar - m0)(xbar - m0)^T
        members = z[labels == j]
        s = s0 * np.eye(d)
        if len(members):
            dm = members.mean(axis=0) - m0
            s += (members - members.mean(axis=0)).T @ (members - members.mean(axis=0))
            s += r0 * len(members) / (r0 + len(members)) * np.outer(dm, dm)
        prec[j] = np.linalg.inv(s)
        logdet[j] = np.linalg.slogdet(s)[1]
    half_log_pi = 0.5 * d * math.log(math.pi)

    def rank_one(j, v, sign):  # S_j += sign v v^T: inverse by Sherman-Morrison, log|S_j| by the determinant lemma
        pv = prec[j] @ v
        denom = 1.0 + sign * (v @ pv)
        prec[j] -= sign * np.outer(pv, pv) / denom
        logdet[j] += math.log(denom)

    for _ in range(sweeps):
        u = rng.random(n)
        for i in range(n if points is None else min(points, n)):
            x = z[i]
            c = labels[i]
            r = r0 + counts[c]
            means = (sums + r0 * m0) / (r0 + counts)[:, None]
            rank_one(c, math.sqrt(r / (r - 1.0)) * (x - means[c]), -1.0)  # take the point out of its class
            counts[c] -= 1
            sums[c] -= x
            means[c] = (sums[c] + r0 * m0) / (r0 + counts[c])
            rn, nun = r0 + counts, nu0 + counts
            diff = x - means
            q = np.einsum("kd,kde,ke->k", diff, prec, diff)
            with np.errstate(divide="ignore"):
                logp = (np.log(counts) - half_log_pi + 0.5 * d * np.log(rn / (rn + 1)) - 0.5 * logdet
                        - 0.5 * (nun + 1) * np.log1p(rn / (rn + 1) * q) + gammaln(0.5 * (nun + 1))
                        - gammaln(0.5 * (nun + 1 - d)))
            weight = np.exp(logp - logp.max())
            cum = np.cumsum(weight)
            c = int(np.flatnonzero((cum >= u[i] * cum[-1]) & (weight > 0))[0])
            r = r0 + counts[c]
            rank_one(c, math.sqrt(r / (r + 1.0)) * (x - means[c]), 1.0)  # and into its new class
            labels[i] = c
            counts[c] += 1
            sums[c] += x
    return labels
