"""Replay frames, the Plotly replay figure, the GIF / MP4 / PNG exports and the snapshot log's memory bound."""
from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import plotly.graph_objects as go

from dashboard import charts
from test_views2d import fake_history
from vaegmm.views import animation, export, scatter
from vaegmm.runs.snapshots import LogFrame, SnapshotLog
from vaegmm.views.latent2d import LDA, PCA, TSNE, RunViews, TsneService


def log_for(history, per_iteration=4, epochs=20):
    """In-update frames between the finished iterations: the codes moving from one iteration to the next."""
    views = RunViews()
    frames = []
    for r in history[1:]:
        prev = history[r.iteration - 1]
        axes = views.lda_axes(history, prev.iteration)
        for j in range(1, per_iteration + 1):
            t = j / (per_iteration + 1)
            codes = (1 - t) * prev.codes + t * r.codes
            frames.append(LogFrame(r.iteration, j * epochs // (per_iteration + 1), epochs, 0.1 * j,
                                   ((1 - t) * prev.projection + t * r.projection).astype(np.float16),
                                   axes.transform(codes).astype(np.float16)))
    return frames


def test_replay_frames_in_order_with_every_iteration():
    h = fake_history(n_iter=3)
    log = log_for(h)
    labels = np.arange(150) % 10
    rp = animation.replay_frames(h, log, labels, PCA, "digit", RunViews())
    assert len(rp.frames) == len(h) + len(log) == 11
    assert [(f.iteration, f.finished) for f in rp.frames][:6] == [(0, True), (1, False), (1, False), (1, False),
                                                                  (1, False), (1, True)]
    assert all(f.xy.shape == (150, 2) for f in rp.frames)
    assert "iteration 1, VAE epoch 4 of 20" in rp.frames[1].title and "accuracy" in rp.frames[1].title
    assert sorted(rp.group_names) == list(range(10))
    (x0, x1), (y0, y1) = rp.ranges
    allxy = np.concatenate([f.xy for f in rp.frames])
    assert x0 <= allxy[:, 0].min() and allxy[:, 0].max() <= x1 and y0 <= allxy[:, 1].min()
    # thinning keeps every finished iteration
    few = animation.replay_frames(h, log, labels, PCA, "class", RunViews(), max_frames=6)
    assert len(few.frames) == 6 and sum(f.finished for f in few.frames) == 3
    # live frames are coloured by the previous iteration's GMM classes
    assert np.array_equal(few.frames[1].groups, h[0].classes)


def test_replay_in_lda_and_its_fallback():
    h = fake_history(n_iter=3)
    rp = animation.replay_frames(h, log_for(h), np.zeros(150, int), LDA, "class", RunViews())
    assert rp.axes == ("LD 1", "LD 2") and len(rp.frames) == 11
    two = fake_history(n_iter=2, k=2)
    with pytest.raises(ValueError, match="3 GMM classes"):
        animation.replay_frames(two, [], np.zeros(150, int), LDA, "class", RunViews())


def test_replay_in_tsne_waits_for_every_iteration():
    h = fake_history(n_iter=2, n=120)
    views = RunViews(TsneService(in_process=True, threads=1))
    with pytest.raises(animation.Pending) as p:
        animation.replay_frames(h, log_for(h), np.zeros(120, int), TSNE, "digit", views)
    assert p.value.total == 2
    for i in range(2):
        assert views.wait_tsne(i, 120)
        views.iteration(h, 1, TSNE)  # queues iteration 1 once 0 is done
    assert views.wait_tsne(1, 120)
    rp = animation.replay_frames(h, log_for(h), np.zeros(120, int), TSNE, "digit", views)
    assert len(rp.frames) == 2 and all(f.finished for f in rp.frames)  # one frame per iteration


def test_replay_figure_has_a_frame_per_replay_frame_and_play_controls():
    h = fake_history(n_iter=3)
    rp = animation.replay_frames(h, log_for(h), np.arange(150) % 10, PCA, "digit", RunViews())
    fig = charts.replay_figure(rp)
    d = fig.to_dict()
    assert len(d["frames"]) == len(rp.frames) == 11
    assert len(d["layout"]["sliders"][0]["steps"]) == 11
    labels = [b["label"] for b in d["layout"]["updatemenus"][0]["buttons"]]
    assert any("Play" in b for b in labels) and any("Pause" in b for b in labels)
    assert d["layout"]["meta"] == "replay"
    assert [t["meta"] for t in d["data"]].count("points") == 10
    assert d["frames"][3]["layout"]["title"]["text"] == rp.frames[3].title
    assert fig.to_dict() is not d and fig.to_dict()["frames"] is d["frames"]  # built once (frozen)


def small_replay(n_frames=6, n=200):
    rng = np.random.default_rng(0)
    groups = np.arange(n) % 10
    frames = [animation.Frame(i // 3, 5 * (i % 3), 15, i % 3 == 0, rng.normal(size=(n, 2)).astype(np.float32),
                              groups, rng.normal(size=(10, 2)).astype(np.float32), 0.1 * i)
              for i in range(n_frames)]
    return animation.Replay(frames, PCA, "digit", {g: f"digit {g}" for g in range(10)}, ((-4, 4), (-4, 4)))


