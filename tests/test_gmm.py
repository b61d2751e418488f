import re
import sys
from pathlib import Path

import numpy as np
import pytest

from vaegmm.model.gmm import BaseGMM, CollapsedGibbsGMM, EMGMM, GibbsGMM, make_gmm
from vaegmm.model.metrics import clustering_accuracy


def blobs(n_per=150, k=5, d=6, spread=8.0, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, spread, (k, d))
    y = np.repeat(np.arange(k), n_per)
    return centers[y] + rng.normal(0, 1, (len(y), d)), y, centers


@pytest.mark.parametrize("gmm", [GibbsGMM(5, n_sweeps=50, init="kmeans++", random_state=1),
                                 EMGMM(5, n_init=3, random_state=1)], ids=["gibbs", "em"])
def test_recovers_well_separated_blobs(gmm):
    z, y, centers = blobs()
    gmm.fit(z)
    assert clustering_accuracy(gmm.labels_, y) >= 0.99
    assert gmm.labels_.shape == (len(z),) and gmm.means_.shape == (5, 6)
    assert gmm.resp_.shape == (len(z), 5) and np.allclose(gmm.resp_.sum(axis=1), 1.0)
    np.testing.assert_array_equal(gmm.point_means_, gmm.means_[gmm.labels_])
    # each fitted mean sits on one true centre
    dist = np.linalg.norm(gmm.means_[:, None] - centers[None], axis=2).min(axis=1)
    assert dist.max() < 0.5


def test_gibbs_means_are_the_posterior_means_of_the_final_labels():
    z, y, _ = blobs(seed=3)
    g = GibbsGMM(5, n_sweeps=20, init="kmeans++", random_state=0).fit(z)
    for k in range(5):
        m = z[g.labels_ == k]
        expected = (1.0 * z.mean(axis=0) + m.sum(axis=0)) / (1.0 + len(m))  # r0 = 1, m0 = data mean
        np.testing.assert_allclose(g.means_[k], expected, rtol=1e-10, atol=1e-10)


def test_gibbs_random_init_samples_the_model_too():
    z, y, _ = blobs(n_per=100, k=3, d=4, spread=10.0)
    g = GibbsGMM(3, n_sweeps=100, random_state=0).fit(z)
    assert clustering_accuracy(g.labels_, y) >= 0.99


def test_same_seed_same_result_and_warm_start():
    z, *_ = blobs()
    a = GibbsGMM(5, n_sweeps=10, random_state=7).fit(z)
    b = GibbsGMM(5, n_sweeps=10, random_state=7).fit(z)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    e1, e2 = EMGMM(5, random_state=7).fit(z), EMGMM(5, random_state=7).fit(z)
    np.testing.assert_array_equal(e1.labels_, e2.labels_)
    w = GibbsGMM(5, n_sweeps=1, init="kmeans++", warm_start=True, random_state=0).fit(z)
    first = w.labels_.copy()
    w.fit(z)  # one more sweep from the previous labels keeps the same clustering up to noise
    assert clustering_accuracy(w.labels_, first) > 0.95


@pytest.mark.parametrize("make, fragment", [
    (lambda: GibbsGMM(0), "n_components"),
    (lambda: GibbsGMM(3, n_sweeps=0), "n_sweeps"),
    (lambda: GibbsGMM(3, s0=-1.0), "s0"),
    (lambda: GibbsGMM(3, init="best"), "'best'"),
    (lambda: EMGMM(3, n_init=0), "n_init"),
    (lambda: EMGMM(2.5), "2.5"),
])
def test_bad_parameters_raise_value_error_naming_them(make, fragment):
    z, *_ = blobs(n_per=10)
    with pytest.raises(ValueError) as e:
        make().fit(z)
    assert fragment in str(e.value)


@pytest.mark.parametrize("cls", [CollapsedGibbsGMM, GibbsGMM, EMGMM])
def test_the_three_share_one_base_that_stores_and_checks(cls):
    """As scikit-learn's BaseMixture: __init__ only stores, the shared parameters are checked in one place with
    one message, the same for every mixture."""
    z, *_ = blobs(n_per=10)
    g = cls(3, warm_start=True, random_state=7)
    assert isinstance(g, BaseGMM) and (g.n_components, g.warm_start, g.random_state) == (3, True, 7)
    assert not hasattr(g, "labels_")  # nothing fitted or derived by the constructor
    for bad, fragment in ((dict(n_components=0), "n_components must be an integer >= 1, got 0"),
                          (dict(random_state="x"), "random_state must be None, an int or a numpy Generator, got 'x'")):
        g = cls(3)
        for name, value in bad.items():
            setattr(g, name, value)
        with pytest.raises(ValueError, match=re.escape(fragment)):
            g.fit(z)


