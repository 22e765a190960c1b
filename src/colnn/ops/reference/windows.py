"""The tutorial's window primitive on the Python Array API standard: im2col/col2im, unfold/fold, any library.

The algorithm is the book's (*Deep Learning from Scratch*, section 7.4): one
strided slice per kernel offset gathers that offset's cell of every window
(:func:`window_cells`), and the slices are stacked into the column matrix;
pooling and convolution are then one reduction or one matrix product. The
adjoint (:func:`scatter_cells`) adds one strided slice per offset back. Written
against the standard (``xp`` is the caller's namespace), so a CuPy, PyTorch or
JAX array is computed where it lives. It is the reference strategy
(``strategy="im2col"``) of NumPy arrays, and the path of every other library's.

What the standard lacks, and what stands in for it:

- no strided *view* (``as_strided``): the ``kh*kw`` strided slices are stacked
  with ``xp.stack`` (a copy, as the tutorial's loop makes), or, when there are
  fewer windows than kernel offsets, one slice per window;
- no ``pad``: :func:`array_api_extra.pad`;
- no scatter-add (col2im, the backward passes): :func:`array_api_extra.at`
  adds one strided slice per kernel offset (in place where the library allows
  it, functionally for JAX).

Every function takes any number of spatial axes.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from ...core.window import Window
from ..xp import device_of, namespace

__all__ = [
    "pad_input",
    "window_cells",
    "scatter_cells",
    "im2col_window",
    "col2im_window",
    "unfold_window",
    "fold_window",
    "window_size",
]


# --- geometry per spatial axis ------------------------------------------------------


def _axes(window: Window) -> list[tuple[int, int, int, int, int, int]]:
    """``(size, kernel, stride, dilation, pad_before, out)`` of each spatial axis."""
    return list(zip(window.in_size, window.kernel_size, window.stride, window.dilation, window.padding,
                    window.out_size))


def _offset_slices(window: Window) -> list[tuple[slice, ...]]:
    """For each kernel offset, row-major, the strided slice of the padded input it reads."""
    per_axis = [
        [slice(k * dilation, k * dilation + stride * (out - 1) + 1, stride) for k in range(kernel)]
        for _, kernel, stride, dilation, _, out in _axes(window)
    ]
    return [(slice(None), slice(None), *combo) for combo in itertools.product(*per_axis)]


# --- im2col / col2im --------------------------------------------------------------------


def pad_input(x: Any, window: Window, pad_value: Any = 0) -> Any:
    """Pad ``(N, C, *spatial)`` so that every window lies inside; dtype and device kept."""
    widths = [(0, 0), (0, 0), *[(axis[4], after) for axis, after in zip(_axes(window), window.pad_end)]]
    if not any(before or after for before, after in widths):
        return x
    if type(x) is np.ndarray:  # what array_api_extra.pad runs for NumPy, without its import (0.07 s)
        return np.pad(x, widths, constant_values=pad_value)
    import array_api_extra as xpx

    return xpx.pad(x, widths, constant_values=pad_value, xp=namespace(x))


def _window_slices(window: Window) -> list[tuple[slice, ...]]:
    """For each window, row-major, the slice of the padded input it covers (its cells, strided by the dilation)."""
    per_axis = [
        [slice(o * stride, o * stride + dilation * (kernel - 1) + 1, dilation) for o in range(out)]
        for _, kernel, stride, dilation, _, out in _axes(window)
    ]
    return [(slice(None), slice(None), *combo) for combo in itertools.product(*per_axis)]


def _per_window(window: Window) -> bool:
    """Whether there are fewer windows than kernel offsets (a kernel nearly as large as the input).

    Then one slice per window is the shorter loop: eager JAX compiles every distinct slice.
    """
    return window_size(window) < window.kernel_volume


def window_cells(x: Any, window: Window, pad_value: Any = 0) -> Any:
    """``(N, C, K, *out)``: cell ``k`` (row-major kernel offset) of every window, ``K = kernel_area``."""
    xp = namespace(x)
    padded = pad_input(x, window, pad_value)
    if not _per_window(window):
        return xp.stack([padded[index] for index in _offset_slices(window)], axis=2)
    n, c, area = x.shape[0], x.shape[1], window.kernel_volume
    blocks = [xp.reshape(padded[index], (n, c, area)) for index in _window_slices(window)]
    return xp.reshape(xp.stack(blocks, axis=3), (n, c, area, *window.out_size))


def scatter_cells(cells: Any, input_shape: tuple[int, ...], window: Window) -> Any:
    """Adjoint of :func:`window_cells`: sum ``(N, C, K, *out)`` cells back into ``input_shape``.

    One strided add per kernel offset (or per window, when there are fewer), so
    that each cell sums its terms in kernel-offset order, as the NumPy loops do,
    and the sums agree bit for bit with them.
    """
    xp = namespace(cells)
    padded_shape = (*input_shape[:2], *[
        before + size + after for (size, _, _, _, before, _), after in zip(_axes(window), window.pad_end)
    ])
    padded = xp.zeros(padded_shape, dtype=cells.dtype, device=device_of(cells))
    if _per_window(window):
        # Windows last to first: every cell then receives its terms in kernel-offset order, as below.
        n, c, area = cells.shape[:3]
        rows = xp.reshape(cells, (n, c, area, window_size(window)))
        for w, index in reversed(list(enumerate(_window_slices(window)))):
            padded = _add_at(padded, index, xp.reshape(rows[:, :, :, w], (n, c, *window.kernel_size)))
    else:
        for k, index in enumerate(_offset_slices(window)):
            padded = _add_at(padded, index, cells[:, :, k, ...])
    inside = tuple(slice(before, before + size) for size, _, _, _, before, _ in _axes(window))
    return padded[(slice(None), slice(None), *inside)]


def _add_at(padded: Any, index: tuple[slice, ...], values: Any) -> Any:
    """``padded[index] += values`` in any library (``array_api_extra.at`` where arrays are immutable).

    NumPy's arrays take the plain in-place add (the same sums): ``array_api_extra``
    costs 0.07 s to import, more than a small script's whole convolution.
    """
    if type(padded) is np.ndarray:
        padded[index] += values
        return padded
    import array_api_extra as xpx

    return xpx.at(padded, index).add(values)


def im2col_window(x: Any, window: Window, pad_value: Any = 0) -> Any:
    """The book's layout: ``(N, C, H, W)`` -> ``(N*out_h*out_w, C*kh*kw)``, rows (n, oy, ox), columns (c, ky, kx)."""
    xp = namespace(x)
    cells = window_cells(x, window, pad_value)  # (N, C, K, oh, ow)
    n, c, k = cells.shape[:3]
    spatial = len(_axes(window))
    rows = xp.permute_dims(cells, (0, *range(3, 3 + spatial), 1, 2))
    return xp.reshape(rows, (n * window_size(window), c * k))


