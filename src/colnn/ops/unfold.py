"""im2col / col2im (the book's layout) and unfold / fold (PyTorch's layout, any number of spatial axes).

All four are one primitive and its adjoint: cell ``k`` of every window,
gathered by one strided slice of the padded input per kernel offset, as the
tutorial's loop does (:func:`colnn.ops.reference.windows.window_cells`).
``im2col`` and ``unfold`` lay those cells out as a matrix; ``col2im`` and
``fold`` sum overlapping cells back. That path, on the Array API standard, is
the reference (``strategy="im2col"``) and the path of every other library's
array; NumPy arrays of 1 or 2 spatial axes run the compiled loops of
:mod:`colnn.kernels.unfold` by default (bit for bit the same arrays, without
padding a copy first), in 1-d as 2-d with a unit height. A Dask array runs
:mod:`colnn.ops.dask.unfold`, lazily.

:func:`im2col_nd` and :func:`col2im_nd` are the same primitive for the
convolutions (zero padding, any number of axes).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..core.checks import cast_pad_value, check_array, check_batch_shape, from_batched, stand_in
from ..core.dtypes import accumulation_dtype, as_numpy_dtype
from ..core.namespace import cast_array, is_dask_array
from ..core.spatial import check_spatial_input
from ..core.window import IntPair, IntTuple, Window, WindowArgs, as_tuple
from ..kernels.unfold import col2im_rows, fold_windows, im2col_rows, unfold_windows
from .reference.windows import col2im_window, fold_window, im2col_window, unfold_window
from .strategy import check_strategy, numpy_for_cpu_arrays, runs_kernels

__all__ = ["im2col", "col2im", "unfold", "fold", "im2col_nd", "col2im_nd", "unfold_nd", "fold_nd",
           "im2col_args", "unfold_ndim", "check_blocks"]

# The book's names of im2col's window arguments, for messages.
_IM2COL_NAMES = ("(filter_h, filter_w)", "stride", "pad", "dilation")


def _compiled(strategy: str | None, array: Any, window: Window, dtype: Any = None) -> bool:
    """Whether ``array`` runs the compiled loops: NumPy, a dtype they take, 1 or 2 spatial axes."""
    return runs_kernels(strategy, array, "unfold", dtype) and window.ndim <= 2


def _planar(window: Window) -> Window:
    """The 2-D window the compiled loops run: a 1-d window gets a unit height."""
    return window if window.ndim == 2 else window.with_unit_axis()


def im2col_nd(x: Any, window: Window, strategy: str | None = None) -> Any:
    """``(N, C, *in)`` -> ``(N*prod(out), C*prod(kernel))``, zero padding: rows ``(n, *o)``, columns ``(c, *k)``."""
    if _compiled(strategy, x, window):
        flat = _planar(window)
        return im2col_rows(x.reshape(*x.shape[:2], *flat.in_size), flat, 0)
    return im2col_window(x, window, 0)


def col2im_nd(col: Any, input_shape: tuple[int, ...], window: Window, strategy: str | None = None) -> Any:
    """Adjoint of :func:`im2col_nd`: ``(N*prod(out), C*prod(kernel))`` -> ``input_shape``, overlaps summed."""
    if _compiled(strategy, col, window):
        flat = _planar(window)
        return col2im_rows(col, (*input_shape[:2], *flat.in_size), flat).reshape(input_shape)
    return col2im_window(col, input_shape, window)


def unfold_nd(x: Any, window: Window, strategy: str | None = None) -> Any:
    """``(N, C, *in)`` -> ``(N, C*prod(kernel), L)``, zero padding (PyTorch's layout) of a checked batch."""
    if _compiled(strategy, x, window):
        flat = _planar(window)
        return unfold_windows(x.reshape(*x.shape[:2], *flat.in_size), flat)
    return unfold_window(x, window)


def fold_nd(blocks: Any, image_shape: tuple[int, ...], window: Window, strategy: str | None = None) -> Any:
    """Adjoint of :func:`unfold_nd`: ``(N, C*prod(kernel), L)`` -> ``image_shape``, summed in the accumulator dtype."""
    acc = accumulation_dtype(blocks.dtype)
    sums = cast_array(blocks, acc)
    if _compiled(strategy, blocks, window, acc):
        flat = _planar(window)
        image = fold_windows(sums, (*image_shape[:2], *flat.in_size), flat).reshape(image_shape)
    else:
        image = fold_window(sums, image_shape, window)
    return cast_array(image, as_numpy_dtype(blocks.dtype))


def im2col_args(filter_h: Any, filter_w: Any, stride: IntPair, pad: IntPair, dilation: IntPair) -> WindowArgs:
    """The checked window of :func:`im2col` and :func:`col2im`, named as the book names it."""
    return WindowArgs.check(2, (filter_h, filter_w), stride, pad, dilation, names=_IM2COL_NAMES)


@numpy_for_cpu_arrays
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
) -> Any:
    """Unroll every filter window of a batch into one row of a matrix (the book's layout).

    Parameters
    ----------
    input_data : array ``(N, C, H, W)``, integer or floating (a Dask array: lazily)
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

    Raises
    ------
    TypeError for a non-numeric input or a ``pad_value`` that is not a number;
    ValueError for a rank other than 4, bad window arguments (named) or an empty output.

    Examples
    --------
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> im2col(x, 2, 2, stride=2)
    array([[ 0.,  1.,  4.,  5.],
           [ 2.,  3.,  6.,  7.],
           [ 8.,  9., 12., 13.],
           [10., 11., 14., 15.]])
    """
    geometry = im2col_args(filter_h, filter_w, stride, pad, dilation)
    check_strategy(strategy)
    lazy = is_dask_array(input_data)
    x = check_array(stand_in(input_data) if lazy else input_data, "input_data", ndims=(4,), array_api=True)
    window = geometry.over(x.shape[2:])
    pad_value = cast_pad_value(pad_value, as_numpy_dtype(x.dtype))
    if lazy:
        from .dask import unfold as dask_unfold

        return dask_unfold.im2col(input_data, window, pad_value, strategy, unfold_nd)
    if _compiled(strategy, x, window):
        return im2col_rows(x, window, pad_value)
    return im2col_window(x, window, pad_value.item())


