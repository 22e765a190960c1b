"""The walk for convolution: im2col, the filters as a matrix, one product, the reshape."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...core.window import Window
from ...nn.layers import Convolution
from ...ops.conv import conv2d
from ...core.checks import check_array
from ...ops.im2col import im2col
from .steps import (
    GRADIENT_NOTE,
    batched,
    col2im_step,
    column_channels,
    finish,
    grad_output_steps,
    im2col_step,
    input_step,
    padding_mask,
    to_nchw_step,
)
from .walk import (
    LIMITS,
    TUTORIAL_SOURCE,
    Step,
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
    expected = conv2d(x, weight, None, stride, pad)
    filters, _, kernel_h, kernel_w = weight.shape
    window = Window.build(x.shape[2:], (kernel_h, kernel_w), stride, pad)
    check_limit("the filter count FN", filters, LIMITS.filters)
    check_matrix_size("the im2col matrix", (n * window.out_h * window.out_w, c * window.kernel_area))

    col = im2col(x, kernel_h, kernel_w, stride, pad)
    weight_col = weight.reshape(filters, -1).T
    product = col @ weight_col
    filter_of_column = np.broadcast_to(np.arange(filters)[None, :], product.shape)
    steps = [
        input_step(x, source, unbatched, window),
        Step(
            key="weight", label="", title="the filters", code="W",
            why=f"FN = {filters} filters, each C*kh*kw = {c}*{kernel_h}*{kernel_w}: one weight per cell of a window.",
            array=weight,
        ),
        im2col_step(x, col, window, padding_mask(x.shape, window), 0.0),
        Step(
            key="weight_col", label="Step 2", title="one column per filter",
            code=f"W_col = W.reshape({filters}, -1).T",
            why=f"Flattening each filter in im2col's (c, ky, kx) order makes it a column of {weight_col.shape[0]} "
                f"weights that lines up with a row of col: {weight_col.shape}.",
            array=weight_col, column=2, channel=column_channels(weight_col.T.shape, window.kernel_area).T,
        ),
        Step(
            key="product", label="Step 3", title="every window times every filter",
            code="out_col = col @ W_col",
            why=f"One matrix product takes the dot product of each of the {product.shape[0]} windows with each "
                f"of the {filters} filters: a row per window, a column per filter, {product.shape}.",
            array=product, column=3, channel=filter_of_column, palette="filter",
        ),
        to_nchw_step(product, "out_col", "Step 4", window, n, "filter"),
    ]
    notes = []
    if backward:
        steps += grad_output_steps(steps[-1], steps[-2], "out_col")
        grad_col = steps[-1].array @ weight_col.T
        steps += [
            Step(
                key="grad_col", label="Back 3", title="the gradient of col",
                code="dcol = dout_col @ W_col.T",
                why="Through out_col = col @ W_col, each cell of col gets the sum over filters of dout times "
                    f"that filter's weight for the cell: im2col's shape {grad_col.shape}.",
                array=grad_col, band="backward", column=1,
                channel=column_channels(grad_col.shape, window.kernel_area),
            ),
            col2im_step(grad_col, x.shape, window, "Back 4"),
        ]
        notes.append(GRADIENT_NOTE)
    walk = Walk(
        headline=f"{kernel_h}x{kernel_w} convolution with {filters} filters, stride {stride}, pad {pad}",
        source=source, pad_value=0.0, steps=tuple(steps), notes=tuple(notes),
    )
    return finish(walk, x, expected, Convolution(weight, np.zeros(filters), stride, pad))
