"""Convolution in 1, 2 and 3 spatial dimensions (cross-correlation, as ``torch.nn.functional.conv1d/2d/3d``).

One path for every dimensionality: im2col of the N-d window, then one GEMM per
group. 1-d runs :func:`colnn.ops.conv.conv2d_forward` with a unit height (the
compiled, chunked default); 3-d runs the N-d im2col (:mod:`colnn.ops.im2col_nd`)
and one GEMM per group; ``strategy="im2col"`` is the reference everywhere. All of it
is written on the Array API standard, so another library's arrays (PyTorch, JAX,
CuPy...) are convolved where they live and come back as that library's arrays.
"""

from __future__ import annotations

from typing import Any

import math

import numpy as np

from ..core.checks import check_float_array, from_batched
from ..core.ieee import quiet_ieee
from ..core.spatial import check_spatial_input
from ..core.window import IntTuple, Window
from ..kernels.geometry import STRATEGIES
from .array_api import as_common_dtype, check_strategy, device_of, expand_axis, grouped, grouped_matmul, namespace
from .conv import check_conv_args, conv2d_backward, conv2d_forward, conv_window
from .dispatch import dask_dispatch
from .im2col_nd import col2im_any, im2col_any

__all__ = ["conv1d", "conv3d", "check_conv_weight", "conv_nd_forward", "conv_nd_backward", "channels_last",
           "channels_first", "add_bias", "empty_batch_gradients", "grouped_outer"]


def check_conv_weight(weight: Any, bias: Any, groups: Any, ndim: int, in_channels: int | None,
                      *, transposed: bool = False, like: Any = None) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Validate an N-d weight ``(FN, C/groups, *k)`` (transposed: ``(C, FN/groups, *k)``), bias and groups.

    The 2-D rules of :func:`colnn.ops.conv.check_conv_args` apply, on a 4-D view,
    the library rule too: the weight of ``like``'s library and device, the bias of the weight's.
    """
    weight = check_float_array(weight, "weight", ndims=(ndim + 2,), batch_ndims=(), array_api=True, like=like)
    folded = namespace(weight).reshape(weight, (*weight.shape[:2], math.prod(weight.shape[2:]), 1))
    if transposed:
        # (C, FN/groups, *k): as a convolution from FN/groups*groups channels to C filters.
        _, bias_checked, groups = check_conv_args(folded, None, groups, None)
        if in_channels is not None and weight.shape[0] != in_channels:
            raise ValueError(f"weight of shape {tuple(weight.shape)} expects {weight.shape[0]} input channels, "
                             f"but input has {in_channels}")
        out_channels = weight.shape[1] * groups
        if bias is not None:
            bias = check_float_array(bias, "bias", ndims=(1,), batch_ndims=(), array_api=True, like=weight,
                                     like_name="weight")
            if tuple(bias.shape) != (out_channels,):
                raise ValueError(f"bias must have shape ({out_channels},), got {tuple(bias.shape)}")
        return weight, bias, groups
    _, bias, groups = check_conv_args(folded, bias, groups, in_channels)
    return weight, bias, groups


def channels_last(x: Any) -> Any:
    """``(N, C, *spatial)`` -> ``(N*prod(spatial), C)``: one row per cell, as im2col's rows."""
    xp = namespace(x)
    return xp.reshape(xp.permute_dims(x, (0, *range(2, x.ndim), 1)), (-1, x.shape[1]))


def channels_first(rows: Any, n: int, spatial: tuple[int, ...]) -> Any:
    """Inverse of :func:`channels_last`: ``(N*prod(spatial), C)`` -> ``(N, C, *spatial)``."""
    xp = namespace(rows)
    cells = xp.reshape(rows, (n, *spatial, rows.shape[1]))
    return xp.permute_dims(cells, (0, len(spatial) + 1, *range(1, len(spatial) + 1)))


def add_bias(out: Any, bias: Any | None) -> Any:
    """``out`` ``(N, FN, *spatial)`` plus ``bias`` ``(FN,)`` on the channel axis (None: unchanged)."""
    if bias is None:
        return out
    return out + namespace(bias).reshape(bias, (1, bias.shape[0], *(1,) * (out.ndim - 2)))


