import numpy as np
import pytest

from vaegmm.model.config import DataConfig, GMMConfig, RunConfig, VAEConfig
from vaegmm.model.data import load_mnist
from vaegmm.model.mutual import MutualLearner


def small(alpha=1.0, **kw):
    base = RunConfig(data=DataConfig(n=300), vae=VAEConfig(latent_dim=4, epochs=4, batch_size=50, alpha=alpha),
                     gmm=GMMConfig(n_classes=10, backend="em", n_init=2), iterations=2, codes="mean", seed=0)
    return base.replace(**kw) if kw else base


@pytest.fixture(scope="module")
def images():
    return load_mnist(300, seed=0)


def distances_to_prior(alpha, images):
    """Mean distance of the encoder means to the class means the GMM sent back, before and after one VAE update
    with KL weight ``alpha``; iteration 1 is the same plain VAE for every alpha."""
    x, y = images
    cfg = small(vae__epochs=40, vae__lr=3e-3, gmm__n_init=1)
    L = MutualLearner(cfg, x, y)
    L.step()  # iteration 1: plain VAE, then the GMM sets the prior means
    prior = L.prior_mu.cpu().numpy().copy()
    before = np.linalg.norm(L.history[-1].encoder_mean - prior, axis=1).mean()
    L.config.vae.alpha, L.config.vae.epochs = alpha, 20
    L.step()  # iteration 2: trained toward those means with weight alpha
    after = np.linalg.norm(L.history[-1].encoder_mean - prior, axis=1).mean()
    return before, after


def test_alpha_pulls_codes_toward_their_class_means(images):
    # In a run this short the reconstruction term is still spreading the codes out, so the pull must be strong
    # to win outright: alpha = 10 shrinks the distance, alpha = 0 lets it grow.
    before, pulled = distances_to_prior(10.0, images)
    before0, free = distances_to_prior(0.0, images)
    assert before == before0
    assert pulled < 0.9 * before
    assert free > 1.2 * before
    assert pulled < 0.5 * free


def test_feedback_off_keeps_the_prior_at_zero(images):
    x, y = images
    L = MutualLearner(small(feedback=False), x, y)
    L.run()
    assert float(L.prior_mu.abs().max()) == 0.0


def test_iteration_zero_results_and_events(images):
    x, y = images
    events = []
    L = MutualLearner(small(), x, y, callbacks=[events.append])
    r0 = L.begin()
    assert r0.iteration == 0 and r0.recon == [] and r0.seconds_vae == 0.0
    assert r0.codes.shape == (300, 4) and r0.projection.shape == (300, 2) and r0.classes.shape == (300,)
    assert r0.class_means.shape == (10, 4) and r0.class_means_2d.shape == (10, 2)
    assert 0.0 <= r0.accuracy <= 1.0 and sum(r0.class_counts) == 300
    hist = L.run()
    assert [r.iteration for r in hist] == [0, 1, 2]
    vae_events = [e for e in events if e.phase == "vae"]
    assert [(e.iteration, e.epoch) for e in vae_events] == [(i, j) for i in (1, 2) for j in range(1, 5)]
    assert [e.iteration for e in events if e.phase == "iteration"] == [0, 1, 2]
    assert len(hist[1].recon) == 4 and all(np.isfinite(hist[1].kl))


def test_same_seed_same_numbers(images):
    x, y = images
    cfg = small(gmm__backend="gibbs", gmm__sweeps=20, codes="sample")
    a = [r.accuracy for r in MutualLearner(cfg, x, y).run()]
    b = [r.accuracy for r in MutualLearner(cfg, x, y).run()]
    c = [r.accuracy for r in MutualLearner(cfg.replace(seed=1), x, y).run()]
    assert a == b
    assert a != c


def test_collapsed_backend_sends_serkets_messages(images):
    """The collapsed sampler in the loop: classes (and accuracy) are the argmax of Pdz; the prior each image gets
    for the next VAE update is the mean of its last sampled class (Serket's mu)."""
    from vaegmm.model.gmm import CollapsedGibbsGMM

    x, y = images
    L = MutualLearner(small(gmm__backend="collapsed", gmm__sweeps=10, codes="sample", iterations=1), x, y)
    L.run()
    g, last = L.gmm, L.history[-1]
    assert isinstance(g, CollapsedGibbsGMM)
    np.testing.assert_array_equal(last.classes, g.resp_.argmax(axis=1))
    np.testing.assert_allclose(L.prior_mu.cpu().numpy(), g.means_[g.sampled_labels_].astype(np.float32))
    a = [r.accuracy for r in MutualLearner(small(gmm__backend="collapsed", gmm__sweeps=10), x, y).run()]
    assert a == [r.accuracy for r in MutualLearner(small(gmm__backend="collapsed", gmm__sweeps=10), x, y).run()]


def test_projection_is_aligned_between_iterations(images):
    x, y = images
    hist = MutualLearner(small(iterations=3, vae__epochs=2), x, y).run()
    for prev, cur in zip(hist[2:], hist[3:]):
        # the Procrustes turn never makes the picture worse than the raw PCA would
        raw = cur.pca.transform(cur.codes) @ cur.pca.rotation.T
        aligned_err = np.linalg.norm(cur.projection - cur.projection.mean(0) - (prev.projection - prev.projection.mean(0)))
        raw_err = np.linalg.norm(raw - raw.mean(0) - (prev.projection - prev.projection.mean(0)))
        assert aligned_err <= raw_err + 1e-3


@pytest.mark.slow
def test_real_run_on_bundled_mnist_clusters_better_than_untrained():
    cfg = RunConfig(data=DataConfig(n=1000), vae=VAEConfig(latent_dim=10, epochs=15, batch_size=100, alpha=1.0),
                    gmm=GMMConfig(n_classes=10, backend="gibbs", init="kmeans++"), iterations=3, codes="mean",
                    seed=0)
    x, y = load_mnist(1000, seed=0)
    hist = MutualLearner(cfg, x, y).run()
    accs = [r.accuracy for r in hist]
    assert accs[0] < 0.3  # an untrained encoder: close to chance
    assert accs[-1] > 0.45 and min(accs[1:]) > accs[0] + 0.3, accs


def test_bad_inputs(images):
    x, y = images
    with pytest.raises(ValueError, match=r"\(N, 784\)"):
        MutualLearner(small(), x[:, :100], y)
    with pytest.raises(ValueError, match="labels"):
        MutualLearner(small(), x, y[:10])
    with pytest.raises(ValueError, match="alpha"):
        MutualLearner(small(alpha=-2.0), x, y)
