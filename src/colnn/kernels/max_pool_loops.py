"""Numba kernels of max pooling over a stack of planes ``(P, H, W)``, forward and backward.

Every kernel runs ``prange`` over the ``P = N*C`` planes, so one thread owns a
plane and its gradient (no races in the scatter-adds) and reads it from cache.
The window geometry arrives precomputed (:class:`colnn.kernels.PlaneGeometry`):
for each output row ``oy`` the input row ``row_start`` of ``ky = 0`` and the
range ``[ky_lo, ky_hi)`` of kernel rows inside the input, likewise for columns,
and ``[ox_in_lo, ox_in_hi)``, the output columns whose every kernel column lies
inside the input. Those interior columns run in loops over ``ox`` with the
kernel offset fixed, which LLVM vectorizes; the few border columns take a
scalar loop per window. Padding is never materialized.

Max pooling follows PyTorch's CPU rule exactly: scanning the window row-major
from its first in-bounds cell, a cell replaces the running maximum when it is
greater or NaN. No ``fastmath`` anywhere: it would let LLVM drop the NaN test.
Average pooling's kernels are in :mod:`colnn.kernels.avg_pool_loops`.

2x2 windows at stride 2 without padding, the common case, have kernels of
their own (``*_k2s2``) that take whole rows and need no geometry; 3x3 at
stride 2 (ResNet's stem pool) has its own backward here and its own forward in
:mod:`colnn.kernels.max_pool_k3s2_loops`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .threads import choose_threading_layer

# Before the first parallel compile, which launches Numba's threads.
choose_threading_layer()

__all__ = [
    "max_pool_planes",
    "max_pool_k2s2",
    "max_pool_k2s2_values",
    "max_pool_values_planes",
    "max_pool_rows_values",
    "max_pool_backward_planes",
    "max_pool_backward_k2s2",
    "max_pool_backward_k2s2_pairs",
    "max_pool_backward_k3s2",
]


@njit(cache=True, inline="always")
def _takes(value, running):
    """PyTorch's replacement test: greater, or NaN (``value != value``; never true for integers)."""
    return (value > running) | (value != value)


# --- max pooling forward ----------------------------------------------------
#
# Codegen notes, measured on 56- and 24-wide planes: LLVM vectorizes the hot
# loops only when (1) an index is provably non-negative (the source row is
# sliced to start at the first cell, so Numba's negative-index wraparound folds
# away), (2) the trip count is the length of a scratch row allocated in the
# kernel (``range(scratch.shape[0])``; any other count left short rows scalar,
# 3-10x slower) and (3) the offsets stay int32 until a final narrowing copy.


@njit(cache=True, inline="always")
def _max_pass(src, stride_w, out_vals, out_offsets, offset, first):
    """Fold the cells ``src[stride_w*j]`` (kernel offset ``offset``) into ``out_vals[j]``, ``out_offsets[j]``.

    Strides 1 and 2 get loops of their own so that LLVM sees a constant stride.
    """
    if first:
        for j in range(out_offsets.shape[0]):
            out_vals[j] = src[stride_w * j]
            out_offsets[j] = offset
    elif stride_w == 1:
        for j in range(out_offsets.shape[0]):
            value = src[j]
            take = _takes(value, out_vals[j])
            out_vals[j] = value if take else out_vals[j]
            out_offsets[j] = offset if take else out_offsets[j]
    elif stride_w == 2:
        for j in range(out_offsets.shape[0]):
            value = src[2 * j]
            take = _takes(value, out_vals[j])
            out_vals[j] = value if take else out_vals[j]
            out_offsets[j] = offset if take else out_offsets[j]
    else:
        for j in range(out_offsets.shape[0]):
            value = src[stride_w * j]
            take = _takes(value, out_vals[j])
            out_vals[j] = value if take else out_vals[j]
            out_offsets[j] = offset if take else out_offsets[j]


@njit(cache=True, inline="always")
def _max_k2s2(top, bottom, out_vals, out_offsets):
    """2x2 windows at stride 2 with both rows inside, ``top``/``bottom`` starting at the first window."""
    for j in range(out_offsets.shape[0]):
        best = top[2 * j]
        best_offset = np.int32(0)
        value = top[2 * j + 1]
        take = _takes(value, best)
        best = value if take else best
        best_offset = np.int32(1) if take else best_offset
        value = bottom[2 * j]
        take = _takes(value, best)
        best = value if take else best
        best_offset = np.int32(2) if take else best_offset
        value = bottom[2 * j + 1]
        take = _takes(value, best)
        out_vals[j] = value if take else best
        out_offsets[j] = np.int32(3) if take else best_offset


