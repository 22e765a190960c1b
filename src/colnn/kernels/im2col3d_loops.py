"""Numba kernels of 3-D im2col/col2im for the chunked convolution: a stack of 2-D planes, one per depth offset.

The column matrix of a chunk of ``B`` volumes is ``col`` ``(C*kd*kh*kw, B*L)``,
``L = out_d*out_h*out_w``: row ``(c, kd, ky, kx)``, column ``(b, od, oy, ox)``.
For one channel, depth offset ``kd`` and output depth ``od``, the block of rows
``(ky, kx)`` and columns ``(oy, ox)`` is 2-D im2col of the input plane at depth
``od*stride_d - pad_d + kd*dilation_d``, or zeros where that depth is padding.
The loops are :mod:`colnn.kernels.im2col_loops`' 2-D ones with the depth
offsets and output depths added, in the same order (kernel offsets outside,
images and output rows inside, so that each ``col`` row is written in one
sweep): running the 2-D kernel once per plane instead (images outside) made
2-D im2col of ``(4, 64, 56, 56)`` 3x3 take 2.8-3.7 ms against 2.2 ms. 1-D
convolutions run the 2-D kernels with a unit height.
"""

from __future__ import annotations

from numba import njit

from .im2col_loops import _inside_columns
from .rows import spread_cells, take_cells

__all__ = ["im2col_chunk3", "col2im_chunk3"]


@njit(cache=True, nogil=True)
def im2col_chunk3(images, depth_start, kernel_d, dilation_d, row_start, col_start, kernel_h, kernel_w, stride_w,
                  dilation_h, dilation_w, col):
    """Fill ``col`` ``(C*kd*kh*kw, B*L)`` from ``images`` ``(B, C, D, H, W)``; padded cells are 0."""
    n_images, channels, depth, height, width = images.shape
    out_d, out_h, out_w = depth_start.shape[0], row_start.shape[0], col_start.shape[0]
    plane_len = out_h * out_w
    for c in range(channels):
        for kd in range(kernel_d):
            for ky in range(kernel_h):
                for kx in range(kernel_w):
                    col_row = col[((c * kernel_d + kd) * kernel_h + ky) * kernel_w + kx]
                    col0 = col_start[0] + kx * dilation_w
                    ox_lo, ox_hi = _inside_columns(col0, stride_w, width, out_w)
                    for b in range(n_images):
                        for od in range(out_d):
                            in_d = depth_start[od] + kd * dilation_d
                            start = (b * out_d + od) * plane_len
                            if in_d < 0 or in_d >= depth:
                                col_row[start:start + plane_len] = 0
                                continue
                            for oy in range(out_h):
                                dst = col_row[start + oy * out_w:start + (oy + 1) * out_w]
                                in_row = row_start[oy] + ky * dilation_h
                                if in_row < 0 or in_row >= height:
                                    dst[:] = 0
                                    continue
                                dst[:ox_lo] = 0
                                dst[ox_hi:] = 0
                                take_cells(images[b, c, in_d, in_row, ox_lo * stride_w + col0:], stride_w,
                                           dst[ox_lo:ox_hi])


@njit(cache=True, nogil=True)
def col2im_chunk3(col, depth_start, kernel_d, dilation_d, row_start, col_start, kernel_h, kernel_w, stride_w,
                  dilation_h, dilation_w, images):
    """Adjoint of :func:`im2col_chunk3`: add ``col`` into ``images`` ``(B, C, D, H, W)``.

    ``images`` is added to, not overwritten: a volume's slabs of output depths
    (``depth_start`` a part of the window's) overlap in the input.
    """
    n_images, channels, depth, height, width = images.shape
    out_d, out_h, out_w = depth_start.shape[0], row_start.shape[0], col_start.shape[0]
    plane_len = out_h * out_w
    for c in range(channels):
        for kd in range(kernel_d):
            for ky in range(kernel_h):
                for kx in range(kernel_w):
                    col_row = col[((c * kernel_d + kd) * kernel_h + ky) * kernel_w + kx]
                    col0 = col_start[0] + kx * dilation_w
                    ox_lo, ox_hi = _inside_columns(col0, stride_w, width, out_w)
                    for b in range(n_images):
                        for od in range(out_d):
                            in_d = depth_start[od] + kd * dilation_d
                            if in_d < 0 or in_d >= depth:
                                continue
                            for oy in range(out_h):
                                in_row = row_start[oy] + ky * dilation_h
                                if in_row < 0 or in_row >= height:
                                    continue
                                start = (b * out_d + od) * plane_len + oy * out_w
                                spread_cells(col_row[start + ox_lo:start + ox_hi], stride_w,
                                             images[b, c, in_d, in_row, ox_lo * stride_w + col0:])
