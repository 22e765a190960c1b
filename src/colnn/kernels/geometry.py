"""What the compiled kernels take: per-axis window bounds, offset dtypes, kernel dtypes.

The kernels loop over planes with precomputed, clipped window bounds rather
than padding a copy of the input; this module lays out those bounds
(:meth:`colnn.core.window.Window.axis_bounds`, the one home of the in-bounds
arithmetic) as the loops take them, once per shape (cached), and says which
dtypes the kernels take as they are (:func:`kernel_dtype`); which path a call
takes is decided in :mod:`colnn.ops.strategy`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..core.window import Window

__all__ = [
    "PlaneGeometry",
    "plane_geometry",
    "offset_dtype",
    "is_k2s2",
    "kernel_dtype",
    "as_planes",
    "window_args",
]

# dtypes the kernels take as they are; float16 (which Numba lacks) runs in float32.
_KERNEL_DTYPES = frozenset(
    np.dtype(name) for name in ("int8", "int16", "int32", "int64", "uint8", "uint16",
                                "uint32", "uint64", "float32", "float64")
)


@dataclass(frozen=True)
class PlaneGeometry:
    """Per-row and per-column window bounds, clipped to the input, as the kernels take them.

    For output row ``oy``: ``row_start[oy]`` is the input row of ``ky = 0`` (may be
    negative), and kernel rows ``[ky_lo[oy], ky_hi[oy])`` lie inside the input;
    likewise for columns. Output columns ``[ox_in_lo, ox_in_hi)`` have all their
    kernel columns inside. Arrays are int64, ``(out_h,)`` or ``(out_w,)``.
    """

    row_start: np.ndarray
    ky_lo: np.ndarray
    ky_hi: np.ndarray
    col_start: np.ndarray
    kx_lo: np.ndarray
    kx_hi: np.ndarray
    ox_in_lo: int
    ox_in_hi: int

    def bounds(self) -> tuple:
        """The fields in the order the pooling kernels take them, after the planes."""
        return (self.row_start, self.ky_lo, self.ky_hi, self.col_start, self.kx_lo, self.kx_hi,
                self.ox_in_lo, self.ox_in_hi)

    @property
    def has_empty_window(self) -> bool:
        """Whether some window has no cell inside the input (possible with dilation)."""
        return bool((self.ky_hi <= self.ky_lo).any() or (self.kx_hi <= self.kx_lo).any())


@functools.lru_cache(maxsize=64)
def plane_geometry(window: Window) -> PlaneGeometry:
    """The :class:`PlaneGeometry` of ``window`` (cached: layers call it with the same window)."""
    row_start, ky_lo, ky_hi = window.axis_bounds(window.ndim - 2)
    col_start, kx_lo, kx_hi = window.axis_bounds(window.ndim - 1)
    interior = np.flatnonzero((kx_lo == 0) & (kx_hi == window.kernel_w))
    if window.kernel_area > np.iinfo(np.int32).max:
        interior = interior[:0]  # the interior loops keep offsets in int32; huge kernels go cell by cell
    ox_in_lo, ox_in_hi = (int(interior[0]), int(interior[-1]) + 1) if interior.size else (0, 0)
    for array in (row_start, ky_lo, ky_hi, col_start, kx_lo, kx_hi):
        array.flags.writeable = False
    return PlaneGeometry(row_start, ky_lo, ky_hi, col_start, kx_lo, kx_hi, ox_in_lo, ox_in_hi)


def offset_dtype(window: Window) -> np.dtype:
    """Narrowest unsigned dtype that holds every offset ``ky*kernel_w + kx`` of ``window``."""
    if window.kernel_area <= 1 << 8:
        return np.dtype(np.uint8)
    if window.kernel_area <= 1 << 16:
        return np.dtype(np.uint16)
    return np.dtype(np.int64)


def is_k2s2(window: Window) -> bool:
    """2x2 windows at stride 2, no padding or dilation, every window whole: the fast kernels' case."""
    return (
        (window.kernel_h, window.kernel_w, window.stride_h, window.stride_w) == (2, 2, 2, 2)
        and (window.dilation_h, window.dilation_w, window.pad_h, window.pad_w) == (1, 1, 0, 0)
        and 2 * window.out_h <= window.in_h and 2 * window.out_w <= window.in_w
    )


def kernel_dtype(dtype: np.dtype) -> np.dtype | None:
    """dtype the kernels compute in for ``dtype``, or None if they cannot take it."""
    if dtype == np.float16:
        return np.dtype(np.float32)
    return dtype if dtype in _KERNEL_DTYPES else None


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """:func:`kernel_dtype` of a dtype the kernels take; :mod:`colnn.ops.strategy` sends them no other.

    Raises
    ------
    TypeError
        If the kernels cannot take ``dtype`` (a strategy that chose them wrongly).
    """
    computed = kernel_dtype(dtype)
    if computed is None:
        raise TypeError(f"the compiled kernels take no {dtype} arrays; colnn.ops.strategy should not have sent them")
    return computed


def as_planes(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``(N, C, H, W)`` as a C-contiguous ``(N*C, H, W)`` stack of ``dtype`` (no copy when possible)."""
    return np.ascontiguousarray(x, dtype=dtype).reshape(-1, *x.shape[2:])


def window_args(window: Window) -> tuple:
    """The geometry arguments of the im2col/col2im kernels of :mod:`colnn.kernels.im2col_loops`."""
    geometry = plane_geometry(window)
    return (geometry.row_start, geometry.col_start, window.kernel_h, window.kernel_w,
            window.stride_w, window.dilation_h, window.dilation_w)
