"""Numba loops of :mod:`colnn.kernels.epilogue`: bias and ReLU applied as a layer's output is stored.

:func:`store_row` is the one place the epilogue's arithmetic lives; the
convolution kernels inline it into their final store (the direct kernel's
wide grid, the im2col path's ``rows_to_nchw``) and :func:`bias_relu_rows`
runs it over an affine layer's GEMM result. Its order is that of the separate
layers: ``value = sum + bias`` (rounded), then ReLU, ``0 if value <= 0 else
value``, so NaN passes through as in ``torch.relu`` and the results equal the
unfused layers bit for bit. Without a bias nothing is added (adding 0 would
turn ``-0.0`` into ``0.0``). The ReLU is an ``if`` on a local, which LLVM
turns into a vector compare and blend; the loops are long (a whole plane or
wide grid), since a scalar remainder of short rows would branch and mispredict.
"""

from __future__ import annotations

from numba import njit

__all__ = ["store_row", "bias_relu_rows", "relu_in_place"]


@njit(cache=True, inline="always")
def store_row(src, shift, add_bias, relu, dst):
    """``dst = relu(src + shift)``, the bias only if ``add_bias`` and the ReLU only if ``relu``; may be in place."""
    zero = dst.dtype.type(0)
    if relu:
        for j in range(dst.shape[0]):
            value = src[j]
            if add_bias:
                value = value + shift
            if value <= 0:
                value = zero
            dst[j] = value
    elif add_bias:
        for j in range(dst.shape[0]):
            dst[j] = src[j] + shift
    else:
        for j in range(dst.shape[0]):
            dst[j] = src[j]


@njit(cache=True, nogil=True)
def bias_relu_rows(rows, bias):
    """In place: ``rows[i] = relu(rows[i] + bias)`` for each row of ``rows`` ``(M, K)``, ``bias`` ``(K,)``.

    The affine layer's epilogue: its bias runs along the row, where a
    convolution's is one number per output plane.
    """
    zero = rows.dtype.type(0)
    for i in range(rows.shape[0]):
        row = rows[i]
        for j in range(row.shape[0]):
            value = row[j] + bias[j]
            if value <= 0:
                value = zero
            row[j] = value


@njit(cache=True, nogil=True)
def relu_in_place(values):
    """``values = relu(values)`` in place, on a flat array."""
    store_row(values, values.dtype.type(0), False, True, values)
