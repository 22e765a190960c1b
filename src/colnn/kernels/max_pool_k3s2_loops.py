"""Numba kernel of 3x3 max pooling at stride 2 (ResNet's stem pool), forward, with or without offsets.

The general loop of :mod:`colnn.kernels.max_pool_loops` reads each window's
three columns at stride 2. AVX-512 loads them with permutes and gathers; on
AVX2 LLVM builds every third column from scalar inserts, and the last
``out_w % 8`` windows of a row and its border windows run scalar, with a
branch per cell that random data mispredicts (5x the bandwidth limit with
offsets). This kernel is separable instead: every pass has unit stride and runs
to the length of a scratch row (a multiple of ``_VECTOR_ROUND``), so that only
the border windows run scalar, refolded branch-free. No ``fastmath``: it would
let LLVM drop the NaN test.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .max_pool_loops import _VECTOR_ROUND, _takes
from .rows import split_row

__all__ = ["max_pool_k3s2"]


@njit(cache=True, inline="always")
def _fold_columns(src, pad_w, trip, even, odd, col_start, kx_lo, kx_hi, ox_in_lo, ox_in_hi, col_vals, col_kx):
    """Maximum and its kernel column ``kx`` of each window's three cells in input row ``src``, left to right.

    Windows past the output and border windows first fold whatever the scratch
    rows hold; the border windows (``ox < ox_in_lo`` or ``>= ox_in_hi``) are then
    refolded over their cells inside the input.
    """
    split_row(src, pad_w, trip, even, odd)
    for j in range(col_vals.shape[0]):
        best = even[j]
        best_kx = np.int32(0)
        value = odd[j]
        take = _takes(value, best)
        best = value if take else best
        best_kx = np.int32(1) if take else best_kx
        value = even[j + 1]
        take = _takes(value, best)
        col_vals[j] = value if take else best
        col_kx[j] = np.int32(2) if take else best_kx
    out_w = col_start.shape[0]
    for side in range(2):
        for ox in range(ox_in_lo) if side == 0 else range(ox_in_hi, out_w):
            best = src[col_start[ox] + kx_lo[ox]]
            best_kx = np.int32(kx_lo[ox])
            for kx in range(kx_lo[ox] + 1, kx_hi[ox]):
                value = src[col_start[ox] + kx]
                take = _takes(value, best)
                best = value if take else best
                best_kx = np.int32(kx) if take else best_kx
            col_vals[ox] = best
            col_kx[ox] = best_kx


@njit(cache=True, inline="always")
def _fold_rows3(vals0, kx0, vals1, kx1, vals2, kx2, best, best_offset):
    """Fold three kernel rows' column maxima in order: offset ``3*ky + kx``.

    Every load comes before the selects: a load in one arm of a select became
    a masked load (and the stores masked stores, slow on AVX2).
    """
    for j in range(best.shape[0]):
        value, upper, lower = vals0[j], vals1[j], vals2[j]
        offset, upper_offset, lower_offset = kx0[j], kx1[j] + np.int32(3), kx2[j] + np.int32(6)
        take = _takes(upper, value)
        value = upper if take else value
        offset = upper_offset if take else offset
        take = _takes(lower, value)
        value = lower if take else value
        offset = lower_offset if take else offset
        best[j] = value
        best_offset[j] = offset


@njit(cache=True, inline="always")
def _fold_row(vals, kx, ky, first, best, best_offset):
    """Fold one kernel row's column maxima into ``best``/``best_offset`` (or start them, ``first``)."""
    row_offset = np.int32(3 * ky)
    if first:
        for j in range(best.shape[0]):
            best[j] = vals[j]
            best_offset[j] = kx[j] + row_offset
    else:
        for j in range(best.shape[0]):
            value, running = vals[j], best[j]
            offset, running_offset = kx[j] + row_offset, best_offset[j]
            take = _takes(value, running)
            best[j] = value if take else running
            best_offset[j] = offset if take else running_offset


@njit(parallel=True, cache=True, nogil=True)
def max_pool_k3s2(planes, row_start, ky_lo, ky_hi, col_start, kx_lo, kx_hi, ox_in_lo, ox_in_hi, pad_w,
                  out, window_offset, keep_offset):
    """3x3 max pooling at stride 2 (padding 0 or 1, no dilation, no empty window), separably.

    Each input row is split into its even and odd padded columns and folded
    across each window's three columns once (kept in a ring of three rows, as
    consecutive output rows share one input row); the kernel rows are then
    folded in order. That is PyTorch's row-major scan: ties keep the first
    maximum and a NaN takes over. With ``keep_offset``, ``window_offset``
    ``(P, out_h, out_w)`` receives ``3*ky + kx``; otherwise it is not touched.
    """
    out_h, out_w = out.shape[1], out.shape[2]
    width = planes.shape[2]
    length = -(-(out_w + 1) // _VECTOR_ROUND) * _VECTOR_ROUND
    for p in prange(planes.shape[0]):
        plane = planes[p]
        trip = np.empty(width // 2, np.int8)  # only its length is used, see the codegen notes
        out_trip = np.empty(out_w, np.int8)
        even = np.zeros(length + 1, planes.dtype)
        odd = np.zeros(length + 1, planes.dtype)
        col_vals = np.empty((3, length), planes.dtype)
        col_kx = np.empty((3, length), np.int32)
        col_row = np.full(3, -1, np.int64)  # the input row each ring slot holds
        best = np.empty(length, planes.dtype)
        best_offset = np.empty(length, np.int32)
        for oy in range(out_h):
            for ky in range(ky_lo[oy], ky_hi[oy]):
                row = row_start[oy] + ky
                slot = row % 3
                if col_row[slot] != row:
                    _fold_columns(plane[row], pad_w, trip, even, odd, col_start, kx_lo, kx_hi, ox_in_lo, ox_in_hi,
                                  col_vals[slot], col_kx[slot])
                    col_row[slot] = row
            if ky_lo[oy] == 0 and ky_hi[oy] == 3:
                first = row_start[oy] % 3
                _fold_rows3(col_vals[first], col_kx[first], col_vals[(first + 1) % 3], col_kx[(first + 1) % 3],
                            col_vals[(first + 2) % 3], col_kx[(first + 2) % 3], best, best_offset)
            else:
                for ky in range(ky_lo[oy], ky_hi[oy]):
                    slot = (row_start[oy] + ky) % 3
                    _fold_row(col_vals[slot], col_kx[slot], ky, ky == ky_lo[oy], best, best_offset)
            out_row = out[p, oy]
            for j in range(out_trip.shape[0]):
                out_row[j] = best[j]
            if keep_offset:
                kept = window_offset[p, oy]
                for j in range(out_trip.shape[0]):
                    kept[j] = best_offset[j]
