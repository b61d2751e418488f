"""Images from files people bring: a Serket tutorial folder (``data.txt`` + ``category.txt``) and uploads
(``.npy``, ``.npz``, ``.csv``, ``.txt``), checked before anything is kept.

What an upload may hold (:func:`read_upload`):

* ``.npy``: the images, ``(N, 784)`` or ``(N, 28, 28)``;
* ``.npz``: the images under ``images`` (or ``x``, ``X``, ``data``; a file with one array: that array) and
  optionally the labels under ``labels`` (or ``y``, ``category``, ``labels_``);
* ``.csv`` / ``.txt``: one image per row, numbers separated by commas or white space (``np.savetxt``'s layout);
  784 columns are the pixels, 785 columns are a label and then the pixels (the common ``mnist_train.csv``
  layout); a first line with letters in it is a header and is skipped;
* optional labels in a second file (``.npy``, ``.txt``, ``.csv``): N integers, one per line or in one row.

Pixel values are in [0, 1] or in 0-255 (then divided by 255: any value above 1 means the file is 0-255). Labels are
integers 0-9. Each problem raises :class:`ValueError` with one line naming the file: a file that is not what its
name says, a wrong number of values per image, NaN or out-of-range values, labels that are not digits or do not
match the images in number, more than :data:`MAX_ROWS` images or :data:`MAX_BYTES` bytes. Nothing is kept from a
bad file (the caller gets the arrays only when everything passed).
"""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Optional

import numpy as np

PIXELS = 784
MAX_ROWS = 70000  # the full MNIST
MAX_BYTES = 200 * 2 ** 20  # Streamlit's own default upload limit (server.maxUploadSize = 200 MB)
IMAGE_KEYS = ("images", "x", "X", "data")
LABEL_KEYS = ("labels", "y", "category", "labels_")
IMAGE_SUFFIXES = (".npy", ".npz", ".csv", ".txt")
LABEL_SUFFIXES = (".npy", ".csv", ".txt")


# ---------------------------------------------------------------------------------------------- checks
def check_images(x, what: str) -> np.ndarray:
    """``x`` as ``(N, 784) float32`` in [0, 1]: ``(N, 28, 28)`` is flattened, values in 0-255 are divided by
    255. ``ValueError`` (one line naming ``what``) for a wrong shape, too many rows, NaN or out-of-range values."""
    x = np.asarray(x)
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise ValueError(f"{what}: the images must be numbers, got values of type {x.dtype}")
    if x.ndim == 3 and x.shape[1:] == (28, 28):
        x = x.reshape(len(x), PIXELS)
    if x.ndim != 2 or x.shape[1] != PIXELS:
        width = x.shape[1] if x.ndim == 2 else "x".join(map(str, x.shape[1:])) or "a single"
        raise ValueError(f"{what}: each image must have {PIXELS} values (28 x 28), got {width} "
                         f"(array of shape {x.shape})")
    if len(x) == 0:
        raise ValueError(f"{what}: the file holds no images")
    if len(x) > MAX_ROWS:
        raise ValueError(f"{what}: {len(x)} images, more than the {MAX_ROWS} allowed")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise ValueError(f"{what}: the images contain NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 255:
        raise ValueError(f"{what}: pixel values must be in [0, 1] or 0-255, found values from {lo:g} to {hi:g}")
    return x / np.float32(255.0) if hi > 1 else x


def check_labels(y, n: int, what: str) -> np.ndarray:
    """``y`` as ``(n,) int64`` digits 0-9; ``ValueError`` (one line) otherwise."""
    y = np.asarray(y)
    if y.ndim == 2 and 1 in y.shape:
        y = y.reshape(-1)
    if y.ndim != 1:
        raise ValueError(f"{what}: labels must be one number per image, got an array of shape {y.shape}")
    if len(y) != n:
        raise ValueError(f"{what}: {len(y)} labels for {n} images")
    if not np.issubdtype(y.dtype, np.number):
        raise ValueError(f"{what}: labels must be the digits 0-9, got values of type {y.dtype}")
    yf = y.astype(np.float64)
    if not np.isfinite(yf).all() or (yf != np.round(yf)).any() or yf.min() < 0 or yf.max() > 9:
        raise ValueError(f"{what}: labels must be the digits 0-9")
    return yf.astype(np.int64)


def _size(n: int) -> str:
    return f"{n / 2 ** 20:.0f} MB" if n >= 2 ** 20 else f"{n} bytes"


def _check_size(data: bytes, name: str) -> None:
    if len(data) > MAX_BYTES:
        raise ValueError(f"{name}: {_size(len(data))}, more than the {_size(MAX_BYTES)} allowed")
    if len(data) == 0:
        raise ValueError(f"{name}: the file is empty")


def _suffix(name: str, allowed: tuple) -> str:
    suffix = Path(name).suffix.lower()
    if suffix not in allowed:
        raise ValueError(f"{name}: unsupported file type {suffix or '(none)'}; use {', '.join(allowed)}")
    return suffix


# ---------------------------------------------------------------------------------------------- parsers
def _load_npy(data: bytes, name: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as e:
        if "pickle" in str(e).lower():  # object arrays need pickle: never load them
            raise ValueError(f"{name}: holds Python objects, not numbers (saved with pickle); save a numeric "
                             "array") from None
        raise ValueError(f"{name} is not a NumPy .npy file") from None
    except (OSError, EOFError):
        raise ValueError(f"{name} is not a NumPy .npy file") from None


def _load_npz(data: bytes, name: str) -> tuple[np.ndarray, Optional[np.ndarray]]:
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise ValueError(f"{name} is not a NumPy .npz file")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise ValueError(f"{name}: holds Python objects, not numbers (saved with pickle)") from None
        raise ValueError(f"{name} is not a NumPy .npz file") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError):
        raise ValueError(f"{name} is not a NumPy .npz file") from None
    image_key = next((k for k in IMAGE_KEYS if k in arrays), None)
    if image_key is None and len(arrays) == 1:
        image_key = next(iter(arrays))
    if image_key is None:
        raise ValueError(f"{name}: no images found; name the array 'images' (arrays in the file: "
                         f"{', '.join(sorted(arrays)) or 'none'})")
    label_key = next((k for k in LABEL_KEYS if k in arrays and k != image_key), None)
    return arrays[image_key], (arrays[label_key] if label_key else None)


def _text(data: bytes, name: str) -> str:
    if b"\x00" in data[:4096]:
        raise ValueError(f"{name} is not a text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{name} is not a text file") from None


def _numbers_only(line: str) -> bool:
    """Whether every field of ``line`` reads as a number (else it is a header line)."""
    try:
        [float(f) for f in line.replace(",", " ").split()]
        return True
    except ValueError:
        return False


def _load_table(data: bytes, name: str) -> tuple[np.ndarray, bool]:
    """Numbers of a CSV or text file ``(rows, columns) float64`` and whether a header line was skipped."""
    import pandas as pd

    text = _text(data, name)
    lines = text.lstrip().splitlines()
    if not lines:
        raise ValueError(f"{name}: the file holds no images")
    header = not _numbers_only(lines[0])
    sep = "," if "," in lines[1 if header and len(lines) > 1 else 0] else r"\s+"
    try:
        frame = pd.read_csv(io.StringIO(text.lstrip()), sep=sep, header=None, skiprows=1 if header else 0,
                            engine="c", dtype=np.float64, skip_blank_lines=True)
    except (ValueError, pd.errors.ParserError) as e:
        text_e = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"{name}: not a table of numbers ({text_e})") from None
    except pd.errors.EmptyDataError:
        raise ValueError(f"{name}: the file holds no images") from None
    return frame.to_numpy(), header


