"""Options added for the quality benchmark: Gibbs restarts (n_init, best collapsed log joint) and its score."""
import numpy as np
import pytest
from scipy.stats import multivariate_t

from vaegmm.model.config import RunConfig, preset
from vaegmm.model.gmm import GibbsGMM, make_gmm


def _blobs(n=300, d=3, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d)) * 6
    labels = rng.integers(0, k, n)
    return centers[labels] + rng.standard_normal((n, d)), labels


def test_log_joint_equals_sequential_student_t_predictives():
    # p(z) of one class under the NIW prior = product of its posterior predictive Student-t densities
    rng = np.random.default_rng(3)
    d, n = 3, 7
    z = rng.standard_normal((n, d)) * 2 + 1
    m0, s0, r0, nu0 = z.mean(0), np.eye(d) * 0.1, 1.0, d + 2.0
    total = 0.0
    for i in range(n):
        prev = z[:i]
        xbar = prev.mean(0) if i else np.zeros(d)
        scatter = (prev - xbar).T @ (prev - xbar) if i else np.zeros((d, d))
        r_n, nu_n = r0 + i, nu0 + i
        m_n = (r0 * m0 + prev.sum(0)) / r_n
        s_n = s0 + scatter + (r0 * i / r_n) * np.outer(xbar - m0, xbar - m0)
        df = nu_n - d + 1
        total += multivariate_t(m_n, s_n * (r_n + 1) / (r_n * df), df=df).logpdf(z[i])
    assert GibbsGMM(1).log_joint(z, np.zeros(n, dtype=int)) == pytest.approx(total, rel=1e-10)


def test_log_joint_prefers_true_labels():
    z, labels = _blobs()
    g = GibbsGMM(3)
    shuffled = np.random.default_rng(1).permutation(labels)
    assert g.log_joint(z, labels) > g.log_joint(z, shuffled) + 100


def test_restarts_keep_the_chain_with_the_best_log_joint():
    z, _ = _blobs()
    seen = []

    class Recording(GibbsGMM):
        def _fit_chain(self, *args, **kwargs):
            out = super()._fit_chain(*args, **kwargs)
            seen.append((out.log_joint_, out.labels_.copy()))
            return out

    g = Recording(3, n_sweeps=10, n_init=4, random_state=0).fit(z)
    assert len(seen) == 4
    scores = [s for s, _ in seen]
    assert len(set(np.round(scores, 6))) > 1 or len({l.tobytes() for _, l in seen}) > 1  # chains differ
    best = int(np.argmax(scores))
    assert g.log_joint_ == pytest.approx(max(scores))
    np.testing.assert_array_equal(g.labels_, seen[best][1])
    assert g.log_joint_ == pytest.approx(g.log_joint(z, g.labels_))
    assert g.means_.shape == (3, 3) and g.point_means_.shape == z.shape


def test_single_chain_unchanged_and_reproducible():
    z, _ = _blobs()
    a = GibbsGMM(3, n_sweeps=10, random_state=5).fit(z)
    b = GibbsGMM(3, n_sweeps=10, random_state=5, n_init=1).fit(z)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    c = GibbsGMM(3, n_sweeps=10, random_state=5, n_init=3).fit(z)
    d = GibbsGMM(3, n_sweeps=10, random_state=5, n_init=3).fit(z)
    np.testing.assert_array_equal(c.labels_, d.labels_)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_gibbs_n_init_validated(bad):
    z, _ = _blobs()
    with pytest.raises(ValueError, match="n_init"):
        GibbsGMM(3, n_init=bad).fit(z)


def test_make_gmm_passes_chains_to_gibbs_and_restarts_to_em():
    assert make_gmm("gibbs", 4, chains=3).n_init == 3
    assert make_gmm("gibbs", 4, n_init=10).n_init == 1  # EM's restarts do not multiply the Gibbs cost
    assert make_gmm("em", 4, n_init=3).n_init == 3


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_chains_validated(bad):
    with pytest.raises(ValueError, match="chains"):
        RunConfig().replace(gmm__chains=bad).validate()


def test_serket_preset_stays_faithful():
    cfg = preset("serket-classic")
    assert cfg.codes == "sample" and cfg.gmm.backend == "collapsed" and cfg.gmm.init == "random"
    assert cfg.gmm.chains == 1 and not cfg.gmm.warm_start and cfg.vae.alpha == 1.0 and cfg.iterations == 5
    assert cfg.data.n == 3000 and cfg.vae.latent_dim == 18 and cfg.vae.epochs == 200 and cfg.vae.batch_size == 500


def test_default_config_keeps_the_classic_vae_spec():
    cfg = RunConfig().validate()
    assert (cfg.data.n, cfg.vae.latent_dim, cfg.gmm.n_classes, cfg.vae.epochs, cfg.vae.batch_size) == \
        (3000, 18, 10, 200, 500)


