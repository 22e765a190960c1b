"""Numba loop of :mod:`colnn.kernels.direct_conv`: a stride-1 convolution summed tap by tap.

Each output plane is accumulated on a "wide" grid: ``out_h`` rows of the
input's full width ``W`` (the last ``kw - 1`` cells of each row are not
outputs and are dropped at the end). On that grid one tap ``(c, ky, kx)`` adds
``w[f, c, ky, kx] * x[c].flat[ky*W + kx + i]`` to cell ``i``: a single long,
contiguous multiply-add that LLVM vectorizes, instead of ``out_h`` short ones,
and a grid of a few KB stays in L1 across all ``C*kh*kw`` taps. Four taps of
a kernel row go in one pass (the grid is loaded and stored once for four
products, not four times: the stores bounded the one-tap loop).

No ``fastmath``: each step is a rounded product then a rounded sum (no FMA
contraction), in the order ``(c, ky, kx)``, so every output is a plain sum of
products, NaN and inf propagating as IEEE arithmetic says; the bias is added
last, as after a GEMM.
"""

from __future__ import annotations

from numba import njit

__all__ = ["conv_valid_into"]


@njit(cache=True, inline="always", fastmath={"contract"})
def _add_tap(acc, source, tap):
    for i in range(acc.shape[0]):
        acc[i] += tap * source[i]


@njit(cache=True, inline="always", fastmath={"contract"})
def _add_four_taps(acc, source, taps):
    """Four neighbouring taps of a kernel row in one pass, added in order (as four passes would)."""
    t0, t1, t2, t3 = taps[0], taps[1], taps[2], taps[3]
    for i in range(acc.shape[0]):
        acc[i] = (((acc[i] + t0 * source[i]) + t1 * source[i + 1]) + t2 * source[i + 2]) + t3 * source[i + 3]


@njit(cache=True, nogil=True, fastmath={"contract"})
def conv_valid_into(x, weight, bias, add_bias, out, grid):
    """``out[b, f] = sum_{c,ky,kx} weight[f, c, ky, kx] * x[b, c, oy+ky, ox+kx]`` (+ ``bias[f]``).

    ``x`` ``(B, C, H, W)`` (already padded, contiguous), ``weight`` ``(F, C, kh, kw)``,
    ``out`` ``(B, F, H-kh+1, W-kw+1)``, ``grid`` scratch of ``(H-kh+1)*W`` cells, one dtype.
    """
    n_images, channels, width = x.shape[0], x.shape[1], x.shape[3]
    filters, kernel_h, kernel_w = weight.shape[0], weight.shape[2], weight.shape[3]
    out_h, out_w = out.shape[2], out.shape[3]
    # The last row needs only out_w cells: stopping there keeps every read inside the plane.
    cells = (out_h - 1) * width + out_w
    for b in range(n_images):
        for f in range(filters):
            acc = grid[:cells]
            acc[:] = 0
            for c in range(channels):
                plane = x[b, c].reshape(-1)
                for ky in range(kernel_h):
                    taps = weight[f, c, ky]
                    kx = 0
                    while kx + 4 <= kernel_w:
                        _add_four_taps(acc, plane[ky * width + kx:ky * width + kx + cells + 3], taps[kx:kx + 4])
                        kx += 4
                    while kx < kernel_w:
                        _add_tap(acc, plane[ky * width + kx:ky * width + kx + cells], taps[kx])
                        kx += 1
            for oy in range(out_h):
                row = out[b, f, oy]
                wide = acc[oy * width:oy * width + out_w]
                if add_bias:
                    term = bias[f]
                    for ox in range(out_w):
                        row[ox] = wide[ox] + term
                else:
                    row[:] = wide
