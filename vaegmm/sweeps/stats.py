"""Statistics over seeds, for a student to read: mean, std, a t-based 95 % confidence interval, and paired
comparisons of two settings run on the same seeds (scipy's paired t-test and Wilcoxon signed-rank test).

Why paired: the seed picks the image subset and the initial weights, and two settings on the same seed share
them, so the per-seed *differences* vary much less than the accuracies themselves (BENCHMARKS.md: runs of one
config differ by about 0.03, the effects we look for are about as large).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as _st

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Summary:
    """``n`` values: mean, std (ddof=1), standard error and the t-based CI of the mean (NaN where n < 2)."""

    n: int
    mean: float
    std: float
    sem: float
    ci_low: float
    ci_high: float

    def text(self, digits: int = 3) -> str:
        """``0.800 ± 0.013`` (mean ± std), or the single value."""
        if self.n == 0:
            return "–"
        if self.n == 1:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"

    def ci_text(self, digits: int = 3) -> str:
        if self.n < 2:
            return "–"
        return f"[{self.ci_low:.{digits}f}, {self.ci_high:.{digits}f}]"


def _t_interval(mean: float, sem: float, n: int, confidence: float) -> tuple[float, float]:
    if n < 2 or not math.isfinite(sem):
        return float("nan"), float("nan")
    if sem == 0.0:
        return mean, mean
    return tuple(float(x) for x in _st.t.interval(confidence, n - 1, loc=mean, scale=sem))


def summarize(values: Sequence[float], confidence: float = CONFIDENCE) -> Summary:
    """Mean, std (ddof=1) and the Student-t confidence interval of the mean of ``values (n,)``; NaNs dropped."""
    v = np.asarray(list(values), dtype=float)
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        nan = float("nan")
        return Summary(0, nan, nan, nan, nan, nan)
    mean = float(v.mean())
    if n == 1:
        nan = float("nan")
        return Summary(1, mean, nan, nan, nan, nan)
    std = float(v.std(ddof=1))
    sem = std / math.sqrt(n)
    lo, hi = _t_interval(mean, sem, n, confidence)
    return Summary(n, mean, std, sem, lo, hi)


@dataclass(frozen=True)
class Paired:
    """A paired comparison of A and B over the same ``n`` seeds: differences d = A - B."""

    name_a: str
    name_b: str
    n: int
    mean_a: float
    mean_b: float
    mean_diff: float
    ci_low: float
    ci_high: float
    t_p: float  # paired t-test (scipy.stats.ttest_rel), two-sided
    wilcoxon_p: float  # Wilcoxon signed-rank test (scipy.stats.wilcoxon), two-sided; exact for small n
    wins: int  # seeds where A > B
    losses: int  # seeds where A < B
    seeds: tuple = ()
    metric: str = "accuracy"

    @property
    def significant(self) -> bool:
        """The 95 % CI of the mean difference excludes 0 (equivalently, the paired t-test's p < 0.05)."""
        return self.n >= 2 and math.isfinite(self.ci_low) and (self.ci_low > 0 or self.ci_high < 0)

    def sentence(self, scale: float = 100.0, unit: str = "points") -> str:
        """One sentence a student can read, e.g. "feedback=on beats feedback=off by 2.1 points of accuracy
        (95 % CI 0.4 to 3.8, paired t-test p = 0.03, 5 seeds)." ``scale``: 100 turns fractions into points."""
        a, b, n, metric = self.name_a, self.name_b, self.n, self.metric
        if n == 0:
            return f"{a} and {b} have no finished run on a common seed yet."
        if n == 1:
            d = self.mean_diff * scale
            return (f"{a} {'beats' if d > 0 else 'trails' if d < 0 else 'ties'} {b} by {abs(d):.1f} {unit} of "
                    f"{metric} on 1 seed: one seed cannot tell a real difference from noise.")
        d, lo, hi = self.mean_diff * scale, self.ci_low * scale, self.ci_high * scale
        if round(d, 1) == 0:
            head = f"{a} and {b} tie on {metric} (difference {d:+.1f} {unit}"
        else:
            head = f"{a} {'beats' if d > 0 else 'trails'} {b} by {abs(d):.1f} {unit} of {metric} ("
        core = (f"{head}{', ' if head.endswith(unit) else ''}95 % CI {lo:.1f} to {hi:.1f}, "
                f"paired t-test p {_p(self.t_p)}, Wilcoxon p {_p(self.wilcoxon_p)}, {n} seed{'s' if n != 1 else ''}; "
                f"better on {self.wins} of {n})")
        if self.significant:
            return core + "."
        return core + ": the interval includes 0, so these seeds cannot tell the two apart."


def _p(p: float) -> str:
    """A p-value as the sentence writes it: "< 0.001", "= 0.0042", "= 0.03"."""
    if not math.isfinite(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"= {p:.2g}" if p < 0.01 else f"= {p:.2f}"


def paired(a: Sequence[float], b: Sequence[float], name_a: str = "A", name_b: str = "B",
           seeds: Sequence = (), metric: str = "accuracy", confidence: float = CONFIDENCE) -> Paired:
    """Compare ``a (n,)`` and ``b (n,)``, the same metric on the same seeds (same order). Pairs with a NaN are
    dropped. The CI is the t interval of the mean difference; p-values come from scipy."""
    a = np.asarray(list(a), dtype=float)
    b = np.asarray(list(b), dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired values must have the same length, got {a.size} and {b.size}")
    seeds = tuple(seeds) if len(seeds) == a.size else tuple(range(a.size))
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    seeds = tuple(s for s, k in zip(seeds, keep) if k)
    d = a - b
    n = int(d.size)
    nan = float("nan")
    s = summarize(d, confidence)
    t_p = w_p = nan
    if n >= 2:
        if np.all(d == d[0]):  # no spread: the t statistic is undefined (scipy warns and returns NaN)
            t_p = 1.0 if d[0] == 0 else 0.0
        else:
            t_p = float(_st.ttest_rel(a, b).pvalue)
        if np.all(d == 0):
            w_p = 1.0
        else:
            w_p = float(_st.wilcoxon(a, b).pvalue)
    return Paired(name_a, name_b, n, float(a.mean()) if n else nan, float(b.mean()) if n else nan,
                  s.mean if n else nan, s.ci_low, s.ci_high, t_p, w_p, int((d > 0).sum()), int((d < 0).sum()),
                  seeds, metric)


def mean_ci_bands(curves: Sequence[Sequence[float]], confidence: float = CONFIDENCE
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-iteration mean and CI over runs: ``curves`` is a list of per-run curves (possibly of unequal length:
    a stopped run). Returns ``(iterations, mean, low, high)``, each ``(T,)``; the band is NaN where fewer than 2
    runs reached an iteration."""
    length = max((len(c) for c in curves), default=0)
    its, means, lows, highs = [], [], [], []
    for i in range(length):
        s = summarize([c[i] for c in curves if len(c) > i], confidence)
        its.append(i)
        means.append(s.mean)
        lows.append(s.ci_low)
        highs.append(s.ci_high)
    return np.array(its), np.array(means), np.array(lows), np.array(highs)
