"""Adaptive average and max pooling in 1, 2 and 3 dimensions, as ``torch.nn.functional.adaptive_*_pool*d``.

Output cell ``i`` along an axis of length ``L`` pools the bin
``[floor(i*L/out), ceil((i+1)*L/out))`` (PyTorch's bins: they may overlap, and
``out`` may exceed ``L``). Both reductions are separable, one axis at a time:

- average: each axis takes the mean of each of its bins (float16 in float32),
  so a NaN or inf reaches only the bins that hold it; backward spreads back;
- max: each axis folds its bins with PyTorch's rule (first maximum, last NaN),
  last axis first, which gives the row-major scan's cell over the whole box.

Both are written on the Array API standard (slices, sums, ``take_along_axis``;
the backward scatter-add of :mod:`colnn.ops.flat_index`), so any library's
arrays are pooled where they live and come back as that library's arrays.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..core.checks import from_batched
from ..core.ieee import quiet_ieee
from ..core.indices import index_dtype
from ..core.spatial import check_spatial_input
from ..core.window import INDEX_MAX
from .array_api import accumulator, device_of, namespace, torch_max
from .dispatch import dask_dispatch
from .flat_index import scatter_add_flat

__all__ = [
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "adaptive_output_size", "adaptive_bins",
    "adaptive_avg_forward", "adaptive_avg_backward", "adaptive_max_forward", "adaptive_max_backward",
]


def adaptive_output_size(output_size: Any, in_size: Sequence[int]) -> tuple[int, ...]:
    """``output_size`` (an int, or a tuple of ints and None = keep that axis) as a tuple, each >= 1."""
    ndim = len(in_size)
    items = list(output_size) if isinstance(output_size, (tuple, list)) else [output_size] * ndim
    if len(items) == 1:
        items = items * ndim
    if len(items) != ndim:
        raise ValueError(f"output_size must be an int or a tuple of {ndim}, got {output_size!r}")
    sizes = []
    for item, size in zip(items, in_size):
        if item is None:
            sizes.append(int(size))
            continue
        if isinstance(item, (bool, np.bool_)) or not isinstance(item, (int, np.integer)):
            raise TypeError(f"output_size must hold ints or None, got {output_size!r}")
        if not 1 <= item <= INDEX_MAX:
            raise ValueError(f"output_size must be >= 1 (and fit in int64), got {output_size!r}")
        sizes.append(int(item))
    return tuple(sizes)


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


@quiet_ieee
def adaptive_avg_forward(x: Any, out_size: tuple[int, ...]) -> Any:
    """Adaptive average of a validated batched floating array ``(N, C, *in)`` -> ``(N, C, *out_size)``."""
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
def adaptive_avg_backward(grad_output: Any, input_shape: tuple[int, ...]) -> Any:
    """Gradient of :func:`adaptive_avg_forward`."""
    xp = namespace(grad_output)
    grad = xp.astype(grad_output, accumulator(xp, grad_output.dtype))
    for axis, size in enumerate(input_shape[2:]):
        grad = _bin_spread(grad, 2 + axis, size)
    return xp.astype(grad, grad_output.dtype)


def adaptive_max_forward(x: Any, out_size: tuple[int, ...]) -> tuple[Any, Any]:
    """Adaptive max of a validated batched array: ``(out, indices)``, indices (the index dtype) flat into each input volume."""
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


def adaptive_max_backward(grad_output: Any, indices: Any, input_shape: tuple[int, ...]) -> Any:
    """Gradient of :func:`adaptive_max_forward`: each output's gradient to its cell; overlapping bins sum."""
    return scatter_add_flat(grad_output, indices, input_shape)


def _avg(ndim: int, input: Any, output_size: Any) -> np.ndarray:
    x, unbatched = check_spatial_input(input, "input", ndim, floating=True)
    out = adaptive_avg_forward(x, adaptive_output_size(output_size, x.shape[2:]))
    return from_batched(out, unbatched)


def _max(ndim: int, input: Any, output_size: Any, return_indices: bool):
    x, unbatched = check_spatial_input(input, "input", ndim)
    out, indices = adaptive_max_forward(x, adaptive_output_size(output_size, x.shape[2:]))
    out, indices = from_batched(out, unbatched), from_batched(indices, unbatched)
    return (out, indices) if return_indices else out


_AVG_DOC = """Adaptive {d}-D average pooling, as ``torch.nn.functional.adaptive_avg_pool{d}d``.

    ``input``: floating ``(N, C, {sp})`` or ``(C, {sp})``; ``output_size``: an int or a
    tuple of {d} (ints >= 1, or None to keep that axis). Returns ``(N, C, *output_size)``
    of the input's dtype. Bins: ``[floor(i*L/out), ceil((i+1)*L/out))``.
    Raises TypeError for non-floating input, ValueError for a wrong rank or ``output_size < 1``.
    """
_MAX_DOC = """Adaptive {d}-D max pooling, as ``torch.nn.functional.adaptive_max_pool{d}d``.

    ``input``: ``(N, C, {sp})`` or ``(C, {sp})``, integer or floating; ``output_size`` as for
    the average. With ``return_indices`` also int64 indices, flat into each input volume.
    First maximum wins; NaN wins with the last NaN. Errors as for the average.
    """


@dask_dispatch
def adaptive_avg_pool1d(input: Any, output_size: Any) -> np.ndarray:
    return _avg(1, input, output_size)


@dask_dispatch
def adaptive_avg_pool2d(input: Any, output_size: Any) -> np.ndarray:
    return _avg(2, input, output_size)


@dask_dispatch
def adaptive_avg_pool3d(input: Any, output_size: Any) -> np.ndarray:
    return _avg(3, input, output_size)


@dask_dispatch
def adaptive_max_pool1d(input: Any, output_size: Any, return_indices: bool = False):
    return _max(1, input, output_size, return_indices)


@dask_dispatch
def adaptive_max_pool2d(input: Any, output_size: Any, return_indices: bool = False):
    return _max(2, input, output_size, return_indices)


@dask_dispatch
def adaptive_max_pool3d(input: Any, output_size: Any, return_indices: bool = False):
    return _max(3, input, output_size, return_indices)


for _d, _sp in ((1, "L"), (2, "H, W"), (3, "D, H, W")):
    globals()[f"adaptive_avg_pool{_d}d"].__doc__ = _AVG_DOC.format(d=_d, sp=_sp)
    globals()[f"adaptive_max_pool{_d}d"].__doc__ = _MAX_DOC.format(d=_d, sp=_sp)
