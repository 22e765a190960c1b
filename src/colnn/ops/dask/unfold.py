"""The lazy path of im2col/col2im and unfold/fold: Dask arrays, any number of spatial axes.

``unfold`` and ``im2col`` pad the array once (their padding is plain data: zeros
or ``pad_value``) and gather each chunk's windows with its halo
(:func:`colnn.ops.dask.graph.map_windows`). ``fold`` and ``col2im``, their
adjoints, are local scatters: the blocks ``(N, C*K, L)`` are viewed as
``(N, C*K, *windows)`` and each output chunk sums the windows that reach it
(``scatter=True``), the halo running the other way. Each function takes the
checked window and the NumPy computation to run per chunk
(:func:`colnn.ops.unfold.unfold_nd`, :func:`colnn.ops.unfold.fold_nd`), and
returns a lazy Dask array, bit for bit the NumPy path's for unfold and im2col
(their cells are copies) and equal to rounding for fold and col2im (the same
sums, grouped by chunk).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import dask.array as da
import numpy as np

from ...core.window import Window
from .graph import map_windows, pad_once

__all__ = ["unfold", "im2col", "fold", "col2im"]


def _blocks(x: da.Array, window: Window, pad_value: Any, strategy: str | None, forward: Callable) -> da.Array:
    """``(N, C*K, *out)``: each window's cells, columns ordered ``(c, *k)``."""
    x, padded = pad_once(x, window, pad_value)

    def cells(block: np.ndarray, local: Window, pieces: tuple) -> np.ndarray:
        blocks = forward(block, local, strategy)
        return blocks.reshape(*blocks.shape[:2], *local.out_size)

    (out,) = map_windows(x, padded, cells, dtypes=[x.dtype], channels=lambda c: c * window.kernel_volume)
    return out


def unfold(x: da.Array, window: Window, strategy: str | None, forward: Callable) -> da.Array:
    """:func:`colnn.unfold` of a batched Dask array: ``(N, C*K, L)`` lazily, bit for bit the same."""
    blocks = _blocks(x, window, 0, strategy, forward)
    return blocks.reshape(*blocks.shape[:2], math.prod(window.out_size))


def im2col(x: da.Array, window: Window, pad_value: Any, strategy: str | None, forward: Callable) -> da.Array:
    """:func:`colnn.im2col` of a Dask array: ``(N*out_h*out_w, C*filter_h*filter_w)`` lazily, bit for bit the same."""
    blocks = _blocks(x, window, pad_value, strategy, forward)
    rows = blocks.transpose(0, 2, 3, 1)
    return rows.reshape(-1, rows.shape[3])


def fold(blocks: da.Array, window: Window, strategy: str | None, forward: Callable) -> da.Array:
    """:func:`colnn.fold` of batched Dask blocks ``(N, C*K, L)`` (shape checked) into ``(N, C, *window.in_size)``,
    lazily."""
    n, rows, _ = blocks.shape
    kernel = window.kernel_volume
    # Whole kernels per chunk of rows: each channel's K cells scatter into that channel alone.
    row_chunk = kernel * max(1, max(blocks.chunks[1]) // kernel)
    cells = blocks.rechunk({1: row_chunk}).reshape(n, rows, *window.out_size)
    def scatter(block: np.ndarray, local: Window, pieces: tuple) -> np.ndarray:
        image_shape = (block.shape[0], block.shape[1] // kernel, *local.in_size)
        flat = block.reshape(block.shape[0], block.shape[1], math.prod(block.shape[2:]))
        return forward(flat, image_shape, local, strategy)

    (image,) = map_windows(cells, window, scatter, dtypes=[blocks.dtype], channels=lambda c: c // kernel,
                           scatter=True)
    return image


def col2im(col: da.Array, input_shape: tuple[int, ...], window: Window, strategy: str | None,
           forward: Callable) -> da.Array:
    """:func:`colnn.col2im` of a Dask array (shape checked): the book's rows as fold's blocks, lazily."""
    n, c = input_shape[:2]
    out = window.out_size
    # (N*oh*ow, C*K) -> (N, oh*ow, C*K) -> (N, C*K, oh*ow): fold's layout.
    blocks = col.reshape(n, math.prod(out), c * window.kernel_volume).transpose(0, 2, 1)
    return fold(blocks, window, strategy, forward)
