"""Adaptive average and max pooling in 1, 2 and 3 dimensions, as ``torch.nn.functional.adaptive_*_pool*d``.

Output cell ``i`` along an axis of length ``L`` pools the bin
``[floor(i*L/out), ceil((i+1)*L/out))`` (PyTorch's bins: they may overlap, and
``out`` may exceed ``L``). Both reductions are separable, one axis at a time:

- average: each axis takes the mean of each of its bins (float16 in float32),
  so a NaN or inf reaches only the bins that hold it; backward spreads back;
- max: each axis folds its bins with PyTorch's rule (first maximum, last NaN),
  last axis first, which gives the row-major scan's cell over the whole box.

NumPy arrays run the compiled box loops of :mod:`colnn.kernels.box_pool` (one
pass over the bins, parallel over planes; the 1x1 case a plain reduction). The
reference is written on the Array API standard (slices, sums, ``take_along_axis``;
the backward scatter-add of :mod:`colnn.ops.flat_index`), so any library's
arrays are pooled where they live and come back as that library's arrays; a
Dask array is pooled lazily (:mod:`colnn.ops.dask.pooling`). The arguments are
:class:`~colnn.ops.pooling._base.AdaptiveArgs`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...core.checks import from_batched, stand_in
from ...core.ieee import quiet_ieee
from ...core.indices import index_dtype
from ...core.namespace import is_dask_array
from ...core.spatial import check_spatial_input
from ...kernels import box_pool
from ..flat_index import scatter_add_flat, torch_max
from ..strategy import check_strategy, numpy_for_cpu_arrays, runs_kernels
from ..xp import accumulator, device_of, namespace
from ._base import AdaptiveArgs

__all__ = [
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "adaptive_avg_pool", "adaptive_max_pool", "adaptive_bins",
    "adaptive_avg_forward", "adaptive_avg_backward", "adaptive_max_forward", "adaptive_max_backward",
]


def adaptive_bins(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's bins of one axis: ``start[i] = floor(i*size/out)``, ``end[i] = ceil((i+1)*size/out)``."""
    index = np.arange(out, dtype=object)  # exact products for any size
    start = (index * size) // out
    end = -((-(index + 1) * size) // out)
    return start.astype(np.int64), end.astype(np.int64)


def _along(dim: int, index: Any) -> tuple[Any, ...]:
    """An index that applies ``index`` to axis ``dim`` and keeps every axis before it."""
    return (slice(None),) * dim + (index, ...)


def _bin_means(x: Any, dim: int, out: int) -> Any:
    """Mean of every bin of axis ``dim``: a sum over each bin's own cells (a NaN or inf stays in its bins)."""
    xp = namespace(x)
    start, end = adaptive_bins(x.shape[dim], out)
    means = [xp.sum(x[_along(dim, slice(int(lo), int(hi)))], axis=dim, keepdims=True) / int(hi - lo)
             for lo, hi in zip(start, end)]
    return xp.concat(means, axis=dim)


def _bin_spread(grad: Any, dim: int, size: int) -> Any:
    """Adjoint of :func:`_bin_means`: each bin's gradient over its cells, divided by its length."""
    import array_api_extra as xpx

    xp = namespace(grad)
    start, end = adaptive_bins(size, grad.shape[dim])
    shape = list(grad.shape)
    shape[dim] = size
    spread = xp.zeros(tuple(shape), dtype=grad.dtype, device=device_of(grad))
    # The standard has no scatter-add: one slice add per bin (in place where the library allows it).
    for i, (lo, hi) in enumerate(zip(start, end)):
        share = grad[_along(dim, slice(i, i + 1))] / int(hi - lo)
        spread = xpx.at(spread, _along(dim, slice(int(lo), int(hi)))).add(share)
    return spread


def _bins(in_size: tuple[int, ...], out_size: tuple[int, ...]) -> tuple[Any, np.ndarray]:
    """The bins as the box loops take them, and each output's bin volume ``out_size`` (the divisor)."""
    starts, ends = zip(*(adaptive_bins(size, out) for size, out in zip(in_size, out_size)))
    volume = np.ones((), dtype=np.int64)
    for start, end in zip(starts, ends):
        volume = np.multiply.outer(volume, end - start)
    return box_pool.bin_bounds(starts, ends), volume


@quiet_ieee
def adaptive_avg_forward(x: Any, out_size: tuple[int, ...], strategy: str | None = None) -> Any:
    """Adaptive average of a validated batched floating array ``(N, C, *in)`` -> ``(N, C, *out_size)``.

    The compiled box loops sum each bin row-major and divide by its volume (PyTorch's
    order); the reference takes separable means (equal to rounding).
    """
    if runs_kernels(strategy, x, "pool") and all(out == 1 for out in out_size):
        return box_pool.volume_means(x)
    if runs_kernels(strategy, x, "pool"):
        return box_pool.box_avg(x, *_bins(x.shape[2:], out_size))
    xp = namespace(x)
    acc = accumulator(xp, x.dtype)
    if all(out == 1 for out in out_size):
        # Global pooling (a CNN's head): one GEMV with ones. No zero weights, so a NaN or
        # inf reaches exactly the sum of its own plane, as in a direct sum.
        volume = math.prod(x.shape[2:])
        planes = xp.astype(xp.reshape(x, (*x.shape[:2], volume)), acc)
        sums = xp.matmul(planes, xp.ones(volume, dtype=acc, device=device_of(x)))
        return xp.reshape(xp.astype(sums / volume, x.dtype), (*x.shape[:2], *out_size))
    result = xp.astype(x, acc)
    for axis, out in enumerate(out_size):
        result = _bin_means(result, 2 + axis, out)
    return xp.astype(result, x.dtype)


@quiet_ieee
def adaptive_avg_backward(grad_output: Any, input_shape: tuple[int, ...], strategy: str | None = None) -> Any:
    """Gradient of :func:`adaptive_avg_forward`."""
    if runs_kernels(strategy, grad_output, "pool"):
        return box_pool.box_avg_backward(grad_output, input_shape, *_bins(input_shape[2:], grad_output.shape[2:]))
    xp = namespace(grad_output)
    grad = xp.astype(grad_output, accumulator(xp, grad_output.dtype))
    for axis, size in enumerate(input_shape[2:]):
        grad = _bin_spread(grad, 2 + axis, size)
    return xp.astype(grad, grad_output.dtype)


def adaptive_max_forward(x: Any, out_size: tuple[int, ...], strategy: str | None = None) -> tuple[Any, Any]:
    """Adaptive max of a validated batched array: ``(out, indices)``.

    The indices (in the index dtype) are flat into each input volume.
    """
    if runs_kernels(strategy, x, "pool") and box_pool.fits_box_max(x.shape[2:]):
        return box_pool.box_max(x, _bins(x.shape[2:], out_size)[0])
    xp = namespace(x)
    values = x
    coordinates: list[Any] = []  # input coordinate per reduced axis, last axis first
    for axis in reversed(range(len(out_size))):
        dim = 2 + axis
        start, end = adaptive_bins(x.shape[dim], out_size[axis])
        value_parts: list[Any] = []
        coordinate_parts: list[list[Any]] = [[] for _ in range(len(coordinates) + 1)]
        for lo, hi in zip(start, end):
            segment = _along(dim, slice(int(lo), int(hi)))
            maxima, choice = torch_max(values[segment], axis=dim)
            choice = xp.expand_dims(choice, axis=dim)
            value_parts.append(xp.expand_dims(maxima, axis=dim))
            for parts, coordinate in zip(coordinate_parts, coordinates):
                parts.append(xp.take_along_axis(coordinate[segment], choice, axis=dim))
            coordinate_parts[-1].append(choice + int(lo))
        values = xp.concat(value_parts, axis=dim)
        coordinates = [xp.concat(parts, axis=dim) for parts in coordinate_parts]
    flat = xp.zeros(tuple(values.shape), dtype=index_dtype(xp, math.prod(x.shape[2:])), device=device_of(x))
    for axis, coordinate in zip(range(len(out_size)), reversed(coordinates)):
        flat = flat * x.shape[2 + axis] + coordinate
    return values, flat


def adaptive_max_backward(grad_output: Any, indices: Any, input_shape: tuple[int, ...],
                          strategy: str | None = None) -> Any:
    """Gradient of :func:`adaptive_max_forward`: each output's gradient to its cell; overlapping bins sum."""
    if runs_kernels(strategy, grad_output, "pool") and isinstance(indices, np.ndarray):
        return box_pool.cell_scatter_add(grad_output, indices, input_shape)
    return scatter_add_flat(grad_output, indices, input_shape)


@numpy_for_cpu_arrays
def adaptive_avg_pool(input: Any, args: AdaptiveArgs, strategy: str | None = None) -> Any:
    """The N-d body of ``adaptive_avg_pool1d/2d/3d`` on checked ``args``."""
    check_strategy(strategy)
    if is_dask_array(input):
        check_spatial_input(stand_in(input), "input", args.ndim, floating=True)
        from ..dask import pooling as dask_pooling

        return dask_pooling.adaptive_avg_pool(input, args, adaptive_avg_forward)
    x, unbatched = check_spatial_input(input, "input", args.ndim, floating=True)
    return from_batched(adaptive_avg_forward(x, args.out_size(x.shape[2:]), strategy), unbatched)


@numpy_for_cpu_arrays
def adaptive_max_pool(input: Any, args: AdaptiveArgs, strategy: str | None = None) -> Any:
    """The N-d body of ``adaptive_max_pool1d/2d/3d`` on checked ``args``."""
    check_strategy(strategy)
    if is_dask_array(input):
        check_spatial_input(stand_in(input), "input", args.ndim)
        from ..dask import pooling as dask_pooling

        return dask_pooling.adaptive_max_pool(input, args, adaptive_max_forward)
    x, unbatched = check_spatial_input(input, "input", args.ndim)
    out, indices = adaptive_max_forward(x, args.out_size(x.shape[2:]), strategy)
    out = from_batched(out, unbatched)
    return (out, from_batched(indices, unbatched)) if args.return_indices else out


def adaptive_avg_pool1d(input: Any, output_size: Any, *, strategy: str | None = None) -> np.ndarray:
    """Adaptive 1-D average pooling, as ``torch.nn.functional.adaptive_avg_pool1d``.

    ``input``: floating ``(N, C, L)`` or ``(C, L)`` (a Dask array: lazily); ``output_size``: an int,
    or a 1-tuple (an int >= 1, or None to keep the axis). Returns ``(N, C, *output_size)`` of the
    input's dtype. Bins: ``[floor(i*L/out), ceil((i+1)*L/out))``. ``strategy``: None (the compiled
    box loops of :mod:`colnn.kernels.box_pool` for NumPy arrays) or ``"im2col"`` (the Array API reference).
    Raises TypeError for non-floating input or a non-int size, ValueError for a wrong rank or ``output_size < 1``.

    >>> adaptive_avg_pool1d(np.array([[1., 2., 3.]]), 2)
    array([[1.5, 2.5]])
    """
    return adaptive_avg_pool(input, AdaptiveArgs.check(1, output_size), strategy)


def adaptive_avg_pool2d(input: Any, output_size: Any, *, strategy: str | None = None) -> np.ndarray:
    """Adaptive 2-D average pooling, as ``torch.nn.functional.adaptive_avg_pool2d``.

    ``input``: floating ``(N, C, H, W)`` or ``(C, H, W)``; ``output_size``: an int or a pair
    (ints >= 1, or None to keep that axis). Otherwise as :func:`adaptive_avg_pool1d`.
    """
    return adaptive_avg_pool(input, AdaptiveArgs.check(2, output_size), strategy)


def adaptive_avg_pool3d(input: Any, output_size: Any, *, strategy: str | None = None) -> np.ndarray:
    """Adaptive 3-D average pooling, as ``torch.nn.functional.adaptive_avg_pool3d``.

    ``input``: floating ``(N, C, D, H, W)`` or ``(C, D, H, W)``; ``output_size``: an int or a
    triple (ints >= 1, or None). Otherwise as :func:`adaptive_avg_pool1d`.
    """
    return adaptive_avg_pool(input, AdaptiveArgs.check(3, output_size), strategy)


def adaptive_max_pool1d(input: Any, output_size: Any, return_indices: bool = False, *,
                        strategy: str | None = None):
    """Adaptive 1-D max pooling, as ``torch.nn.functional.adaptive_max_pool1d``.

    ``input``: ``(N, C, L)`` or ``(C, L)``, integer or floating (a Dask array: lazily);
    ``output_size`` as for :func:`adaptive_avg_pool1d`. With ``return_indices`` also int64
    indices, flat into each input row. First maximum wins; NaN wins with the last NaN.
    ``strategy`` as for :func:`adaptive_avg_pool1d`.
    Raises TypeError for non-numeric input, a non-int size or a non-bool flag; ValueError as the average.

    >>> adaptive_max_pool1d(np.array([[1., 3., 2.]]), 2, return_indices=True)
    (array([[3., 3.]]), array([[1, 1]]))
    """
    return adaptive_max_pool(input, AdaptiveArgs.check(1, output_size, return_indices), strategy)


def adaptive_max_pool2d(input: Any, output_size: Any, return_indices: bool = False, *,
                        strategy: str | None = None):
    """Adaptive 2-D max pooling, as ``torch.nn.functional.adaptive_max_pool2d``; indices flat into each ``H*W`` plane.

    See :func:`adaptive_max_pool1d`.
    """
    return adaptive_max_pool(input, AdaptiveArgs.check(2, output_size, return_indices), strategy)


def adaptive_max_pool3d(input: Any, output_size: Any, return_indices: bool = False, *,
                        strategy: str | None = None):
    """Adaptive 3-D max pooling, as ``torch.nn.functional.adaptive_max_pool3d``; indices flat into each volume.

    See :func:`adaptive_max_pool1d`.
    """
    return adaptive_max_pool(input, AdaptiveArgs.check(3, output_size, return_indices), strategy)
