"""Power-average pooling in 1, 2 and 3 dimensions, as ``torch.nn.functional.lp_pool1d/2d/3d``.

PyTorch's definition, quirks included: ``s = avg_pool(x**p)`` (no padding,
``count_include_pad``), then ``(sign(s) * relu(|s|) * prod(kernel_size)) ** (1/p)``.
So a ``ceil_mode`` window clipped at the border is scaled by the full kernel
volume over its clipped divisor, exactly as in PyTorch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.checks import from_batched
from ..core.spatial import check_spatial_input
from ..core.window import IntTuple, Window
from .dispatch import dask_dispatch
from .pooling import pool_window
from .pooling_nd import avg_pool_nd_backward, avg_pool_nd_forward, max_pool_nd_backward, max_pool_nd_forward

__all__ = ["lp_pool1d", "lp_pool2d", "lp_pool3d", "check_norm_type", "lp_pool_forward", "lp_pool_backward"]


def check_norm_type(norm_type: Any) -> float:
    """``norm_type`` as a float; non-numbers are a TypeError, 0 and NaN a ValueError (±inf are allowed)."""
    if isinstance(norm_type, (bool, np.bool_)) or not isinstance(norm_type, (int, float, np.integer, np.floating)):
        raise TypeError(f"norm_type must be a number, got {norm_type!r}")
    if np.isnan(norm_type):
        raise ValueError(f"norm_type must be a number, got {norm_type!r}")
    if norm_type == 0:
        raise ValueError(f"norm_type must be non-zero, got {norm_type!r}")
    return float(norm_type)


def lp_pool_forward(x: np.ndarray, norm_type: float, window: Window, strategy: str | None = None):
    """``(out, saved)`` of a validated batched floating array; ``saved`` is for :func:`lp_pool_backward`.

    ``norm_type`` ±inf is the limit PyTorch computes: the largest ``|x|`` of each
    window (+inf), or the smallest (-inf), by max pooling.
    """
    if np.isinf(norm_type):
        sign = x.dtype.type(1 if norm_type > 0 else -1)
        out, offset = max_pool_nd_forward(sign * np.abs(x), window, strategy)
        return sign * out, (x, offset)
    divisor = window.avg_divisor(True, None)
    power = np.power(x, x.dtype.type(norm_type))
    mean = avg_pool_nd_forward(power, window, divisor, strategy)
    # PyTorch's sign(s) * relu(|s|): s itself, kept in its form so that NaN and signed zeros match.
    scaled = np.sign(mean) * np.maximum(np.abs(mean), 0) * x.dtype.type(window.kernel_volume)
    out = np.power(scaled, x.dtype.type(1.0 / norm_type))
    return out, (x, mean, out, divisor)


def lp_pool_backward(grad_output: np.ndarray, norm_type: float, window: Window, saved, strategy: str | None = None):
    """Gradient of :func:`lp_pool_forward` w.r.t. its input (PyTorch's chain rule; 0 where the mean is 0)."""
    if np.isinf(norm_type):  # d|x|/dx = sign(x), at the cell each window chose
        x, offset = saved
        return max_pool_nd_backward(grad_output, offset, x.shape, window, strategy) * np.sign(x).astype(
            grad_output.dtype)
    x, mean, out, divisor = saved
    dtype = grad_output.dtype.type
    with np.errstate(divide="ignore", invalid="ignore"):
        d_scaled = np.where(mean != 0, out / (mean * dtype(window.kernel_volume)) / dtype(norm_type), 0)
    grad_mean = (grad_output * d_scaled * dtype(window.kernel_volume)).astype(grad_output.dtype)
    grad_power = avg_pool_nd_backward(grad_mean, x.shape, window, divisor, strategy)
    return (grad_power * dtype(norm_type) * np.power(x, dtype(norm_type - 1))).astype(grad_output.dtype)


def _lp_pool(ndim, input, norm_type, kernel_size, stride, ceil_mode, strategy):
    x, unbatched = check_spatial_input(input, "input", ndim, floating=True)
    norm_type = check_norm_type(norm_type)
    window = pool_window(x, kernel_size, stride, 0, 1, ceil_mode)
    out, _ = lp_pool_forward(x, norm_type, window, strategy)
    return from_batched(out, unbatched)


@dask_dispatch
def lp_pool1d(input: Any, norm_type: float, kernel_size: IntTuple, stride: IntTuple | None = None,
              ceil_mode: bool = False, *, strategy: str | None = None) -> np.ndarray:
    """1-D power-average pooling, as ``torch.nn.functional.lp_pool1d``.

    ``(N, C, L)`` or ``(C, L)`` floating -> ``(N, C, out_l)``: ``(sum over the window of x**p) ** (1/p)``,
    computed as PyTorch does from an average pool (no padding). ``norm_type`` p: a non-zero number.
    Raises TypeError for non-floating input or a non-numeric p, ValueError for p = 0 or bad window arguments.

    >>> lp_pool1d(np.array([[3., 4.]]), 2, 2)
    array([[5.]])
    """
    return _lp_pool(1, input, norm_type, kernel_size, stride, ceil_mode, strategy)


@dask_dispatch
def lp_pool2d(input: Any, norm_type: float, kernel_size: IntTuple, stride: IntTuple | None = None,
              ceil_mode: bool = False, *, strategy: str | None = None) -> np.ndarray:
    """2-D power-average pooling, as ``torch.nn.functional.lp_pool2d``; see :func:`lp_pool1d`."""
    return _lp_pool(2, input, norm_type, kernel_size, stride, ceil_mode, strategy)


@dask_dispatch
def lp_pool3d(input: Any, norm_type: float, kernel_size: IntTuple, stride: IntTuple | None = None,
              ceil_mode: bool = False, *, strategy: str | None = None) -> np.ndarray:
    """3-D power-average pooling, as ``torch.nn.functional.lp_pool3d``; see :func:`lp_pool1d`."""
    return _lp_pool(3, input, norm_type, kernel_size, stride, ceil_mode, strategy)
