"""dtype rules every op shares: which dtype a result, a gradient or a sum is taken in, and padding values.

Pure NumPy dtype arithmetic (no array library is consulted): another library's
dtype is read by its name (:func:`as_numpy_dtype`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "as_numpy_dtype",
    "check_float_dtype",
    "gradient_dtype",
    "accumulation_dtype",
    "lowest_value",
]


def as_numpy_dtype(dtype: Any) -> np.dtype:
    """NumPy's dtype of the same kind and size as ``dtype`` (NumPy's, or any Array API library's)."""
    try:
        return np.dtype(dtype)
    except TypeError:
        # torch.float32, array_api_strict.float32, ...: the standard's names are NumPy's.
        return np.dtype(str(dtype).rsplit(".", 1)[-1])


def check_float_dtype(dtype: Any, name: str) -> np.dtype:
    """NumPy's dtype for the float dtype of ``name`` (any library's); TypeError naming ``name`` otherwise.

    The one rule of colnn's floating-point ops: float16 (summed in float32),
    float32 or float64. bfloat16 is refused, not computed: NumPy has no such dtype,
    so a NumPy path (and every strategy) could not keep it. Integers, bools and
    complex numbers are refused as well.
    """
    try:
        numpy_dtype = as_numpy_dtype(dtype)
    except TypeError:  # a dtype NumPy does not know: PyTorch's or JAX's bfloat16, float8 ...
        numpy_dtype = None
    if numpy_dtype is not None and numpy_dtype.kind == "f":
        return numpy_dtype
    if numpy_dtype is not None and numpy_dtype.kind in "biu":
        raise TypeError(f"{name} must be a floating array, got dtype {dtype} (use float16, float32 or float64)")
    raise TypeError(f"{name} has dtype {dtype}; colnn's floating-point ops take float16, float32 or float64 "
                    f"only: convert {name} first (e.g. to float32)")


def gradient_dtype(forward_dtype: np.dtype, dout_dtype: np.dtype) -> np.dtype:
    """dtype of a gradient: the forward's if floating, else ``dout``'s if floating, else float64.

    A gradient is never an integer: an integer forward (max pooling, ReLU of
    integers) still has fractional gradients.
    """
    for dtype in (as_numpy_dtype(forward_dtype), as_numpy_dtype(dout_dtype)):
        if dtype.kind == "f":
            return dtype
    return np.dtype(np.float64)


def accumulation_dtype(dtype: np.dtype) -> np.dtype:
    """dtype that sums of ``dtype`` are taken in: float32 for float16 (as PyTorch's CPU kernels), else ``dtype``.

    Every strategy sums float16 in float32 and rounds once at the end, so that
    strategies agree with each other and with a float64 sum rounded to float16.
    """
    dtype = as_numpy_dtype(dtype)
    return np.dtype(np.float32) if dtype == np.float16 else dtype


def lowest_value(dtype: np.dtype) -> Any:
    """The value a padded cell holds for max pooling: -inf, or the integer minimum."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return dtype.type(-np.inf)
    return np.iinfo(dtype).min