def check_blocks(blocks: Any, name: str, window: Window) -> None:
    """ValueError naming ``name`` unless ``blocks`` ``(N, C*K, L)`` (fold's layout) holds whole kernels and windows."""
    _, rows, length = blocks.shape
    if rows % window.kernel_volume != 0:
        raise ValueError(f"{name}'s size at dim -2 ({rows}) must be divisible by the kernel's "
                         f"{window.kernel_volume} cells (kernel_size={_fmt(window.kernel_size)})")
    windows = math.prod(window.out_size)
    if length != windows:
        grid = "x".join(str(size) for size in window.out_size)
        raise ValueError(f"{name}'s size at dim -1 ({length}) must equal the number of blocks "
                         f"{grid}={windows} for output_size={_fmt(window.in_size)}")


def _fmt(values: tuple[int, ...]) -> Any:
    return values[0] if len(values) == 1 else values


@numpy_for_cpu_arrays
def col2im(
    col: Any,
    input_shape: tuple[int, ...],
    filter_h: int,
    filter_w: int,
    stride: IntPair = 1,
    pad: IntPair = 0,
    *,
    dilation: IntPair = 1,
    strategy: str | None = None,
) -> Any:
    """Fold an :func:`im2col` matrix back to ``input_shape``, summing overlapping cells.

    It is the exact adjoint of ``im2col``: ``<im2col(x), y> == <x, col2im(y)>``.

    Parameters
    ----------
    col : array ``(N*out_h*out_w, C*filter_h*filter_w)`` (a Dask array: lazily)
    input_shape : ``(N, C, H, W)`` of the image to rebuild
    filter_h, filter_w, stride, pad, dilation : as given to :func:`im2col`
    strategy : ``"numba"`` (the default: compiled) or ``"im2col"`` (the NumPy reference)

    Returns
    -------
    array ``input_shape`` of ``col``'s dtype (float16 summed in float32)

    Raises
    ------
    TypeError for a non-numeric ``col``; ValueError for a ``col`` whose shape does
    not fit ``input_shape`` and the window, or bad window arguments (named).
    """
    geometry = im2col_args(filter_h, filter_w, stride, pad, dilation)
    check_strategy(strategy)
    lazy = is_dask_array(col)
    checked = check_array(stand_in(col) if lazy else col, "col", ndims=(2,), batch_ndims=(2,), array_api=True)
    input_shape = check_batch_shape(input_shape, "input_shape")
    window = geometry.over(input_shape[2:])
    n, c = input_shape[:2]
    expected = (n * math.prod(window.out_size), c * window.kernel_volume)
    if tuple(checked.shape) != expected:
        raise ValueError(f"col must have shape {expected} for input_shape {input_shape}, got {tuple(checked.shape)}")
    if lazy:
        from .dask import unfold as dask_unfold

        return dask_unfold.col2im(col, input_shape, window, strategy, fold_nd)
    acc = accumulation_dtype(checked.dtype)
    sums = cast_array(checked, acc)
    if _compiled(strategy, checked, window, acc):
        return col2im_rows(sums, input_shape, window).astype(checked.dtype, copy=False)
    return cast_array(col2im_window(sums, input_shape, window), as_numpy_dtype(checked.dtype))