def test_em_reg_covar_from_config_reaches_the_gmm():
    from vaegmm.model.mutual import MutualLearner

    cfg = RunConfig().replace(data__n=20, gmm__backend="em", gmm__reg_covar=0.1, gmm__n_classes=2, iterations=0)
    rng = np.random.default_rng(0)
    learner = MutualLearner(cfg, rng.random((20, 784), dtype=np.float32), np.arange(20) % 2)
    assert learner.gmm.reg_covar == 0.1
    assert make_gmm("em", 3, reg_covar=0.2).reg_covar == 0.2


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), True, "0.1"])
def test_reg_covar_validated(bad):
    with pytest.raises(ValueError, match="reg_covar"):
        RunConfig().replace(gmm__reg_covar=bad).validate()
    z, _ = _blobs()
    from vaegmm.model.gmm import EMGMM

    with pytest.raises(ValueError, match="reg_covar"):
        EMGMM(3, reg_covar=bad).fit(z)


def test_em_reg_covar_floors_the_class_covariances():
    from vaegmm.model.gmm import EMGMM

    z, _ = _blobs()
    z[:, 2] = 0.0  # a flat direction: without the floor its variance is ~0
    g = EMGMM(3, reg_covar=0.1, random_state=0).fit(z)
    eig = np.linalg.eigvalsh(g.model_.covariances_)
    assert eig.min() >= 0.1 - 1e-9


def test_project_defaults_are_the_benchmarked_ones():
    # chosen by bench/quality.py (BENCHMARKS.md, "## Quality"): change them together with a new benchmark run
    cfg = RunConfig()
    g = cfg.gmm
    assert (g.backend, g.n_init, g.reg_covar, g.warm_start) == ("em", 10, 0.1, False)
    assert (cfg.codes, cfg.vae.alpha, cfg.iterations, cfg.feedback) == ("sample", 1.0, 5, True)


# ---------------------------------------------------------------- issue 12: which EM restart is kept
def _four_blobs(seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0], [8.0, 8.0]])
    y = np.repeat(np.arange(4), 150)
    return centers[y] + rng.normal(0, 1.0, (len(y), 2)), y, centers


@pytest.fixture
def planted_merge(monkeypatch):
    """Every EM restart started at random lands in a planted local optimum that merges two blobs and splits
    another (two means in the lower-left blob, one between the two right ones): each restart's k-means start is
    replaced by the partition of those planted means; a start from given means (the previous partition's) is left
    alone."""
    from vaegmm.model import em

    planted = np.array([[-0.5, 0.0], [0.5, 0.0], [0.0, 8.0], [8.0, 4.0]])

    def planted_starts(z, k, random_states):
        labels = np.linalg.norm(z[:, None] - planted[None], axis=2).argmin(axis=1)
        return np.stack([labels] * len(random_states))

    monkeypatch.setattr(em, "kmeans_starts", planted_starts)


def test_previous_partition_restart_undoes_a_planted_merge(planted_merge):
    from vaegmm.model.gmm import EMGMM
    from vaegmm.model.metrics import clustering_accuracy

    z, y, _ = _four_blobs()
    plain = EMGMM(4, n_init=3, reg_covar=0.1, random_state=0)
    plain.labels_ = y.copy()  # a previous fit that had it right
    plain.fit(z)
    assert clustering_accuracy(plain.labels_, y) < 0.8  # the restarts merge two blobs
    kept = EMGMM(4, n_init=3, reg_covar=0.1, random_state=0, keep_previous=True)
    kept.labels_ = y.copy()
    kept.fit(z)
    assert clustering_accuracy(kept.labels_, y) == 1.0
    restart, previous = kept.candidates_
    assert previous["kind"] == "previous" and previous["kept"] and previous["loglik"] > restart["loglik"]


def test_keep_previous_changes_nothing_when_the_restarts_win():
    from vaegmm.model.gmm import EMGMM

    z, y, _ = _four_blobs(1)
    a = EMGMM(4, n_init=3, reg_covar=0.1, random_state=5).fit(z)
    b = EMGMM(4, n_init=3, reg_covar=0.1, random_state=5, keep_previous=True)
    b.labels_ = np.roll(y, 37)  # a poor previous partition
    b.fit(z)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    assert [c["kind"] for c in b.candidates_ if c["kept"]] == ["restart"]


def test_stability_and_consensus_choices_on_planted_candidates():
    from sklearn.mixture import GaussianMixture

    from vaegmm.model.gmm import EMGMM

    z, y, centers = _four_blobs(2)
    merged = GaussianMixture(4, means_init=np.array([[-0.5, 0.0], [0.5, 0.0], [0.0, 8.0], [8.0, 4.0]]),
                             reg_covar=0.1).fit(z)
    right = [GaussianMixture(4, means_init=centers + 0.1 * i, reg_covar=0.1).fit(z) for i in range(2)]
    fits = [("restart", merged)] + [("restart", g) for g in right]
    for select, previous in (("previous", y), ("consensus", None), ("likelihood", None)):
        g = EMGMM(4, select=select)
        chosen = g._choose(fits, z, previous)
        assert chosen is not merged, select
    # agreeing with a merged previous partition keeps the merge: stability alone can lock a mistake in
    g = EMGMM(4, select="previous")
    assert g._choose(fits, z, merged.predict(z)) is merged
