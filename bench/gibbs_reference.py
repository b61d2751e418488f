"""The straightforward reference for ``bench/speed.py``: a per-point collapsed Gibbs sampler of the same Bayesian
GMM as :class:`vaegmm.gmm.GibbsGMM` (Normal-inverse-Wishart prior m0 = data mean, S0 = 0.1 I, nu0 = D + 2, r0 = 1;
symmetric Dirichlet(1) weights), written the way Serket's own ``gmm`` samples: one point at a time, take it out of
its class, score every class by the Student-t posterior predictive of that class's other points (times the
collapsed weight N_k + 1), draw the class, put the point back.

A timing reference only (one sweep takes about a second on 3000 x 18); it is not used by the package.
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


def collapsed_gibbs(z: np.ndarray, k: int, sweeps: int, rng: np.random.Generator, labels=None,
                    s0: float = 0.1, r0: float = 1.0, nu0=None, dirichlet: float = 1.0,
                    points: int | None = None) -> np.ndarray:
    """``sweeps`` sweeps of per-point collapsed Gibbs sampling on ``z (N, D)``; returns the labels ``(N,)``.
    ``points`` limits each sweep to the first that many points (for a quick smoke run)."""
    z = np.asarray(z, dtype=np.float64)
    n, d = z.shape
    nu0 = float(d + 2 if nu0 is None else nu0)
    m0 = z.mean(axis=0)
    s0m = np.eye(d) * s0
    prior_outer = r0 * np.outer(m0, m0)
    labels = rng.integers(0, k, size=n) if labels is None else np.array(labels)
    counts = np.zeros(k)
    sums = np.zeros((k, d))
    outer = np.zeros((k, d, d))
    for i in range(n):
        c = labels[i]
        counts[c] += 1
        sums[c] += z[i]
        outer[c] += np.outer(z[i], z[i])
    logp = np.empty(k)
    for _ in range(sweeps):
        for i in range(n if points is None else min(points, n)):
            x = z[i]
            c = labels[i]
            counts[c] -= 1
            sums[c] -= x
            outer[c] -= np.outer(x, x)
            for j in range(k):
                r_n = r0 + counts[j]
                nu_n = nu0 + counts[j]
                m_n = (r0 * m0 + sums[j]) / r_n
                s_n = s0m + outer[j] + prior_outer - r_n * np.outer(m_n, m_n)
                df = nu_n - d + 1
                logp[j] = math.log(counts[j] + dirichlet) + student_t_logpdf(x, m_n, s_n * (r_n + 1) / (r_n * df), df)
            p = np.exp(logp - logp.max())
            c = int(rng.choice(k, p=p / p.sum()))
            labels[i] = c
            counts[c] += 1
            sums[c] += x
            outer[c] += np.outer(x, x)
    return labels
