import numpy as np
import pytest

from vaegmm.gmm import EMGMM, GibbsGMM, make_gmm
from vaegmm.metrics import clustering_accuracy


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


def test_bad_data_is_refused():
    with pytest.raises(ValueError, match="exceeds"):
        GibbsGMM(10).fit(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="NaN"):
        EMGMM(2).fit(np.array([[0.0, 1.0], [np.nan, 0.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="2-D"):
        GibbsGMM(2).fit(np.zeros(5))
    with pytest.raises(ValueError, match="backend"):
        make_gmm("dp", 3)
