"""The compiled inner loop of :class:`vaegmm.model.gmm.CollapsedGibbsGMM` (numba; imported on the first fit only, so
``import vaegmm`` and the EM backend never pay numba's start-up).

One sweep visits the points in order. Point ``x`` leaves its class ``c``; every class ``k`` is scored by
``N_k * p(x | X_k)``, where ``X_k`` are the class's other points and ``p(x | X_k)`` the Normal-Wishart posterior
predictive (a Student-t); the class is drawn by inverse CDF with the sweep's uniform for that point; ``x`` joins it.

Per class the loop keeps the lower Cholesky factor ``L_k`` of the posterior scale matrix
``S_k = S0 + C_k + r0 m0 m0^T - r_k m_k m_k^T`` (Serket's ``GaussWishart.__S``), ``log |S_k| / 2`` and the part of
the score that depends only on the class's count, so scoring a class costs one triangular solve (``D^2 / 2``
multiply-adds). With ``r = r0 + N_k``, ``nu = nu0 + N_k``, ``q = (x - m_k)^T S_k^-1 (x - m_k)``::

    log p(x | X_k) = -D/2 log(pi) + D/2 log(r / (r + 1)) - log|S_k| / 2 - (nu + 1)/2 log(1 + r/(r + 1) q)
                     + lgamma((nu + 1)/2) - lgamma((nu + 1 - D)/2)

which is Serket's ``calc_loglik`` (the log marginal likelihood of ``X_k`` with ``x`` minus that without it), using
``S_k' = S_k + r/(r + 1) (x - m_k)(x - m_k)^T`` and the matrix determinant lemma.

The point's own class is scored without removing the point first: from the factor that still holds it (count
``N``, ``r``, ``nu``, mean ``m``, ``q = (x - m)^T S^-1 (x - m)``), the determinant lemma for the downdate
``S_- = S - r/(r - 1) (x - m)(x - m)^T`` gives ``log|S_-| = log|S| + log(1 - r/(r - 1) q)``, so only a point that
changes class pays for the two rank-one Cholesky updates (``O(D^2)`` each). Each sweep starts from sufficient
statistics recomputed from the labels and freshly factored, so rounding cannot pile up over sweeps.
"""
from __future__ import annotations

import math

import numba
import numpy as np


def _jit(fn):
    """``numba.njit`` with an on-disk cache (compiled once per install, then loaded in about 0.1 s); where numba
    finds no writable cache folder (neither ``__pycache__`` beside this file nor the user-wide cache), it refuses
    ``cache=True`` with ``RuntimeError`` and we compile in memory instead (a few seconds, once per process).
    ``nogil``: the dashboard's server thread keeps running while a fit samples."""
    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError:
        return numba.njit(cache=False, nogil=True)(fn)


@_jit
def _class_stats(z, labels, k, counts, sums, outer):
    """Counts ``(K,)``, sums ``(K, D)`` and lower triangles of ``sum x x^T`` ``(K, D, D)`` of the labelled points."""
    n, d = z.shape
    counts[:] = 0.0
    sums[:] = 0.0
    outer[:] = 0.0
    for i in range(n):
        c = labels[i]
        counts[c] += 1.0
        for a in range(d):
            xa = z[i, a]
            sums[c, a] += xa
            for b in range(a + 1):
                outer[c, a, b] += xa * z[i, b]


@_jit
def _score_const(count, r0, nu0, d, half_logdet):
    """The part of ``log N_k + log p(x | X_k)`` that does not depend on ``x`` (``-inf`` for an empty class)."""
    if count <= 0.0:
        return -np.inf
    r = r0 + count
    nu = nu0 + count
    return (math.log(count) - 0.5 * d * math.log(math.pi) + 0.5 * d * math.log(r / (r + 1.0)) - half_logdet
            + math.lgamma(0.5 * (nu + 1.0)) - math.lgamma(0.5 * (nu + 1.0 - d)))


@_jit
def _factor(counts, sums, outer, m0, s0, r0, nu0, means, chol, half_logdet, const):
    """Posterior means ``(K, D)``, Cholesky factors of ``S_k`` ``(K, D, D)``, ``log|S_k| / 2`` and score constants
    ``(K,)`` from the sufficient statistics."""
    k, d = sums.shape
    for c in range(k):
        r = r0 + counts[c]
        for a in range(d):
            means[c, a] = (sums[c, a] + r0 * m0[a]) / r
        lc = chol[c]
        lc[:, :] = 0.0
        for a in range(d):
            for b in range(a + 1):
                s = outer[c, a, b] + r0 * m0[a] * m0[b] - r * means[c, a] * means[c, b]
                if a == b:
                    s += s0
                for j in range(b):
                    s -= lc[a, j] * lc[b, j]
                if a == b:
                    if s <= 0.0:
                        raise ValueError("posterior scale matrix is not positive definite")
                    lc[a, a] = math.sqrt(s)
                else:
                    lc[a, b] = s / lc[b, b]
        h = 0.0
        for a in range(d):
            h += math.log(lc[a, a])
        half_logdet[c] = h
        const[c] = _score_const(counts[c], r0, nu0, d, h)


