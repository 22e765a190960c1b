"""Numba loops of :mod:`colnn.kernels.epilogue`: bias and ReLU applied as a layer's output is stored.

:func:`store_row` is the one place the epilogue's arithmetic lives; the
convolution kernels inline it into their final store (the direct kernel's
wide-grid copy, the im2col path's ``rows_to_nchw``) and :func:`bias_relu_rows`
runs it over an affine layer's GEMM result. Its order is that of the separate
layers: ``value = sum + bias`` (rounded), then ``relu``: ``mask = value <= 0``
and ``0 where mask else value``, so NaN passes through as in ``torch.relu`` and
the results equal the unfused layers bit for bit. Without a bias nothing is
added (adding 0 would turn ``-0.0`` into ``0.0``).
"""

from __future__ import annotations

from numba import njit

__all__ = ["store_row", "bias_relu_rows", "relu_in_place"]


@njit(cache=True, inline="always")
def store_row(src, shift, add_bias, relu, dst, mask, keep_mask):
    """``dst = relu(src + shift)`` (each step optional); ``mask = value <= 0`` too if ``keep_mask``.

    ``src`` and ``dst`` may be the same row; ``mask`` is a bool row of ``dst``'s
    length, or anything when ``keep_mask`` is False.
    """
    zero = dst.dtype.type(0)
    if not relu:
        if add_bias:
            for j in range(dst.shape[0]):
                dst[j] = src[j] + shift
        else:
            for j in range(dst.shape[0]):
                dst[j] = src[j]
    elif keep_mask:
        for j in range(dst.shape[0]):
            value = src[j] + shift if add_bias else src[j]
            off = value <= 0
            mask[j] = off
            dst[j] = zero if off else value
    else:
        for j in range(dst.shape[0]):
            value = src[j] + shift if add_bias else src[j]
            dst[j] = zero if value <= 0 else value


@njit(cache=True, nogil=True)
def bias_relu_rows(rows, bias, mask, keep_mask):
    """In place: ``rows[i] = relu(rows[i] + bias)`` for each row of ``rows`` ``(M, K)``; ``mask`` ``(M, K)`` if kept.

    The affine layer's epilogue: its bias runs along the row, unlike a
    convolution's, which is one number per output plane.
    """
    zero = rows.dtype.type(0)
    for i in range(rows.shape[0]):
        row = rows[i]
        for j in range(row.shape[0]):
            value = row[j] + bias[j]
            off = value <= 0
            if keep_mask:
                mask[i, j] = off
            row[j] = zero if off else value


@njit(cache=True, nogil=True)
def relu_in_place(values, mask, keep_mask):
    """In place on a flat array: ``values = relu(values)``, ``mask = values <= 0`` if kept."""
    store_row(values, values.dtype.type(0), False, True, values, mask, keep_mask)
