"""im2col / col2im (the book's layout) and unfold / fold (PyTorch's layout).

All four are built on one primitive, :func:`window_view`: a read-only strided
view ``(N, C, kernel_h, kernel_w, out_h, out_w)`` of the padded input, in which
``view[n, c, ky, kx, oy, ox]`` is the cell that kernel offset ``(ky, kx)`` of
window ``(oy, ox)`` sees. ``im2col`` and ``unfold`` copy that view into a
matrix; ``col2im`` and ``fold`` are their adjoints and sum overlapping cells.
That NumPy path is the reference (``strategy="im2col"``); by default the four
public functions run the compiled loops of :mod:`colnn.kernels.unfold` instead, which
give the same arrays bit for bit without padding a copy of the input first.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.checks import accumulation_dtype, cast_pad_value, check_array, check_batch_shape, to_batched
from ..core.window import IntPair, Window, as_pair
from ..kernels.geometry import use_kernels
from ..kernels.unfold import col2im_rows, fold_windows, im2col_rows, unfold_windows
from .dispatch import dask_dispatch

__all__ = ["im2col", "col2im", "unfold", "fold", "pad_input", "window_view", "im2col_window", "col2im_window"]


def pad_input(x: np.ndarray, window: Window, pad_value: Any = 0) -> np.ndarray:
    """Pad ``(N, C, H, W)`` so every window of ``window`` lies inside; dtype preserved.

    Top/left get ``window.pad_h``/``pad_w``; bottom/right get what the last window
    reaches (:attr:`Window.pad_bottom`, :attr:`Window.pad_right`).
    """
    if window.pad_h == window.pad_w == window.pad_bottom == window.pad_right == 0:
        return x
    widths = ((0, 0), (0, 0), (window.pad_h, window.pad_bottom), (window.pad_w, window.pad_right))
    return np.pad(x, widths, mode="constant", constant_values=pad_value)


def window_view(padded: np.ndarray, window: Window) -> np.ndarray:
    """Read-only view ``(N, C, kernel_h, kernel_w, out_h, out_w)`` of a padded input."""
    s_n, s_c, s_h, s_w = padded.strides
    shape = (
        padded.shape[0], padded.shape[1],
        window.kernel_h, window.kernel_w, window.out_h, window.out_w,
    )
    strides = (
        s_n, s_c,
        s_h * window.dilation_h, s_w * window.dilation_w,
        s_h * window.stride_h, s_w * window.stride_w,
    )
    return np.lib.stride_tricks.as_strided(padded, shape, strides, writeable=False)


def im2col_window(x: np.ndarray, window: Window, pad_value: Any = 0) -> np.ndarray:
    """``(N, C, H, W)`` -> ``(N*out_h*out_w, C*kernel_h*kernel_w)``, rows (n, oy, ox), columns (c, ky, kx)."""
    n, c = x.shape[:2]
    view = window_view(pad_input(x, window, pad_value), window)
    return _owned(view.transpose(0, 4, 5, 1, 2, 3).reshape(
        n * window.out_h * window.out_w, c * window.kernel_area
    ))


def _owned(array: np.ndarray) -> np.ndarray:
    """A reshape of a window view is usually a copy; where it is still a (read-only) view, copy it."""
    return array if array.flags.writeable else array.copy()


def _scatter_add(windows: np.ndarray, input_shape: tuple[int, ...], window: Window) -> np.ndarray:
    """Sum ``(N, C, kernel_h, kernel_w, out_h, out_w)`` window cells back into ``input_shape``."""
    n, c, in_h, in_w = input_shape
    padded = np.zeros(
        (n, c, window.pad_h + in_h + window.pad_bottom, window.pad_w + in_w + window.pad_right),
        dtype=windows.dtype,
    )
    rows_span = window.stride_h * (window.out_h - 1) + 1
    cols_span = window.stride_w * (window.out_w - 1) + 1
    # One strided add per kernel offset: k*k vectorized updates, as in the book.
    for ky in range(window.kernel_h):
        row0 = ky * window.dilation_h
        for kx in range(window.kernel_w):
            col0 = kx * window.dilation_w
            padded[:, :, row0:row0 + rows_span:window.stride_h, col0:col0 + cols_span:window.stride_w] += (
                windows[:, :, ky, kx]
            )
    return padded[:, :, window.pad_h:window.pad_h + in_h, window.pad_w:window.pad_w + in_w]


def col2im_window(col: np.ndarray, input_shape: tuple[int, ...], window: Window) -> np.ndarray:
    """Adjoint of :func:`im2col_window`: ``(N*out_h*out_w, C*kh*kw)`` -> ``input_shape``, overlaps summed."""
    n, c = input_shape[:2]
    windows = col.reshape(n, window.out_h, window.out_w, c, window.kernel_h, window.kernel_w)
    return np.ascontiguousarray(_scatter_add(windows.transpose(0, 3, 4, 5, 1, 2), input_shape, window))


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
    x = check_array(input_data, "input_data", ndims=(4,))
    window = Window.build(
        x.shape[2:], (filter_h, filter_w), stride, pad, dilation,
        kernel_name="(filter_h, filter_w)", padding_name="pad",
    )
    pad_value = cast_pad_value(pad_value, x.dtype)
    if use_kernels(strategy, x.dtype):
        return im2col_rows(x, window, pad_value)
    return im2col_window(x, window, pad_value)


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
    col = check_array(col, "col", ndims=(2,), batch_ndims=(2,))
    input_shape = check_batch_shape(input_shape, "input_shape")
    n, c, in_h, in_w = input_shape
    window = Window.build(
        (in_h, in_w), (filter_h, filter_w), stride, pad, dilation,
        kernel_name="(filter_h, filter_w)", padding_name="pad",
    )
    expected = (n * window.out_h * window.out_w, c * window.kernel_area)
    if col.shape != expected:
        raise ValueError(
            f"col must have shape {expected} for input_shape {input_shape}, got {col.shape}"
        )
    acc = accumulation_dtype(col.dtype)
    sums = col.astype(acc, copy=False)
    if use_kernels(strategy, acc):
        return col2im_rows(sums, input_shape, window).astype(col.dtype, copy=False)
    return col2im_window(sums, input_shape, window).astype(col.dtype, copy=False)


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
    x, unbatched = to_batched(check_array(input, "input"))
    window = Window.build(x.shape[2:], kernel_size, stride, padding, dilation)
    if use_kernels(strategy, x.dtype):
        blocks = unfold_windows(x, window)
    else:
        n, c = x.shape[:2]
        view = window_view(pad_input(x, window), window)
        blocks = _owned(view.reshape(n, c * window.kernel_area, window.out_h * window.out_w))
    return blocks[0] if unbatched else blocks


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
    blocks = check_array(input, "input", ndims=(2, 3), batch_ndims=(3,))
    unbatched = blocks.ndim == 2
    if unbatched:
        blocks = blocks[np.newaxis]
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
    sums = blocks.astype(acc, copy=False)
    if use_kernels(strategy, acc):
        image = fold_windows(sums, image_shape, window)
    else:
        windows = sums.reshape(n, image_shape[1], window.kernel_h, window.kernel_w, window.out_h, window.out_w)
        image = np.ascontiguousarray(_scatter_add(windows, image_shape, window))
    image = image.astype(blocks.dtype, copy=False)
    return image[0] if unbatched else image