@_jit
def _rank_one(lc, v, sign):
    """In place: ``L L^T + sign * v v^T`` re-factored (``sign`` = +1 update, -1 downdate); ``v`` is overwritten.
    Returns ``sum log diag`` of the new factor."""
    d = v.shape[0]
    h = 0.0
    for j in range(d):
        ljj = lc[j, j]
        r2 = ljj * ljj + sign * v[j] * v[j]
        if r2 <= 0.0:
            raise ValueError("rank-one downdate lost positive definiteness")
        rj = math.sqrt(r2)
        cj = rj / ljj
        sj = v[j] / ljj
        lc[j, j] = rj
        h += math.log(rj)
        for i in range(j + 1, d):
            lij = (lc[i, j] + sign * sj * v[i]) / cj
            lc[i, j] = lij
            v[i] = cj * v[i] - sj * lij
    return h


@_jit
def _maha(lc, x, m, y):
    """``(x - m)^T (L L^T)^-1 (x - m)`` by forward substitution (``y`` is scratch)."""
    d = x.shape[0]
    q = 0.0
    for a in range(d):
        s = x[a] - m[a]
        for b in range(a):
            s -= lc[a, b] * y[b]
        ya = s / lc[a, a]
        y[a] = ya
        q += ya * ya
    return q


@_jit
def sweep(z, labels, u, m0, s0, r0, nu0, counts, sums, outer, means, chol, half_logdet, const):
    """One sweep over ``z (N, D)`` in order, updating ``labels (N,) int64`` in place; ``u (N,)`` holds one uniform
    in [0, 1) per point. The other arrays are scratch of shapes ``(K,)``, ``(K, D)``, ``(K, D, D)``; on return they
    describe the final labels. Returns how many points changed class."""
    n, d = z.shape
    k = counts.shape[0]
    _class_stats(z, labels, k, counts, sums, outer)
    _factor(counts, sums, outer, m0, s0, r0, nu0, means, chol, half_logdet, const)
    logp = np.empty(k)
    y = np.empty(d)
    v = np.empty(d)
    moved = 0
    for i in range(n):
        x = z[i]
        c = labels[i]
        # every class but c: the point is not in it
        for j in range(k):
            if j == c or counts[j] <= 0.0:
                logp[j] = -np.inf
                continue
            rj = r0 + counts[j]
            q = _maha(chol[j], x, means[j], y)
            logp[j] = const[j] - 0.5 * (nu0 + counts[j] + 1.0) * math.log1p(rj / (rj + 1.0) * q)
        # class c still holds the point: leave-one-out score by the determinant lemma
        nc = counts[c]
        if nc > 1.0:
            r = r0 + nc
            nu = nu0 + nc
            q = _maha(chol[c], x, means[c], y)
            ratio = 1.0 - r / (r - 1.0) * q  # |S_-| / |S|
            logp[c] = (math.log(nc - 1.0) - 0.5 * d * math.log(math.pi) + 0.5 * d * math.log((r - 1.0) / r)
                       - half_logdet[c] + 0.5 * (nu - 1.0) * math.log(ratio)
                       + math.lgamma(0.5 * nu) - math.lgamma(0.5 * (nu - d)))
        else:
            logp[c] = -np.inf  # alone in its class: N_c = 0 once it leaves, so the class dies
        top = -np.inf
        for j in range(k):
            if logp[j] > top:
                top = logp[j]
        if top == -np.inf:
            continue  # no other point anywhere (N = 1): nothing to sample
        total = 0.0
        for j in range(k):
            logp[j] = math.exp(logp[j] - top)
            total += logp[j]
        # inverse CDF as Serket's sample_class: the first class whose cumulative weight reaches u * total
        t = u[i] * total
        new = -1
        cum = 0.0
        for j in range(k):
            cum += logp[j]
            if logp[j] > 0.0:
                new = j
                if cum >= t:
                    break
        if new == c:
            continue
        moved += 1
        # leave c: S_c -= r/(r - 1) (x - m_c)(x - m_c)^T with the statistics that still hold x
        r = r0 + nc
        f = math.sqrt(r / (r - 1.0))
        for a in range(d):
            v[a] = f * (x[a] - means[c, a])
        if nc > 1.0:
            half_logdet[c] = _rank_one(chol[c], v, -1.0)
        counts[c] = nc - 1.0
        for a in range(d):
            sums[c, a] -= x[a]
            means[c, a] = (sums[c, a] + r0 * m0[a]) / (r - 1.0)
        if nc <= 1.0:  # empty now: back to the prior, S = S0 (its score is -inf from here on)
            chol[c][:, :] = 0.0
            for a in range(d):
                chol[c, a, a] = math.sqrt(s0)
                means[c, a] = m0[a]
            half_logdet[c] = 0.5 * d * math.log(s0)
        const[c] = _score_const(counts[c], r0, nu0, d, half_logdet[c])
        # join new: S_new += r/(r + 1) (x - m_new)(x - m_new)^T with the statistics without x
        r = r0 + counts[new]
        f = math.sqrt(r / (r + 1.0))
        for a in range(d):
            v[a] = f * (x[a] - means[new, a])
        half_logdet[new] = _rank_one(chol[new], v, 1.0)
        counts[new] += 1.0
        for a in range(d):
            sums[new, a] += x[a]
            means[new, a] = (sums[new, a] + r0 * m0[a]) / (r + 1.0)
        const[new] = _score_const(counts[new], r0, nu0, d, half_logdet[new])
        labels[i] = new
    return moved
