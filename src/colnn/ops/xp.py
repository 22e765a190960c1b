"""The Array API plumbing every op shares: an array's namespace, device and dtypes, and moving values there.

Code written against the Python Array API standard takes ``xp``, the caller's
namespace (:func:`namespace`), and computes where the array lives, so a PyTorch,
JAX or CuPy array comes back as the same kind of array on the same device.
NumPy 2's main namespace follows the standard too (:func:`namespace_of`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.dtypes import accumulation_dtype, as_numpy_dtype
from ..core.namespace import array_namespace as namespace
from ..core.namespace import device_of, foreign_namespace, move_numpy, same_library

__all__ = [
    "namespace",
    "namespace_of",
    "device_of",
    "zero_like",
    "as_common_dtype",
    "copy_as",
    "as_namespace_of",
    "expand_axis",
    "accumulator",
    "lowest",
    "on_device",
]


def namespace_of(x: Any) -> Any:
    """The Array API namespace of ``x``: its library's for another library's array, NumPy's own module else.

    NumPy 2's main namespace follows the standard, so code written against the
    namespace runs NumPy arrays without importing ``array_api_compat``.
    """
    xp = foreign_namespace(x)
    return np if xp is None else xp


def zero_like(like: Any) -> Any:
    """A 0-d zero of ``like``'s dtype, namespace and device (``where``'s other branch)."""
    return namespace_of(like).zeros((), dtype=like.dtype, device=device_of(like))


def as_common_dtype(*arrays: Any) -> tuple[Any, ...]:
    """``arrays`` (None kept as None) in their common dtype, as ``np.result_type`` would choose it."""
    present = [array for array in arrays if array is not None]
    if all(type(array) is np.ndarray for array in present):  # NumPy's own: no namespace lookup
        dtype = np.result_type(*present)
        return tuple(None if array is None else array.astype(dtype, copy=False) for array in arrays)
    xp = namespace(*present)
    dtype = xp.result_type(*present)
    return tuple(None if array is None else (array if array.dtype == dtype else xp.astype(array, dtype))
                 for array in arrays)


def copy_as(array: Any, dtype: Any = None, *, copy: bool = True) -> Any:
    """``array`` in ``dtype`` (default: its own), in its own namespace and on its device; a copy unless
    ``copy=False``."""
    if type(array) is np.ndarray:  # NumPy's own: no namespace lookup (array_api_compat costs 0.1 s to import)
        return array.astype(array.dtype if dtype is None else dtype, copy=copy)
    if getattr(array, "requires_grad", False):
        array = array.detach()  # a copy of a Parameter that still tracked autograd would warn and build a graph
    xp = namespace(array)
    dtype = array.dtype if dtype is None else dtype
    if array.dtype == dtype and not copy:
        return array
    return xp.astype(array, dtype, copy=True) if array.dtype != dtype else xp.asarray(array, copy=True)


def as_namespace_of(value: Any, like: Any, name: str = "value", like_name: str = "input") -> Any:
    """``value`` (an array of ``like``'s library, a NumPy array or a sequence) as an array of ``like``'s, on its device.

    No copy when it is one already. An array of a third library, or of
    ``like``'s on another device, is a TypeError or ValueError naming ``name``
    and ``like_name`` (:func:`colnn.core.namespace.same_library`).
    """
    return same_library(value, name, like, like_name, moves=True)


def expand_axis(x: Any, axis: int) -> Any:
    """``x`` with a unit axis inserted at ``axis`` (1-d ops run as 2-d with a unit height)."""
    return namespace(x).expand_dims(x, axis=axis)


def accumulator(xp: Any, dtype: Any) -> Any:
    """The dtype of ``xp`` that sums of ``dtype`` are taken in: float32 for float16 (PyTorch's CPU kernels), else
    ``dtype``."""
    return getattr(xp, accumulation_dtype(dtype).name)


def lowest(xp: Any, dtype: Any) -> Any:
    """What a padded cell holds for max pooling, as a Python number: -inf, or the integer minimum."""
    if xp.isdtype(dtype, "real floating"):
        return -float("inf")
    return int(xp.iinfo(dtype).min)


def on_device(xp: Any, array: np.ndarray, like: Any, dtype: Any = None) -> Any:
    """A small NumPy geometry array as an array of ``like``'s namespace and device, in ``dtype`` (one of ``xp``'s).

    Cast on the NumPy side, so that ``xp`` is never asked for a dtype it may lack;
    an array of ``xp`` already (a divisor the caller built there) is only moved.
    """
    if not isinstance(array, np.ndarray):
        return xp.asarray(array, dtype=dtype, device=device_of(like))
    if dtype is not None:
        array = array.astype(as_numpy_dtype(dtype), copy=False)
    return move_numpy(np.ascontiguousarray(array), xp, device_of(like), "geometry")