def window_size(window: Window) -> int:
    """Number of windows per plane (``out_h*out_w``)."""
    return math.prod(window.out_size)


def col2im_window(col: Any, input_shape: tuple[int, ...], window: Window) -> Any:
    """Adjoint of :func:`im2col_window`: ``(N*out_h*out_w, C*kh*kw)`` -> ``input_shape``, overlaps summed."""
    xp = namespace(col)
    n, c = input_shape[:2]
    out = window.out_size
    spatial = len(out)
    rows = xp.reshape(col, (n, *out, c, window.kernel_volume))
    cells = xp.permute_dims(rows, (0, spatial + 1, spatial + 2, *range(1, spatial + 1)))
    return scatter_cells(cells, input_shape, window)


def unfold_window(x: Any, window: Window) -> Any:
    """PyTorch's layout: ``(N, C, H, W)`` -> ``(N, C*kh*kw, L)``, zero padding."""
    xp = namespace(x)
    cells = window_cells(x, window, 0)
    return xp.reshape(cells, (x.shape[0], x.shape[1] * window.kernel_volume, window_size(window)))


def fold_window(blocks: Any, input_shape: tuple[int, ...], window: Window) -> Any:
    """Adjoint of :func:`unfold_window`: ``(N, C*kh*kw, L)`` -> ``input_shape``, overlaps summed."""
    xp = namespace(blocks)
    cells = xp.reshape(blocks, (input_shape[0], input_shape[1], window.kernel_volume, *window.out_size))
    return scatter_cells(cells, input_shape, window)
