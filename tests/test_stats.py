"""vaegmm.sweeps.stats against scipy and hand-computed values on known data."""
import math

import numpy as np
import pytest
from scipy import stats as st

from vaegmm.sweeps.stats import mean_ci_bands, paired, summarize


def test_summary_of_known_values():
    s = summarize([1, 2, 3, 4, 5])
    assert (s.n, s.mean) == (5, 3.0)
    assert s.std == pytest.approx(math.sqrt(2.5))  # ddof=1
    assert s.sem == pytest.approx(math.sqrt(2.5 / 5))
    # t(0.975, 4) = 2.7764451...: 3 +- 2.7764451 * 0.7071068
    assert (s.ci_low, s.ci_high) == pytest.approx((3 - 1.963243, 3 + 1.963243), abs=1e-6)
    assert s.text() == "3.000 ± 1.581" and s.ci_text(2) == "[1.04, 4.96]"


def test_summary_ci_matches_scipy_one_sample_t():
    v = np.array([0.806, 0.807, 0.811, 0.795, 0.780])
    s = summarize(v)
    ci = st.ttest_1samp(v, 0.0).confidence_interval(0.95)
    assert (s.ci_low, s.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert s.std == pytest.approx(np.std(v, ddof=1))


def test_summary_edge_cases():
    assert summarize([]).n == 0 and math.isnan(summarize([]).mean)
    one = summarize([0.7])
    assert one.mean == 0.7 and math.isnan(one.std) and math.isnan(one.ci_low) and one.text() == "0.700"
    same = summarize([0.5, 0.5, 0.5])
    assert same.std == 0 and (same.ci_low, same.ci_high) == (0.5, 0.5)
    assert summarize([1.0, float("nan"), 3.0]).n == 2


def test_paired_matches_scipy():
    a = [0.806, 0.807, 0.811, 0.795, 0.780]
    b = [0.788, 0.761, 0.792, 0.764, 0.791]
    p = paired(a, b, "feedback=on", "feedback=off", seeds=[0, 1, 2, 3, 4])
    t = st.ttest_rel(a, b)
    ci = t.confidence_interval(0.95)
    assert p.n == 5 and p.mean_diff == pytest.approx(np.mean(np.subtract(a, b)))
    assert (p.ci_low, p.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert p.t_p == pytest.approx(t.pvalue, rel=1e-12)
    assert p.wilcoxon_p == pytest.approx(st.wilcoxon(a, b).pvalue, rel=1e-12)
    assert (p.wins, p.losses) == (4, 1)


def test_wilcoxon_exact_on_five_positive_differences():
    p = paired([2, 3, 4, 5, 6], [1, 1, 1, 1, 1])
    assert p.wilcoxon_p == pytest.approx(2 / 32)  # exact two-sided: only all-positive or all-negative as extreme


def test_sentence_reads_like_the_issue_asks():
    a = np.array([0.821, 0.802, 0.833, 0.815, 0.809])
    b = a - np.array([0.010, 0.030, 0.020, 0.025, 0.020])
    p = paired(a, b, "feedback on", "off")
    text = p.sentence()
    assert text.startswith("feedback on beats off by 2.1 points of accuracy (95 % CI ")
    assert "paired t-test p" in text and "5 seeds" in text and p.significant and text.endswith(").")
    noisy = paired([0.80, 0.78, 0.81], [0.79, 0.80, 0.79], "alpha=2", "alpha=1")
    assert not noisy.significant and "cannot tell the two apart" in noisy.sentence()
    assert "trails" in paired([0.7, 0.71], [0.8, 0.82], "A", "B").sentence()
    assert "one seed" in paired([0.8], [0.7]).sentence()
    assert "no finished run" in paired([], []).sentence()


def test_paired_drops_pairs_with_a_missing_value_and_checks_lengths():
    p = paired([0.8, float("nan"), 0.7], [0.6, 0.5, 0.6], seeds=[10, 11, 12])
    assert p.n == 2 and p.seeds == (10, 12)
    with pytest.raises(ValueError, match="same length"):
        paired([1, 2], [1])
    assert paired([0.5, 0.5], [0.5, 0.5]).t_p == 1.0


def test_bands_over_unequal_curves():
    its, mean, lo, hi = mean_ci_bands([[0.1, 0.5, 0.7], [0.1, 0.6], [0.2, 0.4, 0.9]])
    assert list(its) == [0, 1, 2]
    assert mean == pytest.approx([0.4 / 3, 0.5, 0.8])
    assert lo[1] < 0.5 < hi[1] and np.isfinite(lo[2])
