"""Images people bring: a Serket tutorial folder (``serket:<folder>``) and uploads (``.npy``, ``.npz``, ``.csv``,
``.txt``, optional labels). Every bad file is one line and keeps nothing; unlabelled data trains, is stored and
exported with "no labels"."""
from __future__ import annotations

import io

import numpy as np
import pytest

from vaegmm.model import data, image_files
from vaegmm.model.config import RunConfig, preset
from vaegmm.model.data import load_mnist, load_split, save_upload
from vaegmm.model.image_files import read_upload


@pytest.fixture
def digits():
    x, y = load_mnist(40, seed=3)
    return x, y


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _text(a, delimiter=" ", header=None) -> bytes:
    buf = io.StringIO()
    np.savetxt(buf, a, delimiter=delimiter, fmt="%.6g", header=header or "", comments="")
    return buf.getvalue().encode()


# ---------------------------------------------------------------------------------------------- Serket
def _serket_folder(tmp_path, x, y):
    np.savetxt(tmp_path / "data.txt", x)  # as Serket's tutorial wrote it: np.savetxt's default format
    np.savetxt(tmp_path / "category.txt", y)
    return tmp_path


def test_a_serket_folder_is_read_exactly_in_its_order(tmp_path, monkeypatch, digits):
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path / "cache"))
    x, _ = digits
    y = np.arange(40) % 10  # Serket's category.txt runs 0, 1, ..., 9, 0, 1, ...
    folder = tmp_path / "mnist"
    folder.mkdir()
    _serket_folder(folder, x, y)
    src = f"serket:{folder}"
    images, labels = load_mnist(40, seed=7, source=src)  # all of them: the files' images in the files' order
    np.testing.assert_allclose(images, x, atol=1e-7)
    np.testing.assert_array_equal(labels, y)
    again, _ = load_mnist(40, seed=1, source=src)  # from the binary cache now, and the seed changes nothing
    np.testing.assert_array_equal(again, images)
    assert list((tmp_path / "cache" / "serket").glob("*.npz"))
    some = load_split(20, seed=0, source=src)  # a subset: 2 per digit, still in the files' order
    assert np.bincount(some.labels).tolist() == [2] * 10
    assert np.bincount(some.heldout.labels).tolist() == [2] * 10  # the rest is the held-out set
    assert load_split(40, source=src).no_heldout.startswith("every image")
    RunConfig().replace(data__source=src).validate()


@pytest.mark.parametrize("damage, message", [
    ("missing-category", "lacks category.txt"),
    ("short-category", "39 labels for 40 images"),
    ("wide", "each image must have 784 values"),
    ("nan", "NaN"),
])
def test_a_bad_serket_folder_is_one_line(tmp_path, monkeypatch, digits, damage, message):
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path / "cache"))
    x, y = digits
    _serket_folder(tmp_path, x, y)
    if damage == "missing-category":
        (tmp_path / "category.txt").unlink()
    elif damage == "short-category":
        np.savetxt(tmp_path / "category.txt", y[:-1])
    elif damage == "wide":
        np.savetxt(tmp_path / "data.txt", np.hstack([x, x[:, :5]]))
    else:
        x = x.copy()
        x[3, 100] = np.nan
        np.savetxt(tmp_path / "data.txt", x)
    with pytest.raises(data.DataSourceError) as e:
        load_mnist(10, source=f"serket:{tmp_path}")
    assert message in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(data.DataSourceError, match="does not exist"):
        load_mnist(10, source=f"serket:{tmp_path / 'nope'}")


# ---------------------------------------------------------------------------------------------- uploads
def test_uploads_in_every_format_read_the_same(tmp_path, digits):
    x, y = digits
    u8 = np.rint(x * 255).astype(np.uint8)
    x8 = u8 / np.float32(255)
    cases = {
        "npy [0, 1]": read_upload((_npy(x), "a.npy")),
        "npy 0-255 (N, 28, 28)": read_upload((_npy(u8.reshape(-1, 28, 28)), "a.npy")),
        "npz with labels": read_upload((_npz(images=x, labels=y), "a.npz")),
        "npz one array": read_upload((_npz(whatever=x), "a.npz")),
        "csv label column and header": read_upload((_text(np.column_stack([y, u8]), ",",
                                                          "label," + ",".join(f"p{i}" for i in range(784))),
                                                    "train.csv")),
        "txt as np.savetxt": read_upload((_text(x), "data.txt")),
        "npy and a labels file": read_upload((_npy(x), "a.npy"), (_text(y[None]), "labels.txt")),
    }
    for name, (images, labels) in cases.items():
        assert images.shape == (40, 784) and images.dtype == np.float32, name
        np.testing.assert_allclose(images, x8 if "0-255" in name or "csv" in name else x, atol=2e-6,
                                   err_msg=name)
        expected = y if "labels" in name or "label column" in name else None
        if expected is None:
            assert labels is None, name
        else:
            np.testing.assert_array_equal(labels, expected, err_msg=name)
    # a labels file replaces labels found in the images file
    _, labels = read_upload((_npz(images=x, labels=y), "a.npz"), (_npy((y + 1) % 10), "l.npy"))
    np.testing.assert_array_equal(labels, (y + 1) % 10)


