"""Power-average pooling in 1, 2 and 3 dimensions, as ``torch.nn.functional.lp_pool1d/2d/3d``.

PyTorch's definition, quirks included: ``s = avg_pool(x**p)`` (no padding,
``count_include_pad``), then ``(sign(s) * relu(|s|) * prod(kernel_size)) ** (1/p)``.
So a ``ceil_mode`` window clipped at the border is scaled by the full kernel
volume over its clipped divisor, exactly as in PyTorch. ``dilation`` is ONNX's
(``LpPool``, opset 18; PyTorch has none): the same formula over the dilated
window's cells. Built on :mod:`colnn.ops.pooling.avg` and (for ``norm_type``
±inf) :mod:`colnn.ops.pooling.max`, and written on the Array API standard
(``pow``, ``sign``, ``abs``, ``where``): any library's arrays, where they live.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...core.checks import from_batched, stand_in
from ...core.ieee import quiet_ieee
from ...core.namespace import is_dask_array
from ...core.spatial import check_spatial_input
from ...core.window import IntTuple, Window
from ..strategy import check_strategy, numpy_for_cpu_arrays
from ..xp import device_of, namespace
from ._base import LPPoolArgs
from .avg import avg_pool_backward, avg_pool_forward
from .max import max_pool_backward, max_pool_forward

__all__ = ["lp_pool1d", "lp_pool2d", "lp_pool3d", "lp_pool", "lp_pool_forward", "lp_pool_backward"]


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
        out, offset = max_pool_forward(sign * xp.abs(x), window, strategy)
        return sign * out, (x, offset)
    divisor = window.avg_divisor(True, None)
    power = xp.pow(x, _scalar(norm_type, x))
    mean = avg_pool_forward(power, window, divisor, strategy)
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
        grad = max_pool_backward(grad_output, offset, tuple(x.shape), window, strategy)
        return grad * xp.astype(xp.sign(x), grad_output.dtype)
    x, mean, out, divisor = saved
    volume = _scalar(window.kernel_volume, grad_output)
    with np.errstate(divide="ignore", invalid="ignore"):
        d_scaled = xp.where(mean != 0, out / (mean * volume) / _scalar(norm_type, grad_output),
                            _scalar(0, grad_output))
    grad_mean = xp.astype(grad_output * d_scaled * volume, grad_output.dtype)
    grad_power = avg_pool_backward(grad_mean, tuple(x.shape), window, divisor, strategy)
    power = xp.pow(x, _scalar(norm_type - 1, grad_output))
    return xp.astype(grad_power * _scalar(norm_type, grad_output) * power, grad_output.dtype)


@numpy_for_cpu_arrays
def lp_pool(input: Any, args: LPPoolArgs, strategy: str | None = None) -> Any:
    """The N-d body of :func:`lp_pool1d`/:func:`lp_pool2d`/:func:`lp_pool3d` on checked ``args``."""
    check_strategy(strategy)
    if is_dask_array(input):
        check_spatial_input(stand_in(input), "input", args.ndim, floating=True)
        from ..dask import pooling as dask_pooling

        return dask_pooling.lp_pool(input, args, strategy, lp_pool_forward)
    x, unbatched = check_spatial_input(input, "input", args.ndim, floating=True)
    out, _ = lp_pool_forward(x, args.norm_type, args.window(x.shape[2:]), strategy)
    return from_batched(out, unbatched)


def lp_pool1d(input: Any, norm_type: float, kernel_size: IntTuple, stride: IntTuple | None = None,
              ceil_mode: bool = False, *, dilation: IntTuple = 1, strategy: str | None = None) -> np.ndarray:
    """1-D power-average pooling, as ``torch.nn.functional.lp_pool1d``.

    ``(N, C, L)`` or ``(C, L)`` floating -> ``(N, C, out_l)``: ``(sum over the window of x**p) ** (1/p)``,
    computed as PyTorch does from an average pool (no padding). ``norm_type`` p: a non-zero number
    (±inf: the largest or smallest ``|x|``). ``dilation`` (keyword only) is ONNX ``LpPool``'s
    ``dilations`` (opset 18; PyTorch has none). A Dask array is pooled lazily.
    Raises TypeError for non-floating input, a non-numeric p or a non-bool ``ceil_mode``, ValueError
    for p = 0 or bad window arguments (named).

    >>> lp_pool1d(np.array([[3., 4.]]), 2, 2)
    array([[5.]])
    """
    return lp_pool(input, LPPoolArgs.check(1, norm_type, kernel_size, stride, ceil_mode, dilation), strategy)


def lp_pool2d(input: Any, norm_type: float, kernel_size: IntTuple, stride: IntTuple | None = None,
              ceil_mode: bool = False, *, dilation: IntTuple = 1, strategy: str | None = None) -> np.ndarray:
    """2-D power-average pooling, as ``torch.nn.functional.lp_pool2d``; see :func:`lp_pool1d`."""
    return lp_pool(input, LPPoolArgs.check(2, norm_type, kernel_size, stride, ceil_mode, dilation), strategy)


def lp_pool3d(input: Any, norm_type: float, kernel_size: IntTuple, stride: IntTuple | None = None,
              ceil_mode: bool = False, *, dilation: IntTuple = 1, strategy: str | None = None) -> np.ndarray:
    """3-D power-average pooling, as ``torch.nn.functional.lp_pool3d``; see :func:`lp_pool1d`."""
    return lp_pool(input, LPPoolArgs.check(3, norm_type, kernel_size, stride, ceil_mode, dilation), strategy)
