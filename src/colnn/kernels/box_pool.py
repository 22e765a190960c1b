"""Pooling over boxes by compiled loops: 3-d window pools, adaptive pools and max_unpool in 1, 2 and 3 dimensions.

Also 1-d max pooling's maxima alone (:func:`row_max_values`), one row at a time.

The loops are :mod:`colnn.kernels.box_pool_loops` (imported on first use, so
``import colnn`` compiles nothing). Arrays here are batched ``(N, C, *spatial)``
with 1 to 3 spatial axes; fewer than 3 run as volumes with unit axes in front.
Each spatial axis comes as an int64 ``(3, out)`` array of rows ``start``,
``first``, ``end`` (:func:`window_bounds`, :func:`bin_bounds`). Floating inputs
of :func:`colnn.kernels.geometry.kernel_dtype`'s dtypes run as they are,
float16 in float32; results come back in the input's dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..core.dtypes import lowest_value
from ..core.window import Window
from .geometry import compute_dtype
from .threads import threads_for

__all__ = ["window_bounds", "bin_bounds", "fractional_bounds", "box_max", "fits_box_max", "window_max", "window_cells",
           "fits_row_max", "row_max_values",
           "box_max_backward", "cell_scatter_add", "box_avg", "volume_means", "box_avg_backward", "scatter_cells",
           "gather_cells", "cell_range"]

Bounds = tuple[np.ndarray, ...]


def _unit_axes(bounds: Sequence[np.ndarray]) -> Bounds:
    """``bounds`` with unit axes (shared) in front up to 3: ``start = 0``, ``first = 0``, ``end = 1``."""
    unit = np.array([[0], [0], [1]], dtype=np.int64)
    return (unit,) * (3 - len(bounds)) + tuple(np.ascontiguousarray(b, dtype=np.int64) for b in bounds)


def window_bounds(window: Window) -> tuple[Bounds, np.ndarray, np.ndarray]:
    """The boxes of ``window``: per-axis bounds, ``steps`` (its dilation) and ``kernel`` (its size), 3-d."""
    bounds = _unit_axes([np.stack(window.axis_bounds(axis)) for axis in range(window.ndim)])
    pad = (1,) * (3 - window.ndim)
    return (bounds, np.array(pad + tuple(window.dilation), dtype=np.int64),
            np.array(pad + tuple(window.kernel_size), dtype=np.int64))


def bin_bounds(starts: Sequence[np.ndarray], ends: Sequence[np.ndarray]) -> Bounds:
    """The boxes of adaptive bins ``[start, end)`` per axis (:func:`colnn.ops.pooling.adaptive.adaptive_bins`)."""
    return _unit_axes([np.stack([start, np.zeros_like(start), end - start]) for start, end in zip(starts, ends)])


def fractional_bounds(starts: Sequence[np.ndarray], kernel: Sequence[int]) -> Bounds:
    """The boxes of fractional max pooling: per axis each volume's window starts ``(N, C, out)``, ``kernel`` long."""
    return _unit_axes([np.stack([start, np.zeros_like(start), np.full_like(start, k)], axis=-2)
                       for start, k in zip(starts, kernel)])


