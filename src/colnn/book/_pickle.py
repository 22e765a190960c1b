"""Reading the book's ``.pkl`` files without running what a pickle asks for.

A pickle is a program: every global it names is imported and may be called
(``posix.system`` included), so ``pickle.load`` of a file from elsewhere runs
that file's code. The book ships its weights as pickles of dicts of NumPy
arrays (``sample_weight.pkl``, ``params.pkl``, ``deep_convnet_params.pkl``).
:func:`load_pickle` reads those and nothing more, the way
``torch.load(weights_only=True)`` reads untrusted checkpoints: it resolves only
the globals that rebuild a NumPy array or scalar of a numeric dtype
(``numpy.core.multiarray._reconstruct`` and its ``numpy._core`` twin,
``numpy.dtype``, ``numpy.ndarray`` as the class to rebuild, ``_frombuffer`` of
protocol 5, ``scalar``), ``collections.OrderedDict`` and, for protocol 2's
bytes, ``_codecs.encode`` of latin1 text; dicts, lists,
tuples, str, int, float, bool and None need no global. Anything else -- any
other global, called or not; an object, string or structured array -- is
refused before it is built, with an error naming the file and what was refused.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np

__all__ = ["UnsafePickleError", "load_pickle", "save_pickle"]

# Numeric dtypes: booleans, signed and unsigned integers, floats, complex.
_NUMERIC_KINDS = frozenset("biufc")
# numpy.ndarray.__reduce__ names this function; obtained from NumPy itself rather than a private import.
# (NumPy's stubs give __reduce__ object's type, whose first item may be a str.)
_RECONSTRUCT = cast("Callable[..., np.ndarray]", np.ndarray.__reduce__(np.zeros(0))[0])


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle holds something other than numeric arrays and plain containers; the message names the file."""


class _ArrayClass:
    """Stands for ``numpy.ndarray`` in a pickle: an argument to ``_reconstruct``, never callable itself."""

    def __repr__(self) -> str:
        return "numpy.ndarray"


_ARRAY_CLASS = _ArrayClass()


def _numeric_dtype(dtype: Any) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise _Refused(f"an array of dtype {dtype!r} (only numeric dtypes are read)")
    return dtype


class _Refused(Exception):
    """Raised inside the unpickler; :func:`load_pickle` turns it into an UnsafePickleError naming the file."""


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not _ARRAY_CLASS:
        raise _Refused(f"an array of class {subtype!r} (only numpy.ndarray is read)")
    # An empty placeholder, which the BUILD opcode that follows fills through ndarray.__setstate__
    # (NumPy always pickles the shape (0,) here; a crafted larger one must not allocate).
    return _RECONSTRUCT(np.ndarray, (0,), dtype)


def _dtype(*args: Any) -> np.dtype:
    return _numeric_dtype(np.dtype(*args))


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: Literal["C", "F"]) -> np.ndarray:
    # Protocol 5's out-of-band form; a copy, so that the array is writeable like any other.
    return np.frombuffer(buffer, dtype=_numeric_dtype(dtype)).reshape(shape, order=order).copy(order="K")


def _scalar(dtype: Any, data: Any = None) -> Any:
    dtype = _numeric_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise _Refused(f"a NumPy scalar that is not {dtype.itemsize} bytes of {dtype}")
    return np.frombuffer(data, dtype=dtype)[0]


def _latin1_bytes(text: Any, encoding: str = "utf-8") -> bytes:
    # Protocol 2 writes bytes (an array's raw data) as _codecs.encode(text, 'latin1'); nothing else is encoded.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Refused(f"_codecs.encode of {type(text).__name__} as {encoding!r} (only latin1 text is read)")
    return text.encode("latin1")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("_codecs", "encode"): _latin1_bytes,
    ("numpy", "ndarray"): _ARRAY_CLASS,
    ("numpy", "dtype"): _dtype,
    ("collections", "OrderedDict"): collections.OrderedDict,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_module, "_reconstruct")] = _reconstruct
    _ALLOWED[(_module, "scalar")] = _scalar
for _module in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED[(_module, "_frombuffer")] = _frombuffer


class _AllowListUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(f"the global {module}.{name}") from None


def _check_result(value: Any, depth: int = 0) -> None:
    """Refuse anything in the loaded tree that is not an allowed container, scalar or numeric array."""
    if isinstance(value, np.ndarray):
        if type(value) is not np.ndarray:
            raise _Refused(f"an array of class {type(value).__name__}")
        _numeric_dtype(value.dtype)
    elif isinstance(value, (dict, list, tuple)):
        if depth > 100:
            raise _Refused("containers nested more than 100 deep")
        items = list(value.keys()) + list(value.values()) if isinstance(value, dict) else value
        for item in items:
            _check_result(item, depth + 1)
    elif isinstance(value, np.generic):
        _numeric_dtype(value.dtype)
    elif value is not None and type(value) not in (str, int, float, bool):
        raise _Refused(f"an object of type {type(value).__name__}")


def load_pickle(file_name: str | os.PathLike[str]) -> Any:
    """Read a pickle of NumPy arrays and plain containers (the book's ``.pkl`` files), refusing anything else.

    Parameters
    ----------
    file_name : path of the pickle

    Returns
    -------
    What was pickled: dicts (and ``OrderedDict``), lists, tuples, str, int,
    float, bool, None, NumPy scalars and writeable NumPy arrays of boolean,
    integer, floating or complex dtypes, nested in any way.

    Raises
    ------
    UnsafePickleError
        (a ``pickle.UnpicklingError``) naming the file and the refused global,
        dtype or object, for anything else; also for a damaged or truncated file.
    FileNotFoundError, IsADirectoryError, PermissionError
        When the file cannot be opened.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "params.pkl")
    >>> save_pickle(path, {"W1": np.eye(2)})
    >>> load_pickle(path)["W1"]
    array([[1., 0.],
           [0., 1.]])
    """
    path = Path(file_name)
    data = path.read_bytes()
    try:
        value = _AllowListUnpickler(io.BytesIO(data)).load()
        _check_result(value)
    except _Refused as refused:
        raise UnsafePickleError(f"{path}: refused {refused}; colnn.book reads only NumPy arrays of numeric "
                                "dtypes, dicts, lists, tuples, str, int and float from a pickle") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            MemoryError, OverflowError, RecursionError) as error:
        raise UnsafePickleError(f"{path}: not a readable pickle of arrays ({type(error).__name__}: {error})") from None
    return value


def save_pickle(file_name: str | os.PathLike[str], value: Any) -> None:
    """Write ``value`` as a pickle that :func:`load_pickle`, and the book's ``pickle.load``, read back.

    The file is written beside ``file_name`` and renamed onto it, so a failure
    halfway leaves an earlier file whole.

    Raises
    ------
    UnsafePickleError
        When ``value`` holds something :func:`load_pickle` would refuse (nothing is written).
    """
    path = Path(file_name)
    try:
        _check_result(value)
    except _Refused as refused:
        raise UnsafePickleError(f"{path}: will not write {refused}; colnn.book pickles only NumPy arrays of "
                                "numeric dtypes, dicts, lists, tuples, str, int and float") from None
    partial = path.with_name(f".{path.name}.partial")
    try:
        with open(partial, "wb") as file:
            pickle.dump(value, file)
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()
