"""Numba kernels of the batch-chunked im2col + GEMM convolution.

The column matrix of a chunk of ``B`` images is ``col`` ``(C*kh*kw, B*L)`` with
``L = out_h*out_w``: row ``(c, ky, kx)``, column ``(b, oy, ox)``. Then
``weight (FN, C*kh*kw) @ col`` is the whole chunk's output in one BLAS call,
and each stretch of a ``col`` row is a shifted, strided copy of an input row,
so im2col streams. Geometry arrays are those of
:class:`colnn.kernels.geometry.PlaneGeometry`. As in :mod:`colnn.kernels.max_pool_loops`, source
and destination rows are sliced to start at their first cell so that indices
are provably non-negative and the copy loops vectorize.

The chunk kernels run on one thread and release the GIL (``nogil``):
:mod:`colnn.kernels.conv_chunked` runs one per Python thread, each on its own share of
the batch, with single-threaded BLAS between them. (A Numba parallel region
between two multi-threaded BLAS calls makes OpenMP's and OpenBLAS's spinning
workers fight over the cores: on 2 cores the C1 forward of ``colnn bench``
took 400-1200 ms that way.)
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .epilogue_loops import store_row
from .rows import spread_cells, take_cells
from .threads import choose_threading_layer

# Before the first parallel compile, which launches Numba's threads.
choose_threading_layer()

__all__ = ["im2col_chunk", "im2col_images", "col2im_chunk", "rows_to_nchw", "im2col_book",
           "col2im_book"]


@njit(cache=True, inline="always")
def _inside_columns(col0, stride_w, width, out_w):
    """Output columns ``[lo, hi)`` whose input column ``ox*stride_w + col0`` lies in ``[0, width)``."""
    lo = 0 if col0 >= 0 else min(out_w, (-col0 + stride_w - 1) // stride_w)
    hi = max(lo, min(out_w, (width - 1 - col0) // stride_w + 1))
    return lo, hi


@njit(cache=True, inline="always")
def _reads_phases(kernel_w, stride_w, dilation_w):
    """Whether im2col goes through the stride's phases: strided, with kernel columns sharing a phase.

    Then each input row is split once into its ``stride_w`` phases
    (:func:`_split_phases`), and every kernel column ``kx`` copies a contiguous
    run of one phase, which vectorizes, instead of every ``stride_w``-th cell.
    One image, one thread, interleaved: conv1d ``(1, 16000)`` by 80 taps at
    stride 4, 0.04-0.05 ms against 0.12-0.20 ms strided; the 7x7 stride-2
    stem on 224x224, 0.3-0.6 against 1.6-1.9 ms; 4x4 stride 2 on 64x64, 32
    channels, 0.17-0.23 against 0.31-0.40 ms. With no two kernel columns in
    one phase (``kernel_w <= stride_w``, a 1x1 stride-2 shortcut) the split
    would be a pass for nothing. col2im keeps the strided adds: through the
    phases (a zeroed split, contiguous adds, a merge) it was 1.2x faster at
    4x4 stride 2 but 1.5x slower at 3x3 stride 2.
    """
    return stride_w > 1 and (kernel_w - 1) * dilation_w >= stride_w


@njit(cache=True, inline="always")
def _phase_of(kx, stride_w, dilation_w):
    """``(phase, first cell)`` that kernel column ``kx`` reads for output column 0 in :func:`_split_phases`'s rows."""
    return (kx * dilation_w) % stride_w, (kx * dilation_w) // stride_w


@njit(cache=True, nogil=True)
def _split_phases(images, col0, stride_w, phased):
    """``phased[b, c, y, p, j] = images[b, c, y, j*stride_w + p + col0]``, 0 outside the row.

    ``col0`` is the input column of output column 0 and kernel column 0 (``-pad_w``).
    """
    n_images, channels, height, width = images.shape
    phase_len = phased.shape[4]
    for b in range(n_images):
        for c in range(channels):
            for y in range(height):
                row = images[b, c, y]
                for p in range(stride_w):
                    dst = phased[b, c, y, p]
                    for j in range(phase_len):
                        u = j * stride_w + p + col0
                        dst[j] = row[u] if 0 <= u < width else 0


@njit(cache=True, inline="always")
def _phase_len(out_w, kernel_w, stride_w, dilation_w):
    """Cells of a phase that the windows of a row read: ``out_w`` plus the last kernel column's offset."""
    return out_w + ((kernel_w - 1) * dilation_w) // stride_w