def empty_batch_gradients(input_shape: tuple[int, ...], weight: Any, bias_size: int, like: Any):
    """An empty batch's gradients: an empty input gradient and zero parameter gradients, in ``like``'s dtype."""
    xp, device = namespace(like), device_of(like)
    return (xp.zeros(tuple(input_shape), dtype=like.dtype, device=device),
            xp.zeros(tuple(weight.shape), dtype=like.dtype, device=device),
            xp.zeros(bias_size, dtype=like.dtype, device=device))


def grouped_outer(left: Any, right: Any, groups: int, shape: tuple[int, ...]) -> Any:
    """``left_g.T @ right_g`` per group, stacked into ``shape``: a weight gradient from rows and columns."""
    xp = namespace(left, right)
    return xp.reshape(xp.matmul(xp.matrix_transpose(grouped(left, groups)), grouped(right, groups)), tuple(shape))


@quiet_ieee
def conv_nd_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, window: Window,
                    groups: int = 1, strategy: str | None = None) -> tuple[np.ndarray, Any]:
    """Convolve a validated batch ``(N, C, *in)``: ``(out (N, FN, *out), saved)`` for :func:`conv_nd_backward`."""
    if window.ndim == 2:
        return conv2d_forward(x, weight, bias, window, groups, strategy)
    if window.ndim == 1:
        out, saved = conv2d_forward(expand_axis(x, 2), expand_axis(weight, 2), bias,
                                    window.with_unit_axis(), groups, strategy)
        return out[:, :, 0, ...], saved
    xp = namespace(x, weight)
    out_channels = weight.shape[0]
    col = im2col_any(x, window, strategy)
    weight_rows = xp.permute_dims(xp.reshape(weight, (groups, out_channels // groups, -1)), (0, 2, 1))
    out = channels_first(grouped_matmul(col, weight_rows, groups), x.shape[0], window.out_size)
    return add_bias(out, bias), col


@quiet_ieee
def conv_nd_backward(grad_output: np.ndarray, input_shape: tuple[int, ...], saved: Any, weight: np.ndarray,
                     window: Window, groups: int = 1, strategy: str | None = None):
    """Gradients ``(grad_input, grad_weight, grad_bias)``; ``saved`` from :func:`conv_nd_forward`."""
    if window.ndim == 2:
        return conv2d_backward(grad_output, input_shape, saved, weight, window, groups, strategy)
    if window.ndim == 1:
        grad_input, grad_weight, grad_bias = conv2d_backward(
            expand_axis(grad_output, 2), (*input_shape[:2], 1, *input_shape[2:]), saved,
            expand_axis(weight, 2), window.with_unit_axis(), groups, strategy)
        return grad_input[:, :, 0, ...], grad_weight[:, :, 0, ...], grad_bias
    if grad_output.shape[0] == 0:
        return empty_batch_gradients(input_shape, weight, weight.shape[0], grad_output)
    xp = namespace(grad_output, weight)
    col, out_channels = saved, weight.shape[0]
    grad_rows = channels_last(grad_output)
    grad_bias = xp.sum(grad_output, axis=(0, *range(2, grad_output.ndim)))
    weight_rows = xp.reshape(weight, (groups, out_channels // groups, -1))
    grad_weight = grouped_outer(grad_rows, col, groups, weight.shape)
    grad_col = grouped_matmul(grad_rows, weight_rows, groups)
    return col2im_any(grad_col, input_shape, window, strategy), grad_weight, grad_bias


def _conv(ndim, input, weight, bias, stride, padding, dilation, groups, strategy):
    check_strategy(strategy, input, STRATEGIES)
    x, unbatched = check_spatial_input(input, "input", ndim, floating=True)
    weight, bias, groups = check_conv_weight(weight, bias, groups, ndim, x.shape[1], like=x)
    window = conv_window(x.shape[2:], weight.shape[2:], stride, padding, dilation)
    out, _ = conv_nd_forward(*as_common_dtype(x, weight, bias), window, groups, strategy)
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
