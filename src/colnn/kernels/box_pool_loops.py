"""Numba kernels of pooling over boxes of a stack of volumes ``(P, D, H, W)``: the N-d home of the compiled pools.

A box is the set of cells one output reduces: along each axis, output ``o``
reads cells ``start[o] + k*step`` for ``k`` in ``[first[o], end[o])``. Each
axis arrives as one int64 array ``bounds`` ``(3, out)`` whose rows are
``start``, ``first`` and ``end``; ``steps`` and ``kernel`` are int64 ``(3,)``.
That one form covers 3-d window pools (:meth:`colnn.core.window.Window.axis_bounds`,
padding never materialized), adaptive pools (bins: ``first = 0``,
``end`` the bin's length) and, with unit axes in front, 1-d and 2-d ones.
The 2-D window pools keep their specialised kernels
(:mod:`colnn.kernels.max_pool_loops`, :mod:`colnn.kernels.avg_pool_loops`).

Every kernel runs ``prange`` over the ``P = N*C`` volumes, so one thread owns a
volume and its gradient: scatters need no atomics and add in output order, as
PyTorch does. Maxima follow PyTorch's CPU rule (scanning the box row-major, a
cell replaces the running maximum when greater or NaN); no ``fastmath``, which
would drop the NaN test. Sums run in the volumes' dtype, separably (rows, then columns);
:func:`volume_means` sums in an order of its own (:mod:`colnn.kernels.lane_sum`), which keeps NaN and inf.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .lane_sum import lane_sum
from .max_pool_loops import _fold_max, _max_pass, _row_max, _takes
from .threads import choose_threading_layer

# Before the first parallel compile, which launches Numba's threads.
choose_threading_layer()

__all__ = ["box_max", "window_max", "window_max_values", "window_cells", "box_avg", "volume_means",
           "box_avg_backward", "box_scatter_add", "scatter_cells", "gather_cells", "cell_range"]


# Scratch rows are allocated once per block of volumes, not per volume: a
# ResNet head has 131072 volumes of 49 cells, where an allocation each cost
# more than the pooling.
_BLOCKS = 1024


@njit(cache=True, inline="always")
def _block_size(count):
    """Volumes per block: at most :data:`_BLOCKS` blocks."""
    return max(-(-count // _BLOCKS), 1)


@njit(cache=True, inline="always")
def _span_sum(values, start, stop):
    """``values[start:stop]`` summed in four interleaved partial sums: one chain of dependent adds is ~4x slower."""
    partial0 = partial1 = partial2 = partial3 = values.dtype.type(0)
    j = start
    while j + 4 <= stop:
        partial0 += values[j]
        partial1 += values[j + 1]
        partial2 += values[j + 2]
        partial3 += values[j + 3]
        j += 4
    total = (partial0 + partial1) + (partial2 + partial3)
    for rest in range(j, stop):
        total += values[rest]
    return total


@njit(cache=True, inline="always")
def _cell_max(volume, depth, rows, cols, od, oh, ow, steps, lowest):
    """One box, scalar: ``(maximum, kd, kh, kw)``; an empty box gives ``lowest`` and its first offsets."""
    start_d, first_d, end_d = depth[0, od], depth[1, od], depth[2, od]
    start_h, first_h, end_h = rows[0, oh], rows[1, oh], rows[2, oh]
    start_w, first_w, end_w = cols[0, ow], cols[1, ow], cols[2, ow]
    best_d, best_h, best_w = first_d, first_h, first_w
    if first_d >= end_d or first_h >= end_h or first_w >= end_w:
        return lowest, best_d, best_h, best_w
    # The scan starts from the first cell and meets it again: it keeps itself (or, NaN, retakes itself).
    best = volume[start_d + first_d * steps[0], start_h + first_h * steps[1], start_w + first_w * steps[2]]
    for kd in range(first_d, end_d):
        plane = volume[start_d + kd * steps[0]]
        for kh in range(first_h, end_h):
            row = plane[start_h + kh * steps[1]]
            for kw in range(first_w, end_w):
                value = row[start_w + kw * steps[2]]
                if _takes(value, best):
                    best = value
                    best_d, best_h, best_w = kd, kh, kw
    return best, best_d, best_h, best_w


@njit(cache=True, inline="always")
def _later_takes(value, row, best, best_row):
    """Whether cell ``value`` of input row ``row``, met after ``best`` (of ``best_row``) along a row, wins the box.

    PyTorch's row-major scan keeps the last NaN, else the first maximum; the
    column pass left each column's winner over the rows, so a later column
    wins by NaN at a row not before ``best_row``, or by a greater value, or
    by an equal one from an earlier row.
    """
    if value != value:
        return best == best or row >= best_row
    return best == best and (value > best or (value == best and row < best_row))


@njit(parallel=True, cache=True, nogil=True)
def box_max(volumes, depth, rows, cols, out, cell):
    """Maxima of every box (unit steps) of ``volumes`` into ``out``; their flat input cells
    ``(d*H + h)*W + w`` into ``cell``.

    Here each axis's bounds are ``(B, 3, out)``: ``B = 1`` shares them, ``B = P``
    gives every volume its own (fractional max pooling's random windows).

    Separable and exact: for each output row the box's input rows are folded
    column by column in order (unit-stride passes that vectorize), keeping each
    column's winning row; each box then scans its columns
    (:func:`_later_takes`). Boxes are never empty (adaptive bins).
    """
    height, width = volumes.shape[2], volumes.shape[3]
    out_d, out_h, out_w = out.shape[1], out.shape[2], out.shape[3]
    block = _block_size(volumes.shape[0])
    for block_index in prange(-(-volumes.shape[0] // block)):
        column_max = np.empty(width, volumes.dtype)
        column_row = np.empty(width, np.int32)
        for p in range(block_index * block, min((block_index + 1) * block, volumes.shape[0])):
            volume = volumes[p]
            volume_depth = depth[p if depth.shape[0] > 1 else 0]
            volume_rows = rows[p if rows.shape[0] > 1 else 0]
            volume_cols = cols[p if cols.shape[0] > 1 else 0]
            for od in range(out_d):
                for oh in range(out_h):
                    first = True
                    for kd in range(volume_depth[1, od], volume_depth[2, od]):
                        d = volume_depth[0, od] + kd
                        for kh in range(volume_rows[1, oh], volume_rows[2, oh]):
                            h = volume_rows[0, oh] + kh
                            _max_pass(volume[d, h], 1, column_max, column_row, np.int32(d * height + h), first)
                            first = False
                    out_row = out[p, od, oh]
                    cell_row = cell[p, od, oh]
                    for ow in range(out_w):
                        w0 = volume_cols[0, ow] + volume_cols[1, ow]
                        best, best_row, best_w = column_max[w0], column_row[w0], w0
                        for w in range(w0 + 1, volume_cols[0, ow] + volume_cols[2, ow]):
                            if _later_takes(column_max[w], column_row[w], best, best_row):
                                best, best_row, best_w = column_max[w], column_row[w], w
                        out_row[ow] = best
                        cell_row[ow] = np.int64(best_row) * width + best_w


@njit(parallel=True, cache=True, nogil=True)
def window_max(volumes, depth, rows, cols, steps, kernel, stride_w, ow_lo, ow_hi, lowest, out, offset, keep_offset):
    """Max pooling of ``volumes`` into ``out`` ``(P, out_d, out_h, out_w)``; with ``keep_offset`` each
    maximum's flat window offset ``(kd*kernel_h + kh)*kernel_w + kw`` into ``offset`` (int64).

    A window with no cell inside gives the lowest value and the offset of its
    first cell at coordinates >= 0 (PyTorch's report).

    Output columns ``[ow_lo, ow_hi)`` have every kernel column inside the input:
    for them each kernel offset is one pass along the output row at a fixed
    offset (as in :func:`colnn.kernels.max_pool_loops.max_pool_planes`), in
    row-major order, which is the scan's order per output. The border columns
    run one box at a time. ``kernel``'s volume must fit in int32.
    """
    out_d, out_h, out_w = out.shape[1], out.shape[2], out.shape[3]
    kernel_h, kernel_w = kernel[1], kernel[2]
    first_col = cols[0, ow_lo] if ow_hi > ow_lo else 0
    block = _block_size(volumes.shape[0])
    for block_index in prange(-(-volumes.shape[0] // block)):
        values = np.empty(ow_hi - ow_lo, volumes.dtype)
        offsets = np.empty(ow_hi - ow_lo, np.int32)
        for p in range(block_index * block, min((block_index + 1) * block, volumes.shape[0])):
            volume = volumes[p]
            for od in range(out_d):
                start_d, first_d, end_d = depth[0, od], depth[1, od], depth[2, od]
                for oh in range(out_h):
                    start_h, first_h, end_h = rows[0, oh], rows[1, oh], rows[2, oh]
                    first = True
                    for kd in range(first_d, end_d if values.shape[0] > 0 else first_d):
                        plane = volume[start_d + kd * steps[0]]
                        for kh in range(first_h, end_h):
                            row = plane[start_h + kh * steps[1]]
                            for kw in range(kernel_w):
                                _max_pass(row[first_col + kw * steps[2]:], stride_w, values, offsets,
                                          np.int32((kd * kernel_h + kh) * kernel_w + kw), first)
                                first = False
                    if first:  # no cell inside along depth or rows
                        for j in range(offsets.shape[0]):
                            values[j] = lowest
                            offsets[j] = (first_d * kernel_h + first_h) * kernel_w
                    out_row = out[p, od, oh]
                    kept = offset[p, od, oh] if keep_offset else offset[0, 0, 0]
                    for j in range(offsets.shape[0]):
                        out_row[ow_lo + j] = values[j]
                        if keep_offset:
                            kept[ow_lo + j] = offsets[j]
                    for side in range(2):  # the border columns left, then right, of the interior
                        for ow in range(ow_lo) if side == 0 else range(ow_hi, out_w):
                            best, kd, kh, kw = _cell_max(volume, depth, rows, cols, od, oh, ow, steps, lowest)
                            out_row[ow] = best
                            if keep_offset:
                                kept[ow] = (kd * kernel_h + kh) * kernel_w + kw


@njit(parallel=True, cache=True, nogil=True)
def window_max_values(volumes, depth, rows, cols, steps, kernel_w, stride_w, ow_lo, ow_hi, lowest, out):
    """Maxima only (inference) of :func:`window_max` for column stride 1 or 2 without column dilation.

    Separable and exact: each kernel row ``(kd, kh)`` is folded across its
    columns (:func:`colnn.kernels.max_pool_loops._row_max`), then the rows in order into the output row.
    Folding consecutive runs of the row-major scan is the scan, so ties,
    signed zeros and NaN come out as PyTorch's. :func:`window_max`, which
    carries an int32 offset per lane through every pass, took 2-4x as long on
    ``(8, 32, 16, 56, 56)`` in 2x2x2 windows (2 cores).
    """
    out_d, out_h, out_w = out.shape[1], out.shape[2], out.shape[3]
    n_inside = ow_hi - ow_lo
    first_col = cols[0, ow_lo] if n_inside > 0 else 0
    span = stride_w * (n_inside - 1) + kernel_w if n_inside > 0 else 0  # columns the interior reads
    block = _block_size(volumes.shape[0])
    for block_index in prange(-(-volumes.shape[0] // block)):
        even = np.empty((span + 1) // 2, volumes.dtype)
        odd = np.empty(span // 2, volumes.dtype)
        best = np.empty(n_inside, volumes.dtype)
        row_best = np.empty(n_inside, volumes.dtype)
        for p in range(block_index * block, min((block_index + 1) * block, volumes.shape[0])):
            volume = volumes[p]
            for od in range(out_d):
                start_d, first_d, end_d = depth[0, od], depth[1, od], depth[2, od]
                for oh in range(out_h):
                    start_h, first_h, end_h = rows[0, oh], rows[1, oh], rows[2, oh]
                    first = True
                    for kd in range(first_d, end_d if n_inside > 0 else first_d):
                        plane = volume[start_d + kd * steps[0]]
                        for kh in range(first_h, end_h):
                            src = plane[start_h + kh * steps[1], first_col:]
                            if first:
                                _row_max(src, best, stride_w, kernel_w, even, odd)
                                first = False
                            else:
                                _row_max(src, row_best, stride_w, kernel_w, even, odd)
                                _fold_max(row_best, best)
                    if first:  # no cell inside along depth or rows
                        best[:] = lowest
                    out_row = out[p, od, oh]
                    out_inside = out_row[ow_lo:]
                    for j in range(best.shape[0]):
                        out_inside[j] = best[j]
                    for side in range(2):  # the border columns left, then right, of the interior
                        for ow in range(ow_lo) if side == 0 else range(ow_hi, out_w):
                            out_row[ow] = _cell_max(volume, depth, rows, cols, od, oh, ow, steps, lowest)[0]


@njit(cache=True, inline="always")
def _offset_cell(k, od, oh, ow, depth, rows, cols, steps, kernel_h, kernel_w):
    """Input coordinates ``(d, h, w)`` of flat window offset ``k`` of box ``(od, oh, ow)``."""
    return (depth[0, od] + k // (kernel_h * kernel_w) * steps[0], rows[0, oh] + k // kernel_w % kernel_h * steps[1],
            cols[0, ow] + k % kernel_w * steps[2])


@njit(parallel=True, cache=True, nogil=True)
def window_cells(offset, depth, rows, cols, steps, kernel, height, width, cell):
    """Each flat window ``offset`` (int64, as :func:`window_max` keeps it) as the flat input cell
    ``(d*height + h)*width + w`` into ``cell``: PyTorch's ``return_indices``."""
    out_d, out_h, out_w = offset.shape[1], offset.shape[2], offset.shape[3]
    for p in prange(offset.shape[0]):
        for od in range(out_d):
            for oh in range(out_h):
                for ow in range(out_w):
                    d, h, w = _offset_cell(offset[p, od, oh, ow], od, oh, ow, depth, rows, cols, steps, kernel[1],
                                           kernel[2])
                    cell[p, od, oh, ow] = (d * height + h) * width + w


@njit(parallel=True, cache=True, nogil=True)
def box_scatter_add(grad_out, offset, depth, rows, cols, steps, kernel, grad_in):
    """Backward of :func:`window_max`: ``grad_out`` to each chosen cell of a zeroed ``grad_in``.

    Offsets are decoded against ``kernel``; a cell outside the input (an empty
    box's reported offset) gets nothing. Overlapping boxes sum, in output order.
    A flat input cell is the offset in a box covering the volume from 0 (bounds
    ``start = 0``, ``kernel`` the volume's size, unit steps).
    """
    volume_d, height, width = grad_in.shape[1], grad_in.shape[2], grad_in.shape[3]
    out_d, out_h, out_w = grad_out.shape[1], grad_out.shape[2], grad_out.shape[3]
    kernel_h, kernel_w = kernel[1], kernel[2]
    zero = grad_in.dtype.type(0)
    for p in prange(grad_in.shape[0]):
        volume = grad_in[p]
        volume[:, :, :] = zero
        for od in range(out_d):
            for oh in range(out_h):
                for ow in range(out_w):
                    d, h, w = _offset_cell(offset[p, od, oh, ow], od, oh, ow, depth, rows, cols, steps, kernel_h,
                                           kernel_w)
                    if 0 <= d < volume_d and 0 <= h < height and 0 <= w < width:
                        volume[d, h, w] += grad_out[p, od, oh, ow]


@njit(parallel=True, cache=True, nogil=True)
def box_avg(volumes, depth, rows, cols, divisor, out):
    """Sum of every box (unit steps) over ``divisor`` ``(out_d, out_h, out_w)`` into ``out``.

    Separable: for each output row the box's input rows are added into one row
    of column sums (unit-stride passes that vectorize; the first row is copied,
    not added to zeros), whose cells are then summed per box (:func:`_span_sum`).
    Equal to the row-major sum to rounding.
    """
    out_d, out_h, out_w = out.shape[1], out.shape[2], out.shape[3]
    block = _block_size(volumes.shape[0])
    for block_index in prange(-(-volumes.shape[0] // block)):
        column_sums = np.empty(volumes.shape[3], volumes.dtype)
        for p in range(block_index * block, min((block_index + 1) * block, volumes.shape[0])):
            volume = volumes[p]
            for od in range(out_d):
                for oh in range(out_h):
                    first = True
                    for kd in range(depth[1, od], depth[2, od]):
                        plane = volume[depth[0, od] + kd]
                        for kh in range(rows[1, oh], rows[2, oh]):
                            row = plane[rows[0, oh] + kh]
                            if first:
                                for w in range(column_sums.shape[0]):
                                    column_sums[w] = row[w]
                                first = False
                            else:
                                for w in range(column_sums.shape[0]):
                                    column_sums[w] += row[w]
                    if first:  # no input row in the box (a window wholly in padding)
                        column_sums[:] = 0
                    out_row = out[p, od, oh]
                    divisor_row = divisor[od, oh]
                    for ow in range(out_w):
                        total = _span_sum(column_sums, cols[0, ow] + cols[1, ow], cols[0, ow] + cols[2, ow])
                        out_row[ow] = total / divisor_row[ow]


@njit(parallel=True, cache=True, nogil=True)
def volume_means(volumes, out):
    """``out[p]`` = the mean of ``volumes[p]`` ``(P, V)``: global average pooling (a CNN's head).

    Each row is summed by :func:`~colnn.kernels.lane_sum.lane_sum`, whole
    vectors at a time, in an order of its own: a NaN or inf reaches its mean as
    in any order.
    """
    count = volumes.shape[1]
    for p in prange(volumes.shape[0]):
        out[p] = lane_sum(volumes[p]) / count


@njit(parallel=True, cache=True, nogil=True)
def box_avg_backward(grad_out, depth, rows, cols, divisor, tiled, grad_in):
    """Adjoint of :func:`box_avg`: each ``grad_out / divisor`` added over its box's cells of ``grad_in``.

    Separable as the forward: an output row's shares are first spread along one
    input row, which is then added to each of the box's input rows. With
    ``tiled`` (the boxes tile every axis: no overlap, no gap, as adaptive bins
    of a size that divides the input) each cell has one box, and its row is
    stored once instead of zeroed and added to: half the memory traffic. A
    share is stored as ``share + 0.0``, the sum into a zeroed gradient
    (-0.0 becomes +0.0, as in PyTorch).
    """
    out_d, out_h, out_w = grad_out.shape[1], grad_out.shape[2], grad_out.shape[3]
    zero = grad_in.dtype.type(0)
    block = _block_size(grad_in.shape[0])
    for block_index in prange(-(-grad_in.shape[0] // block)):
        shares = np.empty(grad_in.shape[3], grad_in.dtype)
        for p in range(block_index * block, min((block_index + 1) * block, grad_in.shape[0])):
            volume = grad_in[p]
            if not tiled:
                volume[:, :, :] = zero
                shares[:] = zero
            for od in range(out_d):
                for oh in range(out_h):
                    grad_row = grad_out[p, od, oh]
                    divisor_row = divisor[od, oh]
                    for ow in range(out_w):
                        share = grad_row[ow] / divisor_row[ow] + zero
                        for kw in range(cols[1, ow], cols[2, ow]):
                            if tiled:
                                shares[cols[0, ow] + kw] = share
                            else:
                                shares[cols[0, ow] + kw] += share
                    for kd in range(depth[1, od], depth[2, od]):
                        plane = volume[depth[0, od] + kd]
                        for kh in range(rows[1, oh], rows[2, oh]):
                            row = plane[rows[0, oh] + kh]
                            if tiled:
                                for w in range(shares.shape[0]):
                                    row[w] = shares[w]
                            else:
                                for w in range(shares.shape[0]):
                                    row[w] += shares[w]
                    if not tiled:
                        shares[:] = zero


@njit(parallel=True, cache=True, nogil=True)
def scatter_cells(values, cell, out, outside):
    """``out[p]`` zero but ``out[p, cell[p, m]] = values[p, m]``; of repeated cells the last stays (max_unpool).

    A cell outside ``[0, out.shape[1])`` is skipped and counted in ``outside[p]``:
    the range check rides on the scatter instead of a pass of its own over the cells.
    """
    zero = out.dtype.type(0)
    size = np.uint64(out.shape[1])
    for p in prange(out.shape[0]):
        target = out[p]
        target[:] = zero
        misses = 0
        for m in range(cell.shape[1]):
            index = cell[p, m]
            if np.uint64(index) < size:  # a negative index wraps to a huge one
                target[index] = values[p, m]
            else:
                misses += 1
        outside[p] = misses


@njit(parallel=True, cache=True, nogil=True)
def gather_cells(source, cell, out):
    """``out[p, m] = source[p, cell[p, m]]`` (max_unpool's backward)."""
    for p in prange(out.shape[0]):
        for m in range(cell.shape[1]):
            out[p, m] = source[p, cell[p, m]]


@njit(parallel=True, cache=True, nogil=True)
def cell_range(cell, low, high):
    """``low[p]``, ``high[p]`` = the least and greatest of ``cell[p]`` ``(P, M)``, ``M >= 1`` (max_unpool's check)."""
    for p in prange(cell.shape[0]):
        row = cell[p]
        least = greatest = row[0]
        for m in range(1, row.shape[0]):
            least = min(least, row[m])
            greatest = max(greatest, row[m])
        low[p] = least
        high[p] = greatest
