"""Numba loops of :mod:`colnn.kernels.direct_conv`: a stride-1 convolution summed tap by tap.

Each output plane is accumulated on a "wide" grid: ``out_h`` rows of the
input's full width ``W`` (the last ``kw - 1`` cells of each row are not
outputs and are dropped at the end). On that grid one tap ``(c, ky, kx)`` adds
``w[f, c, ky, kx] * x[c].flat[ky*W + kx + i]`` to cell ``i``: a single long,
contiguous multiply-add that LLVM vectorizes, instead of ``out_h`` short ones,
and a grid of a few KB stays in L1 across all ``C*kh*kw`` taps. Up to five taps
of a kernel row (a whole 5-wide row) and four filters go in one pass: each
grid cell is loaded and stored once for five products, and each input cell
loaded serves four filters. (Two filters and four taps, a 5-wide row in two
passes, took 30 ms for SimpleConvNet's layer on 1,000 images, one thread;
this takes 23 ms, with the same sums in the same order.) For one input
channel and the kernel sizes listed in :data:`colnn.kernels.direct_conv.UNROLLED_KERNELS`,
:func:`one_channel_conv` keeps the sums in registers over all taps instead:
it is compiled per kernel size, so that the taps are constants LLVM unrolls.

Only ``fastmath={"contract"}``: each step is a multiply-add (FMA where the
processor has it), in the order ``(c, ky, kx)``, so every output is a plain sum of
products, NaN and inf propagating as IEEE arithmetic says; the bias is added
last, as after a GEMM.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from numba import njit, prange

from .epilogue_loops import store_row
from .threads import choose_threading_layer

choose_threading_layer()

__all__ = ["FILTERS", "PRODUCTS_PER_PASS", "conv_valid_into", "conv_valid_in_groups", "one_channel_conv"]

# Filters summed in one pass over the input, and taps of a kernel row per pass (a 5-wide row in one).
FILTERS, TAPS = 4, 5
# Cells of the wide grid summed together over all taps: four filters' float32 sums of 1,024 cells are 16 KB.
BLOCK_CELLS = 1024
# The most multiply-adds per cell in one pass of :func:`one_channel_conv` (four sums times its taps) that
# LLVM still vectorizes: 36 (a 3x3 kernel) and 40 were; 60 and 100 were left
# scalar (a 5x5 kernel in one pass: 12.6 ms against 1.7 ms by rows, SimpleConvNet's layer on 100 images).
PRODUCTS_PER_PASS = 40


@njit(cache=True, inline="always", fastmath={"contract"})
def _add_taps(acc0, acc1, acc2, acc3, source, w0, w1, w2, w3, count):
    """``count`` (1-5) neighbouring taps of a kernel row for four filters in one pass, added in order.

    ``acc0``-``acc3`` hold the four filters' sums and ``w0``-``w3`` their
    weights. Each source cell is loaded once for the four filters, and each
    sum loaded and stored once for up to five products.
    """
    cells = acc0.shape[0]
    if count == 5:
        a0, a1, a2, a3, a4 = w0[0], w0[1], w0[2], w0[3], w0[4]
        b0, b1, b2, b3, b4 = w1[0], w1[1], w1[2], w1[3], w1[4]
        c0, c1, c2, c3, c4 = w2[0], w2[1], w2[2], w2[3], w2[4]
        d0, d1, d2, d3, d4 = w3[0], w3[1], w3[2], w3[3], w3[4]
        for i in range(cells):
            s0, s1, s2, s3, s4 = source[i], source[i + 1], source[i + 2], source[i + 3], source[i + 4]
            acc0[i] = ((((acc0[i] + a0 * s0) + a1 * s1) + a2 * s2) + a3 * s3) + a4 * s4
            acc1[i] = ((((acc1[i] + b0 * s0) + b1 * s1) + b2 * s2) + b3 * s3) + b4 * s4
            acc2[i] = ((((acc2[i] + c0 * s0) + c1 * s1) + c2 * s2) + c3 * s3) + c4 * s4
            acc3[i] = ((((acc3[i] + d0 * s0) + d1 * s1) + d2 * s2) + d3 * s3) + d4 * s4
    elif count == 4:
        a0, a1, a2, a3 = w0[0], w0[1], w0[2], w0[3]
        b0, b1, b2, b3 = w1[0], w1[1], w1[2], w1[3]
        c0, c1, c2, c3 = w2[0], w2[1], w2[2], w2[3]
        d0, d1, d2, d3 = w3[0], w3[1], w3[2], w3[3]
        for i in range(cells):
            s0, s1, s2, s3 = source[i], source[i + 1], source[i + 2], source[i + 3]
            acc0[i] = (((acc0[i] + a0 * s0) + a1 * s1) + a2 * s2) + a3 * s3
            acc1[i] = (((acc1[i] + b0 * s0) + b1 * s1) + b2 * s2) + b3 * s3
            acc2[i] = (((acc2[i] + c0 * s0) + c1 * s1) + c2 * s2) + c3 * s3
            acc3[i] = (((acc3[i] + d0 * s0) + d1 * s1) + d2 * s2) + d3 * s3
    elif count == 3:
        a0, a1, a2, b0, b1, b2 = w0[0], w0[1], w0[2], w1[0], w1[1], w1[2]
        c0, c1, c2, d0, d1, d2 = w2[0], w2[1], w2[2], w3[0], w3[1], w3[2]
        for i in range(cells):
            s0, s1, s2 = source[i], source[i + 1], source[i + 2]
            acc0[i] = ((acc0[i] + a0 * s0) + a1 * s1) + a2 * s2
            acc1[i] = ((acc1[i] + b0 * s0) + b1 * s1) + b2 * s2
            acc2[i] = ((acc2[i] + c0 * s0) + c1 * s1) + c2 * s2
            acc3[i] = ((acc3[i] + d0 * s0) + d1 * s1) + d2 * s2
    elif count == 2:
        a0, a1, b0, b1, c0, c1, d0, d1 = w0[0], w0[1], w1[0], w1[1], w2[0], w2[1], w3[0], w3[1]
        for i in range(cells):
            s0, s1 = source[i], source[i + 1]
            acc0[i] = (acc0[i] + a0 * s0) + a1 * s1
            acc1[i] = (acc1[i] + b0 * s0) + b1 * s1
            acc2[i] = (acc2[i] + c0 * s0) + c1 * s1
            acc3[i] = (acc3[i] + d0 * s0) + d1 * s1
    else:
        a0, b0, c0, d0 = w0[0], w1[0], w2[0], w3[0]
        for i in range(cells):
            s0 = source[i]
            acc0[i] = acc0[i] + a0 * s0
            acc1[i] = acc1[i] + b0 * s0
            acc2[i] = acc2[i] + c0 * s0
            acc3[i] = acc3[i] + d0 * s0


@njit(cache=True, nogil=True, fastmath={"contract"})
def conv_valid_into(x, weight, bias, add_bias, relu, out, grid):
    """``out[b, f] = sum_{c,ky,kx} weight[f, c, ky, kx] * x[b, c, oy+ky, ox+kx]`` (+ ``bias[f]``, then ReLU).

    ``x`` ``(B, C, H, W)`` (already padded, contiguous), ``weight`` ``(F, C, kh, kw)``,
    ``out`` ``(B, F, H-kh+1, W-kw+1)``, ``grid`` scratch of ``4*(H-kh+1)*W`` cells, one dtype.
    With ``relu`` the store applies ReLU (:func:`~colnn.kernels.epilogue_loops.store_row`).
    Filters go in fours (a short last block repeats its last filter, and stores it once).
    """
    n_images, channels, width = x.shape[0], x.shape[1], x.shape[3]
    filters, kernel_h, kernel_w = weight.shape[0], weight.shape[2], weight.shape[3]
    out_h, out_w = out.shape[2], out.shape[3]
    # The last row needs only out_w cells: stopping there keeps every read inside the plane.
    cells = (out_h - 1) * width + out_w
    # Contiguous 1-d slices (rows of a 2-d slice would have a runtime stride, which does not vectorize).
    part = grid.shape[0] // FILTERS
    acc0, acc1 = grid[:cells], grid[part:part + cells]
    acc2, acc3 = grid[2 * part:2 * part + cells], grid[3 * part:3 * part + cells]
    for b in range(n_images):
        for first in range(0, filters, FILTERS):
            f0, f1 = first, min(first + 1, filters - 1)
            f2, f3 = min(first + 2, filters - 1), min(first + 3, filters - 1)
            grid[:] = 0
            # A block of cells at a time, every tap added to it before the next: its four filters' sums
            # stay in L1. (A conv1d's row of 3,981 outputs summed whole went through L2 on every pass:
            # W1 of colnn bench, phased, one thread, 4.0 ms against 2.9 ms in blocks; AMD EPYC.)
            for lo in range(0, cells, BLOCK_CELLS):
                hi = min(lo + BLOCK_CELLS, cells)
                for c in range(channels):
                    plane = x[b, c].reshape(-1)
                    for ky in range(kernel_h):
                        for kx in range(0, kernel_w, TAPS):
                            count = min(TAPS, kernel_w - kx)
                            start = ky * width + kx + lo
                            end = kx + count
                            _add_taps(acc0[lo:hi], acc1[lo:hi], acc2[lo:hi], acc3[lo:hi],
                                      plane[start:start + hi - lo + count - 1],
                                      weight[f0, c, ky, kx:end], weight[f1, c, ky, kx:end],
                                      weight[f2, c, ky, kx:end], weight[f3, c, ky, kx:end], count)
            for k in range(min(FILTERS, filters - first)):
                _store_plane(grid[k * part:k * part + cells], bias[first + k], add_bias, relu, out[b, first + k], width)


@njit(parallel=True, cache=True, nogil=True)
def conv_valid_in_groups(x, weight, bias, add_bias, relu, out, group):
    """:func:`conv_valid_into` on the images ``group`` at a time, the groups spread over Numba's threads.

    Each group has a grid of its own. Numba's threads rather than Python's: on
    the 2-core AMD EPYC VM a Python worker woken per call added a quarter to a
    first layer's time (SimpleConvNet's on 100 images: 1.10 ms against 0.85 ms).
    """
    n_images, width = x.shape[0], x.shape[3]
    cells = FILTERS * out.shape[2] * width
    for index in prange((n_images + group - 1) // group):
        first = index * group
        last = min(first + group, n_images)
        conv_valid_into(x[first:last], weight, bias, add_bias, relu, out[first:last], np.empty(cells, out.dtype))


@njit(cache=True, inline="always")
def _store_plane(acc, shift, add_bias, relu, plane, width):
    """``plane`` ``(out_h, out_w)`` from the wide grid ``acc`` (rows ``width`` apart), bias and ReLU applied."""
    # Bias and ReLU over the whole wide grid, one long loop (a row of out_w cells would leave a
    # scalar remainder whose branches mispredict), then plain row copies.
    store_row(acc, shift, add_bias, relu, acc)
    out_w = plane.shape[1]
    for oy in range(plane.shape[0]):
        row, wide = plane[oy], acc[oy * width:oy * width + out_w]
        for ox in range(out_w):
            row[ox] = wide[ox]


@functools.cache
def one_channel_conv(kernel_h: int, kernel_w: int) -> Callable[..., None]:
    """:func:`conv_valid_in_groups` for one input channel and one kernel size, its taps unrolled into the loop.

    The function returned takes ``(x, weight, bias, add_bias, relu, out)`` and
    spreads pairs of images over Numba's threads.

    ``kernel_h`` and ``kernel_w`` are constants of the closure, so LLVM unrolls
    each pass's taps (the whole kernel, or one row of it) into the loop over the
    grid's cells, which it then vectorizes. A pass sums two filters for two
    images at once: four sums per cell stay in registers over the pass's taps,
    each input load serves two filters and each weight two images, so there are
    as many loads as multiply-adds. (Two filters of one image, loaded once per
    pair of products, were bound by the loads: SimpleConvNet's layer on 100
    images, one thread, AMD EPYC (AVX2), took 2.5 ms that way and 1.65 ms this
    way; ONNX Runtime 1.9 ms.) LLVM vectorizes a loop of up to about
    :data:`PRODUCTS_PER_PASS` multiply-adds here and leaves a longer one scalar,
    so a 3x3 kernel takes one pass and a 5x5 kernel one pass per kernel row, the
    sums stored and reloaded between passes (for 3x3 that took the same time as
    one pass). The input is read as ``plane[ky, i + kx]``: past the row's end
    that is the next row (cell ``i`` of the wide grid, always inside the
    plane). As a 2-d index whose parts are loop counters it stays affine for
    LLVM, where the flat ``plane[ky * W + kx + i]`` takes Numba's
    negative-index check and becomes a gather. Each sum is the one of
    :func:`conv_valid_into`, in the same order, bit for bit.
    """

    rows_per_pass = kernel_h if 4 * kernel_h * kernel_w <= PRODUCTS_PER_PASS else 1

    # One function, its loops written out: a closure that calls another jitted closure is compiled
    # anew in every process (Numba's cache cannot key the callee), where this one loads from the cache.
    @njit(parallel=True, cache=True, nogil=True, fastmath={"contract"})
    def conv_one_channel_in_pairs(x, weight, bias, add_bias, relu, out):
        """As :func:`conv_valid_into` for ``x`` ``(B, 1, H, W)``; pairs of images spread over Numba's threads."""
        n_images, width = x.shape[0], x.shape[3]
        filters, out_h, out_w = weight.shape[0], out.shape[2], out.shape[3]
        cells = (out_h - 1) * width + out_w
        zero = out.dtype.type(0)
        for pair in prange((n_images + 1) // 2):
            b0 = 2 * pair
            b1 = min(b0 + 1, n_images - 1)  # an odd last image is summed twice and stored once
            plane0, plane1 = x[b0, 0], x[b1, 0]
            # sumsFI: filter F's sums on image I. Four arrays of their own, allocated here: LLVM then
            # knows they overlap neither each other nor the input (with a grid from the caller, the
            # loop was left scalar).
            sums00, sums01 = np.empty(cells, out.dtype), np.empty(cells, out.dtype)
            sums10, sums11 = np.empty(cells, out.dtype), np.empty(cells, out.dtype)
            for f0 in range(0, filters, 2):
                f1 = min(f0 + 1, filters - 1)
                w0, w1 = weight[f0, 0], weight[f1, 0]
                for top in range(0, kernel_h, rows_per_pass):
                    for i in range(cells):
                        if top == 0:
                            s00 = s01 = s10 = s11 = zero
                        else:
                            s00, s01, s10, s11 = sums00[i], sums01[i], sums10[i], sums11[i]
                        for ky in range(top, top + rows_per_pass):
                            for kx in range(kernel_w):
                                value0, value1 = plane0[ky, i + kx], plane1[ky, i + kx]
                                s00 += w0[ky, kx] * value0
                                s10 += w1[ky, kx] * value0
                                s01 += w0[ky, kx] * value1
                                s11 += w1[ky, kx] * value1
                        sums00[i], sums01[i], sums10[i], sums11[i] = s00, s01, s10, s11
                _store_plane(sums00, bias[f0], add_bias, relu, out[b0, f0], width)
                if f1 != f0:
                    _store_plane(sums10, bias[f1], add_bias, relu, out[b0, f1], width)
                if b1 != b0:
                    _store_plane(sums01, bias[f0], add_bias, relu, out[b1, f0], width)
                    if f1 != f0:
                        _store_plane(sums11, bias[f1], add_bias, relu, out[b1, f1], width)

    return conv_one_channel_in_pairs
