"""Strided row loops shared by the Numba kernels (inlined where they are called).

Each moves cells between a contiguous row and every ``stride_w``-th cell of
another. Strides 1 and 2, by far the most common, get loops of their own so
that LLVM sees a constant stride and vectorizes them. :func:`split_row` splits
a row into its even and odd cells once, for 3x3 windows at stride 2, whose
passes then all run at unit stride.
"""

from __future__ import annotations

from numba import njit

__all__ = ["take_cells", "add_cells", "spread_cells", "split_row"]


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


@njit(cache=True, inline="always")
def split_row(src, pad_w, trip, even, odd):
    """Split input row ``src`` by padded column ``u = c + pad_w``: ``even[n]`` is ``u = 2n``, ``odd[n]`` is ``2n + 1``.

    ``trip`` has length ``src.shape[0] // 2``; cells in the padding keep what they held.
    """
    if pad_w == 1:
        for n in range(trip.shape[0]):
            odd[n] = src[2 * n]
            even[n + 1] = src[2 * n + 1]
        if src.shape[0] % 2 == 1:
            odd[trip.shape[0]] = src[src.shape[0] - 1]
    else:
        for n in range(trip.shape[0]):
            even[n] = src[2 * n]
            odd[n] = src[2 * n + 1]
        if src.shape[0] % 2 == 1:
            even[trip.shape[0]] = src[src.shape[0] - 1]
