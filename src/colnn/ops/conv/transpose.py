"""Transposed convolution in 1, 2 and 3 dimensions, as ``torch.nn.functional.conv_transpose1d/2d/3d``.

It is the adjoint of a convolution: one GEMM per group turns each input cell
into a column of kernel-sized patches, and col2im sums them into the output.
NumPy float32/float64 arrays without dilation run it by the stride's phases,
each output cell summed once from contiguous runs of the GEMM's rows
(:mod:`colnn.kernels.conv_transpose_phases`, where
:func:`~colnn.kernels.conv_transpose_phases.applies`: planes not too small, a
finite weight); others as the convolution's input gradient, chunk
by chunk of images (:func:`colnn.kernels.conv_chunked.conv_input_grad_chunked`,
1-d as 2-d with a unit height). Its backward is a forward convolution
(``grad_input``) and the convolution's weight gradient with input and output
gradient exchanged (``grad_weight``), both from one im2col of ``grad_output``
(:func:`colnn.kernels.conv_chunked.conv_transpose_backward_chunked`) unless a
specialised 2-D kernel takes that convolution. Other arrays and ``strategy="im2col"`` run
the Array API reference below, with :func:`colnn.ops.unfold.col2im_nd`. Its
window (:meth:`ConvTransposeArgs.window
<colnn.ops.conv._base.ConvTransposeArgs.window>`) is the convolution that maps the
output back to the input's size, so its geometry, checks and messages are
:class:`colnn.core.window.Window`'s. Backward: ``grad_input`` is that
convolution of ``grad_output``, ``grad_weight`` pairs the input rows with im2col
of ``grad_output``. Written on the Array API standard: another library's arrays
are computed where they live and come back as that library's; a Dask array is
computed lazily (:mod:`colnn.ops.dask.conv`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...core.checks import from_batched, stand_in
from ...core.namespace import is_dask_array
from ...core.spatial import check_spatial_input
from ...core.window import IntTuple, Window
from ...kernels import conv_chunked, conv_transpose_phases
from ..reference.conv import (
    add_bias,
    channels_first,
    channels_last,
    empty_batch_gradients,
    grouped_matmul,
    grouped_outer,
)
from ..strategy import check_strategy, numpy_for_cpu_arrays, runs_kernels
from ..unfold import col2im_nd, im2col_nd
from ..xp import as_common_dtype, namespace
from ._base import ConvTransposeArgs, check_weights
from .conv import conv_forward, get_column_budget, takes_chunked_path

__all__ = [
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "conv_transpose",
    "conv_transpose_forward",
    "conv_transpose_backward",
]


def conv_transpose_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, window: Window,
                           groups: int = 1, strategy: str | None = None) -> np.ndarray:
    """Transposed convolution of a validated batch ``(N, C, *in)`` into ``(N, FN, *out)``."""
    n, in_channels = x.shape[:2]
    out_channels = weight.shape[1] * groups
    out_shape = (n, out_channels, *window.in_size)
    if runs_kernels(strategy, x, "conv"):
        if conv_transpose_phases.applies(x.shape, weight, window):
            # The same GEMM, then each output cell summed once, phase by phase: no strided overlap-add.
            return conv_transpose_phases.conv_transpose_phased(x, weight, bias, window, groups, get_column_budget())
        if window.ndim == 1:
            out = conv_transpose_forward(x[:, :, np.newaxis], weight[:, :, np.newaxis], bias,
                                         window.with_unit_axis(), groups, strategy)
            return out[:, :, 0]
        # The input gradient of the convolution whose weight this is: GEMM, then compiled col2im.
        return conv_chunked.conv_input_grad_chunked(x, out_shape, weight, window, groups, get_column_budget(), bias)
    weight_rows = namespace(weight).reshape(weight, (groups, in_channels // groups, -1))
    col = grouped_matmul(channels_last(x), weight_rows, groups)
    return add_bias(col2im_nd(col, out_shape, window, strategy), bias)


def conv_transpose_backward(grad_output: np.ndarray, x: np.ndarray, weight: np.ndarray, window: Window,
                            groups: int = 1, strategy: str | None = None):
    """Gradients ``(grad_input, grad_weight, grad_bias)`` of :func:`conv_transpose_forward`."""
    in_channels = x.shape[1]
    if x.shape[0] == 0:
        return empty_batch_gradients(x.shape, weight, grad_output.shape[1], grad_output)
    xp = namespace(grad_output, weight)
    grad_bias = xp.sum(grad_output, axis=(0, *range(2, grad_output.ndim)))
    if runs_kernels(strategy, grad_output, "conv"):
        if window.ndim == 1:
            grad_input, grad_weight, _ = conv_transpose_backward(
                grad_output[:, :, np.newaxis], x[:, :, np.newaxis], weight[:, :, np.newaxis],
                window.with_unit_axis(), groups, strategy)
            return grad_input[:, :, 0], grad_weight[:, :, 0], grad_bias
        # grad_input is the forward convolution of grad_output; grad_weight the convolution's weight
        # gradient with the roles of input and output gradient exchanged. Both read im2col of grad_output:
        # built once for the two where the convolution runs im2col anyway.
        if takes_chunked_path(grad_output, weight, window, groups):
            grad_input, grad_weight = conv_chunked.conv_transpose_backward_chunked(grad_output, x, weight, window,
                                                                                  groups, get_column_budget())
            return grad_input, grad_weight, grad_bias
        grad_input, _ = conv_forward(grad_output, weight, None, window, groups, strategy)
        _, grad_weight, _ = conv_chunked.conv2d_backward_chunked(x, grad_output, weight, window, groups,
                                                                 get_column_budget(), input_grad=False)
        return grad_input, grad_weight, grad_bias
    grad_col = im2col_nd(grad_output, window, strategy)
    weight_rows = xp.reshape(weight, (groups, in_channels // groups, -1))
    grad_rows = grouped_matmul(grad_col, xp.permute_dims(weight_rows, (0, 2, 1)), groups)
    grad_input = channels_first(grad_rows, x.shape[0], window.out_size)
    grad_weight = grouped_outer(channels_last(x), grad_col, groups, weight.shape)
    return grad_input, grad_weight, grad_bias


@numpy_for_cpu_arrays
def conv_transpose(input: Any, weight: Any, bias: Any, args: ConvTransposeArgs, strategy: str | None = None) -> Any:
    """The N-d body of ``conv_transpose1d/2d/3d`` on checked ``args``."""
    check_strategy(strategy)
    lazy = is_dask_array(input)
    x, unbatched = check_spatial_input(stand_in(input) if lazy else input, "input", args.ndim, floating=True)
    weight, bias = check_weights(weight, bias, args.groups, args.ndim, x.shape[1], transposed=True,
                                 like=None if lazy else x)
    window = args.window(x.shape[2:], weight.shape[2:])
    if lazy:
        from ..dask import conv as dask_conv

        batched = input[np.newaxis] if unbatched else input
        out = dask_conv.conv_transpose(batched, weight, bias, args, window, strategy, conv_transpose_forward)
        return out[0] if unbatched else out
    x, weight, bias = as_common_dtype(x, weight, bias)
    result = conv_transpose_forward(x, weight, bias, window, args.groups, strategy)
    return from_batched(result, unbatched)


_DOC = """{d}-D transposed convolution, as ``torch.nn.functional.conv_transpose{d}d``.

    Parameters
    ----------
    input : floating ``(N, C, {sp})`` or unbatched ``(C, {sp})`` (a Dask array: lazily)
    weight : ``(C, FN/groups, {k})``; bias : ``(FN,)`` or None
    stride, padding, output_padding, dilation : int or a tuple of {d}; ``output_padding``
        must be smaller than stride or dilation
    groups : independent channel groups; strategy : ``None`` (compiled col2im where it applies) or ``"im2col"``

    Returns
    -------
    ``(N, FN, *out)``, ``out = (in-1)*stride - 2*padding + dilation*(k-1) + output_padding + 1``, common dtype.

    Raises
    ------
    TypeError for non-floating arrays or non-int arguments; ValueError for ranks, shapes, groups or
    arguments that do not fit (named), or an empty output.
    """


def conv_transpose1d(input: Any, weight: Any, bias: Any = None, stride: IntTuple = 1, padding: IntTuple = 0,
                     output_padding: IntTuple = 0, groups: int = 1, dilation: IntTuple = 1, *,
                     strategy: str | None = None) -> np.ndarray:
    args = ConvTransposeArgs.check(1, stride, padding, output_padding, groups, dilation)
    return conv_transpose(input, weight, bias, args, strategy)


def conv_transpose2d(input: Any, weight: Any, bias: Any = None, stride: IntTuple = 1, padding: IntTuple = 0,
                     output_padding: IntTuple = 0, groups: int = 1, dilation: IntTuple = 1, *,
                     strategy: str | None = None) -> np.ndarray:
    args = ConvTransposeArgs.check(2, stride, padding, output_padding, groups, dilation)
    return conv_transpose(input, weight, bias, args, strategy)


def conv_transpose3d(input: Any, weight: Any, bias: Any = None, stride: IntTuple = 1, padding: IntTuple = 0,
                     output_padding: IntTuple = 0, groups: int = 1, dilation: IntTuple = 1, *,
                     strategy: str | None = None) -> np.ndarray:
    args = ConvTransposeArgs.check(3, stride, padding, output_padding, groups, dilation)
    return conv_transpose(input, weight, bias, args, strategy)


conv_transpose1d.__doc__ = _DOC.format(d=1, sp="L", k="K") + """
    Examples
    --------
    >>> conv_transpose1d(np.ones((1, 1, 2)), np.ones((1, 1, 2)))
    array([[[1., 2., 1.]]])
    """
conv_transpose2d.__doc__ = _DOC.format(d=2, sp="H, W", k="KH, KW")
conv_transpose3d.__doc__ = _DOC.format(d=3, sp="D, H, W", k="KD, KH, KW")
