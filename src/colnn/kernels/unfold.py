"""Compiled im2col/col2im (the book's layout) and unfold/fold (PyTorch's), bit for bit the reference's.

The loops are in :mod:`colnn.kernels.im2col_loops`, imported on first use.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.window import Window
from .geometry import window_args
from .threads import threads_for

__all__ = ["unfold_windows", "fold_windows", "im2col_rows", "col2im_rows"]

def unfold_windows(x: np.ndarray, window: Window) -> np.ndarray:
    """Compiled ``unfold``: ``(N, C, H, W)`` -> ``(N, C*kh*kw, L)``, columns ``(c, ky, kx)``, zero padding.

    Each image's blocks are :func:`colnn.kernels.im2col_loops.im2col_chunk`'s column
    matrix of a one-image chunk; the book's im2col matrix is their transpose.
    dtypes: those of the pooling kernels except float16.
    """
    from . import im2col_loops

    x = np.ascontiguousarray(x)
    blocks = np.empty((x.shape[0], x.shape[1] * window.kernel_area, window.out_h * window.out_w), dtype=x.dtype)
    for image in range(x.shape[0]):
        im2col_loops.im2col_chunk(x[image:image + 1], *window_args(window), blocks[image])
    return blocks


def im2col_rows(x: np.ndarray, window: Window, pad_value: Any) -> np.ndarray:
    """Compiled im2col in the book's layout: ``(N, C, H, W)`` -> ``(N*out_h*out_w, C*kh*kw)``.

    The border is padded with ``pad_value``.
    """
    from . import im2col_loops

    x = np.ascontiguousarray(x)
    col = np.empty((x.shape[0] * window.out_h * window.out_w, x.shape[1] * window.kernel_area), dtype=x.dtype)
    with threads_for(col.nbytes):
        im2col_loops.im2col_book(x, *window_args(window), x.dtype.type(pad_value), col)
    return col


def col2im_rows(col: np.ndarray, input_shape: tuple[int, ...], window: Window) -> np.ndarray:
    """Compiled col2im, the adjoint of :func:`im2col_rows`: ``(N*out_h*out_w, C*kh*kw)`` -> ``input_shape``."""
    from . import im2col_loops

    images = np.empty(input_shape, dtype=col.dtype)
    with threads_for(col.nbytes):
        im2col_loops.col2im_book(np.ascontiguousarray(col), *window_args(window), images)
    return images


def fold_windows(blocks: np.ndarray, input_shape: tuple[int, ...], window: Window) -> np.ndarray:
    """Compiled ``fold``, the adjoint of :func:`unfold_windows`: ``(N, C*kh*kw, L)`` -> ``input_shape``.

    Where windows overlap, their values are summed.
    """
    from . import im2col_loops

    blocks = np.ascontiguousarray(blocks)
    images = np.empty(input_shape, dtype=blocks.dtype)
    for image in range(input_shape[0]):
        im2col_loops.col2im_chunk(blocks[image], *window_args(window), images[image:image + 1])
    return images
