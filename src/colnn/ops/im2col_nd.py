"""The N-d reference im2col: one strided window view of the padded input, then a copy or a sum.

``window_view_nd`` is the N-d analogue of :func:`colnn.ops.im2col.window_view`:
a read-only view ``(N, C, *kernel_size, *out_size)`` in which
``view[n, c, *k, *o]`` is the cell that kernel offset ``k`` of window ``o``
sees. The N-d ops' reference strategy reduces that view (pooling) or copies it
into a matrix for one GEMM (convolution); ``col2im_nd`` is the adjoint, summing
overlapping cells. Readable rather than fast; the defaults live elsewhere.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ..core.window import Window
from ..kernels.geometry import use_kernels
from ..kernels.unfold import col2im_rows, im2col_rows

__all__ = ["pad_nd", "window_view_nd", "im2col_nd", "col2im_nd", "im2col_any", "col2im_any"]


def pad_nd(x: np.ndarray, window: Window, pad_value: Any = 0) -> np.ndarray:
    """Pad the spatial axes of ``(N, C, *in_size)`` so every window lies inside; dtype kept."""
    widths = ((0, 0), (0, 0), *zip(window.padding, window.pad_end))
    if not any(any(w) for w in widths):
        return x
    return np.pad(x, widths, mode="constant", constant_values=pad_value)


def window_view_nd(padded: np.ndarray, window: Window) -> np.ndarray:
    """Read-only view ``(N, C, *kernel_size, *out_size)`` of a padded input."""
    spatial = padded.strides[2:]
    shape = (*padded.shape[:2], *window.kernel_size, *window.out_size)
    strides = (
        *padded.strides[:2],
        *(s * d for s, d in zip(spatial, window.dilation)),
        *(s * st for s, st in zip(spatial, window.stride)),
    )
    return np.lib.stride_tricks.as_strided(padded, shape, strides, writeable=False)


def im2col_nd(x: np.ndarray, window: Window, pad_value: Any = 0) -> np.ndarray:
    """``(N, C, *in)`` -> ``(N*prod(out), C*prod(kernel))``: rows ``(n, *o)``, columns ``(c, *k)``."""
    n, c, nd = x.shape[0], x.shape[1], window.ndim
    view = window_view_nd(pad_nd(x, window, pad_value), window)
    order = (0, *range(2 + nd, 2 + 2 * nd), 1, *range(2, 2 + nd))
    return np.ascontiguousarray(view.transpose(order)).reshape(
        n * int(np.prod(window.out_size)), c * window.kernel_volume)


def col2im_nd(col: np.ndarray, input_shape: tuple[int, ...], window: Window) -> np.ndarray:
    """Adjoint of :func:`im2col_nd`: ``(N*prod(out), C*prod(kernel))`` -> ``input_shape``, overlaps summed."""
    n, c, nd = input_shape[0], input_shape[1], window.ndim
    windows = col.reshape(n, *window.out_size, c, *window.kernel_size)
    padded = np.zeros(
        (n, c, *(p + size + e for p, size, e in zip(window.padding, input_shape[2:], window.pad_end))),
        dtype=col.dtype,
    )
    # One strided add per kernel offset, as in the book's col2im.
    for offset in itertools.product(*(range(k) for k in window.kernel_size)):
        target = tuple(
            slice(k * d, k * d + s * (o - 1) + 1, s)
            for k, d, s, o in zip(offset, window.dilation, window.stride, window.out_size)
        )
        cells = windows[(slice(None), *([slice(None)] * nd), slice(None), *offset)]
        padded[(slice(None), slice(None), *target)] += np.moveaxis(cells, -1, 1)
    inside = tuple(slice(p, p + size) for p, size in zip(window.padding, input_shape[2:]))
    return np.ascontiguousarray(padded[(slice(None), slice(None), *inside)])


def im2col_any(x: np.ndarray, window: Window, strategy: str | None = None) -> np.ndarray:
    """:func:`im2col_nd` (zero padding), by the compiled 2-D kernels where they apply (1-d and 2-d, float32/64)."""
    if window.ndim <= 2 and use_kernels(strategy, x.dtype):
        flat = window if window.ndim == 2 else window.with_unit_axis()
        return im2col_rows(x.reshape(*x.shape[:2], *flat.in_size), flat, 0)
    return im2col_nd(x, window, 0)


def col2im_any(col: np.ndarray, input_shape: tuple[int, ...], window: Window, strategy: str | None = None) -> np.ndarray:
    """:func:`col2im_nd`, by the compiled 2-D kernels where they apply (1-d and 2-d, float32/64)."""
    if window.ndim <= 2 and use_kernels(strategy, col.dtype):
        flat = window if window.ndim == 2 else window.with_unit_axis()
        return col2im_rows(col, (*input_shape[:2], *flat.in_size), flat).reshape(input_shape)
    return col2im_nd(col, input_shape, window)
