"""The N-d im2col/col2im of the convolutions: the compiled 2-D kernels where they apply, else the Array API reference.

The reference is written once, in :mod:`colnn.ops.array_api` (one strided slice
per kernel offset, stacked; col2im one strided add per offset), and runs NumPy
arrays of any dimension as well as every other library's arrays where they live.
The compiled kernels take NumPy float32/float64 in 1-d (as 2-d with a unit
height) and 2-d, unless ``strategy="im2col"`` asks for the reference.
"""

from __future__ import annotations

from typing import Any

from ..core.checks import foreign_namespace
from ..core.window import Window
from ..kernels.geometry import STRATEGIES, use_kernels
from ..kernels.unfold import col2im_rows, im2col_rows
from .array_api import check_strategy, col2im_window, im2col_window

__all__ = ["im2col_any", "col2im_any"]


def _compiled(window: Window, array: Any, strategy: str | None) -> bool:
    if foreign_namespace(array) is not None:
        check_strategy(strategy, array, STRATEGIES)
        return False
    return use_kernels(strategy, array.dtype) and window.ndim <= 2


def im2col_any(x: Any, window: Window, strategy: str | None = None) -> Any:
    """``(N, C, *in)`` -> ``(N*prod(out), C*prod(kernel))``, zero padding: rows ``(n, *o)``, columns ``(c, *k)``."""
    if _compiled(window, x, strategy):
        flat = window if window.ndim == 2 else window.with_unit_axis()
        return im2col_rows(x.reshape(*x.shape[:2], *flat.in_size), flat, 0)
    return im2col_window(x, window, 0)


def col2im_any(col: Any, input_shape: tuple[int, ...], window: Window, strategy: str | None = None) -> Any:
    """Adjoint of :func:`im2col_any`: ``(N*prod(out), C*prod(kernel))`` -> ``input_shape``, overlaps summed."""
    if _compiled(window, col, strategy):
        flat = window if window.ndim == 2 else window.with_unit_axis()
        return col2im_rows(col, (*input_shape[:2], *flat.in_size), flat).reshape(input_shape)
    return col2im_window(col, input_shape, window)
