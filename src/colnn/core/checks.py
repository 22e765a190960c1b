"""Array checks at the public boundary: dtype, rank, batch axis and gradient shape.

Every public function and layer reads its array arguments through these
helpers, once, so that a bad input raises the same error, naming the argument
and its value, wherever it enters.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["check_array", "check_float_array", "to_batched", "check_grad_shape", "lowest_value"]


def check_array(x: Any, name: str = "input", *, ndims: tuple[int, ...] = (3, 4)) -> np.ndarray:
    """Return ``x`` as a real numeric ndarray (integer or floating) of an allowed rank.

    Raises TypeError for strings, objects, booleans, complex numbers and None,
    and ValueError for a rank not in ``ndims`` or a zero-sized non-batch axis.
    The array is not copied.
    """
    if x is None:
        raise TypeError(f"{name} must be a numeric array, got None")
    array = np.asarray(x)
    if array.dtype.kind not in "iuf":
        raise TypeError(
            f"{name} must be a real integer or floating array, got dtype {array.dtype}"
        )
    if array.ndim not in ndims:
        allowed = " or ".join(str(d) for d in ndims)
        raise ValueError(f"{name} must be {allowed}-D, got shape {array.shape}")
    # The batch axis may be empty (as in PyTorch); channels and the plane may not.
    if array.ndim >= 3 and 0 in array.shape[-3:]:
        raise ValueError(f"{name} must have non-zero C, H and W, got shape {array.shape}")
    return array


def check_float_array(x: Any, name: str = "input", *, ndims: tuple[int, ...] = (3, 4)) -> np.ndarray:
    """Like :func:`check_array`, but integer dtypes raise TypeError."""
    array = check_array(x, name, ndims=ndims)
    if array.dtype.kind != "f":
        raise TypeError(f"{name} must be a floating array, got dtype {array.dtype}")
    return array


def to_batched(x: np.ndarray) -> tuple[np.ndarray, bool]:
    """View a ``(C, H, W)`` sample as ``(1, C, H, W)``; return it and whether it was unbatched."""
    if x.ndim == 3:
        return x[np.newaxis], True
    return x, False


def check_grad_shape(dout: Any, expected_shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Return ``dout`` as an array of ``dtype`` if its shape is ``expected_shape``."""
    grad = check_array(dout, "dout", ndims=(len(expected_shape),))
    if grad.shape != tuple(expected_shape):
        raise ValueError(
            f"dout must have the forward output's shape {tuple(expected_shape)}, got {grad.shape}"
        )
    return grad.astype(dtype, copy=False)


def lowest_value(dtype: np.dtype) -> Any:
    """The value a padded cell holds for max pooling: -inf, or the integer minimum."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return dtype.type(-np.inf)
    return np.iinfo(dtype).min
