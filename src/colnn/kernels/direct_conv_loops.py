"""Numba loop of :mod:`colnn.kernels.direct_conv`: a stride-1 convolution summed tap by tap.

Each output plane is accumulated on a "wide" grid: ``out_h`` rows of the
input's full width ``W`` (the last ``kw - 1`` cells of each row are not
outputs and are dropped at the end). On that grid one tap ``(c, ky, kx)`` adds
``w[f, c, ky, kx] * x[c].flat[ky*W + kx + i]`` to cell ``i``: a single long,
contiguous multiply-add that LLVM vectorizes, instead of ``out_h`` short ones,
and a grid of a few KB stays in L1 across all ``C*kh*kw`` taps. Up to four taps
of a kernel row and two filters go in one pass: the grid is loaded and stored
once for four products, not four times (the stores bounded a one-tap loop),
and each input cell loaded serves both filters.

No ``fastmath``: each step is a rounded product then a rounded sum (no FMA
contraction), in the order ``(c, ky, kx)``, so every output is a plain sum of
products, NaN and inf propagating as IEEE arithmetic says; the bias is added
last, as after a GEMM.
"""

from __future__ import annotations

from numba import njit

from .epilogue_loops import store_row

__all__ = ["conv_valid_into"]


@njit(cache=True, inline="always", fastmath={"contract"})
def _add_taps(acc0, acc1, source, taps0, taps1, count):
    """``count`` (1-4) neighbouring taps of a kernel row for two filters in one pass, added in order.

    Each source cell is loaded once for both filters, and each grid cell is
    loaded and stored once for up to four products.
    """
    cells = acc0.shape[0]
    if count == 4:
        a0, a1, a2, a3 = taps0[0], taps0[1], taps0[2], taps0[3]
        b0, b1, b2, b3 = taps1[0], taps1[1], taps1[2], taps1[3]
        for i in range(cells):
            s0, s1, s2, s3 = source[i], source[i + 1], source[i + 2], source[i + 3]
            acc0[i] = (((acc0[i] + a0 * s0) + a1 * s1) + a2 * s2) + a3 * s3
            acc1[i] = (((acc1[i] + b0 * s0) + b1 * s1) + b2 * s2) + b3 * s3
    elif count == 3:
        a0, a1, a2 = taps0[0], taps0[1], taps0[2]
        b0, b1, b2 = taps1[0], taps1[1], taps1[2]
        for i in range(cells):
            s0, s1, s2 = source[i], source[i + 1], source[i + 2]
            acc0[i] = ((acc0[i] + a0 * s0) + a1 * s1) + a2 * s2
            acc1[i] = ((acc1[i] + b0 * s0) + b1 * s1) + b2 * s2
    elif count == 2:
        a0, a1, b0, b1 = taps0[0], taps0[1], taps1[0], taps1[1]
        for i in range(cells):
            s0, s1 = source[i], source[i + 1]
            acc0[i] = (acc0[i] + a0 * s0) + a1 * s1
            acc1[i] = (acc1[i] + b0 * s0) + b1 * s1
    else:
        a0, b0 = taps0[0], taps1[0]
        for i in range(cells):
            s0 = source[i]
            acc0[i] = acc0[i] + a0 * s0
            acc1[i] = acc1[i] + b0 * s0


@njit(cache=True, nogil=True, fastmath={"contract"})
def conv_valid_into(x, weight, bias, add_bias, relu, out, grid):
    """``out[b, f] = sum_{c,ky,kx} weight[f, c, ky, kx] * x[b, c, oy+ky, ox+kx]`` (+ ``bias[f]``, then ReLU).

    ``x`` ``(B, C, H, W)`` (already padded, contiguous), ``weight`` ``(F, C, kh, kw)``,
    ``out`` ``(B, F, H-kh+1, W-kw+1)``, ``grid`` scratch of ``2*(H-kh+1)*W`` cells, one dtype.
    With ``relu`` the store applies ReLU (:func:`~colnn.kernels.epilogue_loops.store_row`).
    Filters go in pairs (an odd last one is paired with itself).
    """
    n_images, channels, width = x.shape[0], x.shape[1], x.shape[3]
    filters, kernel_h, kernel_w = weight.shape[0], weight.shape[2], weight.shape[3]
    out_h, out_w = out.shape[2], out.shape[3]
    # The last row needs only out_w cells: stopping there keeps every read inside the plane.
    cells = (out_h - 1) * width + out_w
    half = grid.shape[0] // 2
    for b in range(n_images):
        for first in range(0, filters, 2):
            second = min(first + 1, filters - 1)
            acc0, acc1 = grid[:cells], grid[half:half + cells]
            acc0[:] = 0
            acc1[:] = 0
            for c in range(channels):
                plane = x[b, c].reshape(-1)
                for ky in range(kernel_h):
                    taps0, taps1 = weight[first, c, ky], weight[second, c, ky]
                    for kx in range(0, kernel_w, 4):
                        count = min(4, kernel_w - kx)
                        start = ky * width + kx
                        _add_taps(acc0, acc1, plane[start:start + cells + count - 1],
                                  taps0[kx:kx + count], taps1[kx:kx + count], count)
            for f, acc in ((first, acc0), (second, acc1)):
                # Bias and ReLU over the whole wide grid, one long loop (a row of out_w cells would leave a
                # scalar remainder whose branches mispredict), then plain row copies.
                store_row(acc, bias[f], add_bias, relu, acc)
                for oy in range(out_h):
                    row, wide = out[b, f, oy], acc[oy * width:oy * width + out_w]
                    for ox in range(out_w):
                        row[ox] = wide[ox]
