"""Convolution on the Array API standard: im2col and one matrix product per group (the reference).

The tutorial's algorithm (*Deep Learning from Scratch*, section 7.4):
``col = im2col(x)`` ``(N*L, C*K)``, then for group ``g`` ``out_g = col_g @ W_g.T``;
backward reuses ``col``: ``dW_g = dout_g.T @ col_g``, ``dcol_g = dout_g @ W_g``
and ``dx = col2im(dcol)``. Also the grouped products and layout changes that the
N-d convolutions and the transposed convolution share. Any library's arrays,
where they live; any number of spatial axes.
"""

from __future__ import annotations

import math
from typing import Any

from ...core.window import Window
from ..xp import accumulator, device_of, namespace
from .windows import col2im_window, im2col_window

__all__ = [
    "conv_forward",
    "conv_backward",
    "grouped",
    "grouped_matmul",
    "grouped_outer",
    "channels_last",
    "channels_first",
    "add_bias",
    "empty_batch_gradients",
]


def conv_forward(x: Any, weight: Any, bias: Any | None, window: Window, groups: int) -> tuple[Any, Any]:
    """``out = col_g @ W_g.T`` per group: ``(N, FN, *out)``, and ``col`` for the backward pass."""
    xp = namespace(x, weight)
    n = x.shape[0]
    filters = weight.shape[0]
    col = im2col_window(x, window, 0)  # (N*L, C*K)
    per_group = col.shape[1] // groups
    weight_rows = xp.reshape(weight, (filters, math.prod(weight.shape[1:])))
    out_per_group = filters // groups
    parts = [
        xp.matmul(col[:, g * per_group:(g + 1) * per_group],
                  xp.matrix_transpose(weight_rows[g * out_per_group:(g + 1) * out_per_group, :]))
        for g in range(groups)
    ]
    rows = parts[0] if groups == 1 else xp.concat(parts, axis=1)  # (N*L, FN)
    if bias is not None:
        rows = rows + bias
    out = window.out_size
    spatial = len(out)
    result = xp.permute_dims(xp.reshape(rows, (n, *out, filters)), (0, spatial + 1, *range(1, spatial + 1)))
    return result, col


def conv_backward(
    grad_output: Any, input_shape: tuple[int, ...], col: Any, weight: Any, window: Window, groups: int
) -> tuple[Any, Any, Any]:
    """``(grad_input, grad_weight, grad_bias)`` from the saved ``col``: ``dW_g = dout_g.T @ col_g``,
    ``dcol_g = dout_g @ W_g``."""
    xp = namespace(grad_output, weight)
    filters = weight.shape[0]
    spatial = grad_output.ndim - 2
    grad_rows = xp.reshape(xp.permute_dims(grad_output, (0, *range(2, 2 + spatial), 1)),
                           (math.prod(grad_output.shape) // filters, filters))
    weight_rows = xp.reshape(weight, (filters, math.prod(weight.shape[1:])))
    per_group = col.shape[1] // groups
    out_per_group = filters // groups
    grad_weight_parts, grad_col_parts = [], []
    for g in range(groups):
        dout_g = grad_rows[:, g * out_per_group:(g + 1) * out_per_group]
        grad_weight_parts.append(xp.matmul(xp.matrix_transpose(dout_g), col[:, g * per_group:(g + 1) * per_group]))
        grad_col_parts.append(xp.matmul(dout_g, weight_rows[g * out_per_group:(g + 1) * out_per_group, :]))
    concat = (lambda parts, axis: parts[0]) if groups == 1 else xp.concat
    grad_weight = xp.reshape(concat(grad_weight_parts, axis=0), weight.shape)
    grad_col = concat(grad_col_parts, axis=1)
    grad_bias = xp.sum(grad_rows, axis=0)
    return col2im_window(grad_col, input_shape, window), grad_weight, grad_bias


def grouped(matrix: Any, groups: int) -> Any:
    """``(R, groups*K)`` -> ``(groups, R, K)``: each group's columns as one matrix of a batch."""
    xp = namespace(matrix)
    return xp.permute_dims(xp.reshape(matrix, (matrix.shape[0], groups, matrix.shape[1] // groups)), (1, 0, 2))


def grouped_matmul(left: Any, right: Any, groups: int) -> Any:
    """``(R, groups*K) x (groups, K, M)`` -> ``(R, groups*M)``: one GEMM per group; float16 summed in float32."""
    xp = namespace(left, right)
    acc = accumulator(xp, left.dtype)
    product = xp.matmul(grouped(xp.astype(left, acc), groups), xp.astype(right, acc))  # (groups, R, M)
    rows = xp.reshape(xp.permute_dims(product, (1, 0, 2)), (left.shape[0], groups * right.shape[2]))
    return xp.astype(rows, left.dtype)


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
