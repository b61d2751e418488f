import gzip
import urllib.error

import numpy as np
import pytest

from vaegmm.model import data
from vaegmm.model.data import DataSourceError, load_mnist, per_digit_counts, read_idx


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path_factory):
    monkeypatch.delenv(data.IDX_ENV, raising=False)


def test_bundled_subset_is_real_balanced_and_scaled():
    x, y = load_mnist(1000)
    assert x.shape == (1000, 784) and x.dtype == np.float32 and y.shape == (1000,)
    assert x.min() == 0.0 and x.max() == 1.0
    assert np.bincount(y).tolist() == [100] * 10
    # real digits: mean ink of a 1 is far below that of a 0 (real MNIST has ~19% vs ~9% lit pixels)
    assert x[y == 0].mean() > 1.5 * x[y == 1].mean()


def test_subset_is_seeded():
    a, ya = load_mnist(300, seed=5)
    b, yb = load_mnist(300, seed=5)
    c, _ = load_mnist(300, seed=6)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a, c)


def test_remainder_is_spread_over_the_first_digits():
    assert per_digit_counts(7, (2, 4, 6)) == {2: 3, 4: 2, 6: 2}
    x, y = load_mnist(7, digits=(2, 4, 6))
    assert sorted(np.bincount(y, minlength=7)[[2, 4, 6]].tolist()) == [2, 2, 3]


def test_the_whole_bundled_set_and_its_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path))
    x, y = load_mnist(5000)
    assert [p.name for p in tmp_path.iterdir()] == ["mnist_5k_v1.npz"]  # written atomically: no temporary file
    x2, y2 = load_mnist(5000)  # from the binary cache
    np.testing.assert_array_equal(x, x2)
    assert np.bincount(y).tolist() == [500] * 10


@pytest.mark.parametrize("kwargs, fragment", [
    ({"n": 0}, "n must be an integer >= 1, got 0"),
    ({"n": 10, "digits": ()}, "digits must not be empty"),
    ({"n": 10, "digits": (3, 10)}, "[10]"),
    ({"n": 10, "digits": (-1,)}, "[-1]"),
    ({"n": 6000, "source": "bundled"}, "holds 500 per digit"),
    ({"n": 10, "source": "s3://x"}, "'s3://x'"),
])
def test_bad_input_is_a_value_error_naming_it(kwargs, fragment):
    with pytest.raises(ValueError) as e:
        load_mnist(**kwargs)
    assert fragment in str(e.value)


def test_too_many_per_digit_says_how_to_get_more():
    with pytest.raises(ValueError) as e:
        load_mnist(1200, digits=(1, 2), source="bundled")
    msg = str(e.value)
    assert "600 images per digit" in msg and "500" in msg and "openml" in msg and data.IDX_ENV in msg


def test_offline_openml_is_a_clear_error_not_a_traceback(monkeypatch):
    def no_network(*a, **k):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    import sklearn.datasets

    monkeypatch.setattr(sklearn.datasets, "fetch_openml", no_network)
    with pytest.raises(DataSourceError) as e:
        load_mnist(8000)  # auto: more than the bundled set, no IDX folder -> openml
    assert "no network" in str(e.value) and data.IDX_ENV in str(e.value)


# ------------------------------------------------------------------------------------------ IDX folders
def write_idx(folder, images, labels, gz, test_images=None, test_labels=None):
    def img_bytes(a):
        return (2051).to_bytes(4, "big") + len(a).to_bytes(4, "big") + (28).to_bytes(4, "big") \
            + (28).to_bytes(4, "big") + a.astype(np.uint8).tobytes()

    def lab_bytes(a):
        return (2049).to_bytes(4, "big") + len(a).to_bytes(4, "big") + a.astype(np.uint8).tobytes()

    files = {"train-images-idx3-ubyte": img_bytes(images), "train-labels-idx1-ubyte": lab_bytes(labels),
             "t10k-images-idx3-ubyte": img_bytes(images[:10] if test_images is None else test_images),
             "t10k-labels-idx1-ubyte": lab_bytes(labels[:10] if test_labels is None else test_labels)}
    for name, content in files.items():
        if gz:
            with gzip.open(folder / (name + ".gz"), "wb") as f:
                f.write(content)
        else:
            (folder / name).write_bytes(content)


@pytest.fixture
def idx_data():
    x, y = load_mnist(5000)
    return np.rint(x * 255).astype(np.uint8), y


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_loads_more_than_the_bundled_set(tmp_path, idx_data, monkeypatch, gz):
    pix, y = idx_data
    # 10 000 images: twice the bundled set, so 700 per digit is only possible from the folder
    write_idx(tmp_path, np.concatenate([pix, pix[::-1]]).reshape(-1, 28, 28), np.concatenate([y, y[::-1]]), gz)
    x2, y2 = load_mnist(7000, source=f"idx:{tmp_path}")
    assert x2.shape == (7000, 784) and np.bincount(y2).tolist() == [700] * 10
    monkeypatch.setenv(data.IDX_ENV, str(tmp_path))
    assert data.resolve_source(7000, range(10)) == f"idx:{tmp_path}"
    x3, _ = load_mnist(7000)
    np.testing.assert_array_equal(x2, x3)


def test_idx_errors_are_clear(tmp_path, idx_data):
    pix, y = idx_data
    with pytest.raises(DataSourceError, match="does not exist"):
        load_mnist(10, source=f"idx:{tmp_path / 'nope'}")
    with pytest.raises(DataSourceError, match="lacks train-images-idx3-ubyte"):
        load_mnist(10, source=f"idx:{tmp_path}")
    write_idx(tmp_path, pix[:100].reshape(-1, 28, 28), y[:100], gz=False)
    f = tmp_path / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:5000])
    with pytest.raises(DataSourceError, match="truncated"):
        load_mnist(10, source=f"idx:{tmp_path}")
    f.write_bytes(b"\x00\x00\x08\x99" + b"\x00" * 20)
    with pytest.raises(DataSourceError, match="wrong magic number"):
        load_mnist(10, source=f"idx:{tmp_path}")
    g = tmp_path / "bad.gz"
    g.write_bytes(b"not gzip at all")
    with pytest.raises(DataSourceError, match="cannot read"):
        read_idx(g)


def test_openml_download_is_parsed_once_then_read_from_the_binary_cache(tmp_path, monkeypatch):
    import sklearn.datasets

    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path))
    calls = []
    rng = np.random.default_rng(0)
    fake_x = rng.integers(0, 256, (7000, 784)).astype(np.float64)
    fake_y = np.array([str(d) for d in np.repeat(np.arange(10), 700)], dtype=object)

    def fetch(*a, **k):
        calls.append(k)
        return fake_x, fake_y

    monkeypatch.setattr(sklearn.datasets, "fetch_openml", fetch)
    x, y = load_mnist(6500)  # 650 per digit: more than bundled, no IDX folder -> openml
    assert len(calls) == 1 and calls[0]["data_home"].startswith(str(tmp_path))
    assert x.shape == (6500, 784) and np.bincount(y).tolist() == [650] * 10 and x.max() <= 1.0
    x2, y2 = load_mnist(6500)
    assert len(calls) == 1  # second time from the .npz cache
    np.testing.assert_array_equal(x, x2)


def test_cache_folder_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path))
    assert data.cache_dir() == tmp_path
    monkeypatch.setenv(data.CACHE_ENV, "  ")  # blank: as if unset
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.cache_dir() == tmp_path / "xdg" / "vaegmm"
