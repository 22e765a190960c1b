"""Power-average pooling in 1, 2 and 3 dimensions, as ``torch.nn.functional.lp_pool1d/2d/3d``.

PyTorch's definition, quirks included: ``s = avg_pool(x**p)`` (no padding,
``count_include_pad``), then ``(sign(s) * relu(|s|) * prod(kernel_size)) ** (1/p)``.
So a ``ceil_mode`` window clipped at the border is scaled by the full kernel
volume over its clipped divisor, exactly as in PyTorch. Written on the Array API
standard (``pow``, ``sign``, ``abs``, ``where``): any library's arrays, where they live.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..core.checks import from_batched
from ..core.ieee import quiet_ieee
from ..core.spatial import check_spatial_input
from ..core.window import IntTuple, Window
from .array_api import device_of, namespace
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


def _scalar(value: float, like: Any) -> Any:
    """``value`` as a 0-d array of ``like``'s dtype, namespace and device (no Python-scalar promotion rules)."""
    return namespace(like).asarray(value, dtype=like.dtype, device=device_of(like))


@quiet_ieee
def lp_pool_forward(x: Any, norm_type: float, window: Window, strategy: str | None = None):
    """``(out, saved)`` of a validated batched floating array; ``saved`` is for :func:`lp_pool_backward`.

    ``norm_type`` ±inf is the limit PyTorch computes: the largest ``|x|`` of each
    window (+inf), or the smallest (-inf), by max pooling.
    """
    xp = namespace(x)
    if math.isinf(norm_type):
        sign = _scalar(1 if norm_type > 0 else -1, x)
        out, offset = max_pool_nd_forward(sign * xp.abs(x), window, strategy)
        return sign * out, (x, offset)
    divisor = window.avg_divisor(True, None)
    power = xp.pow(x, _scalar(norm_type, x))
    mean = avg_pool_nd_forward(power, window, divisor, strategy)
    # PyTorch's sign(s) * relu(|s|): s itself, kept in its form so that NaN and signed zeros match.
    scaled = xp.sign(mean) * xp.maximum(xp.abs(mean), _scalar(0, mean)) * _scalar(window.kernel_volume, mean)
    out = xp.pow(scaled, _scalar(1.0 / norm_type, x))
    return out, (x, mean, out, divisor)


@quiet_ieee
def lp_pool_backward(grad_output: Any, norm_type: float, window: Window, saved, strategy: str | None = None):
    """Gradient of :func:`lp_pool_forward` w.r.t. its input (PyTorch's chain rule; 0 where the mean is 0)."""
    xp = namespace(grad_output)
    if math.isinf(norm_type):  # d|x|/dx = sign(x), at the cell each window chose
        x, offset = saved
        grad = max_pool_nd_backward(grad_output, offset, tuple(x.shape), window, strategy)
        return grad * xp.astype(xp.sign(x), grad_output.dtype)
    x, mean, out, divisor = saved
    volume = _scalar(window.kernel_volume, grad_output)
    with np.errstate(divide="ignore", invalid="ignore"):
        d_scaled = xp.where(mean != 0, out / (mean * volume) / _scalar(norm_type, grad_output),
                            _scalar(0, grad_output))
    grad_mean = xp.astype(grad_output * d_scaled * volume, grad_output.dtype)
    grad_power = avg_pool_nd_backward(grad_mean, tuple(x.shape), window, divisor, strategy)
    power = xp.pow(x, _scalar(norm_type - 1, grad_output))
    return xp.astype(grad_power * _scalar(norm_type, grad_output) * power, grad_output.dtype)


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
