"""The 2-D views (vaegmm.views.latent2d): LDA on the GMM's classes, t-SNE warm starts, fallbacks, the per-run cache."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from vaegmm.views.latent2d import (LDA, PCA, TSNE, RunViews, TsneService, default_tsne_service, fit_lda_axes, pca_view,
                                   procrustes_rotation, tsne_view)


def planted(n_per=100, k=4, d=8, seed=0):
    """k classes apart only along the last two (low-variance) dimensions; dimensions 0-1 are wide noise."""
    rng = np.random.default_rng(seed)
    classes = np.repeat(np.arange(k), n_per)
    x = rng.normal(0, 0.3, (k * n_per, d))
    x[:, 0] *= 20
    x[:, 1] *= 15
    angles = 2 * np.pi * np.arange(k) / k
    x[:, d - 2] += 2.0 * np.cos(angles)[classes]
    x[:, d - 1] += 2.0 * np.sin(angles)[classes]
    return x.astype(np.float32), classes


def fisher(xy, classes) -> float:
    """Between-class over within-class variance of a 2-D picture (larger = classes better apart)."""
    xy = np.asarray(xy, dtype=np.float64)
    mu = xy.mean(axis=0)
    between = within = 0.0
    for c in np.unique(classes):
        p = xy[classes == c]
        between += len(p) * np.sum((p.mean(axis=0) - mu) ** 2)
        within += np.sum((p - p.mean(axis=0)) ** 2)
    return between / within


def test_lda_separates_planted_classes_that_pca_mixes():
    x, classes = planted()
    pca = pca_view(x)
    lda = fit_lda_axes(x, classes).transform(x)
    assert lda.shape == (len(x), 2) and lda.dtype == np.float32
    assert fisher(lda, classes) > 20 * fisher(pca, classes)
    assert fisher(lda, classes) > 5  # the classes are clearly apart


def test_lda_axes_are_unit_length_and_turn_to_a_target():
    x, classes = planted()
    axes = fit_lda_axes(x, classes)
    assert np.allclose(np.linalg.norm(axes.matrix, axis=0), 1.0)
    target = axes.transform(x) @ np.array([[0.0, -1.0], [1.0, 0.0]])  # the same picture turned by 90 degrees
    turned = fit_lda_axes(x, classes, target=target).transform(x)
    assert np.abs(turned - target).max() < 1e-3


@pytest.mark.parametrize("k, needle", [(1, "at least 3 GMM classes"), (2, "at least 3 GMM classes")])
def test_lda_with_too_few_classes_says_why(k, needle):
    x, _ = planted()
    with pytest.raises(ValueError, match=needle):
        fit_lda_axes(x, np.arange(len(x)) % k)


def test_lda_rejects_bad_codes():
    x, classes = planted()
    with pytest.raises(ValueError, match="2 latent dimensions"):
        fit_lda_axes(x[:, :1], classes)
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit_lda_axes(bad, classes)


def test_tsne_too_few_points_for_its_perplexity_says_why():
    x, _ = planted(n_per=10)  # 40 points: perplexity 30 needs 92
    with pytest.raises(ValueError, match="perplexity 30 needs at least 92 points; there are 40"):
        tsne_view(x)
    with pytest.raises(ValueError, match="NaN"):
        tsne_view(np.full((200, 3), np.nan, dtype=np.float32))


def disagreement(a, b) -> float:
    """Mean distance between two pictures of the same points, each scaled to unit spread, after the best turn."""
    a = (a - a.mean(axis=0)) / a.std()
    b = (b - b.mean(axis=0)) / b.std()
    return float(np.linalg.norm(a @ procrustes_rotation(a, b) - b, axis=1).mean())


def test_tsne_warm_start_keeps_points_close():
    x, classes = planted(n_per=60, k=5, d=6, seed=1)
    rng = np.random.default_rng(2)
    before = tsne_view(x, seed=0)
    assert before.shape == (len(x), 2) and np.isfinite(before).all()
    moved = x + rng.normal(0, 0.05, x.shape).astype(np.float32)  # the next iteration's codes: slightly moved
    # a cold start whose layout is unrelated: random start
    cold = tsne_view(moved, init=rng.normal(0, 1, (len(x), 2)), seed=3)
    warm = tsne_view(moved, init=before, seed=3)
    assert disagreement(warm, before) < 0.75 * disagreement(cold, before)


def fake_history(n_iter=3, n=150, k=4, seed=0):
    """IterationResult-like records (codes, classes, PCA projection, class means) of a run whose classes tighten."""
    rng = np.random.default_rng(seed)
    classes = np.arange(n) % k
    centres = rng.normal(0, 3, (k, 5))
    out = []
    prev = None
    for i in range(n_iter):
        spread = 2.0 / (i + 1)
        codes = (centres[classes] + rng.normal(0, spread, (n, 5))).astype(np.float32)
        proj = pca_view(codes, prev)
        prev = proj
        means = np.stack([codes[classes == c].mean(axis=0) for c in range(k)])
        out.append(SimpleNamespace(iteration=i, codes=codes, classes=classes, projection=proj, class_means=means,
                                   class_means_2d=proj[:k] * 0, accuracy=0.5 + 0.1 * i, recon=[1.0] * 5,
                                   class_counts=np.bincount(classes)))
    return out


def test_run_views_lda_cached_and_live_frames_in_the_last_axes():
    h = fake_history()
    views = RunViews(TsneService(in_process=True))
    a1 = views.lda_axes(h, 1)
    assert views.lda_axes(h, 1) is a1  # cached
    v = views.iteration(h, 2, LDA)
    assert v.kind == LDA and v.xy.shape == (150, 2) and v.means.shape == (4, 2) and v.axes == ("LD 1", "LD 2")
    snap = SimpleNamespace(iteration=2, codes=h[2].codes.astype(np.float16), projection=h[2].projection)
    live = views.live(h, snap, LDA)
    assert np.allclose(live.xy, a1.transform(h[2].codes), atol=0.05)  # iteration 1's axes on the new codes
    assert views.live(h, snap, PCA).kind == PCA


def test_run_views_lda_failure_is_a_value_error_every_time():
    h = fake_history(k=2)
    views = RunViews(TsneService(in_process=True))
    for _ in range(2):
        with pytest.raises(ValueError, match="at least 3 GMM classes"):
            views.iteration(h, 1, LDA)


def test_run_views_tsne_is_computed_off_the_caller_and_cached():
    h = fake_history(n=150)
    views = RunViews(TsneService(in_process=True, threads=1))
    assert views.iteration(h, 0, TSNE) is None  # queued, never waited for
    assert views.tsne_status(0) == "computing"
    assert views.wait_tsne(0, 120)
    v = views.iteration(h, 0, TSNE)
    assert v.kind == TSNE and v.xy.shape == (150, 2) and views.tsne_seconds[0] > 0
    assert views.iteration(h, 1, TSNE) is None  # warm-started from iteration 0's embedding
    assert views.wait_tsne(1, 120) and views.tsne_status(1) == "ready"


def test_run_views_tsne_failure_falls_to_the_caller():
    h = fake_history(n=40)
    views = RunViews(TsneService(in_process=True, threads=1))
    assert views.iteration(h, 0, TSNE) is None
    assert views.wait_tsne(0, 60) and views.tsne_status(0) == "failed"
    with pytest.raises(ValueError, match="perplexity"):
        views.iteration(h, 0, TSNE)


def test_tsne_in_a_worker_process():
    """The dashboard's path: the t-SNE runs in a process forked from the training fork server."""
    from vaegmm.runs.runner import warm_up

    warm_up(background=False)
    h = fake_history(n=120)
    views = RunViews(TsneService(threads=1))
    assert views.iteration(h, 0, TSNE) is None
    assert views.wait_tsne(0, 120) and views.tsne_status(0) == "ready", views._tsne_errors
    bad = RunViews(TsneService(threads=1))
    assert bad.iteration(fake_history(n=40), 0, TSNE) is None
    assert bad.wait_tsne(0, 120)
    with pytest.raises(ValueError, match="perplexity"):  # the worker's ValueError comes back as one
        bad.iteration(fake_history(n=40), 0, TSNE)