@njit(cache=True, inline="always")
def _max_k3s2(row0, row1, row2, out_vals, out_offsets):
    """3x3 windows at stride 2 with all three rows inside, each row starting at the first window."""
    for j in range(out_offsets.shape[0]):
        col = 2 * j
        best = row0[col]
        best_offset = np.int32(0)
        for kx in range(1, 3):
            value = row0[col + kx]
            take = _takes(value, best)
            best = value if take else best
            best_offset = np.int32(kx) if take else best_offset
        for kx in range(3):
            value = row1[col + kx]
            take = _takes(value, best)
            best = value if take else best
            best_offset = np.int32(3 + kx) if take else best_offset
        for kx in range(3):
            value = row2[col + kx]
            take = _takes(value, best)
            best = value if take else best
            best_offset = np.int32(6 + kx) if take else best_offset
        out_vals[j] = best
        out_offsets[j] = best_offset


@njit(cache=True, inline="always")
def _max_window(plane, row0, ky_lo, ky_hi, col0, kx_lo, kx_hi, kernel_w, dilation_h, dilation_w, lowest):
    """One window, scalar: ``(maximum, offset)``; an empty window gives ``lowest`` and its first offset."""
    best = lowest
    best_offset = ky_lo * kernel_w + kx_lo
    first = True
    for ky in range(ky_lo, ky_hi):
        row = plane[row0 + ky * dilation_h]
        for kx in range(kx_lo, kx_hi):
            value = row[col0 + kx * dilation_w]
            if first or _takes(value, best):
                best = value
                best_offset = ky * kernel_w + kx
                first = False
    return best, best_offset


@njit(parallel=True, cache=True, nogil=True)
def max_pool_planes(planes, row_start, ky_lo, ky_hi, col_start, kx_lo, kx_hi, ox_in_lo, ox_in_hi,
                    kernel_w, stride_w, dilation_h, dilation_w, lowest, out, window_offset, keep_offset):
    """Max pooling of ``planes`` ``(P, H, W)`` into ``out`` ``(P, out_h, out_w)``.

    With ``keep_offset``, ``window_offset`` ``(P, out_h, out_w)`` receives
    ``ky*kernel_w + kx`` of each maximum; otherwise it is not touched.
    """
    out_h, out_w = out.shape[1], out.shape[2]
    fused_k2s2 = kernel_w == 2 and stride_w == 2 and dilation_h == 1 and dilation_w == 1
    fused_k3s2 = kernel_w == 3 and stride_w == 2 and dilation_h == 1 and dilation_w == 1
    first_col = ox_in_lo * stride_w + col_start[0]  # input column of the first interior window
    for p in prange(planes.shape[0]):
        plane = planes[p]
        interior_offsets = np.empty(ox_in_hi - ox_in_lo, np.int32)
        for oy in range(out_h):
            out_row = out[p, oy]
            out_vals = out_row[ox_in_lo:]
            row0 = row_start[oy]
            if fused_k2s2 and ky_lo[oy] == 0 and ky_hi[oy] == 2:
                _max_k2s2(plane[row0, first_col:], plane[row0 + 1, first_col:], out_vals, interior_offsets)
            elif fused_k3s2 and ky_lo[oy] == 0 and ky_hi[oy] == 3:
                _max_k3s2(plane[row0, first_col:], plane[row0 + 1, first_col:], plane[row0 + 2, first_col:],
                          out_vals, interior_offsets)
            elif interior_offsets.shape[0] == 0:
                pass  # no interior window: the kernel loop below would run for nothing (huge kernels)
            elif ky_hi[oy] <= ky_lo[oy]:
                for j in range(interior_offsets.shape[0]):
                    out_vals[j] = lowest
                    interior_offsets[j] = ky_lo[oy] * kernel_w
            else:
                for ky in range(ky_lo[oy], ky_hi[oy]):
                    row = plane[row0 + ky * dilation_h]
                    for kx in range(kernel_w):
                        _max_pass(row[first_col + kx * dilation_w:], stride_w, out_vals, interior_offsets,
                                  np.int32(ky * kernel_w + kx), ky == ky_lo[oy] and kx == 0)
            if keep_offset:
                kept = window_offset[p, oy, ox_in_lo:]
                for j in range(interior_offsets.shape[0]):
                    kept[j] = interior_offsets[j]
            for side in range(2):  # the border columns left, then right, of the interior
                for ox in range(ox_in_lo) if side == 0 else range(ox_in_hi, out_w):
                    best, best_offset = _max_window(plane, row0, ky_lo[oy], ky_hi[oy], col_start[ox], kx_lo[ox],
                                                    kx_hi[ox], kernel_w, dilation_h, dilation_w, lowest)
                    out_row[ox] = best
                    if keep_offset:
                        window_offset[p, oy, ox] = best_offset