@njit(cache=True, nogil=True)
def im2col_chunk(images, row_start, col_start, kernel_h, kernel_w, stride_w, dilation_h, dilation_w, col):
    """Fill ``col`` ``(C*kh*kw, B*L)`` from ``images`` ``(B, C, H, W)``; padded cells are 0."""
    if _reads_phases(kernel_w, stride_w, dilation_w):
        n_images, channels, height = images.shape[:3]
        phased = np.empty((n_images, channels, height, stride_w,
                           _phase_len(col_start.shape[0], kernel_w, stride_w, dilation_w)), images.dtype)
        _split_phases(images, col_start[0], stride_w, phased)
        _im2col_phased(phased, row_start, col_start.shape[0], kernel_h, kernel_w, stride_w, dilation_h,
                       dilation_w, col)
        return
    n_images, channels, height, width = images.shape
    out_h, out_w = row_start.shape[0], col_start.shape[0]
    plane_len = out_h * out_w
    for c in range(channels):
        for ky in range(kernel_h):
            for kx in range(kernel_w):
                col_row = col[(c * kernel_h + ky) * kernel_w + kx]
                col0 = col_start[0] + kx * dilation_w
                ox_lo, ox_hi = _inside_columns(col0, stride_w, width, out_w)
                for b in range(n_images):
                    for oy in range(out_h):
                        dst = col_row[b * plane_len + oy * out_w:b * plane_len + (oy + 1) * out_w]
                        in_row = row_start[oy] + ky * dilation_h
                        if in_row < 0 or in_row >= height:
                            dst[:] = 0
                            continue
                        dst[:ox_lo] = 0
                        dst[ox_hi:] = 0
                        take_cells(images[b, c, in_row, ox_lo * stride_w + col0:], stride_w, dst[ox_lo:ox_hi])


@njit(cache=True, nogil=True)
def im2col_images(images, row_start, col_start, kernel_h, kernel_w, stride_w, dilation_h, dilation_w, cols):
    """Each image's own column block: ``cols[b, :C*kh*kw]`` ``(C*kh*kw, L)`` from ``images[b]``, ``cols`` ``(B, R, L)``.

    Rows of ``cols`` past ``C*kh*kw`` are left as they are (the per-image GEMM keeps its bias row of ones there).
    """
    depth = images.shape[1] * kernel_h * kernel_w
    for b in range(images.shape[0]):
        im2col_chunk(images[b:b + 1], row_start, col_start, kernel_h, kernel_w, stride_w, dilation_h, dilation_w,
                     cols[b, :depth])


@njit(cache=True, nogil=True)
def col2im_chunk(col, row_start, col_start, kernel_h, kernel_w, stride_w, dilation_h, dilation_w, images):
    """Adjoint of :func:`im2col_chunk`: sum ``col`` ``(C*kh*kw, B*L)`` into ``images`` ``(B, C, H, W)``.

    ``images`` is overwritten.
    """
    n_images, channels, height, width = images.shape
    out_h, out_w = row_start.shape[0], col_start.shape[0]
    plane_len = out_h * out_w
    images[:] = 0
    for c in range(channels):
        for ky in range(kernel_h):
            for kx in range(kernel_w):
                col_row = col[(c * kernel_h + ky) * kernel_w + kx]
                col0 = col_start[0] + kx * dilation_w
                ox_lo, ox_hi = _inside_columns(col0, stride_w, width, out_w)
                for b in range(n_images):
                    for oy in range(out_h):
                        in_row = row_start[oy] + ky * dilation_h
                        if in_row < 0 or in_row >= height:
                            continue
                        dst = images[b, c, in_row, ox_lo * stride_w + col0:]
                        start = b * plane_len + oy * out_w
                        spread_cells(col_row[start + ox_lo:start + ox_hi], stride_w, dst)


@njit(cache=True, nogil=True)
def _im2col_phased(phased, row_start, out_w, kernel_h, kernel_w, stride_w, dilation_h, dilation_w, col):
    """:func:`im2col_chunk` from the phases of :func:`_split_phases`: each stretch a contiguous copy."""
    n_images, channels, height = phased.shape[:3]
    out_h = row_start.shape[0]
    plane_len = out_h * out_w
    for c in range(channels):
        for ky in range(kernel_h):
            for kx in range(kernel_w):
                col_row = col[(c * kernel_h + ky) * kernel_w + kx]
                phase, first = _phase_of(kx, stride_w, dilation_w)
                for b in range(n_images):
                    for oy in range(out_h):
                        dst = col_row[b * plane_len + oy * out_w:b * plane_len + (oy + 1) * out_w]
                        in_row = row_start[oy] + ky * dilation_h
                        if in_row < 0 or in_row >= height:
                            dst[:] = 0
                            continue
                        src = phased[b, c, in_row, phase, first:]
                        for j in range(out_w):
                            dst[j] = src[j]


