"""Numba kernels of average pooling over a stack of planes ``(P, H, W)``, forward and backward.

The layout and geometry are those of :mod:`colnn.kernels.max_pool_loops` (one
thread per plane, precomputed window bounds, padding never materialized). Sums
run in the planes' dtype (the caller converts float16 to float32), in PyTorch's
order: row-major over the in-bounds cells. 2x2 windows at stride 2 without
padding have kernels of their own (``*_k2s2``), and so has the forward of 3x3
windows at stride 2 (``avg_pool_k3s2``, ResNet's stem shape): the general
loop reads each window's columns at stride 2 (permutes and gathers on
AVX-512); split into even and odd columns once, every add has unit stride.
On ``colnn bench``'s S2 shape that is 10% faster on one thread (32 against
35 ms) and within noise on two, where the pass is bound by memory.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .max_pool_loops import _VECTOR_ROUND
from .rows import add_cells, split_row, spread_cells
from .threads import choose_threading_layer

# Before the first parallel compile, which launches Numba's threads.
choose_threading_layer()

__all__ = ["avg_pool_planes", "avg_pool_k2s2", "avg_pool_k3s2", "avg_pool_backward_planes", "avg_pool_backward_k2s2"]


@njit(parallel=True, cache=True, nogil=True)
def avg_pool_planes(planes, row_start, ky_lo, ky_hi, col_start, kx_lo, kx_hi, ox_in_lo, ox_in_hi,
                    kernel_w, stride_w, divisor, out):
    """Average pooling: window sums of ``planes`` ``(P, H, W)`` over ``divisor`` ``(out_h, out_w)`` into ``out``."""
    out_h, out_w = out.shape[1], out.shape[2]
    first_col = ox_in_lo * stride_w + col_start[0]
    for p in prange(planes.shape[0]):
        plane = planes[p]
        sums = np.empty(ox_in_hi - ox_in_lo, planes.dtype)
        for oy in range(out_h):
            row0 = row_start[oy]
            sums[:] = 0
            for ky in range(ky_lo[oy], ky_hi[oy]):
                row = plane[row0 + ky]
                for kx in range(kernel_w if sums.shape[0] > 0 else 0):
                    add_cells(row[first_col + kx:], stride_w, sums)
            out_row = out[p, oy]
            divisor_row = divisor[oy]
            out_vals = out_row[ox_in_lo:]
            divisor_vals = divisor_row[ox_in_lo:]
            for j in range(sums.shape[0]):
                out_vals[j] = sums[j] / divisor_vals[j]
            for side in range(2):  # the border columns left, then right, of the interior
                for ox in range(ox_in_lo) if side == 0 else range(ox_in_hi, out_w):
                    total = planes.dtype.type(0)
                    for ky in range(ky_lo[oy], ky_hi[oy]):
                        row = plane[row0 + ky]
                        for kx in range(kx_lo[ox], kx_hi[ox]):
                            total += row[col_start[ox] + kx]
                    out_row[ox] = total / divisor_row[ox]


@njit(parallel=True, cache=True, nogil=True)
def avg_pool_k3s2(planes, row_start, ky_lo, ky_hi, col_start, kx_lo, kx_hi, ox_in_lo, ox_in_hi, pad_w, divisor,
                  out):
    """3x3 windows at stride 2 (padding 0 or 1, no dilation, no empty window): :func:`avg_pool_planes`'s sums.

    Each input row is split once into its even and odd padded columns (a ring
    of three, as consecutive output rows share one input row); window ``ox``'s
    cells in that row are then ``even[ox]``, ``odd[ox]``, ``even[ox + 1]``,
    added in that order row after row from zero: PyTorch's row-major order, so
    the sums are the general loop's bit for bit. Border windows are refolded
    over their cells inside the input.
    """
    out_h, out_w = out.shape[1], out.shape[2]
    width = planes.shape[2]
    length = -(-(out_w + 1) // _VECTOR_ROUND) * _VECTOR_ROUND
    for p in prange(planes.shape[0]):
        plane = planes[p]
        trip = np.empty(width // 2, np.int8)  # only its length is used (a trip count LLVM can see)
        even = np.zeros((3, length + 1), planes.dtype)
        odd = np.zeros((3, length + 1), planes.dtype)
        split_of = np.full(3, -1, np.int64)  # the input row each ring slot holds
        sums = np.empty(length, planes.dtype)
        for oy in range(out_h):
            sums[:] = 0
            for ky in range(ky_lo[oy], ky_hi[oy]):
                row = row_start[oy] + ky
                slot = row % 3
                if split_of[slot] != row:
                    split_row(plane[row], pad_w, trip, even[slot], odd[slot])
                    split_of[slot] = row
                row_even, row_odd = even[slot], odd[slot]
                for j in range(length):
                    sums[j] = ((sums[j] + row_even[j]) + row_odd[j]) + row_even[j + 1]
            out_row = out[p, oy]
            divisor_row = divisor[oy]
            for j in range(ox_in_lo, ox_in_hi):
                out_row[j] = sums[j] / divisor_row[j]
            for side in range(2):  # the border columns left, then right, of the interior
                for ox in range(ox_in_lo) if side == 0 else range(ox_in_hi, out_w):
                    total = planes.dtype.type(0)
                    for ky in range(ky_lo[oy], ky_hi[oy]):
                        row_cells = plane[row_start[oy] + ky]
                        for kx in range(kx_lo[ox], kx_hi[ox]):
                            total += row_cells[col_start[ox] + kx]
                    out_row[ox] = total / divisor_row[ox]


@njit(parallel=True, cache=True, nogil=True)
def avg_pool_k2s2(planes, divisor, out):
    """2x2 windows at stride 2 without padding, all divided by the scalar ``divisor``."""
    out_h, out_w = out.shape[1], out.shape[2]
    for p in prange(planes.shape[0]):
        trip = np.empty(out_w, np.int8)  # only its length is used: see the codegen note in max_pool_loops
        for oy in range(out_h):
            top = planes[p, 2 * oy]
            bottom = planes[p, 2 * oy + 1]
            out_row = out[p, oy]
            for j in range(trip.shape[0]):
                total = top[2 * j] + top[2 * j + 1] + bottom[2 * j] + bottom[2 * j + 1]
                out_row[j] = total / divisor


@njit(parallel=True, cache=True, nogil=True)
def avg_pool_backward_planes(grad_out, row_start, ky_lo, ky_hi, col_start, kx_lo, kx_hi, ox_in_lo, ox_in_hi,
                             kernel_w, stride_w, divisor, grad_in):
    """Spread ``grad_out / divisor`` over each window's in-bounds cells of ``grad_in`` ``(P, H, W)``."""
    out_h, out_w = grad_out.shape[1], grad_out.shape[2]
    first_col = ox_in_lo * stride_w + col_start[0]
    for p in prange(grad_in.shape[0]):
        plane = grad_in[p]
        plane[:, :] = 0
        shares = np.empty(ox_in_hi - ox_in_lo, grad_in.dtype)
        for oy in range(out_h):
            grad_row = grad_out[p, oy]
            divisor_row = divisor[oy]
            grad_vals = grad_row[ox_in_lo:]
            divisor_vals = divisor_row[ox_in_lo:]
            for j in range(shares.shape[0]):
                shares[j] = grad_vals[j] / divisor_vals[j]
            row0 = row_start[oy]
            for ky in range(ky_lo[oy], ky_hi[oy]):
                row = plane[row0 + ky]
                for kx in range(kernel_w if shares.shape[0] > 0 else 0):
                    spread_cells(shares, stride_w, row[first_col + kx:])
                for side in range(2):
                    for ox in range(ox_in_lo) if side == 0 else range(ox_in_hi, out_w):
                        share = grad_row[ox] / divisor_row[ox]
                        for kx in range(kx_lo[ox], kx_hi[ox]):
                            row[col_start[ox] + kx] += share


@njit(parallel=True, cache=True, nogil=True)
def avg_pool_backward_k2s2(grad_out, divisor, grad_in):
    """Backward of :func:`avg_pool_k2s2`: each cell of a window gets its share, written once."""
    n_planes = grad_in.shape[0]
    out_h, out_w = grad_out.shape[1], grad_out.shape[2]
    for p in prange(n_planes):
        plane = grad_in[p]
        trip = np.empty(out_w, np.int8)  # only its length is used: see the codegen note in max_pool_loops
        for oy in range(out_h):
            grad_row = grad_out[p, oy]
            top = plane[2 * oy]
            bottom = plane[2 * oy + 1]
            for j in range(trip.shape[0]):
                share = grad_row[j] / divisor
                top[2 * j] = share
                top[2 * j + 1] = share
                bottom[2 * j] = share
                bottom[2 * j + 1] = share
        plane[2 * out_h:, :] = 0
        plane[:2 * out_h, 2 * out_w:] = 0
