"""Numba loops of the chunked convolution's weight gradient: the output gradient's layout change, ``db`` on the way.

A chunk's weight gradient is one GEMM of its columns ``col`` ``(C*K, P)`` and
the output gradient of its ``P = B*L`` output cells, which arrives NCHW,
``(B, FN, L)``, and has to be laid out as one matrix first. :func:`planes_to_cells`
lays it out ``(P, FN)``, so that the product is ``col @ cells``, the layout
OpenBLAS runs fastest when ``FN`` is small; :func:`planes_to_rows` lays it out
``(FN, P)``, as the input gradient's GEMM needs it too. One thread, SkylakeX
kernel, the 2-core Intel Xeon VM of 2026-12-07: ``(75, 1568) @ (1568, 32)``
(the CIFAR-shaped first layer, two images) ran at 106 GFLOP/s that way and at 85 as
``col @ rows.T``; ``(432, 1024) @ (1024, 32)`` 117 against 113; C4's
``(2304, 784) @ (784, 256)`` 157 either way.

Both add each filter's sum of the gradient into ``sums`` (float64), the bias
gradient, while the planes are in cache, instead of NumPy summing the whole
gradient in a pass of its own after the threads are done (0.5 ms of CPU for
the (100, 32, 28, 28) gradient of the CIFAR-shaped step). The sums may be
reassociated (``fastmath={"reassoc"}``) so that they vectorize; in float64
their rounding stays far below float32's, and for float64 arrays a few ulps.
The loops run on one thread and release the GIL, like :mod:`colnn.kernels.im2col_loops`.
"""

from __future__ import annotations

from numba import njit

__all__ = ["planes_to_cells", "planes_to_rows"]

@njit(cache=True, inline="always", fastmath={"reassoc"})
def _add_sums(plane, sums, f):
    """``sums[f] += sum(plane)``, in float64."""
    total = 0.0
    for j in range(plane.shape[0]):
        total += plane[j]
    sums[f] += total


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def planes_to_cells(planes, cells, sums, with_sums):
    """``cells[b*L + l, f] = planes[b, f, l]`` for ``planes`` ``(B, FN, L)`` into ``cells`` ``(B*L, FN)``.

    With ``with_sums``, ``sums[f] += planes[:, f].sum()`` (``sums`` float64 ``(FN,)``).
    One ``cells`` row at a time, gathered from the ``FN`` planes (whose cache lines
    serve the next rows): on two images of the CIFAR-shaped gradient, (2, 32, 784)
    float32, 9 us against 13 by NumPy's transposing copy and 31 in 8x8 tiles.
    """
    n_images, channels, plane_len = planes.shape
    for b in range(n_images):
        if with_sums:
            for f in range(channels):
                _add_sums(planes[b, f], sums, f)
        for j in range(plane_len):
            row = cells[b * plane_len + j]
            for f in range(channels):
                row[f] = planes[b, f, j]


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def planes_to_rows(planes, rows, sums, with_sums):
    """``rows[f, b*L + l] = planes[b, f, l]`` for ``planes`` ``(B, FN, L)`` into ``rows`` ``(FN, B*L)``.

    With ``with_sums``, ``sums[f] += planes[:, f].sum()`` (``sums`` float64 ``(FN,)``).
    """
    n_images, channels, plane_len = planes.shape
    for b in range(n_images):
        for f in range(channels):
            src = planes[b, f]
            if with_sums:
                _add_sums(src, sums, f)
            dst = rows[f, b * plane_len:(b + 1) * plane_len]
            for j in range(plane_len):
                dst[j] = src[j]
