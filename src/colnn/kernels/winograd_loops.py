"""Numba kernels of the Winograd F(4x4, 3x3) convolution (see :mod:`colnn.kernels.winograd`).

A 3x3 filter applied at stride 1 to a 6x6 input tile ``d`` gives a 4x4 output
tile ``Y = A^T [(G g G^T) * (B^T d B)] A`` (``*`` elementwise): 36 products
per tile and channel pair instead of 144. Tiles step by 4; tile ``(ti, tj)``
of a plane is numbered ``t = ti*L + tj`` with ``L = tw + 2``, so that every
loop below runs over whole planes of tiles (long loops that LLVM vectorizes);
the two tiles ``tj >= tw`` of each tile row are padding, computed and dropped.
The transforms are sums with small integer weights, written out term by term
from the matrices ``B^T`` and ``A^T`` of Lavin and Gray (2016):

    B^T = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
           [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
    A^T = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]

Both kernels run on one thread and release the GIL; :mod:`colnn.kernels.conv_chunked`
runs one per thread, each on its own share of the batch.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["input_transform", "output_transform", "filter_transform"]


@njit(cache=True, inline="always")
def _bt(x0, x1, x2, x3, x4, x5):
    """``B^T`` times the 6 values ``x``."""
    return (4 * x0 - 5 * x2 + x4, -4 * x1 - 4 * x2 + x3 + x4, 4 * x1 - 4 * x2 - x3 + x4,
            -2 * x1 - x2 + 2 * x3 + x4, 2 * x1 - x2 - 2 * x3 + x4, 4 * x1 - 5 * x3 + x5)


@njit(cache=True, inline="always")
def _at(m0, m1, m2, m3, m4, m5):
    """``A^T`` times the 6 values ``m``."""
    p12, d12, p34, d34 = m1 + m2, m1 - m2, m3 + m4, m3 - m4
    return m0 + p12 + p34, d12 + 2 * d34, p12 + 4 * p34, d12 + 8 * d34 + m5


@njit(nogil=True, cache=True)
def input_transform(images, pad_h, pad_w, tiles_h, tiles_w, limit, phases, row_transform, tiles_in):
    """``images`` ``(B, C, H, W)`` -> ``tiles_in`` ``(36, C, B*tiles_h*L)``: ``B^T d B`` of each 6x6 tile ``d``.

    Returns whether every input value ``v`` has ``|v| <= limit`` (False for
    NaN and inf): the check rides on the copy, which reads every value anyway.

    ``phases`` ``(4, 4, tiles_h + 2, L)``, zeroed by the caller once (padding is
    never written, so it stays zero), holds the zero-padded plane split by
    column and row phase: padded cell ``(r, 4m + q)`` is ``phases[q, r % 4, r // 4, m]``.
    ``row_transform`` ``(6, 4, (tiles_h + 2)*L)`` gets ``d B`` of every padded row,
    by row phase, so that both passes run over whole planes of tiles.
    """
    n_images, channels, height, width = images.shape
    row_tiles = tiles_w + 2
    plane_tiles = tiles_h * row_tiles
    within = 0
    for b in range(n_images):
        for c in range(channels):
            plane = images[b, c]
            for y in range(height):
                r = y + pad_h
                for q in range(4):
                    first = max(0, (pad_w - q + 3) // 4)
                    stop = min(row_tiles, (width - 1 + pad_w - q) // 4 + 1)
                    if stop <= first:
                        continue
                    src = plane[y, 4 * first + q - pad_w:]
                    dst = phases[q, r % 4, r // 4, first:stop]
                    for m in range(dst.shape[0]):
                        value = src[4 * m]
                        dst[m] = value
                        within += abs(value) <= limit
            for row_phase in range(4):
                # Columns 4m .. 4m+5 of a row are phases 0-3 at m and phases 0-1 at m + 1.
                x0, x1 = phases[0, row_phase].ravel(), phases[1, row_phase].ravel()
                x2, x3 = phases[2, row_phase].ravel(), phases[3, row_phase].ravel()
                x4, x5 = x0[1:], x1[1:]
                h0, h1 = row_transform[0, row_phase, :-1], row_transform[1, row_phase, :-1]
                h2, h3 = row_transform[2, row_phase, :-1], row_transform[3, row_phase, :-1]
                h4, h5 = row_transform[4, row_phase, :-1], row_transform[5, row_phase, :-1]
                for t in range(h0.shape[0]):
                    h0[t], h1[t], h2[t], h3[t], h4[t], h5[t] = _bt(x0[t], x1[t], x2[t], x3[t], x4[t], x5[t])
            base = b * plane_tiles
            for j in range(6):
                # Rows 4ti .. 4ti+5 are row phases 0-3 at ti and phases 0-1 at ti + 1.
                d0, d1, d2, d3 = row_transform[j, 0], row_transform[j, 1], row_transform[j, 2], row_transform[j, 3]
                d4, d5 = d0[row_tiles:], d1[row_tiles:]
                stop = base + plane_tiles
                v0, v1 = tiles_in[j, c, base:stop], tiles_in[6 + j, c, base:stop]
                v2, v3 = tiles_in[12 + j, c, base:stop], tiles_in[18 + j, c, base:stop]
                v4, v5 = tiles_in[24 + j, c, base:stop], tiles_in[30 + j, c, base:stop]
                for t in range(v0.shape[0]):
                    v0[t], v1[t], v2[t], v3[t], v4[t], v5[t] = _bt(d0[t], d1[t], d2[t], d3[t], d4[t], d5[t])
    return within == n_images * channels * height * width


@njit(nogil=True, cache=True)
def output_transform(tiles_out, bias, tiles_h, tiles_w, out):
    """``tiles_out`` ``(36, FN, B*tiles_h*L)`` -> ``out`` ``(B, FN, out_h, out_w)``: ``A^T m A + bias`` per tile.

    Each filter's transforms run over the tiles of all ``B`` images at once
    (they lie side by side in ``tiles_out``): on a small plane, a loop per
    image is a few dozen tiles, and setting up its views cost more than the
    arithmetic (ResNet's 14x14, 256 filters, 4 images: 0.94 ms image by image,
    0.37 ms this way, one thread; the same bits).
    """
    n_images, channels, out_h, out_w = out.shape
    row_tiles = tiles_w + 2
    plane_tiles = tiles_h * row_tiles
    used = n_images * plane_tiles
    columns = np.empty((4, 6, used), tiles_out.dtype)  # A^T m, by output row i and column j
    values = np.empty((4, 4, used), tiles_out.dtype)  # A^T m A, by output row and column
    for f in range(channels):
        shift = bias[f]
        for j in range(6):
            m0, m1 = tiles_out[j, f, :used], tiles_out[6 + j, f, :used]
            m2, m3 = tiles_out[12 + j, f, :used], tiles_out[18 + j, f, :used]
            m4, m5 = tiles_out[24 + j, f, :used], tiles_out[30 + j, f, :used]
            s0, s1, s2, s3 = columns[0, j], columns[1, j], columns[2, j], columns[3, j]
            for t in range(used):
                s0[t], s1[t], s2[t], s3[t] = _at(m0[t], m1[t], m2[t], m3[t], m4[t], m5[t])
        for i in range(4):
            a0, a1, a2 = columns[i, 0], columns[i, 1], columns[i, 2]
            a3, a4, a5 = columns[i, 3], columns[i, 4], columns[i, 5]
            y0, y1, y2, y3 = values[i, 0], values[i, 1], values[i, 2], values[i, 3]
            for t in range(used):
                r0, r1, r2, r3 = _at(a0[t], a1[t], a2[t], a3[t], a4[t], a5[t])
                y0[t], y1[t], y2[t], y3[t] = r0 + shift, r1 + shift, r2 + shift, r3 + shift
        for b in range(n_images):
            plane = out[b, f]
            for row in range(out_h):
                i, first = row % 4, b * plane_tiles + (row // 4) * row_tiles
                dst = plane[row]
                for col in range(out_w):
                    dst[col] = values[i, col % 4, first + col // 4]


@njit(nogil=True, cache=True)
def filter_transform(weight, g, transformed):
    """``transformed[6*i + j, f, c] = (g @ weight[f, c] @ g.T)[i, j]``, summed in float64, then stored.

    ``weight`` ``(FN, C, 3, 3)``, ``g`` the ``(6, 3)`` float64 matrix ``G``,
    ``transformed`` ``(36, FN, C)``. Each filter's taps are laid out as rows
    over the channels, so that every sum runs down a whole row. (NumPy's batched
    ``matmul`` of 3x3 matrices took 26-54 ms for 256 x 256 filters, this loop
    6-7 ms, on the loaded 2-core machine: serial, before the threads start, in a
    convolution of ResNet's 14x14 planes that takes about 60 ms on two threads.)
    """
    filters, channels = weight.shape[:2]
    taps = np.empty((9, channels))
    left = np.empty((6, 3, channels))
    for f in range(filters):
        for c in range(channels):
            for k in range(9):
                taps[k, c] = weight[f, c, k // 3, k % 3]
        for i in range(6):
            for col in range(3):
                row, t0, t1, t2 = left[i, col], taps[col], taps[3 + col], taps[6 + col]
                g0, g1, g2 = g[i, 0], g[i, 1], g[i, 2]
                for c in range(channels):
                    row[c] = g0 * t0[c] + g1 * t1[c] + g2 * t2[c]
        for i in range(6):
            l0, l1, l2 = left[i, 0], left[i, 1], left[i, 2]
            for j in range(6):
                dst = transformed[6 * i + j, f]
                g0, g1, g2 = g[j, 0], g[j, 1], g[j, 2]
                for c in range(channels):
                    dst[c] = l0[c] * g0 + l1[c] * g1 + l2[c] * g2
