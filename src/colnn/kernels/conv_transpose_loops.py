"""Numba loops of :mod:`colnn.kernels.conv_transpose_phases`: padded GEMM rows, and col2im phase by phase.

A transposed convolution (dilation 1) sends input cell ``i`` through kernel
cell ``k`` to output cell ``o = stride*i - padding + k`` along each axis. The
output cells ``o = r + stride*q`` of one phase ``r`` receive only the kernel
cells ``k = (r + padding) mod stride + stride*t``, from the input cells
``q + (r + padding) // stride - t``. On input rows padded so that no tap's
shift leaves them (:func:`pad_rows`), the products of a tap for a whole phase
plane are thus one contiguous run of a GEMM row: :func:`gather_phases` adds
each tap's run into a small accumulator (vectorized) and stores the plane once
into every ``stride``-th output cell, with the bias (none adds nothing,
keeping ``-0.0``). The scatter col2im instead adds each tap into the output
with strides, reading and writing every cell once per tap. Each cell's value
is the sum of its products. Both loops release the GIL: each thread runs its
own share of the images.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["pad_rows", "gather_phases"]


@njit(cache=True, inline="always")
def _first_tap(o, stride, padding):
    """The first kernel cell that reaches output cell ``o``: ``(o + padding) mod stride``."""
    return (o + padding) % stride


@njit(cache=True, nogil=True)
def pad_rows(images, left, rows):
    """``rows`` ``(C, B*D*H*Wp)`` from ``images`` ``(B, C, D, H, W)``: each input row at ``left`` in a row of
    ``Wp`` cells, the GEMM's right factor. The other cells are left as they are (zero, once).
    """
    n_images, channels, depth, height, width = images.shape
    padded_width = rows.shape[1] // max(1, n_images * depth * height)
    for c in range(channels):
        for b in range(n_images):
            for d in range(depth):
                for y in range(height):
                    start = ((b * depth + d) * height + y) * padded_width + left
                    dst = rows[c, start:start + width]
                    src = images[b, c, d, y]
                    for j in range(width):
                        dst[j] = src[j]


@njit(cache=True, nogil=True)
def gather_phases(products, in_size, left, kernel, stride, padding, bias, add_bias, out):
    """``out`` ``(B, FN, OD, OH, OW)``: each cell the sum of the GEMM ``products`` that reach it (+ ``bias``).

    ``products`` ``(FN*KD*KH*KW, B*D*H*Wp)``: row ``(f, kd, ky, kx)``, column
    ``(b, d, y, left + x)``, the product of the weight's ``(*, f, kd, ky, kx)``
    column with input cell ``(b, *, d, y, x)``, and zero in the ``Wp - W``
    padding columns of a row, which must cover every tap's shift (see
    :func:`colnn.kernels.conv_transpose_phases.row_padding`): a tap's products
    for a whole phase plane are then one contiguous run. ``in_size`` ``(D, H,
    W)``, ``kernel``, ``stride`` and ``padding`` are 3-tuples of ints (1-d and
    2-d: unit leading axes, padding 0); ``bias`` ``(FN,)``, added if ``add_bias``.
    """
    n_images, channels, out_d, out_h, out_w = out.shape
    depth, height = in_size[0], in_size[1]  # the width is the products' rows' less their padding
    kernel_d, kernel_h, kernel_w = kernel
    stride_d, stride_h, stride_w = stride
    pad_d, pad_h, pad_w = padding
    padded_width = products.shape[1] // max(1, n_images * depth * height)
    plane = height * padded_width
    image_len = depth * plane
    acc = np.empty(-(-out_h // stride_h) * padded_width, dtype=out.dtype)
    zero = out.dtype.type(0)
    for b in range(n_images):
        for f in range(channels):
            for od in range(out_d):
                for ry in range(min(stride_h, out_h)):
                    rows_q = (out_h - ry + stride_h - 1) // stride_h
                    first_ky = _first_tap(ry, stride_h, pad_h)
                    shift_y = (ry + pad_h) // stride_h  # input row of q = 0 at the first tap
                    for rx in range(min(stride_w, out_w)):
                        count = (out_w - rx + stride_w - 1) // stride_w
                        acc[:rows_q * padded_width] = zero
                        first_kx = _first_tap(rx, stride_w, pad_w)
                        shift_x = (rx + pad_w) // stride_w
                        for kd in range(_first_tap(od, stride_d, pad_d), kernel_d, stride_d):
                            in_d = (od + pad_d - kd) // stride_d
                            if in_d < 0 or in_d >= depth:
                                continue
                            for ky in range(first_ky, kernel_h, stride_h):
                                row_shift = shift_y - (ky - first_ky) // stride_h  # in_y = q + row_shift
                                lo = max(0, -row_shift)
                                hi = min(rows_q, height - row_shift)
                                if lo >= hi:
                                    continue
                                row0 = ((f * kernel_d + kd) * kernel_h + ky) * kernel_w
                                # The phase plane's rows [lo, hi) as one run: the last row stops at its count.
                                run_lo, run_hi = lo * padded_width, (hi - 1) * padded_width + count
                                base = b * image_len + in_d * plane + row_shift * padded_width + left
                                dst = acc[run_lo:run_hi]
                                for kx in range(first_kx, kernel_w, stride_w):
                                    start = base + shift_x - (kx - first_kx) // stride_w + run_lo
                                    src = products[row0 + kx, start:start + run_hi - run_lo]
                                    for j in range(run_hi - run_lo):
                                        dst[j] += src[j]
                        plane_out = out[b, f, od]
                        for q in range(rows_q):
                            row_acc = acc[q * padded_width:q * padded_width + count]
                            dst_row = plane_out[ry + stride_h * q, rx::stride_w]
                            if add_bias:
                                for j in range(count):
                                    dst_row[j] = row_acc[j] + bias[f]
                            else:
                                for j in range(count):
                                    dst_row[j] = row_acc[j]
