"""Numba loops of :mod:`colnn.kernels.direct_conv`: a stride-1 convolution summed tap by tap.

Each output plane is accumulated on a "wide" grid: ``out_h`` rows of the
input's full width ``W`` (the last ``kw - 1`` cells of each row are not
outputs and are dropped at the end). On that grid one tap ``(c, ky, kx)`` adds
``w[f, c, ky, kx] * x[c].flat[ky*W + kx + i]`` to cell ``i``: a single long,
contiguous multiply-add that LLVM vectorizes, instead of ``out_h`` short ones,
and a grid of a few KB stays in L1 across all ``C*kh*kw`` taps. A pass adds up
to five taps of a kernel row (a whole 5-wide row) for two filters on two
images: each input cell loaded serves two filters, each weight two images, and
each grid cell is loaded and stored once for five products. (Four filters of
one image in a pass took 2.40 ms for W1 of ``colnn bench``, a conv1d of 80
taps at stride 4 run as a stride-1 one of 4 phases, one thread, AMD EPYC
(AVX2); this takes 2.19 ms, 75 GFLOP/s, medians of 25 interleaved rounds.
Passes of 10 taps took 2.45 ms, and four filters of two images 2.8.) For one input
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

__all__ = ["TAPS", "FILTERS_PER_TASK", "BLOCK_CELLS", "PRODUCTS_PER_PASS", "conv_valid_in_pairs", "one_channel_conv"]

# Taps of a kernel row per pass (two filters on two images: each input load serves two filters, each
# weight two images).
TAPS = 5
# Filters a task of Numba's threads sums (on a pair of images): tasks of a few filters let a thread
# that gets less of a shared core take fewer of them.
FILTERS_PER_TASK = 8
# Cells of the wide grid summed together over all taps: four float32 sums of 1,024 cells are 16 KB, in L1.
BLOCK_CELLS = 1024
# The most multiply-adds per cell in one pass of :func:`one_channel_conv` (four sums times its taps) that
# LLVM still vectorizes: 36 (a 3x3 kernel) and 40 were; 60 and 100 were left
# scalar (a 5x5 kernel in one pass: 12.6 ms against 1.7 ms by rows, SimpleConvNet's layer on 100 images).
PRODUCTS_PER_PASS = 40


@njit(cache=True, inline="always", fastmath={"contract"})
def _add_pass(sums00, sums01, sums10, sums11, source0, source1, weight0, weight1, taps):
    """``taps`` neighbouring taps of a kernel row, for two filters on two images, added in order.

    ``sumsFI`` holds filter F's sums on image I, ``sourceI`` image I's input
    from the pass's first tap, ``weightF`` filter F's weights from it. Each
    input cell loaded serves two filters and each weight two images; each sum
    is loaded and stored once for ``taps`` products.
    """
    for i in range(sums00.shape[0]):
        s00, s01, s10, s11 = sums00[i], sums01[i], sums10[i], sums11[i]
        # Tap by tap, its two input cells used at once: written as five taps' cells first, then the four
        # sums, the loop needed more than AVX2's sixteen registers and spilled (W1, one thread: 3.5 ms
        # against 2.3 ms).
        for k in range(taps):
            value0, value1 = source0[i + k], source1[i + k]
            s00 += weight0[k] * value0
            s10 += weight1[k] * value0
            s01 += weight0[k] * value1
            s11 += weight1[k] * value1
        sums00[i], sums01[i], sums10[i], sums11[i] = s00, s01, s10, s11


@njit(cache=True, inline="always", fastmath={"contract"})
def _add_taps(sums00, sums01, sums10, sums11, source0, source1, weight0, weight1, count):
    """:func:`_add_pass` for ``count`` (1-5) taps, each count a loop of its own with its taps unrolled."""
    if count == 5:
        _add_pass(sums00, sums01, sums10, sums11, source0, source1, weight0, weight1, 5)
    elif count == 4:
        _add_pass(sums00, sums01, sums10, sums11, source0, source1, weight0, weight1, 4)
    elif count == 3:
        _add_pass(sums00, sums01, sums10, sums11, source0, source1, weight0, weight1, 3)
    elif count == 2:
        _add_pass(sums00, sums01, sums10, sums11, source0, source1, weight0, weight1, 2)
    else:
        _add_pass(sums00, sums01, sums10, sums11, source0, source1, weight0, weight1, 1)


@njit(parallel=True, cache=True, nogil=True, fastmath={"contract"})
def conv_valid_in_pairs(x, weight, bias, add_bias, relu, out):
    """``out[b, f] = sum_{c,ky,kx} weight[f, c, ky, kx] * x[b, c, oy+ky, ox+kx]`` (+ ``bias[f]``, then ReLU).

    ``x`` ``(B, C, H, W)`` (already padded, contiguous), ``weight`` ``(F, C, kh, kw)``,
    ``out`` ``(B, F, H-kh+1, W-kw+1)``, one dtype. With ``relu`` the store
    applies ReLU (:func:`~colnn.kernels.epilogue_loops.store_row`). A pair of
    images and :data:`FILTERS_PER_TASK` filters make a task of Numba's threads,
    which sums pairs of filters (an odd last image or filter is summed twice and
    stored once). Numba's threads rather than woken Python workers: on the
    2-core AMD EPYC VM a Python worker woken per call added a quarter to a first
    layer's time.
    """
    n_images, height, width = x.shape[0], x.shape[2], x.shape[3]
    channels, filters, kernel_h, kernel_w = x.shape[1], weight.shape[0], weight.shape[2], weight.shape[3]
    out_h, out_w = out.shape[2], out.shape[3]
    # The last row needs only out_w cells: stopping there keeps every read inside the plane.
    cells = (out_h - 1) * width + out_w
    filter_tasks = (filters + FILTERS_PER_TASK - 1) // FILTERS_PER_TASK
    for task in prange((n_images + 1) // 2 * filter_tasks):
        b0 = 2 * (task // filter_tasks)
        b1 = min(b0 + 1, n_images - 1)
        first_filter = task % filter_tasks * FILTERS_PER_TASK
        image0, image1 = x[b0].reshape(-1), x[b1].reshape(-1)
        # Arrays of their own, allocated here: LLVM then knows they overlap neither each other nor the input.
        sums00, sums01 = np.empty(cells, out.dtype), np.empty(cells, out.dtype)
        sums10, sums11 = np.empty(cells, out.dtype), np.empty(cells, out.dtype)
        for f0 in range(first_filter, min(first_filter + FILTERS_PER_TASK, filters), 2):
            f1 = min(f0 + 1, filters - 1)
            weight0, weight1 = weight[f0].reshape(-1), weight[f1].reshape(-1)
            sums00[:] = 0
            sums01[:] = 0
            sums10[:] = 0
            sums11[:] = 0
            # A block of cells at a time, every tap added to it before the next: its four sums stay in L1.
            # (A conv1d's row of 3,981 outputs summed whole went through L2 on every pass: W1 of colnn
            # bench, phased, one thread, 4.0 ms against 2.9 ms in blocks; AMD EPYC.)
            for lo in range(0, cells, BLOCK_CELLS):
                hi = min(lo + BLOCK_CELLS, cells)
                block00, block01 = sums00[lo:hi], sums01[lo:hi]
                block10, block11 = sums10[lo:hi], sums11[lo:hi]
                for c in range(channels):
                    for ky in range(kernel_h):
                        start = (c * height + ky) * width + lo
                        taps = (c * kernel_h + ky) * kernel_w
                        for kx in range(0, kernel_w, TAPS):
                            _add_taps(block00, block01, block10, block11,
                                      image0[start + kx:], image1[start + kx:],
                                      weight0[taps + kx:], weight1[taps + kx:], min(TAPS, kernel_w - kx))
            _store_pairs(sums00, sums01, sums10, sums11, bias, add_bias, relu, out, b0, b1, f0, f1, width)


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


@njit(cache=True, inline="always")
def _store_pairs(sums00, sums01, sums10, sums11, bias, add_bias, relu, out, b0, b1, f0, f1, width):
    """Filters ``f0, f1`` on images ``b0, b1`` from their wide grids ``sumsFI``; a repeated image or filter once."""
    _store_plane(sums00, bias[f0], add_bias, relu, out[b0, f0], width)
    if f1 != f0:
        _store_plane(sums10, bias[f1], add_bias, relu, out[b0, f1], width)
    if b1 != b0:
        _store_plane(sums01, bias[f0], add_bias, relu, out[b1, f0], width)
        if f1 != f0:
            _store_plane(sums11, bias[f1], add_bias, relu, out[b1, f1], width)


@functools.cache
def one_channel_conv(kernel_h: int, kernel_w: int) -> Callable[..., None]:
    """:func:`conv_valid_in_pairs` for one input channel and one kernel size, its taps unrolled into the loop.

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
    :func:`conv_valid_in_pairs`, in the same order, bit for bit.
    """

    rows_per_pass = kernel_h if 4 * kernel_h * kernel_w <= PRODUCTS_PER_PASS else 1

    # One function, its loops written out: a closure that calls another jitted closure is compiled
    # anew in every process (Numba's cache cannot key the callee), where this one loads from the cache.
    @njit(parallel=True, cache=True, nogil=True, fastmath={"contract"})
    def conv_one_channel_in_pairs(x, weight, bias, add_bias, relu, out):
        """As :func:`conv_valid_in_pairs` for ``x`` ``(B, 1, H, W)``; pairs of images spread over Numba's threads."""
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
                _store_pairs(sums00, sums01, sums10, sums11, bias, add_bias, relu, out, b0, b1, f0, f1, width)

    return conv_one_channel_in_pairs