def unfold_ndim(rank: int, kernel_size: Any, dilation: Any, padding: Any, stride: Any) -> int:
    """The number of spatial axes :func:`unfold` works on, read from the input's rank.

    A batched ``(N, C, *spatial)`` input has ``rank - 2``; rank 3 is PyTorch's
    unbatched 2-d ``(C, H, W)``, unless a window argument is a 1-tuple: then a
    batched 1-d ``(N, C, L)`` (PyTorch refuses 1-tuples here, so the two never
    meet); rank 2 is an unbatched 1-d ``(C, L)``, which needs such a 1-tuple too.
    """
    one_axis = any(isinstance(value, (tuple, list)) and len(value) == 1
                   for value in (kernel_size, dilation, padding, stride))
    if rank == 3:
        return 1 if one_axis else 2
    if rank == 2 and one_axis:
        return 1
    return max(rank - 2, 2)


def _rank(value: Any) -> int:
    rank = getattr(value, "ndim", None)
    if rank is None:  # a list: read it as the checks do (their messages for ragged or non-numeric input)
        rank = check_array(value, "input", ndims=None, batch_ndims=range(64), array_api=True).ndim
    return int(rank)


@numpy_for_cpu_arrays
def unfold(
    input: Any,
    kernel_size: IntTuple,
    dilation: IntTuple = 1,
    padding: IntTuple = 0,
    stride: IntTuple = 1,
    *,
    strategy: str | None = None,
) -> Any:
    """Extract sliding blocks, as ``torch.nn.functional.unfold``, over any number of spatial axes.

    ``(N, C, *spatial)`` -> ``(N, C*prod(kernel_size), L)`` with ``L`` the number of
    windows (``out_h*out_w`` in 2-D); an unbatched ``(C, *spatial)`` gives
    ``(C*prod(kernel_size), L)``. Columns of block ``l`` are ordered ``(c, *k)``.
    The number of spatial axes is ``input.ndim - 2`` (PyTorch has only 2; N-d
    is the adjoint of ONNX's N-d ``Col2Im``, :func:`fold`); a 3-D input is
    PyTorch's unbatched ``(C, H, W)``, or a batched ``(N, C, L)`` when a window
    argument is a 1-tuple (which PyTorch refuses), as a 2-D input ``(C, L)`` is.
    ``strategy``: ``"numba"`` (the default: compiled in 1-d and 2-d) or ``"im2col"``
    (the NumPy reference). A Dask array is unfolded lazily.

    Raises TypeError for a non-numeric input; ValueError for a rank that does not
    fit, bad window arguments (named) or an empty output.

    >>> unfold(np.arange(9.0).reshape(1, 1, 3, 3), 2).shape
    (1, 4, 4)
    >>> unfold(np.arange(6.0).reshape(1, 1, 6), (3,), stride=(3,))
    array([[[0., 3.],
            [1., 4.],
            [2., 5.]]])
    """
    check_strategy(strategy)
    ndim = unfold_ndim(_rank(input), kernel_size, dilation, padding, stride)
    geometry = WindowArgs.check(ndim, kernel_size, stride, padding, dilation)
    lazy = is_dask_array(input)
    x, unbatched = check_spatial_input(stand_in(input) if lazy else input, "input", ndim)
    window = geometry.over(x.shape[2:])
    if lazy:
        from .dask import unfold as dask_unfold

        blocks = dask_unfold.unfold(input[np.newaxis] if unbatched else input, window, strategy, unfold_nd)
        return blocks[0] if unbatched else blocks
    return from_batched(unfold_nd(x, window, strategy), unbatched)