def test_bad_data_is_refused():
    with pytest.raises(ValueError, match="exceeds"):
        GibbsGMM(10).fit(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="NaN"):
        EMGMM(2).fit(np.array([[0.0, 1.0], [np.nan, 0.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="2-D"):
        GibbsGMM(2).fit(np.zeros(5))
    with pytest.raises(ValueError, match="backend"):
        make_gmm("dp", 3)


# ---------------------------------------------------------------------------------------- CollapsedGibbsGMM
from gibbs_reference import collapsed_gibbs, collapsed_gibbs_numpy, serket_readout, student_t_logpdf  # noqa: E402


def small_blobs(seed=0, n_per=20, k=3, d=3, spread=2.5):
    """Overlapping blobs, so that labels keep moving and every sweep exercises the sampler."""
    return blobs(n_per=n_per, k=k, d=d, spread=spread, seed=seed)[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_collapsed_equals_the_plain_reference_sweep_for_sweep(seed):
    z = small_blobs(seed)
    trace = []
    collapsed_gibbs(z, 4, 6, np.random.default_rng(seed), trace=trace)
    assert any((a != b).any() for a, b in zip(trace, trace[1:]))  # the chain moves: the test has teeth
    for sweeps in range(1, 7):  # each fit draws the same stream: start, then one uniform per point per sweep
        g = CollapsedGibbsGMM(4, n_sweeps=sweeps, random_state=np.random.default_rng(seed)).fit(z)
        np.testing.assert_array_equal(g.sampled_labels_, trace[sweeps - 1], err_msg=f"sweep {sweeps}")
    # the numpy form that bench/speed.py times is the same sampler too
    np.testing.assert_array_equal(collapsed_gibbs_numpy(z, 4, 6, np.random.default_rng(seed)), trace[-1])


def test_collapsed_equals_the_reference_from_given_labels_and_s0():
    z = small_blobs(5, n_per=15, k=4, d=5)
    start = np.arange(len(z)) % 5
    rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)
    ref = collapsed_gibbs(z, 5, 4, rng_a, labels=start, s0=0.5, r0=2.0, nu0=9.0)
    g = CollapsedGibbsGMM(5, n_sweeps=4, s0=0.5, r0=2.0, nu0=9.0, random_state=rng_b).fit(z, init_labels=start)
    np.testing.assert_array_equal(g.sampled_labels_, ref)


def test_reference_predictive_is_the_student_t():
    from scipy.stats import multivariate_t

    rng = np.random.default_rng(0)
    x, loc = rng.normal(size=4), rng.normal(size=4)
    a = rng.normal(size=(4, 4))
    scale = a @ a.T + np.eye(4)
    assert student_t_logpdf(x, loc, scale, 7.5) == pytest.approx(multivariate_t(loc, scale, df=7.5).logpdf(x))


def test_collapsed_read_out_is_serkets():
    z = small_blobs(3)
    g = CollapsedGibbsGMM(4, n_sweeps=5, random_state=3).fit(z)
    # Serket: Pdz[n, k] ∝ N_k p(z_n | class k), as a ratio of marginal likelihoods; classes = argmax Pdz;
    # mu[n] = posterior mean of n's last sampled class
    pdz, mu = serket_readout(z, g.sampled_labels_, 4)
    np.testing.assert_allclose(g.resp_, pdz, atol=1e-10)
    np.testing.assert_array_equal(g.labels_, pdz.argmax(axis=1))
    np.testing.assert_allclose(g.point_means_, mu, atol=1e-12)
    np.testing.assert_array_equal(g.point_means_, g.means_[g.sampled_labels_])
    np.testing.assert_array_equal(g.counts_, np.bincount(g.sampled_labels_, minlength=4))
    for k in range(4):
        members = z[g.sampled_labels_ == k]
        np.testing.assert_allclose(g.means_[k], (z.mean(axis=0) + members.sum(axis=0)) / (1 + len(members)))
    assert g.resp_.shape == (len(z), 4) and np.allclose(g.resp_.sum(axis=1), 1.0)
    assert g.moves_.shape == (5,) and g.n_iter_ == 5


def test_collapsed_empty_class_stays_empty():
    z = small_blobs(1, n_per=30)
    start = np.arange(len(z)) % 3  # class 3 of 4 starts empty: weight N_3 = 0, so nobody ever joins it
    g = CollapsedGibbsGMM(4, n_sweeps=1, warm_start=True, random_state=0)
    g.fit(z, init_labels=start)
    alive = set(np.unique(g.sampled_labels_))
    assert 3 not in alive
    for _ in range(30):  # one sweep at a time: the set of classes in use never grows
        g.fit(z)
        now = set(np.unique(g.sampled_labels_))
        assert now <= alive
        alive = now
    assert g.counts_[3] == 0 and np.all(g.resp_[:, 3] == 0) and 3 not in g.labels_
    np.testing.assert_array_equal(g.means_[3], z.mean(axis=0))  # an empty class's mean is the prior's, m0


def test_collapsed_recovers_well_separated_blobs():
    z, y, centers = blobs()
    g = CollapsedGibbsGMM(5, n_sweeps=30, init="kmeans++", random_state=1).fit(z)
    assert clustering_accuracy(g.labels_, y) == 1.0 and (g.counts_ == 150).all()
    assert np.linalg.norm(g.means_[:, None] - centers[None], axis=2).min(axis=1).max() < 0.5
    # the true partition is where the posterior sits: a chain started there stays there
    g = CollapsedGibbsGMM(5, n_sweeps=30, random_state=2).fit(z, init_labels=y)
    np.testing.assert_array_equal(g.sampled_labels_, y)
    assert g.moves_.sum() == 0


def test_collapsed_is_reproducible_and_calls_checkpoint_every_sweep():
    z = small_blobs(0)
    calls = []
    a = CollapsedGibbsGMM(3, n_sweeps=7, random_state=4).fit(z, checkpoint=lambda: calls.append(1))
    b = CollapsedGibbsGMM(3, n_sweeps=7, random_state=4).fit(z.astype(np.float32))
    assert len(calls) == 7
    np.testing.assert_array_equal(a.sampled_labels_, b.sampled_labels_)

    class Stop(Exception):
        pass

    def stop():
        raise Stop()

    with pytest.raises(Stop):
        CollapsedGibbsGMM(3, n_sweeps=7, random_state=4).fit(z, checkpoint=stop)


@pytest.mark.parametrize("make, fragment", [
    (lambda: CollapsedGibbsGMM(0), "n_components"),
    (lambda: CollapsedGibbsGMM(3, n_sweeps=0), "n_sweeps"),
    (lambda: CollapsedGibbsGMM(3, s0=0.0), "s0"),
    (lambda: CollapsedGibbsGMM(3, r0=float("nan")), "r0"),
    (lambda: CollapsedGibbsGMM(3, nu0=2.0), "nu0"),
    (lambda: CollapsedGibbsGMM(3, init="best"), "'best'"),
    (lambda: CollapsedGibbsGMM(3, random_state="x"), "random_state"),
])
def test_collapsed_bad_parameters_raise_value_error_naming_them(make, fragment):
    z, *_ = blobs(n_per=10)  # D = 6, so nu0 = 2 is not > D - 1
    with pytest.raises(ValueError) as e:
        make().fit(z)
    assert fragment in str(e.value)


def test_collapsed_bad_data_and_labels_are_refused():
    with pytest.raises(ValueError, match="exceeds"):
        CollapsedGibbsGMM(10).fit(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="NaN"):
        CollapsedGibbsGMM(2).fit(np.array([[0.0, 1.0], [np.nan, 0.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="init_labels"):
        CollapsedGibbsGMM(2).fit(np.zeros((4, 2)), init_labels=[0, 1, 2, 0])


def test_make_gmm_names_the_samplers():
    assert isinstance(make_gmm("collapsed", 4, sweeps=7), CollapsedGibbsGMM)
    assert make_gmm("collapsed", 4, sweeps=7).n_sweeps == 7
    assert isinstance(make_gmm("gibbs", 4), GibbsGMM) and isinstance(make_gmm("em", 4), EMGMM)
    with pytest.raises(ValueError, match="chains"):
        make_gmm("collapsed", 4, chains=3)


def test_collapsed_works_where_numba_can_write_no_cache():
    """Where no cache folder is writable (read-only install, no home), numba refuses ``cache=True`` at decoration;
    the package then compiles in memory. A fresh process, with numba's own writability check made to fail."""
    import subprocess

    code = (
        "import numba.core.caching as c, numpy as np\n"
        "def deny(self):\n"
        "    raise PermissionError(13, 'read-only file system', self.get_cache_path())\n"
        "c._CacheLocator.ensure_cache_path = deny\n"
        "from vaegmm.model import _collapsed\n"
        "assert type(_collapsed.sweep._cache).__name__ == 'NullCache'  # compiled in memory\n"
        "from vaegmm.model.gmm import CollapsedGibbsGMM\n"
        "g = CollapsedGibbsGMM(3, n_sweeps=3, random_state=0).fit(np.random.default_rng(0).normal(size=(60, 2)))\n"
        "print(int(g.counts_.sum()))\n")
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "60"


# ---------------------------------------------------------------- issue 17: the EM restarts as one batched EM
def _sequential_sklearn_restarts(z, k, n_init, seed, reg_covar):
    """scikit-learn's own restarts one after another, each from the k-means start GaussianMixture(n_init) draws."""
    from sklearn.mixture import GaussianMixture
    from sklearn.utils import check_random_state

    rs = check_random_state(seed)
    return [GaussianMixture(k, covariance_type="full", reg_covar=reg_covar, max_iter=200, random_state=rs).fit(z)
            for _ in range(n_init)]


def test_batched_em_restarts_equal_sklearns_one_by_one():
    from sklearn.utils import check_random_state

    from vaegmm.model import em

    rng = np.random.default_rng(4)
    z = rng.normal(size=(400, 5)) @ rng.normal(size=(5, 5))  # no clusters: restarts end in different optima
    reference = _sequential_sklearn_restarts(z, 4, 5, 7, 0.1)
    starts = em.kmeans_starts(z, 4, [check_random_state(7)] * 5)
    fits = em.em_restarts(z, starts, 4, reg_covar=0.1, max_iter=200)
    assert len({round(g.lower_bound_, 6) for g in reference}) > 1  # the restarts differ
    for ours, theirs in zip(fits, reference):
        assert ours.n_iter_ == theirs.n_iter_ and ours.converged_ == theirs.converged_
        assert ours.lower_bound_ == pytest.approx(theirs.lower_bound_, rel=1e-10)
        np.testing.assert_allclose(ours.means_, theirs.means_, atol=1e-8)
        np.testing.assert_allclose(ours.covariances_, theirs.covariances_, atol=1e-8)
        np.testing.assert_allclose(ours.predict_proba(z), theirs.predict_proba(z), atol=1e-8)
        assert ours.score(z) == pytest.approx(theirs.score(z), rel=1e-10)


def test_batched_em_keeps_the_restart_sequential_restarts_keep_on_a_planted_case():
    from sklearn.mixture import GaussianMixture

    # two blob layouts in one: a merged-pair optimum exists besides the right one, so restarts disagree
    z, y, _ = blobs(n_per=80, k=6, d=3, spread=3.0, seed=5)
    ours = EMGMM(6, n_init=10, reg_covar=0.1, random_state=3).fit(z)
    theirs = GaussianMixture(6, covariance_type="full", n_init=10, reg_covar=0.1, max_iter=200,
                             random_state=3).fit(z)
    restarts = _sequential_sklearn_restarts(z, 6, 10, 3, 0.1)
    assert len({round(g.lower_bound_, 4) for g in restarts}) > 1  # not every restart finds the same optimum
    assert ours.model_.lower_bound_ == pytest.approx(theirs.lower_bound_, rel=1e-10)
    assert clustering_accuracy(ours.labels_, theirs.predict(z)) == 1.0
    np.testing.assert_allclose(np.sort(ours.means_, axis=0), np.sort(theirs.means_, axis=0), atol=1e-8)


def test_batched_em_recovers_blobs_and_calls_checkpoint_every_iteration():
    z, y, centers = blobs(k=8, d=18, n_per=100, seed=2)
    calls = []
    g = EMGMM(8, n_init=10, reg_covar=0.1, random_state=0).fit(z, checkpoint=lambda: calls.append(1))
    assert clustering_accuracy(g.labels_, y) >= 0.99
    assert len(calls) >= 1 + g.n_iter_  # once before the fit, then before every batched iteration
    # each fitted mean is one true class's sample mean (100 points in 18-D sit ~0.4 from their centre)
    sample_means = np.stack([z[y == c].mean(axis=0) for c in range(8)])
    dist = np.linalg.norm(g.means_[:, None] - sample_means[None], axis=2).min(axis=1)
    assert dist.max() < 0.05
