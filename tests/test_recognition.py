"""Recognition (issue 25): the GMMs' class probabilities for new codes against a direct Student-t / Gaussian
computation, the held-out set and its scores, asking an iteration (live and saved), the PCA inverse and the
decoded line."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal, multivariate_t
from sklearn.exceptions import NotFittedError

from vaegmm.model import predictive
from vaegmm.model.config import preset
from vaegmm.model.data import load_split
from vaegmm.model.gmm import CollapsedGibbsGMM, EMGMM, GibbsGMM
from vaegmm.model.metrics import clustering_accuracy
from vaegmm.model.projection import fit_pca2d
from vaegmm.model.recognition import (NotAnswerable, TrainedIteration, ask, decode_line, digit_matching,
                                      majority_digits, nearest_codes)
from vaegmm.runs import ask as run_ask
from vaegmm.runs.library import iteration_arrays, iteration_from_arrays
from vaegmm.runs.train import train_run


def _blobs(seed=0, n=60, d=3):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0] * d, [4.0] * d, [0.0, 4.0] + [-4.0] * (d - 2)])
    z = np.concatenate([c + rng.normal(scale=0.7, size=(n, d)) for c in centres])
    return z, rng.normal(scale=3.0, size=(25, d))


@pytest.mark.parametrize("gmm", [CollapsedGibbsGMM(3, n_sweeps=15, init="kmeans++", random_state=1),
                                 GibbsGMM(3, n_sweeps=15, random_state=1)], ids=["collapsed", "blocked"])
def test_samplers_classify_new_codes_by_the_student_t_predictive_times_the_class_weight(gmm):
    z, new = _blobs()
    gmm.fit(z)
    assert (np.bincount(gmm.labels_, minlength=3) > 0).all()  # every class alive: the oracle checks each one
    post = gmm.posterior_
    k, d = 3, z.shape[1]
    # the oracle: each class's Gauss-Wishart posterior from its points, its predictive as scipy's multivariate_t
    labels = gmm.sampled_labels_ if isinstance(gmm, CollapsedGibbsGMM) else gmm.labels_
    m0, r0, nu0 = z.mean(axis=0), 1.0, d + 2.0
    counts = np.bincount(labels, minlength=k)
    weights = counts / counts.sum() if isinstance(gmm, CollapsedGibbsGMM) else (counts + 1.0) / (len(z) + k)
    dens = np.zeros((len(new), k))
    for c in range(k):
        x = z[labels == c]
        n_c = len(x)
        xbar = x.mean(axis=0) if n_c else m0
        r, nu = r0 + n_c, nu0 + n_c
        m = (x.sum(axis=0) + r0 * m0) / r
        s = 0.1 * np.eye(d) + (x - xbar).T @ (x - xbar) + r0 * n_c / r * np.outer(xbar - m0, xbar - m0)
        df = nu - d + 1
        dens[:, c] = weights[c] * multivariate_t(loc=m, shape=s * (r + 1) / (r * df), df=df).pdf(new)
        loc, shape, df2 = predictive.student_t_parameters(post, c)
        np.testing.assert_allclose(loc, m, rtol=1e-10)
        np.testing.assert_allclose(shape, s * (r + 1) / (r * df), rtol=1e-10)
    expected = dens / dens.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(gmm.predict_proba(new), expected, rtol=1e-8, atol=1e-12)
    np.testing.assert_array_equal(gmm.predict(new), expected.argmax(axis=1))


def test_collapsed_recognition_of_the_training_codes_is_serkets_read_out():
    z, _ = _blobs(seed=3)
    gmm = CollapsedGibbsGMM(3, n_sweeps=10, random_state=0).fit(z)
    np.testing.assert_allclose(gmm.predict_proba(z), gmm.resp_, atol=1e-12)
    np.testing.assert_array_equal(gmm.predict(z), gmm.labels_)


def test_a_collapsed_class_that_died_gets_probability_zero():
    z, new = _blobs()
    gmm = CollapsedGibbsGMM(3, n_sweeps=1, random_state=0).fit(z, init_labels=np.zeros(len(z), dtype=int))
    # one sweep from everything in class 0: classes 1 and 2 have N_k = 0 and stay dead (Serket's weight N_k)
    assert gmm.counts_.tolist() == [len(z), 0, 0]
    np.testing.assert_array_equal(gmm.predict_proba(new)[:, 1:], 0.0)


def test_em_classifies_new_codes_as_scikit_learns_mixture():
    z, new = _blobs(seed=2)
    gmm = EMGMM(3, n_init=2, random_state=0).fit(z)
    w, mu, cov = gmm.model_.weights_, gmm.model_.means_, gmm.model_.covariances_
    dens = np.stack([w[c] * multivariate_normal(mu[c], cov[c]).pdf(new) for c in range(3)], axis=1)
    np.testing.assert_allclose(gmm.predict_proba(new), dens / dens.sum(axis=1, keepdims=True), rtol=1e-7,
                               atol=1e-12)
    np.testing.assert_allclose(gmm.predict_proba(z), gmm.resp_, atol=1e-10)


def test_predicting_before_fitting_is_refused():
    for gmm in (EMGMM(2), GibbsGMM(2), CollapsedGibbsGMM(2)):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            gmm.predict_proba(np.zeros((3, 2)))


def test_matching_and_majority_digits():
    classes = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3])
    labels = np.array([7, 7, 1, 1, 1, 7, 7, 7, 2])
    # Hungarian: class 2 takes 7 (3 points), class 1 takes 1, class 3 takes 2, class 0 is left out
    assert digit_matching(classes, labels, 5).tolist() == [-1, 1, 7, 2, -1]
    assert majority_digits(classes, labels, 5).tolist() == [7, 1, 7, 2, -1]


def test_pca_inverse_round_trip():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 7)) * np.arange(1, 8)
    pca = fit_pca2d(z, previous=rng.normal(size=(200, 2)))  # with a Procrustes turn
    xy = rng.normal(size=(50, 2)) * 3
    codes = pca.inverse_transform(xy)
    np.testing.assert_allclose(pca.transform(codes), xy, atol=1e-5)
    # the other D - 2 directions stay at the mean
    residual = codes - pca.center - (codes - pca.center) @ pca.components @ pca.components.T
    np.testing.assert_allclose(residual, 0.0, atol=1e-5)


def test_nearest_codes_nearest_first():
    train = np.array([[0.0, 0], [1, 0], [3, 0], [10, 0]])
    assert nearest_codes(np.array([[2.6, 0.0], [9.0, 0.0]]), train, 3).tolist() == [[2, 1, 0], [3, 2, 1]]


# ---------------------------------------------------------------------------------------------- a trained run
@pytest.fixture(scope="module")
def small_run():
    cfg = preset("quick-demo").replace(data__n=1000, vae__latent_dim=8, vae__epochs=25, iterations=2)
    trained = train_run(cfg, threads=1)
    assert trained.status == "finished", trained.error_text()
    return cfg, trained


def test_held_out_images_are_outside_the_training_subset_balanced_and_seeded():
    split = load_split(3000, seed=4)
    assert split.heldout.images.shape == (2000, 784)
    assert np.bincount(split.heldout.labels).tolist() == [200] * 10
    train = {row.tobytes() for row in split.images}
    assert not any(row.tobytes() in train for row in split.heldout.images)
    again = load_split(3000, seed=4)
    np.testing.assert_array_equal(again.heldout.images, split.heldout.images)
    assert not np.array_equal(load_split(3000, seed=5).heldout.labels, split.heldout.labels)
    three = load_split(30, digits=(1, 4, 7), seed=0)
    assert set(np.unique(three.heldout.labels)) == {1, 4, 7}
    assert np.bincount(three.heldout.labels)[[1, 4, 7]].tolist() == [490] * 3


def test_no_held_out_set_when_the_bundled_images_are_all_used(monkeypatch, tmp_path):
    from vaegmm.model import data

    bundled = data.load_bundled()
    monkeypatch.delenv(data.IDX_ENV, raising=False)
    monkeypatch.setattr(data, "cache_dir", lambda: tmp_path)  # no OpenML copy either
    monkeypatch.setattr(data, "load_bundled", lambda: bundled)
    split = load_split(5000)
    assert split.heldout is None and "all 500 bundled images per digit are used" in split.no_heldout


def test_the_test_split_of_an_idx_folder_is_the_held_out_set_when_the_bundled_images_are_used_up(
        monkeypatch, tmp_path):
    from test_data import write_idx
    from vaegmm.model import data

    x, y = data.load_bundled()
    pix = np.rint(x * 255).astype(np.uint8).reshape(-1, 28, 28)
    rng = np.random.default_rng(0)
    test = rng.integers(0, 256, size=(60, 28, 28), dtype=np.uint8)
    test[:5] = pix[:5]  # five test images equal to training images: left out
    write_idx(tmp_path, pix, y, gz=False, test_images=test, test_labels=np.repeat(np.arange(10), 6))
    monkeypatch.setenv(data.IDX_ENV, str(tmp_path))
    split = load_split(5000, source="bundled")
    assert "test split" in split.heldout.origin
    # 6 per digit, but digit 0's first five equal training images: 1 left, so 1 per digit
    assert np.bincount(split.heldout.labels).tolist() == [1] * 10


def test_held_out_accuracy_of_a_small_run_uses_the_training_matching(small_run):
    cfg, trained = small_run
    held = trained.heldout
    assert held is not None and len(held.images) == 4000  # 400 per digit outside the 100 per digit trained on
    last = trained.history[-1]
    # the matching is learned on the training images ...
    np.testing.assert_array_equal(last.digit_of_class, digit_matching(last.classes, trained.labels, 10))
    # ... and the held-out images are scored with it, never re-matched on their own labels
    assert last.heldout_accuracy == pytest.approx(np.mean(last.digit_of_class[last.heldout_classes] == held.labels))
    assert clustering_accuracy(last.heldout_classes, held.labels) >= last.heldout_accuracy
    # a trained model recognises digits it never saw well above chance (0.1), near its training accuracy
    assert last.heldout_accuracy > 0.4 and abs(last.heldout_accuracy - last.accuracy) < 0.1
    assert 0.3 < last.heldout_nmi < 1.0
    assert trained.history[0].heldout_accuracy < 0.3  # the untrained encoder
    m = last.metrics()
    assert m["heldout_accuracy"] == last.heldout_accuracy and m["heldout_n"] == 4000


def test_ask_answers_where_images_land(small_run):
    _, trained = small_run
    r = trained.history[-1]
    model = TrainedIteration.from_result(r)
    images = trained.heldout.images[:6]
    from vaegmm.views.latent2d import fit_lda_axes

    lda = fit_lda_axes(r.codes, r.classes)
    tsne = np.random.default_rng(0).normal(size=(len(r.codes), 2)).astype(np.float32)
    a = ask(model, images, lda=lda, tsne=tsne)
    np.testing.assert_allclose(a.codes, r.heldout_codes[:6], atol=1e-5)  # the held-out scoring asked the same way
    np.testing.assert_array_equal(a.classes, r.heldout_classes[:6])
    np.testing.assert_allclose(a.proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(a.digits, r.digit_of_class[a.classes])
    np.testing.assert_allclose(a.pca_xy, r.pca.transform(a.codes), atol=1e-6)
    np.testing.assert_allclose(a.lda_xy, lda.transform(a.codes), atol=1e-6)
    assert a.nearest.shape == (6, 5) and a.tsne_approximate
    np.testing.assert_allclose(a.tsne_xy, tsne[a.nearest].mean(axis=1), atol=1e-6)
    d2 = ((r.encoder_mean[None] - a.codes[:, None]) ** 2).sum(axis=2)
    np.testing.assert_array_equal(a.nearest[:, 0], d2.argmin(axis=1))
    assert a.reconstruction.shape == (6, 784) and 0 <= a.reconstruction.min() and a.reconstruction.max() <= 1
    # one image (784,) and 0-255 values are accepted; a wrong width is one line
    one = ask(model, np.rint(images[0] * 255))
    assert one.classes.shape == (1,) and one.classes[0] == a.classes[0]
    with pytest.raises(ValueError, match="784 values"):
        ask(model, np.zeros((2, 100)))


def test_decoding_a_pca_point_and_a_walk_between_class_means(small_run):
    _, trained = small_run
    r = trained.history[-1]
    model = TrainedIteration.from_result(r)
    xy = np.array([[0.5, -1.0]])
    code = model.pca_inverse(xy)
    np.testing.assert_allclose(r.pca.transform(code), xy, atol=1e-5)
    codes, images = decode_line(model, r.class_means[1], r.class_means[4], steps=9)
    assert codes.shape == (9, r.codes.shape[1]) and images.shape == (9, 784)
    np.testing.assert_allclose(codes[0], r.class_means[1], atol=1e-6)
    np.testing.assert_allclose(codes[-1], r.class_means[4], atol=1e-6)
    np.testing.assert_allclose(codes[4], (r.class_means[1] + r.class_means[4]) / 2, atol=1e-6)
    np.testing.assert_allclose(images[0], model.decode(r.class_means[1:2])[0], atol=1e-6)
    with pytest.raises(ValueError, match="steps must be"):
        decode_line(model, r.class_means[0], r.class_means[1], steps=1)


def test_a_saved_iteration_answers_as_the_live_one_and_an_old_one_says_it_cannot(small_run, tmp_path):
    _, trained = small_run
    r = trained.history[-1]
    np.savez(tmp_path / "it.npz", **iteration_arrays(r))
    with np.load(tmp_path / "it.npz") as f:
        back = iteration_from_arrays(f)
    images = trained.heldout.images[:50]
    live = ask(TrainedIteration.from_result(r), images)
    saved = ask(TrainedIteration.from_result(back), images)
    np.testing.assert_allclose(saved.codes, live.codes, atol=1e-6)  # the encoder is kept in float32
    np.testing.assert_allclose(saved.proba, live.proba, atol=1e-6)
    np.testing.assert_array_equal(saved.digits, live.digits)
    np.testing.assert_array_equal(saved.nearest, live.nearest)
    np.testing.assert_allclose(saved.reconstruction, live.reconstruction, atol=2e-2)  # decoder in float16
    assert back.heldout_accuracy == pytest.approx(r.heldout_accuracy)
    np.testing.assert_array_equal(back.heldout_classes, r.heldout_classes)
    # a file from before the answering state was kept: it still opens, and asking says why it cannot answer
    old = {k: v for k, v in iteration_arrays(r).items()
           if not k.startswith(("encoder.", "gmm.", "heldout")) and k != "digit_of_class"}
    np.savez(tmp_path / "old.npz", **old)
    with np.load(tmp_path / "old.npz") as f:
        before = iteration_from_arrays(f)
    assert before.heldout_accuracy is None and before.accuracy == pytest.approx(r.accuracy)
    with pytest.raises(NotAnswerable, match="saved before"):
        TrainedIteration.from_result(before)


class _Run:
    """The reading side of a run as the pages see it (history and views)."""

    def __init__(self, history):
        from vaegmm.views.latent2d import RunViews

        self.history = history
        self.views = RunViews()


def test_asking_a_run_uses_its_own_views(small_run):
    _, trained = small_run
    run = _Run(trained.history)
    i = trained.history[-1].iteration
    a = run_ask.ask_run(run, i, trained.heldout.images[:3])
    np.testing.assert_allclose(a.lda_xy, run.views.lda_axes(run.history, i).transform(a.codes), atol=1e-6)
    assert a.tsne_xy is None and run.views.tsne_status(i) == ""  # asking never starts a t-SNE
    code, image = run_ask.decode_pca_point(run, i, (1.0, 2.0))
    np.testing.assert_allclose(trained.history[-1].pca.transform(code[None])[0], [1.0, 2.0], atol=1e-5)
    codes, images = run_ask.walk_between_classes(run, i, 0, 3, steps=8)
    assert codes.shape[0] == 8 and images.shape == (8, 784)
    assert run_ask.answerable(run, i) and not run_ask.answerable(_Run([]), i)
    with pytest.raises(ValueError, match="no finished iteration 9"):
        run_ask.ask_run(run, 9, trained.heldout.images[:1])
    assert run_ask.heldout_words({"images": 0, "reason": "x"}) == "no held-out set: x"


def test_recognising_the_training_images_is_the_training_read_out_when_the_gmm_clustered_their_means():
    from vaegmm.model.config import DataConfig, GMMConfig, RunConfig, VAEConfig
    from vaegmm.model.mutual import MutualLearner

    cfg = RunConfig(data=DataConfig(n=200), vae=VAEConfig(latent_dim=3, epochs=2, batch_size=50),
                    gmm=GMMConfig(n_classes=4, backend="em", n_init=1), iterations=1, codes="mean")
    split = load_split(200, seed=0)
    history = MutualLearner(cfg, split.images, split.labels).run()
    assert all(r.recognised_accuracy == pytest.approx(r.accuracy) for r in history)
    assert all(r.heldout_accuracy is None for r in history)  # no held-out set was given
