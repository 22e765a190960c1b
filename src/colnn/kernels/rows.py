"""Strided row loops shared by the Numba kernels (inlined where they are called).

Each moves cells between a contiguous row and every ``stride_w``-th cell of
another. Strides 1 and 2, by far the most common, get loops of their own so
that LLVM sees a constant stride and vectorizes them.
"""

from __future__ import annotations

from numba import njit

__all__ = ["take_cells", "add_cells", "spread_cells"]


@njit(cache=True, inline="always")
def take_cells(src, stride_w, dst):
    """``dst[j] = src[stride_w*j]`` for every ``j`` of ``dst``."""
    if stride_w == 1:
        for j in range(dst.shape[0]):
            dst[j] = src[j]
    elif stride_w == 2:
        for j in range(dst.shape[0]):
            dst[j] = src[2 * j]
    else:
        for j in range(dst.shape[0]):
            dst[j] = src[stride_w * j]


@njit(cache=True, inline="always")
def add_cells(src, stride_w, sums):
    """``sums[j] += src[stride_w*j]`` for every ``j`` of ``sums``."""
    if stride_w == 1:
        for j in range(sums.shape[0]):
            sums[j] += src[j]
    elif stride_w == 2:
        for j in range(sums.shape[0]):
            sums[j] += src[2 * j]
    else:
        for j in range(sums.shape[0]):
            sums[j] += src[stride_w * j]


@njit(cache=True, inline="always")
def spread_cells(shares, stride_w, dst):
    """``dst[stride_w*j] += shares[j]`` for every ``j`` of ``shares``: the adjoint of :func:`add_cells`."""
    if stride_w == 1:
        for j in range(shares.shape[0]):
            dst[j] += shares[j]
    elif stride_w == 2:
        for j in range(shares.shape[0]):
            dst[2 * j] += shares[j]
    else:
        for j in range(shares.shape[0]):
            dst[stride_w * j] += shares[j]
