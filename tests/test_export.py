import io
import json
import zipfile

import numpy as np
import pytest

from vaegmm.views import export
from vaegmm.model.config import DataConfig, GMMConfig, RunConfig, VAEConfig
from vaegmm.model.data import load_mnist
from vaegmm.views.export import read_run, write_run, zip_run
from vaegmm.model.mutual import MutualLearner


@pytest.fixture(scope="module")
def run():
    cfg = RunConfig(data=DataConfig(n=200), vae=VAEConfig(latent_dim=3, epochs=2, batch_size=50),
                    gmm=GMMConfig(n_classes=4, backend="em"), iterations=2, seed=0)
    x, y = load_mnist(200, seed=0)
    return cfg, MutualLearner(cfg, x, y).run(), y


def test_recognition_files_in_serket_layout(tmp_path):
    from vaegmm.model.data import load_split

    cfg = RunConfig(data=DataConfig(n=200), vae=VAEConfig(latent_dim=3, epochs=2, batch_size=50),
                    gmm=GMMConfig(n_classes=4, backend="em"), iterations=2, seed=0)
    split = load_split(200, seed=0)
    hist = MutualLearner(cfg, split.images, split.labels, heldout=split.heldout).run()
    out = write_run(tmp_path / "r", cfg, hist, split.labels, heldout_labels=split.heldout.labels)
    m = len(split.heldout.images)
    z = np.loadtxt(out / "module001_vae" / "z_recog.txt")
    classes = np.loadtxt(out / "module002_gmm" / "class_recog.txt", dtype=int)
    acc = float(np.loadtxt(out / "module002_gmm" / "acc_recog.txt"))
    np.testing.assert_allclose(z, hist[-1].heldout_codes, atol=1e-6)
    assert z.shape == (m, 3) and classes.shape == (m,) and acc == pytest.approx(hist[-1].heldout_accuracy, abs=1e-6)
    np.testing.assert_array_equal(np.loadtxt(out / "module002_gmm" / "category_recog.txt", dtype=int),
                                  split.heldout.labels)
    back = read_run(out)
    for r in hist:
        np.testing.assert_array_equal(back["recog_classes"][r.iteration], r.heldout_classes)
        assert back["recog_accuracy"][r.iteration] == pytest.approx(r.heldout_accuracy, abs=1e-6)
        assert back["history"]["iterations"][r.iteration]["heldout_accuracy"] == r.heldout_accuracy
    # the training's own accuracy uses the same matching the recognition was scored with
    assert hist[-1].accuracy == pytest.approx(np.mean(hist[-1].digit_of_class[hist[-1].classes] == split.labels))


def test_folder_has_serket_layout_and_round_trips(run, tmp_path):
    cfg, hist, y = run
    out = write_run(tmp_path / "r", cfg, hist, y)
    for rel in ["module001_vae/z_learn.txt", "module002_gmm/class_learn.txt", "module002_gmm/acc_learn.txt",
                "module002_gmm/mu_learn.txt", "module001_vae/000/z_learn.txt", "module002_gmm/002/acc_learn.txt",
                "history.json", "pca.png"]:
        assert (out / rel).is_file(), rel
    back = read_run(out)
    assert RunConfig.from_dict(back["history"]["config"]) == cfg
    assert back["history"]["status"] == "finished"
    for r in hist:
        np.testing.assert_allclose(back["codes"][r.iteration], r.codes, atol=1e-6)
        np.testing.assert_array_equal(back["classes"][r.iteration], r.classes)
        np.testing.assert_allclose(back["means"][r.iteration], r.class_means, atol=1e-6)
        assert abs(back["accuracy"][r.iteration] - r.accuracy) < 1e-6
        saved = back["history"]["iterations"][r.iteration]
        assert saved["nmi"] == pytest.approx(r.nmi) and saved["ari"] == pytest.approx(r.ari)
        assert len(saved["recon"]) == len(r.recon)
    np.testing.assert_array_equal(back["last"]["classes"], hist[-1].classes)
    assert (out / "pca.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_interrupted_export_leaves_no_folder_and_keeps_the_old_one(run, tmp_path, monkeypatch):
    cfg, hist, y = run
    out = write_run(tmp_path / "r", cfg, hist[:2], y)
    old = json.loads((out / "history.json").read_text())

    def boom(*a, **k):
        raise KeyboardInterrupt  # a stop in the middle of writing

    monkeypatch.setattr(export, "save_pca_figure", boom)
    with pytest.raises(KeyboardInterrupt):
        write_run(tmp_path / "r", cfg, hist, y)
    with pytest.raises(KeyboardInterrupt):
        write_run(tmp_path / "fresh", cfg, hist, y)
    assert not (tmp_path / "fresh").exists()
    assert json.loads((out / "history.json").read_text()) == old  # the complete old export is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # no temporary folders left behind


def test_zip_holds_the_same_files(run):
    cfg, hist, y = run
    with zipfile.ZipFile(io.BytesIO(zip_run(cfg, hist, y))) as zf:
        names = set(zf.namelist())
        assert "vaegmm_run/module002_gmm/acc_learn.txt" in names and "vaegmm_run/history.json" in names
        assert float(zf.read("vaegmm_run/module002_gmm/acc_learn.txt")) == pytest.approx(hist[-1].accuracy, abs=1e-6)


def test_empty_history_is_refused(tmp_path):
    with pytest.raises(ValueError, match="nothing to export"):
        write_run(tmp_path / "x", RunConfig(), [], np.zeros(0))


def test_an_existing_folder_is_kept_without_overwrite_and_replaced_with_it(run, tmp_path):
    cfg, hist, y = run
    out = write_run(tmp_path / "r", cfg, hist[:2], y, plot=False)
    assert out.stat().st_mode & 0o777 == 0o755  # readable by others, as the files in it
    with pytest.raises(FileExistsError):
        write_run(tmp_path / "r", cfg, hist, y, overwrite=False, plot=False)
    assert len(read_run(out)["history"]["iterations"]) == 2  # the old export is untouched
    write_run(tmp_path / "r", cfg, hist, y, plot=False)
    assert len(read_run(out)["history"]["iterations"]) == len(hist)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # no temporary or old folders left behind
