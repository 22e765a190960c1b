"""The walk for convolution: im2col, the filters as a matrix, one product, the reshape."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...core.checks import check_array
from ...core.window import Window
from ...nn.conv import Convolution
from ...ops.conv import conv2d
from ...ops.unfold import im2col
from .records import Link, Step, window_labels
from .steps import (
    GRADIENT_NOTE,
    batched,
    channel_labels,
    col2im_step,
    column_channels,
    copy_link,
    finish,
    flat_index,
    grad_output_steps,
    im2col_step,
    input_step,
    matmul_links,
    nchw_channels,
    padding_mask,
    to_nchw_step,
    unused_note,
)
from .walk import (
    LIMITS,
    TUTORIAL_SOURCE,
    Walk,
    check_input_size,
    check_limit,
    check_matrix_size,
    default_weight,
    finite,
)

__all__ = ["conv_walk"]

def conv_walk(
    x: Any,
    weight: Any = None,
    kernel: int = 2,
    stride: int = 1,
    pad: int = 0,
    backward: bool = False,
    source: str = TUTORIAL_SOURCE,
) -> Walk:
    """The same walk for convolution: im2col, the weight matrix, one product, the reshape.

    Parameters
    ----------
    x : array ``(N, C, H, W)`` or ``(C, H, W)``
    weight : array ``(FN, C, FH, FW)``; None: :func:`default_weight` with ``kernel``
    stride, pad : square window settings
    backward : also walk the gradient back to the input
    source : where ``x`` came from, for the text
    """
    x, unbatched = batched(x)
    check_input_size(x.shape)
    n, c = x.shape[:2]
    if weight is None:
        weight = default_weight(c, kernel)
    weight = finite(check_array(weight, "weight", ndims=(4,)), "weight")
    filters, _, kernel_h, kernel_w = weight.shape
    window = Window.build(x.shape[2:], (kernel_h, kernel_w), stride, pad,
                          kernel_name="kernel", stride_name="stride", padding_name="pad")
    expected = conv2d(x, weight, None, stride, pad)
    check_limit("the filter count FN", filters, LIMITS.filters)
    check_matrix_size("the im2col matrix", (n * window.out_h * window.out_w, c * window.kernel_area))

    col = im2col(x, kernel_h, kernel_w, stride, pad)
    weight_col = weight.reshape(filters, -1).T
    product = col @ weight_col
    filter_of_column = np.broadcast_to(np.arange(filters)[None, :], product.shape)
    filter_labels = tuple(f"filter {f + 1}" for f in range(filters))
    weight_rows = channel_labels(c, window.kernel_area)
    col_index, weight_col_index = flat_index(col.shape), flat_index(weight_col.shape)
    steps = [
        input_step(x, source, unbatched, window),
        Step(
            key="weight", label="", title="the filters", code="W",
            why=f"FN = {filters} filters, each C*kh*kw = {c}*{kernel_h}*{kernel_w}: one weight per cell of a window.",
            array=weight, band="filters", column=2, channel=nchw_channels(weight.shape), outer="filter",
        ),
        im2col_step(x, col, window, padding_mask(x.shape, window), 0.0),
        Step(
            key="weight_col", label="Step 2", title="one column per filter",
            code=f"W_col = W.reshape({filters}, -1).T",
            why=f"Flattening each filter in im2col's (c, ky, kx) order makes it a column of {weight_col.shape[0]} "
                f"weights that lines up with a row of col: {weight_col.shape}.",
            array=weight_col, column=2, channel=column_channels(weight_col.T.shape, window.kernel_area).T,
            sources=(copy_link("weight", flat_index(weight.shape).reshape(filters, -1).T),),
            row_labels=weight_rows, column_labels=filter_labels,
        ),
        Step(
            key="product", label="Step 3", title="every window times every filter",
            code="out_col = col @ W_col",
            why=f"One matrix product takes the dot product of each of the {product.shape[0]} windows with each "
                f"of the {filters} filters: a row per window, a column per filter, {product.shape}.",
            array=product, column=3, channel=filter_of_column, palette="filter",
            # out_col[r, f] is row r of col times column f of W_col.
            sources=matmul_links("col", col_index, "weight_col", weight_col_index),
            row_labels=window_labels(product.shape[0]), column_labels=filter_labels,
        ),
    ]
    steps.append(to_nchw_step(steps[-1], "out_col", "Step 4", window, n, "filter"))
    notes = [note for note in [unused_note(window)] if note]
    if backward:
        steps += grad_output_steps(steps[-1], steps[-2], "out_col")
        steps += _conv_backward_steps(steps[-1].array, col, weight, window, x.shape, filter_labels)
        notes.append(GRADIENT_NOTE)
    walk = Walk(
        headline=f"{kernel_h}x{kernel_w} convolution with {filters} filters, stride {stride}, pad {pad}",
        source=source, pad_value=0.0, steps=tuple(steps), notes=tuple(notes), window=window,
    )
    return finish(walk, x, expected, Convolution(weight, np.zeros(filters), stride, pad))


def _conv_backward_steps(
    grad_product: np.ndarray, col: np.ndarray, weight: np.ndarray, window: Window,
    x_shape: tuple[int, ...], filter_labels: tuple[str, ...],
) -> list[Step]:
    """Back 3 on: the gradients of col and the input, then of the filters and the bias (the book's Convolution)."""
    filters = weight.shape[0]
    weight_col = weight.reshape(filters, -1).T
    n_rows = col.shape[0]
    grad_col = grad_product @ weight_col.T
    grad_weight_col = col.T @ grad_product
    grad_weight = grad_weight_col.T.reshape(weight.shape)
    grad_bias = grad_product.sum(axis=0)
    product_index, col_index = flat_index(grad_product.shape), flat_index(col.shape)
    weight_col_index = flat_index(weight_col.shape)
    column_labels = channel_labels(x_shape[1], window.kernel_area)
    return [
        Step(
            key="grad_col", label="Back 3", title="the gradient of col",
            code="dcol = dout_col @ W_col.T",
            why="Through out_col = col @ W_col, each cell of col gets the sum over filters of dout times "
                f"that filter's weight for the cell: im2col's shape {grad_col.shape}.",
            array=grad_col, band="backward", column=1,
            channel=column_channels(grad_col.shape, window.kernel_area),
            sources=matmul_links("grad_product", product_index, "weight_col", weight_col_index.T),
            row_labels=window_labels(n_rows), column_labels=column_labels,
        ),
        col2im_step(grad_col, x_shape, window, "Back 4"),
        Step(
            key="grad_weight_col", label="Back 5", title="the gradient of W_col",
            code="dW_col = col.T @ dout_col",
            why=f"Each weight meets one cell of every window, so its gradient sums, over the {n_rows} windows, "
                f"that cell times the window's dout: W_col's shape {grad_weight_col.shape}.",
            array=grad_weight_col, band="parameters", column=2,
            channel=column_channels(weight_col.T.shape, window.kernel_area).T,
            sources=matmul_links("col", col_index.T, "grad_product", product_index),
            row_labels=column_labels, column_labels=filter_labels,
        ),
        Step(
            key="grad_weight", label="Back 6", title="back to the filters' shape",
            code=f"dW = dW_col.T.reshape{weight.shape}",
            why=f"Undoing Step 2 gives one gradient per weight, in W's shape {weight.shape}.",
            array=grad_weight, band="parameters", column=1, channel=nchw_channels(weight.shape), outer="filter",
            sources=(copy_link("grad_weight_col", flat_index(grad_weight_col.shape).T.reshape(weight.shape)),),
        ),
        Step(
            key="grad_bias", label="Back 7", title="the gradient of the bias",
            code="db = dout_col.sum(axis=0)",
            why=f"A filter's bias is added to each of its {n_rows} outputs, so its gradient is the sum of "
                f"the filter's column of dout_col: {grad_bias.shape}.",
            array=grad_bias, band="parameters", column=3,
            channel=np.arange(filters), palette="filter",
            sources=(Link("grad_product", product_index.T, copy=False),), row_labels=filter_labels,
        ),
    ]