@njit(cache=True, inline="always")
def _fold_max(src, best):
    """``best[j] = src[j]`` where ``src[j]`` takes over (greater or NaN): a unit-stride, vectorized pass."""
    for j in range(best.shape[0]):
        value = src[j]
        best[j] = value if _takes(value, best[j]) else best[j]


@njit(cache=True, inline="always")
def _row_max(src, target, stride_w, kernel_w, even, odd):
    """``target[j]`` = the scan maximum of ``src[stride_w*j + kw]`` over ``kw`` in ``[0, kernel_w)``.

    ``stride_w`` is 1 or 2. Every pass has unit stride, or is one fused pass
    over the window (2 or 3 taps at stride 2), so that it vectorizes; other
    kernels at stride 2 split ``src`` into its even and odd columns first
    (``even``, ``odd``: scratch rows of the read span's halves).
    """
    if stride_w == 1:
        for j in range(target.shape[0]):
            target[j] = src[j]
        for kw in range(1, kernel_w):
            _fold_max(src[kw:], target)
    elif kernel_w == 2:
        for j in range(target.shape[0]):
            running = src[2 * j]
            value = src[2 * j + 1]
            target[j] = value if _takes(value, running) else running
    elif kernel_w == 3:  # one fused pass of three taps: 3x faster than the split on 1-D rows
        for j in range(target.shape[0]):
            running = src[2 * j]
            value = src[2 * j + 1]
            running = value if _takes(value, running) else running
            value = src[2 * j + 2]
            target[j] = value if _takes(value, running) else running
    else:
        for i in range(odd.shape[0]):
            even[i] = src[2 * i]
            odd[i] = src[2 * i + 1]
        if even.shape[0] > odd.shape[0]:
            even[-1] = src[2 * odd.shape[0]]
        for j in range(target.shape[0]):
            target[j] = even[j]
        for kw in range(1, kernel_w):
            _fold_max(even[kw // 2:] if kw % 2 == 0 else odd[kw // 2:], target)


@njit(parallel=True, cache=True, nogil=True)
def max_pool_values_planes(planes, row_start, ky_lo, ky_hi, col_start, kx_lo, kx_hi, ox_in_lo, ox_in_hi,
                           kernel_w, stride_w, dilation_h, lowest, out):
    """Maxima only (inference) for column stride 1 or 2 without column dilation: separable, exact.

    Each window row is folded across its columns first, then the rows in order:
    that is the row-major scan, so ties, signed zeros and NaN come out as
    PyTorch's. Each window row's passes vectorize (:func:`_row_max`).
    """
    out_h, out_w = out.shape[1], out.shape[2]
    n_inside = ox_in_hi - ox_in_lo
    first_col = ox_in_lo * stride_w + col_start[0]
    span = stride_w * (n_inside - 1) + kernel_w if n_inside > 0 else 0  # columns the interior reads
    for p in prange(planes.shape[0]):
        plane = planes[p]
        even = np.empty((span + 1) // 2, planes.dtype)
        odd = np.empty(span // 2, planes.dtype)
        best = np.empty(n_inside, planes.dtype)
        row_best = np.empty(n_inside, planes.dtype)
        for oy in range(out_h):
            out_row = out[p, oy]
            row0 = row_start[oy]
            best[:] = lowest
            for ky in range(ky_lo[oy], ky_hi[oy] if n_inside > 0 else ky_lo[oy]):
                src = plane[row0 + ky * dilation_h, first_col:]
                _row_max(src, best if ky == ky_lo[oy] else row_best, stride_w, kernel_w, even, odd)
                if ky != ky_lo[oy]:
                    _fold_max(row_best, best)
            out_vals = out_row[ox_in_lo:]
            for j in range(best.shape[0]):
                out_vals[j] = best[j]
            for side in range(2):  # the border columns left, then right, of the interior
                for ox in range(ox_in_lo) if side == 0 else range(ox_in_hi, out_w):
                    out_row[ox] = _max_window(plane, row0, ky_lo[oy], ky_hi[oy], col_start[ox], kx_lo[ox],
                                              kx_hi[ox], kernel_w, dilation_h, 1, lowest)[0]


# Rows per block of :func:`max_pool_rows_values`: its scratch rows are allocated
# once per block, not per row (many short rows would pay an allocation each).
_ROW_BLOCKS = 1024


@njit(parallel=True, cache=True, nogil=True)
def max_pool_rows_values(rows, kernel_w, stride_w, out):
    """1-D max pooling, maxima only, of ``rows`` ``(P, L)`` into ``out`` ``(P, out_l)``.

    For stride 1 or 2 without dilation or padding, every window inside its row
    (``(out_l - 1)*stride_w + kernel_w <= L``): each row is :func:`_row_max`
    straight into its output row. :func:`max_pool_values_planes`, which takes
    1-D pooling as planes of one row, folds into a scratch row first and copies
    it out; on ``(32, 64, 4096)``, k3 s2, this took half its time (1 core).
    """
    span = stride_w * (out.shape[1] - 1) + kernel_w  # cells the windows read
    block = max(-(-rows.shape[0] // _ROW_BLOCKS), 1)
    for block_index in prange(-(-rows.shape[0] // block)):
        even = np.empty((span + 1) // 2, rows.dtype)
        odd = np.empty(span // 2, rows.dtype)
        for p in range(block_index * block, min((block_index + 1) * block, rows.shape[0])):
            _row_max(rows[p], out[p], stride_w, kernel_w, even, odd)


@njit(parallel=True, cache=True, nogil=True)
def max_pool_k2s2_values(planes, out):
    """2x2 windows at stride 2 without padding, maxima only: the common inference case.

    Rows are taken by an index derived from the loop (``2*oy``), whole, and the
    trip count is tied to a scratch row: the form that vectorizes for any width.
    """
    out_h, out_w = out.shape[1], out.shape[2]
    for p in prange(planes.shape[0]):
        trip = np.empty(out_w, np.int8)  # only its length is used, see the codegen notes
        for oy in range(out_h):
            top = planes[p, 2 * oy]
            bottom = planes[p, 2 * oy + 1]
            out_row = out[p, oy]
            for j in range(trip.shape[0]):
                best = top[2 * j]
                value = top[2 * j + 1]
                best = value if _takes(value, best) else best
                value = bottom[2 * j]
                best = value if _takes(value, best) else best
                value = bottom[2 * j + 1]
                out_row[j] = value if _takes(value, best) else best


@njit(parallel=True, cache=True, nogil=True)
def max_pool_k2s2(planes, out, window_offset):
    """:func:`max_pool_k2s2_values` that also keeps each maximum's offset in ``window_offset``."""
    out_h, out_w = out.shape[1], out.shape[2]
    for p in prange(planes.shape[0]):
        offset_row = np.empty(out_w, np.int32)
        for oy in range(out_h):
            top = planes[p, 2 * oy]
            bottom = planes[p, 2 * oy + 1]
            out_row = out[p, oy]
            _max_k2s2(top, bottom, out_row, offset_row)
            kept = window_offset[p, oy]
            for j in range(offset_row.shape[0]):
                kept[j] = offset_row[j]


# --- max pooling backward ---------------------------------------------------


@njit(parallel=True, cache=True, nogil=True)
def max_pool_backward_planes(grad_out, window_offset, row_start, col_start, kernel_w, dilation_h, dilation_w,
                             checked, grad_in):
    """Route ``grad_out`` ``(P, out_h, out_w)`` to the cells chosen in forward; overlaps sum.

    The chosen cell of window ``(oy, ox)`` with offset ``k`` is at row
    ``row_start[oy] + (k // kernel_w)*dilation_h``, column ``col_start[ox] + (k % kernel_w)*dilation_w``
    (computed per cell, not tabulated: a table would grow with the kernel, not the output).
    Gradients are added in output order, as PyTorch does. With ``checked``,
    cells outside the input (an empty window's first offset) are dropped;
    without it every chosen cell must be inside, and the index is computed flat.
    """
    n_planes, height, width = grad_in.shape
    out_h, out_w = grad_out.shape[1], grad_out.shape[2]
    for p in prange(n_planes):
        plane = grad_in[p]
        plane[:, :] = 0
        cells = plane.reshape(height * width)
        for oy in range(out_h):
            grad_row = grad_out[p, oy]
            offset_row = window_offset[p, oy]
            row_base = row_start[oy] * width
            for ox in range(out_w):
                offset = np.int64(offset_row[ox])
                row_step = offset // kernel_w * dilation_h
                col_step = offset % kernel_w * dilation_w
                if checked:
                    cell_row = row_start[oy] + row_step
                    cell_col = col_start[ox] + col_step
                    if 0 <= cell_row < height and 0 <= cell_col < width:
                        plane[cell_row, cell_col] += grad_row[ox]
                else:
                    cells[np.uint64(row_base + col_start[ox] + row_step * width + col_step)] += grad_row[ox]


@njit(parallel=True, cache=True, nogil=True)
def max_pool_backward_k2s2(grad_out, window_offset, grad_in):
    """Backward of :func:`max_pool_k2s2`: each 2x2 cell gets its gradient or 0, written once.

    Rows and columns past the last window (odd H or W) are zeroed.
    """
    n_planes = grad_in.shape[0]
    out_h, out_w = grad_out.shape[1], grad_out.shape[2]
    zero = grad_in.dtype.type(0)
    for p in prange(n_planes):
        plane = grad_in[p]
        trip = np.empty(out_w, np.int8)  # only its length is used, see the codegen notes
        for oy in range(out_h):
            grad_row = grad_out[p, oy]
            offset_row = window_offset[p, oy]
            top = plane[2 * oy]
            bottom = plane[2 * oy + 1]
            for j in range(trip.shape[0]):
                grad = grad_row[j] + zero  # PyTorch's sum into a zeroed gradient: -0.0 becomes +0.0
                offset = offset_row[j]
                top[2 * j] = grad if offset == 0 else 0
                top[2 * j + 1] = grad if offset == 1 else 0
                bottom[2 * j] = grad if offset == 2 else 0
                bottom[2 * j + 1] = grad if offset == 3 else 0
        plane[2 * out_h:, :] = 0
        plane[:2 * out_h, 2 * out_w:] = 0


@njit(cache=True, inline="always")
def _route_pairs(grad_bits, offsets, top, bottom):
    """Pair ``j`` of ``top`` and of ``bottom`` (uint64) gets window ``j``'s gradient in the half its offset names.

    The float32 bits stored are those of ``0.0 + grad``, PyTorch's sum into a
    zeroed gradient: -0.0 becomes +0.0 and a signalling NaN quiet. Branch-free
    (a shift by 0 or 32 and one select per row), so the loop vectorizes and
    random offsets cost no mispredictions.
    """
    for j in range(top.shape[0]):
        bits = grad_bits[j]
        bits = np.uint32(0) if bits == np.uint32(0x80000000) else bits
        bits = bits | np.uint32(0x400000) if bits & np.uint32(0x7FFFFFFF) > np.uint32(0x7F800000) else bits
        offset = np.uint64(offsets[j])
        shifted = np.uint64(bits) << ((offset & np.uint64(1)) * np.uint64(32))
        in_top = offset < np.uint64(2)
        top[j] = shifted if in_top else np.uint64(0)
        bottom[j] = np.uint64(0) if in_top else shifted


@njit(parallel=True, cache=True, nogil=True)
def max_pool_backward_k2s2_pairs(grad_bits, window_offset, grad_pairs):
    """:func:`max_pool_backward_k2s2` for float32 with an even width, two cells per 64-bit store.

    ``grad_bits`` is the float32 gradient viewed as uint32 ``(P, out_h, out_w)``,
    ``grad_pairs`` the gradient of the input viewed as uint64 ``(P, H, W/2)``
    with ``W = 2*out_w`` (little-endian: cell ``2*j`` is the low half of pair
    ``j``). Float stores at stride 2 compile to scatters; unit-stride stores of
    pairs do not. Rows past the last window (odd H) are zeroed.
    """
    out_h = grad_bits.shape[1]
    for p in prange(grad_pairs.shape[0]):
        for oy in range(out_h):
            _route_pairs(grad_bits[p, oy], window_offset[p, oy], grad_pairs[p, 2 * oy], grad_pairs[p, 2 * oy + 1])
        grad_pairs[p, 2 * out_h:, :] = 0


# Loops over a scratch row run to its full length, a multiple of this: LLVM's
# vector body covers up to 64 floats (16 lanes x 4 interleaved), and in a
# shorter or ragged row the rest runs through its scalar remainder loop.
_VECTOR_ROUND = 64


@njit(cache=True, inline="always")
def _pad_window_row(grad_row, offset_row, padded_grad, padded_offset):
    """Copy one window row between sentinels: ``padded_*[j + 1]`` is window ``j``; offset 255 matches no cell."""
    for j in range(grad_row.shape[0]):
        padded_grad[j + 1] = grad_row[j]
        padded_offset[j + 1] = offset_row[j]


@njit(cache=True, inline="always")
def _gather_k3s2_row(padded_grad, padded_offset, ky, even, odd):
    """Add one window row's routed gradients (kernel row ``ky``) to the cells of one input row.

    In padded column coordinates ``u = c + pad``, cell ``u = 2n`` is column 2 of
    window ``n - 1`` and column 0 of window ``n`` (``even[n]``, in that order,
    PyTorch's); cell ``u = 2n + 1`` is column 1 of window ``n`` (``odd[n]``). The
    window row comes padded by :func:`_pad_window_row`, so every pass is a
    unit-stride select-and-add that vectorizes. A cell not chosen adds +0.0,
    which leaves any sum that starts from +0.0 unchanged.
    """
    first, middle, last = np.uint8(3 * ky), np.uint8(3 * ky + 1), np.uint8(3 * ky + 2)
    zero = padded_grad.dtype.type(0)
    for n in range(odd.shape[0] - 1):
        odd[n] += padded_grad[n + 1] if padded_offset[n + 1] == middle else zero
    for n in range(even.shape[0] - 1):
        left = padded_grad[n] if padded_offset[n] == last else zero
        right = padded_grad[n + 1] if padded_offset[n + 1] == first else zero
        even[n] = (even[n] + left) + right


@njit(parallel=True, cache=True, nogil=True)
def max_pool_backward_k3s2(grad_out, window_offset, pad_h, pad_w, grad_pairs):
    """Backward of 3x3 max pooling at stride 2 (padding 0 or 1, no dilation), float32: each input row written once.

    ``grad_pairs`` is the float32 gradient of the input viewed as uint64
    ``(P, H, W/2)`` (even ``W``, little-endian). Instead of zeroing the gradient
    and scattering into it, every input row gathers from the (at most two)
    window rows that cover it, in output order, into two L1-resident rows (its
    even and odd padded columns), which are then interleaved into pairs and
    stored in one pass. The sums are PyTorch's: the same additions in the same
    order, starting from +0.0.
    """
    out_h, out_w = grad_out.shape[1], grad_out.shape[2]
    height, pairs = grad_pairs.shape[1], grad_pairs.shape[2]
    length = -(-max(out_w + 1, pairs + 1) // _VECTOR_ROUND) * _VECTOR_ROUND
    for p in prange(grad_pairs.shape[0]):
        even = np.empty(length + 1, np.float32)
        odd = np.empty(length + 1, np.float32)
        even_bits, odd_bits = even.view(np.uint32), odd.view(np.uint32)
        packed = np.empty(length, np.uint64)
        # Window row oy, padded, in slot oy % 2: each is copied once and read by its three input rows.
        padded_grad = np.zeros((2, length + 1), np.float32)
        padded_offset = np.full((2, length + 1), 255, np.uint8)
        padded_row = np.full(2, -1, np.int64)
        for r in range(height):
            even[:] = 0
            odd[:] = 0
            q = r + pad_h
            for oy in range(max(q // 2 - 1, 0), min(q // 2 + 1, out_h)):
                ky = q - 2 * oy  # 2 for the window row above, else 0 (q even) or 1 (q odd)
                if ky > 2:
                    continue
                slot = oy % 2
                if padded_row[slot] != oy:
                    _pad_window_row(grad_out[p, oy], window_offset[p, oy], padded_grad[slot], padded_offset[slot])
                    padded_row[slot] = oy
                _gather_k3s2_row(padded_grad[slot], padded_offset[slot], ky, even, odd)
            if pad_w == 1:  # cell 2m is u = 2m + 1, cell 2m + 1 is u = 2m + 2
                for m in range(packed.shape[0]):
                    packed[m] = np.uint64(odd_bits[m]) | (np.uint64(even_bits[m + 1]) << np.uint64(32))
            else:
                for m in range(packed.shape[0]):
                    packed[m] = np.uint64(even_bits[m]) | (np.uint64(odd_bits[m]) << np.uint64(32))
            row = grad_pairs[p, r]
            for m in range(pairs):
                row[m] = packed[m]