def _volumes(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``(N, C, *spatial)`` as a C-contiguous ``(N*C, D, H, W)`` of ``dtype`` (no copy when possible)."""
    spatial = x.shape[2:]
    return np.ascontiguousarray(x, dtype=dtype).reshape(math.prod(x.shape[:2]), *(1,) * (3 - len(spatial)), *spatial)


def _out_shape(bounds: Bounds) -> tuple[int, int, int]:
    return tuple(b.shape[-1] for b in bounds)


def box_max(x: np.ndarray, bounds: Bounds) -> tuple[np.ndarray, np.ndarray]:
    """Each box's maximum ``(N, C, *out)`` and its int64 flat input cell (boxes with unit steps, never empty).

    Each axis's bounds are ``(3, out)``, shared, or ``(N, C, 3, out)``, a volume's own.

    The loop numbers input rows ``d*H + h`` in int32: ``D*H`` must be below 2**31 (:func:`fits_box_max`).
    """
    from . import box_pool_loops

    dtype = compute_dtype(x.dtype)
    volumes = _volumes(x, dtype)
    out = np.empty((volumes.shape[0], *_out_shape(bounds)), dtype=dtype)
    cell = np.empty(out.shape, dtype=np.int64)
    per_volume = [b.reshape(math.prod(b.shape[:-2]), 3, b.shape[-1]) for b in bounds]
    with threads_for(volumes.nbytes):
        box_pool_loops.box_max(volumes, *per_volume, out, cell)
    shape = (*x.shape[:2], *out.shape[4 - len(x.shape[2:]):])
    return out.reshape(shape).astype(x.dtype, copy=False), cell.reshape(shape)


def fits_box_max(in_size: Sequence[int]) -> bool:
    """Whether :func:`box_max` takes an input of spatial size ``in_size`` (rows numbered in int32)."""
    return math.prod(in_size[:-1]) <= np.iinfo(np.int32).max


def window_max(x: np.ndarray, window: Window, *, keep_offset: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Max pooling of ``x`` ``(N, C, *in)`` over ``window``: maxima and, with ``keep_offset``, int64 window offsets.

    Offsets as :meth:`colnn.core.window.Window.flat_indices` takes them; the interior columns run vectorized.
    Maxima alone at column stride 1 or 2 without column dilation run separably
    (:func:`colnn.kernels.box_pool_loops.window_max_values`).
    """
    from . import box_pool_loops

    dtype = compute_dtype(x.dtype)
    volumes = _volumes(x, dtype)
    bounds, steps, kernel = window_bounds(window)
    cols = bounds[2]
    interior = np.flatnonzero((cols[1] == 0) & (cols[2] == kernel[2]))
    if window.kernel_volume > np.iinfo(np.int32).max:
        interior = interior[:0]  # the interior passes keep offsets in int32
    ow_lo, ow_hi = (int(interior[0]), int(interior[-1]) + 1) if interior.size else (0, 0)
    out = np.empty((volumes.shape[0], *_out_shape(bounds)), dtype=dtype)
    offset = np.empty(out.shape if keep_offset else (1, 1, 1, out.shape[3]), dtype=np.int64)
    lowest = dtype.type(lowest_value(dtype))
    with threads_for(volumes.nbytes):
        if not keep_offset and window.stride[-1] <= 2 and window.dilation[-1] == 1:
            box_pool_loops.window_max_values(volumes, *bounds, steps, window.kernel_size[-1], window.stride[-1],
                                             ow_lo, ow_hi, lowest, out)
        else:
            box_pool_loops.window_max(volumes, *bounds, steps, kernel, window.stride[-1], ow_lo, ow_hi, lowest,
                                      out, offset, keep_offset)
    shape = (*x.shape[:2], *window.out_size)
    return out.reshape(shape).astype(x.dtype, copy=False), (offset.reshape(shape) if keep_offset else None)


def fits_row_max(window: Window) -> bool:
    """Whether :func:`row_max_values` takes ``window``: 1-d, stride 1 or 2, no dilation or padding, windows inside."""
    return (window.ndim == 1 and window.stride[0] <= 2 and window.dilation[0] == 1 and window.padding[0] == 0
            and (window.out_size[0] - 1) * window.stride[0] + window.kernel_size[0] <= window.in_size[0])


def row_max_values(x: np.ndarray, window: Window) -> np.ndarray:
    """1-d max pooling of ``x`` ``(N, C, L)``, maxima only, for a window :func:`fits_row_max` takes."""
    from . import max_pool_loops

    dtype = compute_dtype(x.dtype)
    rows = np.ascontiguousarray(x, dtype=dtype).reshape(math.prod(x.shape[:2]), x.shape[2])
    out = np.empty((rows.shape[0], window.out_size[0]), dtype=dtype)
    with threads_for(rows.nbytes):
        max_pool_loops.max_pool_rows_values(rows, window.kernel_size[0], window.stride[0], out)
    return out.reshape(*x.shape[:2], out.shape[1]).astype(x.dtype, copy=False)


def window_cells(offset: np.ndarray, window: Window) -> np.ndarray:
    """:meth:`colnn.core.window.Window.flat_indices` of NumPy offsets ``(N, C, *out)`` (any integer dtype), int64.

    One compiled pass: the Array API form takes several passes over arrays of the output's size.
    """
    from . import box_pool_loops

    bounds, steps, kernel = window_bounds(window)
    offsets = _volumes(offset, np.dtype(np.int64))
    cell = np.empty(offsets.shape, dtype=np.int64)
    spatial = (1,) * (3 - window.ndim) + tuple(window.in_size)
    with threads_for(cell.nbytes):
        box_pool_loops.window_cells(offsets, *bounds, steps, kernel, spatial[1], spatial[2], cell)
    return cell.reshape(offset.shape)


def box_max_backward(grad_output: np.ndarray, offset: np.ndarray, input_shape: tuple[int, ...], bounds: Bounds,
                     steps: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``grad_output`` added at each box's chosen offset into a zero ``input_shape``; overlaps sum in output order."""
    from . import box_pool_loops

    dtype = compute_dtype(grad_output.dtype)
    grad = _volumes(grad_output, dtype)
    grad_input = np.empty((grad.shape[0], *(1,) * (5 - len(input_shape)), *input_shape[2:]), dtype=dtype)
    with threads_for(grad_input.nbytes):
        box_pool_loops.box_scatter_add(grad, _volumes(offset, np.dtype(np.int64)), *bounds, steps, kernel,
                                       grad_input)
    return grad_input.reshape(input_shape).astype(grad_output.dtype, copy=False)


def cell_scatter_add(grad_output: np.ndarray, cell: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    """:func:`box_max_backward` of flat input cells (adaptive max pooling's indices)."""
    spatial = input_shape[2:]
    starts = [np.zeros(size, dtype=np.int64) for size in grad_output.shape[2:]]
    bounds = _unit_axes([np.stack([start, start, start]) for start in starts])
    volume = np.array((1,) * (3 - len(spatial)) + tuple(spatial), dtype=np.int64)
    return box_max_backward(grad_output, cell, input_shape, bounds, np.ones(3, dtype=np.int64), volume)


def box_avg(x: np.ndarray, bounds: Bounds, divisor: np.ndarray) -> np.ndarray:
    """Each box's sum over ``divisor`` (``out`` shaped, any dtype), ``(N, C, *out)`` of ``x``'s dtype."""
    from . import box_pool_loops

    dtype = compute_dtype(x.dtype)
    volumes = _volumes(x, dtype)
    out_size = _out_shape(bounds)
    out = np.empty((volumes.shape[0], *out_size), dtype=dtype)
    with threads_for(volumes.nbytes):
        box_pool_loops.box_avg(volumes, *bounds, np.ascontiguousarray(divisor, dtype=dtype).reshape(out_size), out)
    return out.reshape(*x.shape[:2], *out.shape[4 - len(x.shape[2:]):]).astype(x.dtype, copy=False)


def volume_means(x: np.ndarray) -> np.ndarray:
    """The mean of each ``(n, c)`` volume of ``x`` ``(N, C, *in)``: ``(N, C, 1, ...)`` of ``x``'s dtype."""
    from . import box_pool_loops

    dtype = compute_dtype(x.dtype)
    volumes = np.ascontiguousarray(x, dtype=dtype).reshape(math.prod(x.shape[:2]), math.prod(x.shape[2:]))
    out = np.empty(volumes.shape[0], dtype=dtype)
    with threads_for(volumes.nbytes):
        box_pool_loops.volume_means(volumes, out)
    return out.reshape(*x.shape[:2], *(1,) * (x.ndim - 2)).astype(x.dtype, copy=False)


def box_avg_backward(grad_output: np.ndarray, input_shape: tuple[int, ...], bounds: Bounds,
                     divisor: np.ndarray) -> np.ndarray:
    """Adjoint of :func:`box_avg`: ``grad_output / divisor`` spread over each box; overlaps sum."""
    from . import box_pool_loops

    dtype = compute_dtype(grad_output.dtype)
    grad = _volumes(grad_output, dtype)
    out_size = _out_shape(bounds)
    grad_input = np.empty((grad.shape[0], *(1,) * (5 - len(input_shape)), *input_shape[2:]), dtype=dtype)
    tiled = all(_tiles(axis, size) for axis, size in zip(bounds, grad_input.shape[1:]))
    with threads_for(grad_input.nbytes):
        box_pool_loops.box_avg_backward(grad, *bounds, np.ascontiguousarray(divisor, dtype=dtype).reshape(out_size),
                                        tiled, grad_input)
    return grad_input.reshape(input_shape).astype(grad_output.dtype, copy=False)


def _tiles(bounds: np.ndarray, size: int) -> bool:
    """Whether one axis's boxes (unit steps) cover ``[0, size)`` each cell once: back to back, none empty."""
    low, high = bounds[0] + bounds[1], bounds[0] + bounds[2]
    return bool(low[0] == 0 and high[-1] == size and (high > low).all() and (low[1:] == high[:-1]).all())


def scatter_cells(values: np.ndarray, cell: np.ndarray, out_shape: tuple[int, ...]) -> np.ndarray | None:
    """A zero ``out_shape`` ``(N, C, *out)`` holding ``values`` at the flat cells ``cell``.

    None if some cell lies outside ``[0, prod(out_shape[2:]))``: the caller
    names the range in its error (the check is part of the scatter, not a pass of its own).
    """
    from . import box_pool_loops

    dtype = compute_dtype(values.dtype)
    planes = np.ascontiguousarray(values, dtype=dtype).reshape(math.prod(values.shape[:2]), math.prod(values.shape[2:]))
    cells = np.ascontiguousarray(cell, dtype=np.int64).reshape(planes.shape)
    out = np.empty((planes.shape[0], math.prod(out_shape[2:])), dtype=dtype)
    outside = np.empty(planes.shape[0], dtype=np.int64)
    with threads_for(out.nbytes):
        box_pool_loops.scatter_cells(planes, cells, out, outside)
    if outside.any():
        return None
    return out.reshape(out_shape).astype(values.dtype, copy=False)


def gather_cells(source: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """``source`` ``(N, C, *in)`` read at the flat cells ``cell`` ``(N, C, *out)`` (checked in range)."""
    from . import box_pool_loops

    dtype = compute_dtype(source.dtype)
    planes = np.ascontiguousarray(source, dtype=dtype).reshape(math.prod(source.shape[:2]), math.prod(source.shape[2:]))
    cells = np.ascontiguousarray(cell, dtype=np.int64).reshape(planes.shape[0], math.prod(cell.shape[2:]))
    out = np.empty(cells.shape, dtype=dtype)
    with threads_for(source.nbytes):
        box_pool_loops.gather_cells(planes, cells, out)
    return out.reshape(cell.shape).astype(source.dtype, copy=False)


def cell_range(cell: np.ndarray) -> tuple[int, int]:
    """The least and greatest of a non-empty int64 ``cell``, in one compiled pass (NumPy's min and max take two)."""
    from . import box_pool_loops

    rows = np.ascontiguousarray(cell).reshape(-1, cell.shape[-1] if cell.ndim else 1)
    low = np.empty(rows.shape[0], dtype=np.int64)
    high = np.empty(rows.shape[0], dtype=np.int64)
    with threads_for(rows.nbytes):
        box_pool_loops.cell_range(rows, low, high)
    return int(low.min()), int(high.max())
