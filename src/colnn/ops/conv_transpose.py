"""Transposed convolution in 1, 2 and 3 dimensions, as ``torch.nn.functional.conv_transpose1d/2d/3d``.

It is the adjoint of a convolution: one GEMM per group turns each input cell
into a column of kernel-sized patches, and col2im sums them into the output
(compiled col2im for 1-d and 2-d, the N-d reference for 3-d). The window is
the convolution that maps the output back to the input's size, so its
geometry, checks and messages are :class:`colnn.core.window.Window`'s.
Backward: ``grad_input`` is that convolution of ``grad_output``, ``grad_weight``
pairs the input rows with im2col of ``grad_output``. Written on the Array API
standard: another library's arrays are computed where they live (the reference
col2im/im2col of :mod:`colnn.ops.array_api`) and come back as that library's.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..core.checks import from_batched
from ..core.spatial import check_spatial_input
from ..core.window import IntTuple, Window, as_tuple
from ..kernels.geometry import STRATEGIES
from .array_api import as_common_dtype, check_strategy, grouped_matmul, namespace
from .conv_nd import add_bias, channels_first, channels_last, check_conv_weight, empty_batch_gradients, grouped_outer
from .dispatch import dask_dispatch
from .im2col_nd import col2im_any, im2col_any

__all__ = [
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "transpose_window",
    "conv_transpose_forward",
    "conv_transpose_backward",
    "check_transpose_args",
]


def transpose_window(in_size: tuple[int, ...], kernel_size: tuple[int, ...], stride: IntTuple, padding: IntTuple,
                     output_padding: IntTuple, dilation: IntTuple) -> Window:
    """The convolution window over the transposed convolution's output whose windows are the input's cells.

    Output size per axis: ``(in-1)*stride - 2*padding + dilation*(k-1) + output_padding + 1``.
    ValueError if ``output_padding`` is not smaller than stride or dilation, or the output is empty.
    """
    ndim = len(in_size)
    strides = as_tuple(stride, "stride", ndim, minimum=1)
    pads = as_tuple(padding, "padding", ndim, minimum=0)
    dilations = as_tuple(dilation, "dilation", ndim, minimum=1)
    extra = as_tuple(output_padding, "output_padding", ndim, minimum=0)
    if any(e >= max(s, d) for e, s, d in zip(extra, strides, dilations)):
        raise ValueError(f"output_padding must be smaller than stride or dilation, got output_padding="
                         f"{output_padding!r} with stride={stride!r}, dilation={dilation!r}")
    out_size = tuple((i - 1) * s - 2 * p + d * (k - 1) + e + 1
                     for i, s, p, d, k, e in zip(in_size, strides, pads, dilations, kernel_size, extra))
    if min(out_size) < 1:
        raise ValueError(f"output would be empty: input size {in_size} with kernel {kernel_size}, "
                         f"stride={stride!r}, padding={padding!r}, dilation={dilation!r} gives {out_size}")
    window = Window.build(out_size, kernel_size, strides, pads, dilations, kernel_name="weight's kernel size")
    # With output_padding >= stride (allowed when < dilation) the output fits extra windows: keep the input's.
    return dataclasses.replace(window, out_size=tuple(in_size))


def conv_transpose_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, window: Window,
                           groups: int = 1, strategy: str | None = None) -> np.ndarray:
    """Transposed convolution of a validated batch ``(N, C, *in)`` into ``(N, FN, *out)``."""
    n, in_channels = x.shape[:2]
    out_channels = weight.shape[1] * groups
    weight_rows = namespace(weight).reshape(weight, (groups, in_channels // groups, -1))
    col = grouped_matmul(channels_last(x), weight_rows, groups)
    return add_bias(col2im_any(col, (n, out_channels, *window.in_size), window, strategy), bias)


def conv_transpose_backward(grad_output: np.ndarray, x: np.ndarray, weight: np.ndarray, window: Window,
                            groups: int = 1, strategy: str | None = None):
    """Gradients ``(grad_input, grad_weight, grad_bias)`` of :func:`conv_transpose_forward`."""
    in_channels = x.shape[1]
    if x.shape[0] == 0:
        return empty_batch_gradients(x.shape, weight, grad_output.shape[1], grad_output)
    xp = namespace(grad_output, weight)
    grad_col = im2col_any(grad_output, window, strategy)
    weight_rows = xp.reshape(weight, (groups, in_channels // groups, -1))
    grad_rows = grouped_matmul(grad_col, xp.permute_dims(weight_rows, (0, 2, 1)), groups)
    grad_input = channels_first(grad_rows, x.shape[0], window.out_size)
    grad_weight = grouped_outer(channels_last(x), grad_col, groups, weight.shape)
    grad_bias = xp.sum(grad_output, axis=(0, *range(2, grad_output.ndim)))
    return grad_input, grad_weight, grad_bias


def check_transpose_args(ndim: int, input: Any, weight: Any, bias: Any, stride, padding, output_padding, groups, dilation):
    """Check a transposed convolution's arguments: ``(x, weight, bias, groups, window, unbatched)``, common dtype."""
    x, unbatched = check_spatial_input(input, "input", ndim, floating=True)
    weight, bias, groups = check_conv_weight(weight, bias, groups, ndim, x.shape[1], transposed=True, like=x)
    window = transpose_window(x.shape[2:], weight.shape[2:], stride, padding, output_padding, dilation)
    return (*as_common_dtype(x, weight, bias), groups, window, unbatched)


