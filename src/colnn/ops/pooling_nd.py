"""Max and average pooling in 1 and 3 spatial dimensions, as ``torch.nn.functional``.

Both run on the N-d :class:`colnn.core.window.Window` and the 2-D pooling
strategies of :mod:`colnn.ops.pooling`, so that semantics and arguments
checks have one home:

- 1-d is 2-d with a unit height (``Window.with_unit_axis``): exact, same kernels;
- 3-d pools every depth slice in 2-D with the default strategy's compiled
  kernels, then folds the slices of each depth window in order. For max that is
  PyTorch's row-major scan (first maximum; NaN wins with the last NaN), for
  average the sum of the slices' window sums (float16 summed in float32).
- ``strategy="im2col"`` is the readable reference in any dimension, and the
  only path of another library's arrays (PyTorch, JAX, CuPy...): the Array API
  strategy of :mod:`colnn.ops.array_api`, whose window cells and scatter are N-d.

A max-pool forward returns, besides the output, each maximum's flat offset in
its window (row-major over ``kernel_size``); indices are built from it on demand.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.checks import accumulation_dtype, from_batched, lowest_value
from ..core.ieee import quiet_ieee
from ..core.spatial import check_spatial_input
from ..core.window import IntTuple, Window
from .array_api import ArrayAPIPoolStrategy
from .dispatch import dask_dispatch
from .flat_index import scatter_add_flat
from .pooling import check_divisor, get_strategy, pool_window

__all__ = [
    "max_pool1d",
    "max_pool3d",
    "avg_pool1d",
    "avg_pool3d",
    "max_pool_nd_forward",
    "max_pool_nd_backward",
    "avg_pool_nd_forward",
    "avg_pool_nd_backward",
]


def _reference(strategy: str | None, x) -> ArrayAPIPoolStrategy | None:
    """The Array API strategy if it runs ``x`` (``strategy="im2col"``, or another library's array), else None."""
    pools = get_strategy(strategy, x)
    return pools if isinstance(pools, ArrayAPIPoolStrategy) else None


def _depth_slices(window: Window) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """For each depth offset ``kd`` some window reaches inside the input: ``(kd, od_mask, depth)``.

    Only offsets that land inside are listed (at most ``out_d * in_d`` of them),
    so the work never grows with a huge nominal kernel depth.
    """
    start, size, kernel, dilation = window.starts()[0], window.in_size[0], window.kernel_size[0], window.dilation[0]
    first = np.where(start < 0, (-start + dilation - 1) // dilation, 0)
    end = np.clip(-((start - size) // dilation), 0, kernel)
    offsets = np.unique(np.concatenate([np.arange(lo, hi) for lo, hi in zip(first, end)] or [np.zeros(0, int)]))
    slices = []
    for kd in offsets:
        mask = (first <= kd) & (kd < end)
        slices.append((int(kd), mask, (start + kd * dilation)[mask]))
    return slices


def _batched_planes(x: np.ndarray) -> np.ndarray:
    """``(N, C, D, H, W)`` -> ``(N, C*D, H, W)``: every depth slice as a 2-D channel."""
    return x.reshape(x.shape[0], x.shape[1] * x.shape[2], *x.shape[3:])


# --- max pooling -----------------------------------------------------------


def _max3d(x: np.ndarray, window: Window, strategy: str | None, keep_offset: bool):
    n, c = x.shape[:2]
    plane_window = window.inner()
    planes = _batched_planes(x)
    pools = get_strategy(strategy)
    if keep_offset:
        plane_max, plane_offset = pools.max_forward(planes, plane_window)
        plane_offset = plane_offset.astype(np.int64).reshape(n, c, window.in_size[0], *plane_window.out_size)
    else:
        plane_max = pools.max_values(planes, plane_window)
    plane_max = plane_max.reshape(n, c, window.in_size[0], *plane_window.out_size)
    out = np.full((n, c, *window.out_size), lowest_value(x.dtype), dtype=x.dtype)
    offset = np.broadcast_to(window.first_inside(), out.shape).copy() if keep_offset else None
    started = np.zeros(window.out_size[0], dtype=bool)
    plane_area = plane_window.kernel_volume
    for kd, mask, depth in _depth_slices(window):
        candidate = plane_max[:, :, depth]
        running = out[:, :, mask]
        take = candidate > running
        if candidate.dtype.kind == "f":
            take |= np.isnan(candidate)
        take |= ~started[mask].reshape(-1, 1, 1)
        out[:, :, mask] = np.where(take, candidate, running)
        if keep_offset:
            offset[:, :, mask] = np.where(take, kd * plane_area + plane_offset[:, :, depth], offset[:, :, mask])
        started |= mask
    return out, offset


def max_pool_nd_forward(x: np.ndarray, window: Window, strategy: str | None = None,
                        keep_offset: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Max pooling of a validated batched ``(N, C, *in_size)``: ``(out, window_offset)``, both ``(N, C, *out_size)``."""
    reference = _reference(strategy, x)
    if reference is not None:
        return reference.max_forward(x, window) if keep_offset else (reference.max_values(x, window), None)
    if window.ndim == 1:
        pools = get_strategy(strategy)
        flat = window.with_unit_axis()
        if keep_offset:
            out, offset = pools.max_forward(x[:, :, np.newaxis], flat)
            return out[:, :, 0], offset[:, :, 0]
        return pools.max_values(x[:, :, np.newaxis], flat)[:, :, 0], None
    if window.ndim == 3:
        return _max3d(x, window, strategy, keep_offset)
    pools = get_strategy(strategy)
    return pools.max_forward(x, window) if keep_offset else (pools.max_values(x, window), None)


def max_pool_nd_backward(grad_output: np.ndarray, window_offset: np.ndarray, input_shape: tuple[int, ...],
                         window: Window, strategy: str | None = None) -> np.ndarray:
    """Gradient of max pooling w.r.t. its input: each output's gradient to its chosen cell; overlaps sum."""
    reference = _reference(strategy, grad_output)
    if reference is not None:
        return reference.max_backward(grad_output, window_offset, input_shape, window)
    if window.ndim == 1:
        grad = get_strategy(strategy).max_backward(
            grad_output[:, :, np.newaxis], window_offset[:, :, np.newaxis],
            (*input_shape[:2], 1, *input_shape[2:]), window.with_unit_axis())
        return grad[:, :, 0]
    if window.ndim == 2:
        return get_strategy(strategy).max_backward(grad_output, window_offset, input_shape, window)
    # An empty window's reported cell lies outside the input: it gets nothing.
    coordinates = window.cell_coordinates(window_offset)
    inside = np.ones(window_offset.shape, dtype=bool)
    flat = np.zeros(window_offset.shape, dtype=np.int64)
    for position, size in zip(coordinates, window.in_size):
        inside &= (position >= 0) & (position < size)
        flat = flat * size + position
    return scatter_add_flat(grad_output, flat, input_shape, inside)


def _max_pool(ndim: int, input: Any, kernel_size, stride, padding, dilation, ceil_mode, return_indices, strategy):
    x, unbatched = check_spatial_input(input, "input", ndim)
    window = pool_window(x, kernel_size, stride, padding, dilation, ceil_mode)
    out, offset = max_pool_nd_forward(x, window, strategy, keep_offset=bool(return_indices))
    if not return_indices:
        return from_batched(out, unbatched)
    indices = window.flat_indices(offset)
    return from_batched(out, unbatched), from_batched(indices, unbatched)


@dask_dispatch
def max_pool1d(
    input: Any,
    kernel_size: IntTuple,
    stride: IntTuple | None = None,
    padding: IntTuple = 0,
    dilation: IntTuple = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
    *,
    strategy: str | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """1-D max pooling, as ``torch.nn.functional.max_pool1d``.

    Parameters
    ----------
    input : array ``(N, C, L)`` or unbatched ``(C, L)``, integer or floating
    kernel_size, stride, padding, dilation : int or ``(k,)``; ``stride=None``
        means ``kernel_size``; ``padding <= kernel_size // 2``
    ceil_mode : ceiling in ``out_l = (L + 2*padding - dilation*(kernel_size-1) - 1) / stride + 1``
    return_indices : also return int64 indices into each ``L`` row
    strategy : ``None`` (the default 2-D kernels with a unit height) or ``"im2col"`` (the reference)

    Returns
    -------
    out ``(N, C, out_l)`` (or ``(C, out_l)``), input's dtype; indices int64 of the same shape if asked.

    Raises
    ------
    TypeError for non-numeric input or non-int arguments; ValueError for a wrong
    rank, bad argument values (named) or an empty output.

    Examples
    --------
    >>> max_pool1d(np.array([[1., 3., 2., 0.]]), 2)
    array([[3., 2.]])
    """
    return _max_pool(1, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, strategy)


@dask_dispatch
def max_pool3d(
    input: Any,
    kernel_size: IntTuple,
    stride: IntTuple | None = None,
    padding: IntTuple = 0,
    dilation: IntTuple = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
    *,
    strategy: str | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """3-D max pooling, as ``torch.nn.functional.max_pool3d``.

    ``input`` is ``(N, C, D, H, W)`` or unbatched ``(C, D, H, W)``; arguments are
    ints or ``(d, h, w)`` triples, as for :func:`max_pool1d`. Indices are flat
    into each ``D*H*W`` volume. Same errors as :func:`max_pool1d`.

    Examples
    --------
    >>> max_pool3d(np.arange(8.).reshape(1, 2, 2, 2), 2)
    array([[[[7.]]]])
    """
    return _max_pool(3, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, strategy)


# --- average pooling -------------------------------------------------------


def _window_sums3d(x: np.ndarray, window: Window, strategy: str | None) -> np.ndarray:
    """Window sums ``(N, C, *out_size)`` in the accumulator dtype, by depth slices of 2-D sums."""
    acc = accumulation_dtype(x.dtype)
    plane_window = window.inner()
    ones = np.ones(plane_window.out_size, dtype=np.int64)
    n, c = x.shape[:2]
    plane_sums = get_strategy(strategy).avg_forward(_batched_planes(x.astype(acc, copy=False)), plane_window, ones)
    plane_sums = plane_sums.reshape(n, c, window.in_size[0], *plane_window.out_size)
    sums = np.zeros((n, c, *window.out_size), dtype=acc)
    for _, mask, depth in _depth_slices(window):
        sums[:, :, mask] += plane_sums[:, :, depth]
    return sums


@quiet_ieee
def avg_pool_nd_forward(x: np.ndarray, window: Window, divisor: np.ndarray, strategy: str | None = None) -> np.ndarray:
    """Average pooling of a validated batched floating array, ``(N, C, *out_size)``, input's dtype."""
    reference = _reference(strategy, x)
    if reference is not None:
        return reference.avg_forward(x, window, divisor)
    if window.ndim == 1:
        return get_strategy(strategy).avg_forward(x[:, :, np.newaxis], window.with_unit_axis(), divisor[np.newaxis])[:, :, 0]
    if window.ndim == 2:
        return get_strategy(strategy).avg_forward(x, window, divisor)
    acc = accumulation_dtype(x.dtype)
    return (_window_sums3d(x, window, strategy) / divisor.astype(acc)).astype(x.dtype)


@quiet_ieee
def avg_pool_nd_backward(grad_output: np.ndarray, input_shape: tuple[int, ...], window: Window,
                         divisor: np.ndarray, strategy: str | None = None) -> np.ndarray:
    """Gradient of average pooling: ``grad_output / divisor`` spread over each window's cells."""
    reference = _reference(strategy, grad_output)
    if reference is not None:
        return reference.avg_backward(grad_output, input_shape, window, divisor)
    if window.ndim == 1:
        grad = get_strategy(strategy).avg_backward(
            grad_output[:, :, np.newaxis], (*input_shape[:2], 1, *input_shape[2:]), window.with_unit_axis(),
            divisor[np.newaxis])
        return grad[:, :, 0]
    if window.ndim == 2:
        return get_strategy(strategy).avg_backward(grad_output, input_shape, window, divisor)
    acc = accumulation_dtype(grad_output.dtype)
    share = grad_output.astype(acc) / divisor.astype(acc)
    n, c = input_shape[:2]
    plane_window = window.inner()
    plane_shares = np.zeros((n, c, window.in_size[0], *plane_window.out_size), dtype=acc)
    for _, mask, depth in _depth_slices(window):
        plane_shares[:, :, depth] += share[:, :, mask]
    grad = get_strategy(strategy).avg_backward(
        _batched_planes(plane_shares), (n, c * window.in_size[0], *window.in_size[1:]), plane_window,
        np.ones(plane_window.out_size, dtype=np.int64))
    return grad.reshape(input_shape).astype(grad_output.dtype)


def _avg_pool(ndim: int, input: Any, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override, strategy):
    x, unbatched = check_spatial_input(input, "input", ndim, floating=True)
    window = pool_window(x, kernel_size, stride, padding, 1, ceil_mode)
    divisor = window.avg_divisor(bool(count_include_pad), check_divisor(divisor_override))
    out = avg_pool_nd_forward(x, window, divisor, strategy)
    return from_batched(out, unbatched)


@dask_dispatch
def avg_pool1d(
    input: Any,
    kernel_size: IntTuple,
    stride: IntTuple | None = None,
    padding: IntTuple = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    *,
    strategy: str | None = None,
) -> np.ndarray:
    """1-D average pooling, as ``torch.nn.functional.avg_pool1d``.

    Parameters
    ----------
    input : floating array ``(N, C, L)`` or unbatched ``(C, L)``
    kernel_size, stride, padding : int or ``(k,)``; ``stride=None`` means
        ``kernel_size``; ``padding <= kernel_size // 2``
    ceil_mode, count_include_pad : as in PyTorch (clipped windows divide by their clipped size)
    strategy : ``None`` (default kernels) or ``"im2col"`` (the reference)

    Returns
    -------
    array ``(N, C, out_l)`` (or ``(C, out_l)``) of the input's dtype; float16 summed in float32.

    Raises
    ------
    TypeError for non-floating input; ValueError for a wrong rank, bad arguments or an empty output.

    Examples
    --------
    >>> avg_pool1d(np.array([[1., 3., 2., 0.]]), 2)
    array([[2., 1.]])
    """
    return _avg_pool(1, input, kernel_size, stride, padding, ceil_mode, count_include_pad, None, strategy)


@dask_dispatch
def avg_pool3d(
    input: Any,
    kernel_size: IntTuple,
    stride: IntTuple | None = None,
    padding: IntTuple = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
    *,
    strategy: str | None = None,
) -> np.ndarray:
    """3-D average pooling, as ``torch.nn.functional.avg_pool3d``.

    ``input`` is floating ``(N, C, D, H, W)`` or ``(C, D, H, W)``; arguments as for
    :func:`avg_pool1d` with ``(d, h, w)`` triples; ``divisor_override`` divides every
    window's sum by that int instead (0 is a ValueError).

    Examples
    --------
    >>> avg_pool3d(np.arange(8.).reshape(1, 2, 2, 2), 2)
    array([[[[3.5]]]])
    """
    return _avg_pool(3, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override, strategy)