def _bad_files(x, y):
    u8 = np.rint(x * 255).astype(np.uint8)
    nan = x.copy()
    nan[0, 0] = np.nan
    return [
        ((_npy(x[:, :100]), "a.npy"), None, "each image must have 784 values (28 x 28), got 100"),
        ((_text(x[:, :783], ","), "a.csv"), None, "got 783"),
        ((_npy(nan), "a.npy"), None, "NaN"),
        ((_npy(u8.astype(np.int16) + 1), "a.npy"), None, "found values from 1 to 256"),
        ((_npy(x - 0.5), "a.npy"), None, "must be in [0, 1] or 0-255"),
        ((_npy(x), "a.npy"), (_npy(y[:-1]), "l.npy"), "39 labels for 40 images"),
        ((_npz(images=x, labels=y + 5), "a.npz"), None, "labels must be the digits 0-9"),
        ((_npz(images=x, labels=y[:3]), "a.npz"), None, "3 labels for 40 images"),
        ((_npy(np.zeros((70001, 784), np.uint8)), "big.npy"), None, "70001 images, more than the 70000 allowed"),
        ((b"\x93NUMPY this is not really npy", "a.npy"), None, "a.npy is not a NumPy .npy file"),
        ((_npz(images=x)[:200], "a.npz"), None, "a.npz is not a NumPy .npz file"),
        ((b"\x00\x01\x02 binary", "a.csv"), None, "a.csv is not a text file"),
        ((b"1,2,3\n4,x,6\n", "a.csv"), None, "not a table of numbers"),
        ((_npy(np.array([{"x": 1}], dtype=object)), "a.npy"), None, "holds Python objects"),
        ((_npz(a=x, b=x), "a.npz"), None, "no images found"),
        ((_npy(x), "a.png"), None, "unsupported file type .png"),
        ((b"", "a.npy"), None, "the file is empty"),
    ]


def test_every_bad_upload_is_one_line_and_keeps_nothing(tmp_path, monkeypatch, digits):
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path))
    for images, labels, message in _bad_files(*digits):
        with pytest.raises(ValueError) as e:
            read_upload(images, labels)
        text = str(e.value)
        assert message in text and "\n" not in text, (message, text)
    assert not (tmp_path / "uploads").exists()  # nothing was kept


def test_the_size_cap(monkeypatch, digits):
    monkeypatch.setattr(image_files, "MAX_BYTES", 1000)
    with pytest.raises(ValueError, match="more than the 1000 bytes allowed"):
        read_upload((_npy(digits[0]), "a.npy"))


def test_an_unlabelled_upload_trains_is_stored_and_exported_with_no_labels(tmp_path, monkeypatch, digits):
    from vaegmm.runs.library import RunRecorder, load_run
    from vaegmm.runs.train import train_run
    from vaegmm.store import RunStore
    from vaegmm.views.export import read_run

    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path / "cache"))
    images, labels = read_upload((_npy(load_mnist(300, seed=1)[0]), "mine.npy"))
    assert labels is None
    src = save_upload(images)
    assert src.startswith("upload:") and save_upload(images) == src  # the same upload, the same source
    cfg = preset("quick-demo").replace(data__n=200, data__source=src, vae__epochs=2, vae__latent_dim=4,
                                       iterations=1, gmm__n_init=1)
    store = RunStore(tmp_path / "runs.db")
    recorder = RunRecorder(store, cfg)
    recorder.begin()
    trained = train_run(cfg, threads=1, on_data=lambda x, y: recorder.data(y, None),
                        on_heldout=recorder.heldout, on_result=lambda r, s: recorder.iteration(r))
    recorder.end(trained.status, trained.error_text())
    assert trained.status == "finished", trained.error_text()
    assert trained.labels is None and trained.heldout.labels is None and len(trained.heldout.images) == 100
    last = trained.history[-1]
    assert last.accuracy is None and last.nmi is None and last.digit_of_class is None
    assert last.heldout_accuracy is None and last.heldout_classes.shape == (100,)
    assert recorder.error == ""
    saved = load_run(store, recorder.run_id)
    assert saved.labels is None and saved.history[-1].accuracy is None
    assert saved.heldout == {"images": 100, "labelled": False,
                             "origin": "the uploaded images outside the training subset", "reason": ""}
    metrics = store.iterations([recorder.run_id])
    assert metrics["accuracy"].isna().all() and metrics["heldout_accuracy"].isna().all()
    back = read_run(recorder.folder / "serket")
    assert back["accuracy"][1] is None and back["recog_accuracy"][1] is None
    assert back["recog_classes"][1].shape == (100,)
    assert not (recorder.folder / "serket" / "module002_gmm" / "category.txt").exists()
    store.close()
    with pytest.raises(data.DataSourceError, match="upload 0123456789abcdef is not on this server"):
        load_mnist(10, source="upload:0123456789abcdef")


def test_a_sweep_trains_on_a_serket_folder(tmp_path, monkeypatch, capsys, digits):
    from vaegmm.cli import main
    from vaegmm.store import RunStore

    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path / "cache"))
    x, _ = digits
    folder = tmp_path / "mnist"
    folder.mkdir()
    _serket_folder(folder, x, np.arange(40) % 10)
    db = tmp_path / "runs.db"
    args = ["sweep", "--db", str(db), "--preset", "quick-demo", "--grid", "n=20", "--grid", "epochs=1",
            "--grid", "iterations=1", "--grid", "latent=2", "--grid", "batch=20", "--seeds", "1", "--jobs", "1",
            "--quiet"]
    assert main([*args, "--source", f"serket:{folder}", "--name", "s"]) == 0
    with RunStore(db, readonly=True) as s:
        (run,) = s.list_runs()
        assert run["status"] == "finished" and run["config"]["data"]["source"] == f"serket:{folder}"
        assert s.iterations([run["id"]])["heldout_accuracy"].notna().all()  # the folder's other 20 images
    capsys.readouterr()
    assert main([*args, "--source", "nowhere", "--name", "t"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "source must be" in err[0]
