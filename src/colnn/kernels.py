"""The fast path: compiled pooling and im2col kernels, window geometry and threads.

This module is the numpy-level face of the Numba kernels in
:mod:`colnn.kernels_pool` and :mod:`colnn.kernels_conv` (the convolution's
driver is :mod:`colnn.conv_chunked`): it works out the window
geometry once per shape, lays arrays out for the kernels and back, and controls
threads. It does not import Numba itself; the kernel modules are imported on
first use, so ``import colnn`` stays quick and compiles nothing. Each kernel is
compiled on its first call for a dtype and cached on disk (``cache=True``), so
later processes load it instead of compiling it.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from .shapes import Window, lowest_value

__all__ = [
    "STRATEGIES",
    "use_kernels",
    "NumbaStrategy",
    "PlaneGeometry",
    "plane_geometry",
    "offset_dtype",
    "set_num_threads",
    "get_num_threads",
    "threads_for",
    "SERIAL_BELOW_BYTES",
    "window_args",
    "unfold_windows",
    "fold_windows",
    "im2col_rows",
    "col2im_rows",
]

# Strategies of convolution and of im2col/col2im/unfold/fold, the default first:
# these kernels, or the tutorial's NumPy im2col path (the reference).
STRATEGIES = ("numba", "im2col")

# dtypes the kernels take as they are; float16 (which Numba lacks) runs in float32.
_KERNEL_DTYPES = frozenset(
    np.dtype(name) for name in ("int8", "int16", "int32", "int64", "uint8", "uint16",
                                "uint32", "uint64", "float32", "float64")
)


# --- threads ------------------------------------------------------------------


def set_num_threads(n: int) -> None:
    """Run colnn's kernels and the BLAS library on at most ``n`` threads (default: all cores).

    Numba's limit is per calling thread (see ``numba.set_num_threads``); its
    ceiling is ``NUMBA_NUM_THREADS``, fixed at start-up. The BLAS limit, set
    through threadpoolctl, applies to the whole process.
    """
    import numba
    from threadpoolctl import threadpool_limits

    ceiling = numba.config.NUMBA_NUM_THREADS
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= ceiling:
        raise ValueError(f"n must be an int in [1, NUMBA_NUM_THREADS={ceiling}], got {n!r}")
    numba.set_num_threads(int(n))
    threadpool_limits(int(n), user_api="blas")


# Below this many bytes a parallel kernel runs on the calling thread alone. It
# gains little there (0.1 ms on 1 MiB, 2 cores), and it can lose much: after a
# multi-threaded BLAS call OpenBLAS's idle workers spin for a while, and a
# parallel region started then waits for the core they hold (about 6 ms on 2
# cores, whatever its size; `colnn train` met this between the affine layers'
# products and the pooling kernels, at 6x its time).
SERIAL_BELOW_BYTES = 1 << 20


@contextlib.contextmanager
def threads_for(nbytes: int) -> Iterator[None]:
    """Inside the block, Numba's parallel kernels run on one thread if ``nbytes`` < :data:`SERIAL_BELOW_BYTES`."""
    import numba

    threads = numba.get_num_threads()
    if nbytes >= SERIAL_BELOW_BYTES or threads == 1:
        yield
        return
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(threads)


def get_num_threads() -> int:
    """Threads colnn's kernels run on (Numba's setting for the calling thread)."""
    import numba

    return int(numba.get_num_threads())


# --- geometry -----------------------------------------------------------------


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