# --- the book's layout, for the public im2col / col2im -------------------------------
#
# ``col`` ``(N*out_h*out_w, C*kh*kw)``: row ``(n, oy, ox)``, column ``(c, ky, kx)``.
# These run on all threads (no GEMM sits between them). im2col fills one output
# row ``(n, oy)`` at a time: its ``out_w`` matrix rows (``out_w*C*kh*kw`` cells)
# stay in cache while the loops read input rows in order. col2im gives each
# thread whole planes ``(n, c)``, so no two threads add into the same cell, and
# sums each cell's contributions in ``(ky, kx)`` order, as the reference does.


@njit(parallel=True, cache=True, nogil=True)
def im2col_book(images, row_start, col_start, kernel_h, kernel_w, stride_w, dilation_h, dilation_w, pad_value,
                col):
    """Fill ``col`` ``(N*out_h*out_w, C*kh*kw)`` from ``images`` ``(N, C, H, W)``; padded cells get ``pad_value``."""
    n_images, channels, height, width = images.shape
    out_h, out_w = row_start.shape[0], col_start.shape[0]
    for task in prange(n_images * out_h):
        b, oy = task // out_h, task % out_h
        block = col[task * out_w:(task + 1) * out_w]
        for c in range(channels):
            for ky in range(kernel_h):
                in_row = row_start[oy] + ky * dilation_h
                for kx in range(kernel_w):
                    j = (c * kernel_h + ky) * kernel_w + kx
                    if in_row < 0 or in_row >= height:
                        block[:, j] = pad_value
                        continue
                    col0 = col_start[0] + kx * dilation_w
                    ox_lo, ox_hi = _inside_columns(col0, stride_w, width, out_w)
                    block[:ox_lo, j] = pad_value
                    block[ox_hi:, j] = pad_value
                    src = images[b, c, in_row, ox_lo * stride_w + col0:]
                    for i in range(ox_hi - ox_lo):
                        block[ox_lo + i, j] = src[stride_w * i]


@njit(parallel=True, cache=True, nogil=True)
def col2im_book(col, row_start, col_start, kernel_h, kernel_w, stride_w, dilation_h, dilation_w, images):
    """Adjoint of :func:`im2col_book`: sum ``col`` into ``images`` ``(N, C, H, W)`` (overwritten)."""
    n_images, channels, height, width = images.shape
    out_h, out_w = row_start.shape[0], col_start.shape[0]
    for plane in prange(n_images * channels):
        b, c = plane // channels, plane % channels
        image = images[b, c]
        image[:] = 0
        rows = col[b * out_h * out_w:(b + 1) * out_h * out_w]
        for ky in range(kernel_h):
            for kx in range(kernel_w):
                j = (c * kernel_h + ky) * kernel_w + kx
                col0 = col_start[0] + kx * dilation_w
                ox_lo, ox_hi = _inside_columns(col0, stride_w, width, out_w)
                for oy in range(out_h):
                    in_row = row_start[oy] + ky * dilation_h
                    if in_row < 0 or in_row >= height:
                        continue
                    spread_cells(rows[oy * out_w + ox_lo:oy * out_w + ox_hi, j], stride_w,
                                 image[in_row, ox_lo * stride_w + col0:])


@njit(cache=True, nogil=True)
def rows_to_nchw(rows, bias, add_bias, relu, out):
    """``rows`` ``(FN, B*L)`` (a chunk's GEMM result), plus ``bias`` ``(FN,)`` if ``add_bias``, into ``out``
    ``(B, FN, L)``.

    With ``relu`` the copy is also the ReLU layer's pass (:func:`colnn.kernels.epilogue_loops.store_row`).
    """
    n_images, channels, plane_len = out.shape
    for b in range(n_images):
        for f in range(channels):
            store_row(rows[f, b * plane_len:(b + 1) * plane_len], bias[f], add_bias, relu, out[b, f])