def test_gif_is_a_valid_animation_with_one_frame_per_replay_frame(tmp_path):
    rp = small_replay(7)
    path = animation.write_gif(rp, tmp_path / "run.gif")
    with Image.open(path) as im:
        assert im.format == "GIF" and im.is_animated and im.n_frames == 7 and im.size == (960, 720)
        durations = []
        for i in range(im.n_frames):
            im.seek(i)
            durations.append(im.info["duration"])
    assert durations[0] == 100 * animation.HOLD and durations[1] == 100 and durations[-1] == 100 * animation.END_HOLD
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left
    assert path.stat().st_mode & 0o777 == 0o644


def test_failed_export_leaves_no_half_written_file(tmp_path, monkeypatch):
    rp = small_replay(5)
    target = tmp_path / "run.gif"
    target.write_bytes(b"old")  # an earlier file stays as it was

    def save_half_then_fail(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"GIF89a half of it")
        raise OSError("No space left on device")

    monkeypatch.setattr(Image.Image, "save", save_half_then_fail)
    with pytest.raises(OSError, match="No space"):
        animation.write_gif(rp, target)
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]
    monkeypatch.undo()
    rp.frames[3].groups = None  # a frame that cannot be drawn
    with pytest.raises(TypeError):
        animation.write_gif(rp, tmp_path / "other.gif")
    assert list(tmp_path.iterdir()) == [target]
    with pytest.raises(ValueError, match="no frames"):
        animation.write_gif(animation.Replay([], PCA, "digit"), target)


