"""Numba loops of an image pyramid's means: window sums in float64, and rounding back, one pass each.

Arrays arrive as 7-d views ``(a0, p0, a1, p1, a2, p2, a3)`` of a C-contiguous
block: ``p0..p2`` the pooled axes (1 where fewer are pooled), ``a0..a3`` the
kept axes between them, merged (:func:`colnn.kernels.pyramid.canonical_shape`).
Windows tile the pooled axes (stride equal to the kernel, no padding); the last
window of an axis may be partial. Each window's cells are added one by one
in row-major order: the order of
:func:`colnn.kernels.pyramid.window_sums`'s NumPy passes, so both give the
same bits. The sums are divided by their level-0 cell counts only when a
level is rounded out (:func:`colnn.kernels.pyramid.round_means`). The loops
are serial: each runs inside one Dask task, and the scheduler runs one task
per core.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["window_sums", "round_half_even"]


@njit(cache=True, nogil=True, inline="always")
def _add_cells(cells, sums, k2):
    """``sums[w] += cells[w*k2 + j]`` for each cell ``j`` of window ``w``, in order (1-d)."""
    size = cells.shape[0]
    whole = min(sums.shape[0], size // k2)
    if k2 == 2:  # the usual pyramid, spelled out so that LLVM vectorizes it
        for w in range(whole):
            sums[w] = (sums[w] + np.float64(cells[2 * w])) + np.float64(cells[2 * w + 1])
    else:
        for w in range(whole):
            total = sums[w]
            for q in range(w * k2, w * k2 + k2):
                total += np.float64(cells[q])
            sums[w] = total
    for w in range(whole, sums.shape[0]):  # the partial last window
        total = sums[w]
        for q in range(w * k2, size):
            total += np.float64(cells[q])
        sums[w] = total


@njit(cache=True, nogil=True)
def _add_row(row_in, row_out, k2):
    """``row_out[w] += row_in[w*k2 + j]`` for each cell ``j`` of window ``w`` in order; rows are ``(p2, a3)``."""
    p2, a3 = row_in.shape
    o2 = row_out.shape[0]
    if a3 == 1:
        _add_cells(row_in.reshape(p2), row_out.reshape(o2), k2)
        return
    for w2 in range(o2):
        for q2 in range(w2 * k2, min(w2 * k2 + k2, p2)):
            for i3 in range(a3):
                row_out[w2, i3] += np.float64(row_in[q2, i3])


@njit(cache=True, nogil=True)
def window_sums(x, k0, k1, k2, out):
    """``out`` (float64, zeroed by the caller) += the sum of each ``k0 x k1 x k2`` window of ``x``."""
    a0, p0, a1, p1, a2 = x.shape[:5]
    o0, o1 = out.shape[1], out.shape[3]
    for i0 in range(a0):
        for w0 in range(o0):
            for q0 in range(w0 * k0, min(w0 * k0 + k0, p0)):
                for i1 in range(a1):
                    for w1 in range(o1):
                        for q1 in range(w1 * k1, min(w1 * k1 + k1, p1)):
                            for i2 in range(a2):
                                _add_row(x[i0, q0, i1, q1, i2], out[i0, w0, i1, w1, i2], k2)


@njit(cache=True, nogil=True)
def round_half_even(chain, low, high, out):
    """``out`` (an integer dtype) = ``chain`` (float64, flat) rounded half to even and clipped to ``[low, high]``."""
    for i in range(chain.size):
        value = min(max(np.rint(chain[i]), low), high)
        out[i] = value
