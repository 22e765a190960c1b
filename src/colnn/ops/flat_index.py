"""PyTorch's index rules on any Array API namespace: the chosen maximum, gather and scatter by flat index.

The max-type ops (max, adaptive max and fractional max pooling, max unpooling)
need what the Array API standard does not give with PyTorch's
semantics, so they are built here once from standard pieces, for NumPy arrays
and every other library's alike:

- :func:`torch_max`: which of tied maxima, and which NaN, PyTorch chooses (the
  standard's ``argmax`` does not say which of tied maxima it returns, nor
  ``max`` what NaN does); built from comparisons, ``where`` and ``min``/``max``
  of indices;
- :func:`scatter_add_flat`: the standard has no scatter-add (``np.add.at``,
  ``index_add_``) and no indexed assignment by an integer array. The entries are
  sorted by target (stably, so each target's entries keep their output order),
  ``searchsorted`` finds each target's run, and the runs are added one rank at a
  time: ``0 + v1 + v2 + ...`` in output order, bit for bit ``np.add.at``'s sums.
- :func:`scatter_last_flat`: the same runs, keeping each target's last entry
  (max unpooling's rule for a repeated index).
"""

from __future__ import annotations

import math
from typing import Any

from ..core.indices import index_dtype
from .xp import device_of, namespace

__all__ = ["torch_max", "plane_offsets", "gather_flat", "scatter_add_flat", "scatter_last_flat"]


def torch_max(cells: Any, axis: int) -> tuple[Any, Any]:
    """Maxima along ``axis`` and the offset PyTorch chooses (the index dtype): the first maximum, or the last NaN.

    ``cells`` is integer or floating, of any namespace; both results drop ``axis``.
    """
    xp = namespace(cells)
    device = device_of(cells)
    count = cells.shape[axis]
    shape = [1] * cells.ndim
    shape[axis] = count
    offsets = xp.reshape(xp.arange(count, dtype=index_dtype(xp, count), device=device), tuple(shape))
    if not xp.isdtype(cells.dtype, "real floating"):
        maxima = xp.max(cells, axis=axis, keepdims=True)
        first = xp.min(xp.where(cells == maxima, offsets, count), axis=axis)
        return xp.squeeze(maxima, axis=axis), first
    is_nan = xp.isnan(cells)
    # ``max`` may propagate NaN or not: take it over the non-NaN cells, then apply the rule.
    lowest = xp.asarray(-math.inf, dtype=cells.dtype, device=device)
    maxima = xp.max(xp.where(is_nan, lowest, cells), axis=axis, keepdims=True)
    first = xp.min(xp.where(cells == maxima, offsets, count), axis=axis)
    last_nan = xp.max(xp.where(is_nan, offsets, -1), axis=axis)
    has_nan = last_nan >= 0
    nan = xp.asarray(math.nan, dtype=cells.dtype, device=device)
    return xp.where(has_nan, nan, xp.squeeze(maxima, axis=axis)), xp.where(has_nan, last_nan, first)


def plane_offsets(xp: Any, shape: tuple[int, ...], volume: int, device: Any) -> Any:
    """``(N, C, 1, ...)``: where each ``(n, c)`` volume of ``volume`` cells starts in the flattened array.

    In the index dtype; ValueError if the whole array's ``N*C*volume`` cells overflow it.
    """
    n, c = shape[:2]
    planes = xp.arange(n * c, dtype=index_dtype(xp, n * c * volume), device=device) * volume
    return xp.reshape(planes, (n, c, *(1,) * (len(shape) - 2)))


def _global(xp: Any, flat_indices: Any, volume: int) -> Any:
    """Indices into each ``(n, c)`` volume as indices into the whole flattened array, 1-D."""
    offsets = plane_offsets(xp, tuple(flat_indices.shape), volume, device_of(flat_indices))
    return xp.reshape(xp.astype(flat_indices, offsets.dtype) + offsets, (-1,))


def gather_flat(array: Any, flat_indices: Any) -> Any:
    """``array`` ``(N, C, *in)`` read at ``flat_indices`` ``(N, C, *out)`` (flat into each ``(n, c)`` volume)."""
    xp = namespace(array)
    volume = math.prod(array.shape[2:])
    picked = xp.take(xp.reshape(array, (-1,)), _global(xp, flat_indices, volume), axis=0)
    return xp.reshape(picked, tuple(flat_indices.shape))


def _runs(xp: Any, values: Any, targets: Any, total: int) -> tuple[Any, Any, Any]:
    """``values`` sorted stably by ``targets``, and where each of the ``total`` targets' run starts and ends."""
    order = xp.argsort(targets, stable=True)
    sorted_targets = xp.take(targets, order, axis=0)
    cells = xp.arange(total, dtype=targets.dtype, device=device_of(targets))
    return (xp.take(values, order, axis=0), xp.searchsorted(sorted_targets, cells, side="left"),
            xp.searchsorted(sorted_targets, cells, side="right"))


def _scatter_setup(values: Any, flat_indices: Any, input_shape: tuple[int, ...], keep: Any):
    xp = namespace(values)
    volume = math.prod(input_shape[2:])
    total = math.prod(input_shape)
    targets = _global(xp, flat_indices, volume)
    if keep is not None:  # a dropped entry targets one past the end, where no cell looks
        targets = xp.where(xp.reshape(keep, (-1,)), targets, total)
    return xp, total, _runs(xp, xp.reshape(values, (-1,)), targets, total)


def scatter_add_flat(values: Any, flat_indices: Any, input_shape: tuple[int, ...], keep: Any = None) -> Any:
    """Add ``values`` ``(N, C, *out)`` at ``flat_indices`` (into each ``(n, c)`` volume) of a zero ``input_shape``.

    Repeated indices sum in output order (PyTorch's and ``np.add.at``'s); ``keep``
    (boolean, like ``values``) masks entries out. Same namespace, device and dtype as ``values``.
    """
    xp, total, (ordered, start, end) = _scatter_setup(values, flat_indices, input_shape, keep)
    result = xp.zeros(total, dtype=values.dtype, device=device_of(values))
    if total and ordered.shape[0]:
        last = ordered.shape[0] - 1
        for rank in range(int(xp.max(end - start))):
            present = start + rank < end
            picked = xp.take(ordered, xp.minimum(start + rank, last), axis=0)
            result = xp.where(present, result + picked, result)
    return xp.reshape(result, tuple(input_shape))


def scatter_last_flat(values: Any, flat_indices: Any, input_shape: tuple[int, ...]) -> Any:
    """A zero ``input_shape`` holding ``values`` at ``flat_indices``; of repeated indices the last entry stays."""
    xp, total, (ordered, start, end) = _scatter_setup(values, flat_indices, input_shape, None)
    zero = xp.zeros((), dtype=values.dtype, device=device_of(values))
    if not (total and ordered.shape[0]):
        return xp.zeros(tuple(input_shape), dtype=values.dtype, device=device_of(values))
    picked = xp.take(ordered, xp.minimum(xp.maximum(end - 1, 0), ordered.shape[0] - 1), axis=0)
    return xp.reshape(xp.where(end > start, picked, zero), tuple(input_shape))