def _conv_transpose(ndim, input, weight, bias, stride, padding, output_padding, groups, dilation, strategy):
    check_strategy(strategy, input, STRATEGIES)
    x, weight, bias, groups, window, unbatched = check_transpose_args(
        ndim, input, weight, bias, stride, padding, output_padding, groups, dilation)
    out = conv_transpose_forward(x, weight, bias, window, groups, strategy)
    return from_batched(out, unbatched)


_DOC = """{d}-D transposed convolution, as ``torch.nn.functional.conv_transpose{d}d``.

    Parameters
    ----------
    input : floating ``(N, C, {sp})`` or unbatched ``(C, {sp})``
    weight : ``(C, FN/groups, {k})``; bias : ``(FN,)`` or None
    stride, padding, output_padding, dilation : int or a tuple of {d}; ``output_padding``
        must be smaller than stride or dilation
    groups : independent channel groups; strategy : ``None`` (compiled col2im where it applies) or ``"im2col"``

    Returns
    -------
    ``(N, FN, *out)``, ``out = (in-1)*stride - 2*padding + dilation*(k-1) + output_padding + 1``, common dtype.

    Raises
    ------
    TypeError for non-floating arrays; ValueError for ranks, shapes, groups or arguments that do not fit (named).
    """


@dask_dispatch
def conv_transpose1d(input: Any, weight: Any, bias: Any = None, stride: IntTuple = 1, padding: IntTuple = 0,
                     output_padding: IntTuple = 0, groups: int = 1, dilation: IntTuple = 1, *,
                     strategy: str | None = None) -> np.ndarray:
    return _conv_transpose(1, input, weight, bias, stride, padding, output_padding, groups, dilation, strategy)


@dask_dispatch
def conv_transpose2d(input: Any, weight: Any, bias: Any = None, stride: IntTuple = 1, padding: IntTuple = 0,
                     output_padding: IntTuple = 0, groups: int = 1, dilation: IntTuple = 1, *,
                     strategy: str | None = None) -> np.ndarray:
    return _conv_transpose(2, input, weight, bias, stride, padding, output_padding, groups, dilation, strategy)


@dask_dispatch
def conv_transpose3d(input: Any, weight: Any, bias: Any = None, stride: IntTuple = 1, padding: IntTuple = 0,
                     output_padding: IntTuple = 0, groups: int = 1, dilation: IntTuple = 1, *,
                     strategy: str | None = None) -> np.ndarray:
    return _conv_transpose(3, input, weight, bias, stride, padding, output_padding, groups, dilation, strategy)


conv_transpose1d.__doc__ = _DOC.format(d=1, sp="L", k="K") + """
    Examples
    --------
    >>> conv_transpose1d(np.ones((1, 1, 2)), np.ones((1, 1, 2)))
    array([[[1., 2., 1.]]])
    """
conv_transpose2d.__doc__ = _DOC.format(d=2, sp="H, W", k="KH, KW")
conv_transpose3d.__doc__ = _DOC.format(d=3, sp="D, H, W", k="KD, KH, KW")