def test_ranges_cover_everything_drawn_and_only_grow():
    views = RunViews()
    (x0, x1), (y0, y1) = views.ranges(PCA, np.array([[0.0, 0.0], [1.0, 2.0]]))
    assert x0 < 0 < 1 < x1 and y0 < 0 < 2 < y1
    assert views.ranges(PCA, np.array([[0.5, 0.5]])) == ((x0, x1), (y0, y1))  # inside: unchanged
    (a0, a1), (b0, b1) = views.ranges(PCA, np.array([[3.0, -1.0]]))
    assert a1 > 3 and b0 < -1 and a0 <= x0 and b1 >= y1
    assert views.ranges(LDA) is None  # nothing drawn in LDA yet


def test_to_half_clips_to_float16_range_and_keeps_nan():
    import warnings

    from vaegmm.runs.snapshots import HALF_MAX, to_half

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = to_half(np.array([[1e9, -1e9], [np.nan, 1.5]]))
    assert out.dtype == np.float16 and out.shape == (2, 2)
    assert out[0, 0] == np.float16(HALF_MAX) and out[0, 1] == -np.float16(HALF_MAX)
    assert np.isnan(out[1, 0]) and out[1, 1] == np.float16(1.5)


def test_one_tsne_service_per_process_sized_by_its_environment(monkeypatch):
    monkeypatch.setenv("VAEGMM_TSNE_JOBS", "3")
    monkeypatch.setenv("VAEGMM_TSNE_THREADS", "two")  # not a number: the default (all cores)
    assert TsneService().jobs == 3 and TsneService().threads >= 1
    monkeypatch.setenv("VAEGMM_TSNE_JOBS", "0")
    assert TsneService().jobs == 1
    default_tsne_service.reset()
    try:
        service = default_tsne_service()
        assert default_tsne_service() is service and RunViews().tsne_service is service
    finally:
        default_tsne_service.reset()