def fold_window_args(output_size: Any, kernel_size: Any, dilation: Any, padding: Any,
                     stride: Any) -> tuple[tuple[int, ...], WindowArgs]:
    """``(image size, window arguments)`` of :func:`fold`: ``output_size`` names the number of spatial axes."""
    ndim = len(output_size) if isinstance(output_size, (tuple, list)) else 2
    sizes = as_tuple(output_size, "output_size", ndim, minimum=1)
    return sizes, WindowArgs.check(ndim, kernel_size, stride, padding, dilation)


@numpy_for_cpu_arrays
def fold(
    input: Any,
    output_size: IntTuple,
    kernel_size: IntTuple,
    dilation: IntTuple = 1,
    padding: IntTuple = 0,
    stride: IntTuple = 1,
    *,
    strategy: str | None = None,
) -> Any:
    """Sum sliding blocks into an image, as ``torch.nn.functional.fold`` (the adjoint of :func:`unfold`).

    ``(N, C*prod(kernel_size), L)`` -> ``(N, C, *output_size)``; an unbatched
    ``(C*prod(kernel_size), L)`` gives ``(C, *output_size)``. ``output_size`` may
    have any length >= 1 (an int means 2, as in PyTorch, which takes only 2): its
    length is the number of spatial axes, ONNX ``Col2Im``'s semantics (opset 18,
    ``image_shape``; its ``pads`` are PyTorch's ``padding`` on both sides).
    ``strategy`` as for :func:`unfold`. A Dask array is folded lazily.

    Raises TypeError for a non-numeric input; ValueError for a shape that does not
    hold whole kernels and every window, or bad window arguments (named).

    >>> fold(np.ones((1, 2, 3)), (4,), (2,))
    array([[[1., 2., 2., 1.]]])
    """
    check_strategy(strategy)
    out_size, geometry = fold_window_args(output_size, kernel_size, dilation, padding, stride)
    window = geometry.over(out_size)
    lazy = is_dask_array(input)
    blocks = check_array(stand_in(input) if lazy else input, "input", ndims=(2, 3), batch_ndims=(3,), array_api=True)
    unbatched = blocks.ndim == 2
    if unbatched:
        blocks = blocks[None, ...]
    check_blocks(blocks, "input", window)
    if lazy:
        from .dask import unfold as dask_unfold

        image = dask_unfold.fold(input[np.newaxis] if unbatched else input, window, strategy, fold_nd)
        return image[0] if unbatched else image
    n, rows, _ = blocks.shape
    image_shape = (n, rows // window.kernel_volume, *out_size)
    return from_batched(fold_nd(blocks, image_shape, window, strategy), unbatched)
