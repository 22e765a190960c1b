"""Convolution in 1, 2 and 3 spatial dimensions (cross-correlation, as ``torch.nn.functional.conv1d/2d/3d``).

One path for every dimensionality: im2col of the N-d window, then one GEMM per
group. 1-d runs :func:`colnn.ops.conv.conv2d_forward` with a unit height (the
compiled, chunked default); 3-d runs the N-d im2col (:mod:`colnn.ops.im2col_nd`)
and one GEMM; ``strategy="im2col"`` is the reference everywhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.checks import check_float_array, from_batched
from ..core.spatial import check_spatial_input
from ..core.window import IntTuple, Window
from .conv import _grouped, _ungrouped, check_conv_args, conv2d_backward, conv2d_forward, conv_window
from .im2col_nd import col2im_any, im2col_any
from .dispatch import dask_dispatch

__all__ = ["conv1d", "conv3d", "check_conv_weight", "conv_nd_forward", "conv_nd_backward", "grouped_matmul"]


def check_conv_weight(weight: Any, bias: Any, groups: Any, ndim: int, in_channels: int | None,
                      *, transposed: bool = False) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Validate an N-d weight ``(FN, C/groups, *k)`` (transposed: ``(C, FN/groups, *k)``), bias and groups.

    The 2-D rules of :func:`colnn.ops.conv.check_conv_args` apply, on a 4-D view.
    """
    weight = check_float_array(weight, "weight", ndims=(ndim + 2,))
    folded = weight.reshape(*weight.shape[:2], -1, 1)
    if transposed:
        # (C, FN/groups, *k): as a convolution from FN/groups*groups channels to C filters.
        _, bias_checked, groups = check_conv_args(folded, None, groups, None)
        if in_channels is not None and weight.shape[0] != in_channels:
            raise ValueError(f"weight of shape {weight.shape} expects {weight.shape[0]} input channels, "
                             f"but input has {in_channels}")
        out_channels = weight.shape[1] * groups
        if bias is not None:
            bias = check_float_array(bias, "bias", ndims=(1,))
            if bias.shape != (out_channels,):
                raise ValueError(f"bias must have shape ({out_channels},), got {bias.shape}")
        return weight, bias, groups
    _, bias, groups = check_conv_args(folded, bias, groups, in_channels)
    return weight, bias, groups


def grouped_matmul(left: np.ndarray, right: np.ndarray, groups: int) -> np.ndarray:
    """``(R, groups*K) x (groups, K, M)`` -> ``(R, groups*M)``: one GEMM per group; float16 summed in float32."""
    if left.dtype == np.float16:
        return grouped_matmul(left.astype(np.float32), right.astype(np.float32), groups).astype(np.float16)
    if groups == 1:
        return left @ right[0]
    return _ungrouped(_grouped(left, groups) @ right)