def parse_images(data: bytes, name: str) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """An image file's contents: ``(images (N, 784) float32 in [0, 1], labels (N,) int64 or None)`` (labels from
    an npz's ``labels`` array or a CSV/text file's label column). ``ValueError`` with one line when it is bad."""
    _check_size(data, name)
    suffix = _suffix(name, IMAGE_SUFFIXES)
    labels = None
    if suffix == ".npy":
        images = _load_npy(data, name)
    elif suffix == ".npz":
        images, labels = _load_npz(data, name)
    else:
        table, _ = _load_table(data, name)
        if table.ndim == 2 and table.shape[1] == PIXELS + 1:
            labels, images = table[:, 0], table[:, 1:]
        else:
            images = table
    images = check_images(images, name)
    if labels is not None:
        labels = check_labels(labels, len(images), name)
    return images, labels


def parse_labels(data: bytes, name: str, n: int) -> np.ndarray:
    """A labels file's contents (``.npy``, ``.txt``, ``.csv``: N integers 0-9) as ``(n,) int64``."""
    _check_size(data, name)
    suffix = _suffix(name, LABEL_SUFFIXES)
    if suffix == ".npy":
        labels = _load_npy(data, name)
    else:
        table, _ = _load_table(data, name)
        labels = table.reshape(-1) if 1 in table.shape else table
    return check_labels(labels, n, name)


def read_upload(images: tuple[bytes, str], labels: Optional[tuple[bytes, str]] = None
                ) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """An upload: ``images = (bytes, file name)`` and optionally ``labels = (bytes, file name)``. Returns
    ``(images (N, 784) float32 in [0, 1], labels (N,) int64 or None)``. A labels file replaces labels found in
    the images file. ``ValueError`` with one line for the first problem."""
    x, y = parse_images(*images)
    if labels is not None:
        y = parse_labels(labels[0], labels[1], len(x))
    return x, y


def read_upload_files(images: str | os.PathLike, labels: Optional[str | os.PathLike] = None
                      ) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """:func:`read_upload` of files on disk."""
    def read(path) -> tuple[bytes, str]:
        path = Path(path)
        try:
            if path.stat().st_size > MAX_BYTES:
                raise ValueError(f"{path.name}: {_size(path.stat().st_size)}, more than the {_size(MAX_BYTES)} "
                                 "allowed")
            return path.read_bytes(), path.name
        except OSError as e:
            raise ValueError(f"{path}: cannot read the file ({e.strerror})") from None

    return read_upload(read(images), None if labels is None else read(labels))


# ---------------------------------------------------------------------------------------------- Serket
def read_serket_folder(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """A Serket tutorial folder: ``data.txt`` (N x 784 in [0, 1], ``np.savetxt``'s layout) and ``category.txt``
    (N labels). Returns ``(images (N, 784) float32, labels (N,) int64)`` in the files' order. ``ValueError``
    (one line) when the folder or a file is missing or bad."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ValueError(f"Serket folder {str(folder)!r} does not exist or is not a folder")
    parts = {}
    for name in ("data.txt", "category.txt"):
        path = folder / name
        if not path.is_file():
            raise ValueError(f"Serket folder {str(folder)!r} lacks {name}")
        try:
            parts[name] = path.read_bytes()
        except OSError as e:
            raise ValueError(f"{path}: cannot read the file ({e.strerror})") from None
    _check_size(parts["data.txt"], str(folder / "data.txt"))
    table, _ = _load_table(parts["data.txt"], str(folder / "data.txt"))
    images = check_images(table, str(folder / "data.txt"))
    labels = parse_labels(parts["category.txt"], str(folder / "category.txt"), len(images))
    return images, labels