def _axis_bounds(size: int, kernel: int, stride: int, pad: int, dilation: int, count: int):
    start = np.arange(count, dtype=np.int64) * stride - pad
    first = np.where(start < 0, (-start + dilation - 1) // dilation, 0)
    # ceil((size - start) / dilation): kernel offsets k with start + k*dilation < size.
    end = np.clip(-((start - size) // dilation), 0, kernel)
    return start, first, end


@functools.lru_cache(maxsize=64)
def plane_geometry(window: Window) -> PlaneGeometry:
    """The :class:`PlaneGeometry` of ``window`` (cached: layers call it with the same window)."""
    row_start, ky_lo, ky_hi = _axis_bounds(
        window.in_h, window.kernel_h, window.stride_h, window.pad_h, window.dilation_h, window.out_h)
    col_start, kx_lo, kx_hi = _axis_bounds(
        window.in_w, window.kernel_w, window.stride_w, window.pad_w, window.dilation_w, window.out_w)
    interior = np.flatnonzero((kx_lo == 0) & (kx_hi == window.kernel_w))
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


def _k2s2(window: Window) -> bool:
    """2x2 windows at stride 2, no padding or dilation, every window whole: the fast kernels' case."""
    return (
        (window.kernel_h, window.kernel_w, window.stride_h, window.stride_w) == (2, 2, 2, 2)
        and (window.dilation_h, window.dilation_w, window.pad_h, window.pad_w) == (1, 1, 0, 0)
        and 2 * window.out_h <= window.in_h and 2 * window.out_w <= window.in_w
    )


def _kernel_dtype(dtype: np.dtype) -> np.dtype | None:
    """dtype the kernels compute in for ``dtype``, or None if they cannot take it."""
    if dtype == np.float16:
        return np.dtype(np.float32)
    return dtype if dtype in _KERNEL_DTYPES else None


def use_kernels(strategy: str | None, dtype: np.dtype) -> bool:
    """Whether ``strategy`` (None: the default) runs the im2col/convolution kernels on ``dtype``.

    ValueError for an unknown name. The default falls back to the reference for
    dtypes the kernels cannot take, float16 included (Numba has no float16, and
    computing it in float32 would round sums differently from the reference).
    """
    if strategy not in (None, *STRATEGIES):
        raise ValueError(f"strategy must be one of {list(STRATEGIES)}, got {strategy!r}")
    dtype = np.dtype(dtype)
    return strategy != "im2col" and dtype != np.float16 and _kernel_dtype(dtype) is not None


def _planes(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``(N, C, H, W)`` as a C-contiguous ``(N*C, H, W)`` stack of ``dtype`` (no copy when possible)."""
    return np.ascontiguousarray(x, dtype=dtype).reshape(-1, *x.shape[2:])


# --- pooling --------------------------------------------------------------------


class NumbaStrategy:
    """Pooling by compiled loops over planes; no im2col matrix, compact offsets.

    Offsets come back as uint8 (kernel area <= 256), uint16 or int64. dtypes the
    kernels cannot take (non-native byte order, long double) go to ``fallback``.
    """

    name = "numba"

    def __init__(self, fallback: Any) -> None:
        self.fallback = fallback

    def _max(self, x: np.ndarray, window: Window, keep_offset: bool) -> tuple[np.ndarray, np.ndarray]:
        from . import kernels_pool

        dtype = _kernel_dtype(x.dtype)
        planes = _planes(x, dtype)
        out = np.empty((planes.shape[0], window.out_h, window.out_w), dtype=dtype)
        shape = out.shape if keep_offset else (0, 0, 0)
        window_offset = np.empty(shape, dtype=offset_dtype(window))
        with threads_for(planes.nbytes):
            if _k2s2(window) and keep_offset:
                kernels_pool.max_pool_k2s2(planes, out, window_offset)
            elif _k2s2(window):
                kernels_pool.max_pool_k2s2_values(planes, out)
            elif not keep_offset and window.dilation_w == 1 and window.stride_w <= 2:
                kernels_pool.max_pool_values_planes(
                    planes, *plane_geometry(window).bounds(), window.kernel_w, window.stride_w,
                    window.dilation_h, dtype.type(lowest_value(dtype)), out)
            else:
                kernels_pool.max_pool_planes(
                    planes, *plane_geometry(window).bounds(),
                    window.kernel_w, window.stride_w, window.dilation_h, window.dilation_w,
                    dtype.type(lowest_value(dtype)), out, window_offset, keep_offset,
                )
        nchw = (*x.shape[:2], window.out_h, window.out_w)
        return out.reshape(nchw).astype(x.dtype, copy=False), window_offset.reshape(nchw if keep_offset else -1)

    def max_forward(self, x: np.ndarray, window: Window) -> tuple[np.ndarray, np.ndarray]:
        if _kernel_dtype(x.dtype) is None:
            return self.fallback.max_forward(x, window)
        return self._max(x, window, keep_offset=True)

    def max_values(self, x: np.ndarray, window: Window) -> np.ndarray:
        if _kernel_dtype(x.dtype) is None:
            return self.fallback.max_values(x, window)
        return self._max(x, window, keep_offset=False)[0]

    def max_backward(
        self, grad_output: np.ndarray, window_offset: np.ndarray, input_shape: tuple[int, ...], window: Window
    ) -> np.ndarray:
        dtype = _kernel_dtype(grad_output.dtype)
        if dtype is None or dtype.kind != "f":
            return self.fallback.max_backward(grad_output, window_offset, input_shape, window)
        from . import kernels_pool

        grad_planes = _planes(grad_output, dtype)
        offset_planes = _planes(window_offset, window_offset.dtype)
        grad_input = np.empty((grad_planes.shape[0], *input_shape[2:]), dtype=dtype)
        with threads_for(grad_input.nbytes):
            if _k2s2(window):
                kernels_pool.max_pool_backward_k2s2(grad_planes, offset_planes, grad_input)
            else:
                geometry = plane_geometry(window)
                kernel_offsets = np.arange(window.kernel_area, dtype=np.int64)
                kernels_pool.max_pool_backward_planes(
                    grad_planes, offset_planes, geometry.row_start, geometry.col_start,
                    kernel_offsets // window.kernel_w * window.dilation_h,
                    kernel_offsets % window.kernel_w * window.dilation_w,
                    geometry.has_empty_window, grad_input,
                )
        return grad_input.reshape(input_shape).astype(grad_output.dtype, copy=False)

    def avg_forward(self, x: np.ndarray, window: Window, divisor: np.ndarray) -> np.ndarray:
        dtype = _kernel_dtype(x.dtype)
        if dtype is None:
            return self.fallback.avg_forward(x, window, divisor)
        from . import kernels_pool

        planes = _planes(x, dtype)
        out = np.empty((planes.shape[0], window.out_h, window.out_w), dtype=dtype)
        with threads_for(planes.nbytes):
            if _k2s2(window):  # every window whole and inside: one divisor for all
                kernels_pool.avg_pool_k2s2(planes, dtype.type(divisor.flat[0]), out)
            else:
                kernels_pool.avg_pool_planes(planes, *plane_geometry(window).bounds(), window.kernel_w,
                                             window.stride_w, np.ascontiguousarray(divisor, dtype=dtype), out)
        return out.reshape(*x.shape[:2], window.out_h, window.out_w).astype(x.dtype, copy=False)

    def avg_backward(
        self, grad_output: np.ndarray, input_shape: tuple[int, ...], window: Window, divisor: np.ndarray
    ) -> np.ndarray:
        dtype = _kernel_dtype(grad_output.dtype)
        if dtype is None:
            return self.fallback.avg_backward(grad_output, input_shape, window, divisor)
        from . import kernels_pool

        grad_planes = _planes(grad_output, dtype)
        grad_input = np.empty((grad_planes.shape[0], *input_shape[2:]), dtype=dtype)
        with threads_for(grad_input.nbytes):
            if _k2s2(window):  # every window whole and inside: one divisor for all
                kernels_pool.avg_pool_backward_k2s2(grad_planes, dtype.type(divisor.flat[0]), grad_input)
            else:
                kernels_pool.avg_pool_backward_planes(grad_planes, *plane_geometry(window).bounds(), window.kernel_w,
                                                      window.stride_w, np.ascontiguousarray(divisor, dtype=dtype),
                                                      grad_input)
        return grad_input.reshape(input_shape).astype(grad_output.dtype, copy=False)


# --- im2col / col2im / unfold / fold ------------------------------------------------


def window_args(window: Window) -> tuple:
    """The geometry arguments of the im2col/col2im kernels of :mod:`colnn.kernels_conv`."""
    geometry = plane_geometry(window)
    return (geometry.row_start, geometry.col_start, window.kernel_h, window.kernel_w,
            window.stride_w, window.dilation_h, window.dilation_w)


def unfold_windows(x: np.ndarray, window: Window) -> np.ndarray:
    """Compiled ``unfold``: ``(N, C, H, W)`` -> ``(N, C*kh*kw, L)``, columns ``(c, ky, kx)``, zero padding.

    Each image's blocks are :func:`colnn.kernels_conv.im2col_chunk`'s column
    matrix of a one-image chunk; the book's im2col matrix is their transpose.
    dtypes: those of the pooling kernels except float16.
    """
    from . import kernels_conv

    x = np.ascontiguousarray(x)
    blocks = np.empty((x.shape[0], x.shape[1] * window.kernel_area, window.out_h * window.out_w), dtype=x.dtype)
    for image in range(x.shape[0]):
        kernels_conv.im2col_chunk(x[image:image + 1], *window_args(window), blocks[image])
    return blocks


def im2col_rows(x: np.ndarray, window: Window, pad_value: Any) -> np.ndarray:
    """Compiled im2col in the book's layout: ``(N, C, H, W)`` -> ``(N*out_h*out_w, C*kh*kw)``, padded with ``pad_value``."""
    from . import kernels_conv

    x = np.ascontiguousarray(x)
    col = np.empty((x.shape[0] * window.out_h * window.out_w, x.shape[1] * window.kernel_area), dtype=x.dtype)
    with threads_for(col.nbytes):
        kernels_conv.im2col_book(x, *window_args(window), x.dtype.type(pad_value), col)
    return col


def col2im_rows(col: np.ndarray, input_shape: tuple[int, ...], window: Window) -> np.ndarray:
    """Compiled col2im, the adjoint of :func:`im2col_rows`: ``(N*out_h*out_w, C*kh*kw)`` -> ``input_shape``."""
    from . import kernels_conv

    images = np.empty(input_shape, dtype=col.dtype)
    with threads_for(col.nbytes):
        kernels_conv.col2im_book(np.ascontiguousarray(col), *window_args(window), images)
    return images


def fold_windows(blocks: np.ndarray, input_shape: tuple[int, ...], window: Window) -> np.ndarray:
    """Compiled ``fold``, the adjoint of :func:`unfold_windows`: ``(N, C*kh*kw, L)`` -> ``input_shape``, overlaps summed."""
    from . import kernels_conv

    blocks = np.ascontiguousarray(blocks)
    images = np.empty(input_shape, dtype=blocks.dtype)
    for image in range(input_shape[0]):
        kernels_conv.col2im_chunk(blocks[image], *window_args(window), images[image:image + 1])
    return images