def test_png_and_bytes():
    rp = small_replay(3)
    png = animation.file_bytes(rp, "png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(io.BytesIO(png)).size == (960, 720)
    gif = animation.file_bytes(rp, "gif")
    assert gif[:6] == b"GIF89a" and Image.open(io.BytesIO(gif)).n_frames == 3
    with pytest.raises(ValueError, match="unknown format"):
        animation.file_bytes(rp, "avi")


@pytest.mark.skipif(not animation.mp4_available(), reason="no ffmpeg (pip install imageio-ffmpeg)")
def test_mp4(tmp_path):
    rp = small_replay(4)
    path = animation.write_mp4(rp, tmp_path / "run.mp4")
    data = path.read_bytes()
    assert data[4:8] == b"ftyp" and len(data) > 1000
    assert list(tmp_path.iterdir()) == [path]


def test_gif_in_a_worker_process():
    from vaegmm.runs.runner import warm_up

    warm_up(background=False)
    gif = animation.file_bytes_in_worker(small_replay(3), "gif", timeout=120)
    assert Image.open(io.BytesIO(gif)).n_frames == 3
    with pytest.raises(ValueError, match="unknown format"):
        animation.file_bytes_in_worker(small_replay(1), "avi", timeout=120)



# ---------------------------------------------------------------------------------------------- one scatter spec
def test_every_picture_draws_a_group_in_the_colour_of_the_one_scatter_spec():
    """The live chart, the Plotly replay and a file's frame colour group g with scatter.group_colour(g)."""
    assert scatter.DIGIT_COLOURS == scatter.GROUP_COLOURS[:10] and len(set(scatter.GROUP_COLOURS)) == 20
    assert scatter.group_colour(23) == scatter.group_colour(3)  # more classes wrap around
    for module in (animation, export, charts):
        assert not hasattr(module, "DIGIT_COLOURS")  # written once, in vaegmm.views.scatter
    rng = np.random.default_rng(0)
    labels, classes = np.arange(300) % 10, np.arange(300) % 12
    for by, groups in (("digit", labels), ("class", classes)):
        d = charts.view_scatter(rng.normal(size=(300, 2)), labels, classes, by, means=np.zeros((12, 2))).to_dict()
        points = [t for t in d["data"] if t["meta"] == "points"]
        assert [t["name"] for t in points] == [scatter.group_name(g, by) for g in np.unique(groups)]
        assert [t["marker"]["color"] for t in points] == [scatter.group_colour(g) for g in np.unique(groups)]
        assert [t["name"] for t in d["data"] if t["meta"] == "means"] == [scatter.MEANS_NAME]
    rp = small_replay(2)
    d = charts.replay_figure(rp).to_dict()
    assert [t["marker"]["color"] for t in d["data"] if t["meta"] == "points"] == list(scatter.DIGIT_COLOURS)
    one = animation.Replay([animation.Frame(1, 5, 5, True, rng.normal(size=(200, 2)).astype(np.float32),
                                            np.full(200, 3), None, 0.5)], PCA, "digit", {3: "digit 3"},
                           ((-4, 4), (-4, 4)))
    pixels = np.asarray(Image.open(io.BytesIO(animation.png_bytes(one))).convert("RGB")).reshape(-1, 3)
    rgb = np.array([int(scatter.group_colour(3)[i:i + 2], 16) for i in (1, 3, 5)])
    blended = np.round(scatter.FRAME_POINT_ALPHA * rgb + (1 - scatter.FRAME_POINT_ALPHA) * 255)  # over white
    assert (np.abs(pixels - blended).max(axis=1) <= 2).sum() > 1000  # the points, in digit 3's colour


def test_typed_arrays_are_what_plotly_itself_sends():
    rng = np.random.default_rng(0)
    for a in (rng.normal(size=50).astype(np.float32), rng.integers(0, 9, (40, 3)).astype(np.int32)):
        assert charts.typed_array(a) == go.Figure(go.Scatter(x=a)).to_dict()["data"][0]["x"]
    assert charts.typed_array(np.empty(0, np.float32)).size == 0


def test_the_live_chart_is_built_once_and_drawn_from_its_frozen_dictionary():
    fig = charts.view_scatter(np.zeros((30, 2)), np.arange(30) % 3, np.arange(30) % 3)
    assert isinstance(fig, go.Figure)
    first, second = fig.to_dict(), fig.to_dict()
    assert first is not second and first["data"] is second["data"]


# ---------------------------------------------------------------------------------------------- memory bound
def frame(i, n=3000, lda=True):
    xy = np.full((n, 2), i, dtype=np.float16)
    return LogFrame(1 + i // 20, i % 20, 20, 0.0, xy, xy.copy() if lda else None)


def test_snapshot_log_stays_within_its_bound_and_evenly_spaced():
    log = SnapshotLog(max_bytes=1 << 20)  # 1 MiB: 43 frames of 3000 points
    per = frame(0).nbytes
    assert per == 3000 * 8
    for i in range(2000):  # hundreds of snapshots: a very long run
        log.add(frame(i))
    assert log.nbytes <= (1 << 20)
    kept = [int(f.pca[0, 0]) for f in log.frames()]
    assert len(kept) >= 16
    gaps = set(np.diff(kept))
    assert len(gaps) == 1 and gaps.pop() == log.stride  # evenly spaced over the whole run
    assert kept[0] == 0 and kept[-1] > 2000 - 2 * log.stride


def test_snapshot_log_keeps_every_frame_of_a_classic_run():
    log = SnapshotLog()
    for i in range(110):  # 5 VAE updates of the classic preset at about 2 snapshots a second
        log.add(frame(i))
    assert len(log) == 110 and log.stride == 1 and log.nbytes == 110 * 24000


def test_a_run_keeps_its_snapshots_for_replay():
    """A tiny run with snapshots every 20 ms: the replay log spans every VAE update, bounded, with PCA and
    LDA projections; the live snapshot is dropped when its iteration finishes."""
    from test_runner import slots, tiny  # noqa: F401
    from vaegmm.runs.runner import TrainingRun, warm_up
    from vaegmm.runs.slots import SlotManager

    warm_up(background=False)
    run = TrainingRun(tiny(vae__epochs=60, vae__batch_size=50, iterations=2), slots=SlotManager(1),
                      snapshot_every=0.02)
    run.start()
    assert run.join(120)
    s = run.snapshot()
    assert s.state == "finished", s.message
    assert s.live is None
    frames = run.snapshots
    assert {f.iteration for f in frames} == {1, 2}
    assert all(f.pca.shape == (300, 2) and f.pca.dtype == np.float16 for f in frames)
    assert all(f.lda is not None for f in frames if f.iteration == 2)  # iteration 1's axes exist
    epochs = [(f.iteration, f.epoch) for f in frames]
    assert epochs == sorted(epochs) and all(0 < e < 60 for _, e in epochs)
    assert run.replay_log.nbytes <= run.replay_log.max_bytes
    rp = animation.replay_frames(run.history, frames, run.labels, PCA, "class", run.views)
    assert len(rp.frames) == len(frames) + 3


def test_snapshots_do_not_change_the_run():
    """Same config and seed: the same codes and accuracies with snapshots taken after every epoch as without."""
    from test_runner import tiny
    from vaegmm.model.data import load_mnist
    from vaegmm.model.mutual import MutualLearner
    from vaegmm.runs.snapshots import SnapshotTaker

    cfg = tiny(vae__epochs=8, vae__batch_size=50, codes="sample")
    images, labels = load_mnist(cfg.data.n, cfg.data.digits, cfg.seed, cfg.data.source)
    plain = MutualLearner(cfg, images, labels).run()
    sent = []
    learner = MutualLearner(cfg, images, labels)
    learner.callbacks.append(SnapshotTaker(learner, lambda *msg: sent.append(msg), every=1e-9, max_gap=0.0))
    watched = learner.run()
    assert len(sent) >= 2 * (8 - 1)  # one after every epoch but the last of each update
    assert [r.accuracy for r in watched] == [r.accuracy for r in plain]
    assert np.array_equal(watched[-1].codes, plain[-1].codes)
