"""Pooling by compiled loops over planes.

This is the default strategy of :mod:`colnn.ops.pooling` (see :mod:`colnn.ops.strategy`).

The Numba loops themselves are in :mod:`colnn.kernels.max_pool_loops`,
:mod:`colnn.kernels.max_pool_k3s2_loops` and :mod:`colnn.kernels.avg_pool_loops`, imported on
first use so that ``import colnn`` compiles nothing.
"""

from __future__ import annotations

import sys

import numpy as np

from ..core.dtypes import lowest_value
from ..core.window import Window
from .geometry import as_planes, compute_dtype, is_k2s2, offset_dtype, plane_geometry
from .threads import threads_for

__all__ = ["NumbaStrategy"]

def _pairs_fit(grad_input: np.ndarray) -> bool:
    """Whether the float32 gradient's rows split into whole pairs of cells, low half first (little-endian)."""
    return grad_input.dtype == np.float32 and grad_input.shape[-1] % 2 == 0 and sys.byteorder == "little"


def _is_k3s2(window: Window) -> bool:
    """3x3 windows at stride 2, padding 0 or 1, no dilation (ResNet's stem pool): separable kernels' case."""
    return ((window.kernel_h, window.kernel_w, window.stride_h, window.stride_w) == (3, 3, 2, 2)
            and (window.dilation_h, window.dilation_w) == (1, 1)
            and window.pad_h in (0, 1) and window.pad_w in (0, 1))


class NumbaStrategy:
    """Pooling of 2-D windows by compiled loops over planes; no im2col matrix, compact offsets.

    Offsets come back as uint8 (kernel area <= 256), uint16 or int64. It takes
    the dtypes :func:`colnn.kernels.geometry.kernel_dtype` names (float16 computed
    in float32); :mod:`colnn.ops.strategy` sends it only those.
    """

    name = "numba"

    def _max(self, x: np.ndarray, window: Window, keep_offset: bool) -> tuple[np.ndarray, np.ndarray]:
        from . import max_pool_k3s2_loops, max_pool_loops

        dtype = compute_dtype(x.dtype)
        planes = as_planes(x, dtype)
        out = np.empty((planes.shape[0], window.out_h, window.out_w), dtype=dtype)
        shape = out.shape if keep_offset else (0, 0, 0)
        window_offset = np.empty(shape, dtype=offset_dtype(window))
        with threads_for(planes.nbytes):
            if is_k2s2(window) and keep_offset:
                max_pool_loops.max_pool_k2s2(planes, out, window_offset)
            elif is_k2s2(window):
                max_pool_loops.max_pool_k2s2_values(planes, out)
            elif _is_k3s2(window) and not plane_geometry(window).has_empty_window:
                max_pool_k3s2_loops.max_pool_k3s2(planes, *plane_geometry(window).bounds(), window.pad_w, out,
                                                  window_offset, keep_offset)
            elif not keep_offset and window.dilation_w == 1 and window.stride_w <= 2:
                max_pool_loops.max_pool_values_planes(
                    planes, *plane_geometry(window).bounds(), window.kernel_w, window.stride_w,
                    window.dilation_h, dtype.type(lowest_value(dtype)), out)
            else:
                max_pool_loops.max_pool_planes(
                    planes, *plane_geometry(window).bounds(),
                    window.kernel_w, window.stride_w, window.dilation_h, window.dilation_w,
                    dtype.type(lowest_value(dtype)), out, window_offset, keep_offset,
                )
        nchw = (*x.shape[:2], window.out_h, window.out_w)
        return out.reshape(nchw).astype(x.dtype, copy=False), window_offset.reshape(nchw if keep_offset else -1)

    def max_forward(self, x: np.ndarray, window: Window) -> tuple[np.ndarray, np.ndarray]:
        return self._max(x, window, keep_offset=True)

    def max_values(self, x: np.ndarray, window: Window) -> np.ndarray:
        return self._max(x, window, keep_offset=False)[0]

    def max_backward(
        self, grad_output: np.ndarray, window_offset: np.ndarray, input_shape: tuple[int, ...], window: Window
    ) -> np.ndarray:
        dtype = compute_dtype(grad_output.dtype)
        from . import max_pool_loops

        grad_planes = as_planes(grad_output, dtype)
        offset_planes = as_planes(window_offset, window_offset.dtype)
        grad_input = np.empty((grad_planes.shape[0], *input_shape[2:]), dtype=dtype)
        with threads_for(grad_input.nbytes):
            if is_k2s2(window) and _pairs_fit(grad_input):
                max_pool_loops.max_pool_backward_k2s2_pairs(
                    grad_planes.view(np.uint32), offset_planes, grad_input.view(np.uint64))
            elif is_k2s2(window):
                max_pool_loops.max_pool_backward_k2s2(grad_planes, offset_planes, grad_input)
            elif _is_k3s2(window) and _pairs_fit(grad_input):
                max_pool_loops.max_pool_backward_k3s2(
                    grad_planes, offset_planes, window.pad_h, window.pad_w, grad_input.view(np.uint64))
            else:
                geometry = plane_geometry(window)
                max_pool_loops.max_pool_backward_planes(
                    grad_planes, offset_planes, geometry.row_start, geometry.col_start,
                    window.kernel_w, window.dilation_h, window.dilation_w,
                    geometry.has_empty_window, grad_input,
                )
        return grad_input.reshape(input_shape).astype(grad_output.dtype, copy=False)

    def avg_forward(self, x: np.ndarray, window: Window, divisor: np.ndarray) -> np.ndarray:
        dtype = compute_dtype(x.dtype)
        from . import avg_pool_loops

        planes = as_planes(x, dtype)
        out = np.empty((planes.shape[0], window.out_h, window.out_w), dtype=dtype)
        with threads_for(planes.nbytes):
            if is_k2s2(window):  # every window whole and inside: one divisor for all
                avg_pool_loops.avg_pool_k2s2(planes, dtype.type(divisor.flat[0]), out)
            elif _is_k3s2(window) and not plane_geometry(window).has_empty_window:
                avg_pool_loops.avg_pool_k3s2(planes, *plane_geometry(window).bounds(), window.pad_w,
                                             np.ascontiguousarray(divisor, dtype=dtype), out)
            else:
                avg_pool_loops.avg_pool_planes(planes, *plane_geometry(window).bounds(), window.kernel_w,
                                             window.stride_w, np.ascontiguousarray(divisor, dtype=dtype), out)
        return out.reshape(*x.shape[:2], window.out_h, window.out_w).astype(x.dtype, copy=False)

    def avg_backward(
        self, grad_output: np.ndarray, input_shape: tuple[int, ...], window: Window, divisor: np.ndarray
    ) -> np.ndarray:
        dtype = compute_dtype(grad_output.dtype)
        from . import avg_pool_loops

        grad_planes = as_planes(grad_output, dtype)
        grad_input = np.empty((grad_planes.shape[0], *input_shape[2:]), dtype=dtype)
        with threads_for(grad_input.nbytes):
            if is_k2s2(window):  # every window whole and inside: one divisor for all
                avg_pool_loops.avg_pool_backward_k2s2(grad_planes, dtype.type(divisor.flat[0]), grad_input)
            else:
                avg_pool_loops.avg_pool_backward_planes(grad_planes, *plane_geometry(window).bounds(), window.kernel_w,
                                                      window.stride_w, np.ascontiguousarray(divisor, dtype=dtype),
                                                      grad_input)
        return grad_input.reshape(input_shape).astype(grad_output.dtype, copy=False)
