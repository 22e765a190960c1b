"""im2col / col2im (the book's layout) and unfold / fold (PyTorch's layout).

All four are built on one primitive, :func:`colnn.ops.array_api.window_cells`:
cell ``(ky, kx)`` of every window, gathered by one strided slice of the padded
input per kernel offset, as the tutorial's loop does. ``im2col`` and ``unfold``
lay those cells out as a matrix; ``col2im`` and ``fold`` are their adjoints and
sum overlapping cells. That path, written on the Array API standard, is the
reference (``strategy="im2col"``) and the path of every other library's array
(PyTorch, JAX, CuPy: computed on their device); by default NumPy arrays run the
compiled loops of :mod:`colnn.kernels.unfold` instead, which give the same
arrays bit for bit without padding a copy of the input first.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.checks import (
    from_batched,
    accumulation_dtype, as_numpy_dtype, cast_array, cast_pad_value, check_array, check_batch_shape,
    foreign_namespace, to_batched,
)
from ..core.window import IntPair, Window, as_pair
from ..kernels.geometry import STRATEGIES, use_kernels
from ..kernels.unfold import col2im_rows, fold_windows, im2col_rows, unfold_windows
from .array_api import check_strategy, col2im_window, fold_window, im2col_window, unfold_window
from .dispatch import dask_dispatch

__all__ = ["im2col", "col2im", "unfold", "fold"]


def _runs_kernels(strategy: str | None, x: Any, dtype: Any = None) -> bool:
    """Whether ``x`` goes to the compiled kernels (in ``dtype``, default its own); another library's array
    runs the Array API path where it lives."""
    if foreign_namespace(x) is not None:
        check_strategy(strategy, x, STRATEGIES)
        return False
    return use_kernels(strategy, x.dtype if dtype is None else dtype)


@dask_dispatch
def im2col(
    input_data: Any,
    filter_h: int,
    filter_w: int,
    stride: IntPair = 1,
    pad: IntPair = 0,
    *,
    dilation: IntPair = 1,
    pad_value: Any = 0,
    strategy: str | None = None,
) -> np.ndarray:
    """Unroll every filter window of a batch into one row of a matrix (the book's layout).

    Parameters
    ----------
    input_data : array ``(N, C, H, W)``, integer or floating
    filter_h, filter_w : window height and width
    stride, pad, dilation : int or ``(h, w)`` pair
    pad_value : value of the padded cells (0 for convolution and average
        pooling; ``-inf`` for max pooling, which an integer input reads as its
        dtype's minimum)
    strategy : ``"numba"`` (the default: compiled) or ``"im2col"`` (the NumPy reference)

    Returns
    -------
    col : array ``(N*out_h*out_w, C*filter_h*filter_w)`` of the input's dtype,
        rows ordered ``(n, out_y, out_x)``, columns ``(c, ky, kx)``, where
        ``out_h = (H + 2*pad - dilation*(filter_h-1) - 1) // stride + 1``.

    Examples
    --------
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> im2col(x, 2, 2, stride=2)
    array([[ 0.,  1.,  4.,  5.],
           [ 2.,  3.,  6.,  7.],
           [ 8.,  9., 12., 13.],
           [10., 11., 14., 15.]])
    """
    x = check_array(input_data, "input_data", ndims=(4,), array_api=True)
    window = Window.build(
        x.shape[2:], (filter_h, filter_w), stride, pad, dilation,
        kernel_name="(filter_h, filter_w)", padding_name="pad",
    )
    pad_value = cast_pad_value(pad_value, as_numpy_dtype(x.dtype))
    if _runs_kernels(strategy, x):
        return im2col_rows(x, window, pad_value)
    return im2col_window(x, window, pad_value.item())


def col2im(
    col: Any,
    input_shape: tuple[int, int, int, int],
    filter_h: int,
    filter_w: int,
    stride: IntPair = 1,
    pad: IntPair = 0,
    *,
    dilation: IntPair = 1,
    strategy: str | None = None,
) -> np.ndarray:
    """Fold an :func:`im2col` matrix back to ``input_shape``, summing overlapping cells.

    It is the exact adjoint of ``im2col``: ``<im2col(x), y> == <x, col2im(y)>``.

    Parameters
    ----------
    col : array ``(N*out_h*out_w, C*filter_h*filter_w)``
    input_shape : ``(N, C, H, W)`` of the image to rebuild
    filter_h, filter_w, stride, pad, dilation : as given to :func:`im2col`
    strategy : ``"numba"`` (the default: compiled) or ``"im2col"`` (the NumPy reference)

    Returns
    -------
    array ``input_shape`` of ``col``'s dtype
    """
    col = check_array(col, "col", ndims=(2,), batch_ndims=(2,), array_api=True)
    input_shape = check_batch_shape(input_shape, "input_shape")
    n, c, in_h, in_w = input_shape
    window = Window.build(
        (in_h, in_w), (filter_h, filter_w), stride, pad, dilation,
        kernel_name="(filter_h, filter_w)", padding_name="pad",
    )
    expected = (n * window.out_h * window.out_w, c * window.kernel_area)
    if tuple(col.shape) != expected:
        raise ValueError(
            f"col must have shape {expected} for input_shape {input_shape}, got {tuple(col.shape)}"
        )
    acc = accumulation_dtype(col.dtype)
    sums = cast_array(col, acc)
    if _runs_kernels(strategy, col, acc):
        return col2im_rows(sums, input_shape, window).astype(col.dtype, copy=False)
    return cast_array(col2im_window(sums, input_shape, window), as_numpy_dtype(col.dtype))


@dask_dispatch
def unfold(
    input: Any,
    kernel_size: IntPair,
    dilation: IntPair = 1,
    padding: IntPair = 0,
    stride: IntPair = 1,
    *,
    strategy: str | None = None,
) -> np.ndarray:
    """Extract sliding blocks, as ``torch.nn.functional.unfold``.

    ``(N, C, H, W)`` -> ``(N, C*kh*kw, L)`` with ``L = out_h*out_w``; an unbatched
    ``(C, H, W)`` gives ``(C*kh*kw, L)``. Columns of block ``l`` are ordered (c, ky, kx).
    ``strategy``: ``"numba"`` (the default: compiled) or ``"im2col"`` (the NumPy reference).

    >>> unfold(np.arange(9.0).reshape(1, 1, 3, 3), 2).shape
    (1, 4, 4)
    """
    x, unbatched = to_batched(check_array(input, "input", array_api=True))
    window = Window.build(x.shape[2:], kernel_size, stride, padding, dilation)
    blocks = unfold_windows(x, window) if _runs_kernels(strategy, x) else unfold_window(x, window)
    return from_batched(blocks, unbatched)


def fold(
    input: Any,
    output_size: IntPair,
    kernel_size: IntPair,
    dilation: IntPair = 1,
    padding: IntPair = 0,
    stride: IntPair = 1,
    *,
    strategy: str | None = None,
) -> np.ndarray:
    """Sum sliding blocks into an image, as ``torch.nn.functional.fold`` (the adjoint of :func:`unfold`).

    ``(N, C*kh*kw, L)`` -> ``(N, C, H, W)`` with ``(H, W) = output_size``; an
    unbatched ``(C*kh*kw, L)`` gives ``(C, H, W)``. ``strategy`` as for :func:`unfold`.
    """
    blocks = check_array(input, "input", ndims=(2, 3), batch_ndims=(3,), array_api=True)
    unbatched = blocks.ndim == 2
    if unbatched:
        blocks = blocks[None, ...]
    out_hw = as_pair(output_size, "output_size", minimum=1)
    window = Window.build(out_hw, kernel_size, stride, padding, dilation)
    n, rows, length = blocks.shape
    if rows % window.kernel_area != 0:
        raise ValueError(
            f"input's size at dim -2 ({rows}) must be divisible by the kernel area "
            f"{window.kernel_area} (kernel_size={kernel_size!r})"
        )
    if length != window.out_h * window.out_w:
        raise ValueError(
            f"input's size at dim -1 ({length}) must equal the number of blocks "
            f"{window.out_h}x{window.out_w}={window.out_h * window.out_w} for output_size={output_size!r}"
        )
    image_shape = (n, rows // window.kernel_area, *out_hw)
    acc = accumulation_dtype(blocks.dtype)
    sums = cast_array(blocks, acc)
    if _runs_kernels(strategy, blocks, acc):
        image = fold_windows(sums, image_shape, window)
    else:
        image = fold_window(sums, image_shape, window)
    image = cast_array(image, as_numpy_dtype(blocks.dtype))
    return from_batched(image, unbatched)