def conv_nd_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, window: Window,
                    groups: int = 1, strategy: str | None = None) -> tuple[np.ndarray, Any]:
    """Convolve a validated batch ``(N, C, *in)``: ``(out (N, FN, *out), saved)`` for :func:`conv_nd_backward`."""
    if window.ndim == 2:
        return conv2d_forward(x, weight, bias, window, groups, strategy)
    if window.ndim == 1:
        out, saved = conv2d_forward(x[:, :, np.newaxis], weight[:, :, np.newaxis], bias,
                                    window.with_unit_axis(), groups, strategy)
        return out[:, :, 0], saved
    n, out_channels = x.shape[0], weight.shape[0]
    col = im2col_any(x, window, strategy)
    weight_rows = weight.reshape(groups, out_channels // groups, -1).transpose(0, 2, 1)
    out = grouped_matmul(col, weight_rows, groups).reshape(n, *window.out_size, out_channels)
    out = np.moveaxis(out, -1, 1)
    if bias is not None:
        out = out + bias.reshape(1, -1, *(1,) * window.ndim)
    return np.ascontiguousarray(out), col


def conv_nd_backward(grad_output: np.ndarray, input_shape: tuple[int, ...], saved: Any, weight: np.ndarray,
                     window: Window, groups: int = 1, strategy: str | None = None):
    """Gradients ``(grad_input, grad_weight, grad_bias)``; ``saved`` from :func:`conv_nd_forward`."""
    if window.ndim == 2:
        return conv2d_backward(grad_output, input_shape, saved, weight, window, groups, strategy)
    if window.ndim == 1:
        grad_input, grad_weight, grad_bias = conv2d_backward(
            grad_output[:, :, np.newaxis], (*input_shape[:2], 1, *input_shape[2:]), saved,
            weight[:, :, np.newaxis], window.with_unit_axis(), groups, strategy)
        return grad_input[:, :, 0], grad_weight[:, :, 0], grad_bias
    if grad_output.shape[0] == 0:  # an empty batch: empty input gradient, zero parameter gradients
        return (np.zeros(input_shape, grad_output.dtype), np.zeros_like(weight, dtype=grad_output.dtype),
                np.zeros(weight.shape[0], grad_output.dtype))
    col, out_channels = saved, weight.shape[0]
    grad_rows = np.moveaxis(grad_output, 1, -1).reshape(-1, out_channels)
    grad_bias = grad_output.sum(axis=(0, *range(2, grad_output.ndim)))
    weight_rows = weight.reshape(groups, out_channels // groups, -1)
    grad_weight = (_grouped(grad_rows, groups).transpose(0, 2, 1) @ _grouped(col, groups)).reshape(weight.shape)
    grad_col = grouped_matmul(grad_rows, weight_rows, groups)
    return col2im_any(grad_col, input_shape, window, strategy), grad_weight, grad_bias


def _conv(ndim, input, weight, bias, stride, padding, dilation, groups, strategy):
    x, unbatched = check_spatial_input(input, "input", ndim, floating=True)
    weight, bias, groups = check_conv_weight(weight, bias, groups, ndim, x.shape[1])
    dtype = np.result_type(x, weight, *(() if bias is None else (bias,)))
    window = conv_window(x.shape[2:], weight.shape[2:], stride, padding, dilation)
    out, _ = conv_nd_forward(x.astype(dtype, copy=False), weight.astype(dtype, copy=False),
                             None if bias is None else bias.astype(dtype, copy=False), window, groups, strategy)
    return from_batched(out, unbatched)


@dask_dispatch
def conv1d(input: Any, weight: Any, bias: Any = None, stride: IntTuple = 1, padding: IntTuple | str = 0,
           dilation: IntTuple = 1, groups: int = 1, *, strategy: str | None = None) -> np.ndarray:
    """1-D convolution, as ``torch.nn.functional.conv1d``.

    Parameters
    ----------
    input : floating ``(N, C, L)`` or unbatched ``(C, L)``
    weight : ``(FN, C/groups, K)``; bias : ``(FN,)`` or None
    stride, dilation : int or ``(s,)``; padding : int, ``(p,)``, ``"valid"`` or ``"same"`` (stride 1)
    groups : independent channel groups; strategy : ``None`` (compiled) or ``"im2col"`` (reference)

    Returns
    -------
    ``(N, FN, out_l)`` (or ``(FN, out_l)``), ``out_l = (L + 2*padding - dilation*(K-1) - 1) // stride + 1``;
    the arguments' common dtype.

    Raises
    ------
    TypeError for non-floating arrays; ValueError for ranks, shapes, groups or arguments that do not fit (named).

    Examples
    --------
    >>> conv1d(np.ones((1, 1, 4)), np.ones((1, 1, 2)))
    array([[[2., 2., 2.]]])
    """
    return _conv(1, input, weight, bias, stride, padding, dilation, groups, strategy)


@dask_dispatch
def conv3d(input: Any, weight: Any, bias: Any = None, stride: IntTuple = 1, padding: IntTuple | str = 0,
           dilation: IntTuple = 1, groups: int = 1, *, strategy: str | None = None) -> np.ndarray:
    """3-D convolution, as ``torch.nn.functional.conv3d``: ``(N, C, D, H, W)`` by ``(FN, C/groups, KD, KH, KW)``.

    Arguments, results and errors as :func:`conv1d`, with ``(d, h, w)`` triples.

    Examples
    --------
    >>> conv3d(np.ones((1, 1, 2, 2, 2)), np.ones((1, 1, 2, 2, 2)))
    array([[[[[8.]]]]])
    """
    return _conv(3, input, weight, bias, stride, padding, dilation, groups, strategy)
