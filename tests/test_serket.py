import numpy as np
import pytest

import vaegmm.serket as srk
from vaegmm.model.data import load_mnist
from vaegmm.model.gmm import CollapsedGibbsGMM
from vaegmm.model.metrics import clustering_accuracy


def test_tutorial_script_shape_runs_and_writes_serket_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    srk.reset()
    images, labels = load_mnist(200, seed=0)
    # --- Serket's tutorial, almost verbatim (smaller: 200 images, 3 epochs, 3 iterations) ---
    obs = srk.Observation(images)
    vae1 = srk.VAE(6, itr=3, batch_size=50)
    gmm1 = srk.GMM(10, category=labels, itr=20)
    vae1.connect(obs)
    gmm1.connect(vae1)
    for i in range(3):
        vae1.update()
        gmm1.update()
    # ------------------------------------------------------------------------------------
    assert vae1.name == "module001_vae" and gmm1.name == "module002_gmm"
    z = np.loadtxt(tmp_path / "module001_vae" / "z_learn.txt")
    classes = np.loadtxt(tmp_path / "module002_gmm" / "class_learn.txt", dtype=int)
    acc = float(np.loadtxt(tmp_path / "module002_gmm" / "acc_learn.txt"))
    assert z.shape == (200, 6) and classes.shape == (200,)
    assert acc == clustering_accuracy(classes, labels) or abs(acc - clustering_accuracy(classes, labels)) < 1e-6
    for sub in ("001", "002", "003"):
        assert (tmp_path / "module001_vae" / sub / "z_learn.txt").is_file()
        assert (tmp_path / "module002_gmm" / sub / "class_learn.txt").is_file()
    # messages: codes forward; backward, each point's last sampled class's mean (Serket's mu), while the classes
    # reported are the argmax of Pdz; the facade uses Serket's own sampler
    assert isinstance(gmm1.gmm, CollapsedGibbsGMM)
    np.testing.assert_allclose(vae1.prior_mu, gmm1.gmm.means_[gmm1.gmm.sampled_labels_], rtol=1e-6)
    np.testing.assert_array_equal(gmm1.classes, gmm1.gmm.resp_.argmax(axis=1))
    np.testing.assert_allclose(z, vae1.codes, atol=1e-6)


def test_numbering_follows_creation_and_save_dir(tmp_path):
    srk.reset(tmp_path)
    a, b, c = srk.VAE(2, itr=1), srk.GMM(2), srk.VAE(2, itr=1)
    assert [m.name for m in (a, b, c)] == ["module001_vae", "module002_gmm", "module003_vae"]
    assert a.folder == tmp_path / "module001_vae"
    srk.reset()


def test_update_before_connect_is_a_clear_error():
    srk.reset()
    import pytest

    with pytest.raises(RuntimeError, match="not connected"):
        srk.VAE(2).update()
    with pytest.raises(RuntimeError, match="not connected"):
        srk.GMM(2).update()


def test_recognition_labels_new_data_and_learns_nothing(tmp_path, monkeypatch):
    from vaegmm.model.data import load_split

    monkeypatch.chdir(tmp_path)
    srk.reset()
    split = load_split(200, seed=0)
    obs = srk.Observation(split.images)
    vae1 = srk.VAE(6, itr=3, batch_size=50)
    gmm1 = srk.GMM(10, category=split.labels, itr=20)
    vae1.connect(obs)
    gmm1.connect(vae1)
    vae1.update()
    gmm1.update()
    weights = {k: v.clone() for k, v in vae1.model.state_dict().items()}
    sampled = gmm1.gmm.sampled_labels_.copy()
    test_x, test_y = split.heldout.images[:300], split.heldout.labels[:300]
    z = vae1.recog(test_x)
    classes = gmm1.recog(category=test_y)
    # nothing learned
    assert all((vae1.model.state_dict()[k] == v).all() for k, v in weights.items())
    np.testing.assert_array_equal(gmm1.gmm.sampled_labels_, sampled)
    # the encoder's means, the fitted GMM's classes, scored with the matching learned on the training labels
    np.testing.assert_allclose(np.loadtxt(tmp_path / "module001_vae" / "z_recog.txt"), z, atol=1e-6)
    np.testing.assert_array_equal(classes, gmm1.gmm.predict(z))
    np.testing.assert_array_equal(np.loadtxt(tmp_path / "module002_gmm" / "class_recog.txt", dtype=int), classes)
    assert gmm1.recog_accuracy == pytest.approx(np.mean(gmm1.digit_of_class[classes] == test_y))
    assert float(np.loadtxt(tmp_path / "module002_gmm" / "acc_recog.txt")) == pytest.approx(gmm1.recog_accuracy,
                                                                                             abs=1e-6)
    with pytest.raises(RuntimeError, match="has not been trained yet"):
        srk.GMM(3).recog(np.zeros((2, 6)))
