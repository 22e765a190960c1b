"""Max unpooling in 1, 2 and 3 dimensions, as ``torch.nn.functional.max_unpool1d/2d/3d``.

The inverse scatter of the max pools' ``return_indices``: each input value goes
to its flat index in a zero output volume; backward gathers from the same
indices. The default output size per axis is ``(in-1)*stride - 2*padding + kernel_size``;
an ``output_size`` may move it by less than a stride either way (PyTorch's range).
NumPy arrays scatter and gather in compiled loops (:mod:`colnn.kernels.box_pool`); the
reference is :mod:`colnn.ops.flat_index`'s, on the Array API standard:
any library's arrays (indices in the input's library, or NumPy's) stay where they live.
A Dask array (and Dask indices) is unpooled lazily, plane by plane
(:mod:`colnn.ops.dask.pooling`); its indices' range is then checked as each plane is computed.
The arguments are :class:`~colnn.ops.pooling._base.UnpoolArgs`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...core.checks import from_batched, stand_in
from ...core.indices import index_dtype
from ...core.namespace import is_dask_array
from ...core.spatial import check_spatial_input
from ...core.window import IntTuple
from ...kernels import box_pool
from ..flat_index import gather_flat, scatter_last_flat
from ..strategy import check_strategy, numpy_for_cpu_arrays, runs_kernels
from ..xp import as_namespace_of, namespace
from ._base import UnpoolArgs

__all__ = ["max_unpool1d", "max_unpool2d", "max_unpool3d", "max_unpool", "check_unpool_indices",
           "max_unpool_forward", "max_unpool_backward"]


def check_unpool_indices(indices: Any, x: Any, volume: int, unbatched: bool, *, check_range: bool = True,
                         cast: bool | None = None) -> Any:
    """``indices`` in the index dtype, of batched ``x``'s shape and namespace, each in ``[0, volume)``.

    Errors name ``indices``; a ``volume`` the index dtype cannot address is a ValueError.
    Unbatched indices (one axis fewer) go with an unbatched input. Without
    ``check_range`` the values are not read: lazy indices, or indices that
    :func:`max_unpool_forward` checks as it scatters. They are cast to the index
    dtype with ``cast`` (default: ``check_range``; a lazy array's stand-in is
    not cast, since the cast would allocate all of it).
    """
    array = as_namespace_of(indices, x, "indices")
    xp = namespace(array)
    dtype = index_dtype(xp, volume, "the output plane")
    if not xp.isdtype(array.dtype, "integral"):
        raise TypeError(f"indices must be an integer array, got dtype {array.dtype}")
    if unbatched and array.ndim == x.ndim - 1:
        array = array[None, ...]
    if tuple(array.shape) != tuple(x.shape):
        raise ValueError(f"indices must have the input's shape {tuple(x.shape)}, got {tuple(array.shape)}")
    if check_range:
        _check_range(array, volume)
    return xp.astype(array, dtype, copy=False) if (check_range if cast is None else cast) else array


def _check_range(indices: Any, volume: int) -> None:
    """ValueError naming the range of ``indices`` unless each lies in ``[0, volume)``."""
    if not math.prod(indices.shape):
        return
    xp = namespace(indices)
    low, high = box_pool.cell_range(indices) if isinstance(indices, np.ndarray) and indices.dtype == np.int64 else \
        (int(xp.min(indices)), int(xp.max(indices)))
    if low < 0 or high >= volume:
        raise ValueError(f"indices must lie in [0, {volume}) (the output plane), got values in [{low}, {high}]")


def _compiled(strategy: str | None, x: Any, indices: Any) -> bool:
    """Whether the compiled scatter and gather run: NumPy values of a kernel dtype and NumPy indices."""
    return runs_kernels(strategy, x, "pool") and isinstance(indices, np.ndarray)


def max_unpool_forward(x: Any, indices: Any, out_size: tuple[int, ...], strategy: str | None = None) -> Any:
    """Scatter validated batched ``x`` to ``indices`` in a zero ``(N, C, *out_size)``.

    A repeated index keeps the last value. The indices' range is checked here
    (ValueError naming ``indices``): on the compiled path by the scatter itself,
    which saves a pass over them (about a quarter of ``MaxUnpool2d``'s forward, 1 core).
    """
    volume = math.prod(out_size)
    if _compiled(strategy, x, indices):
        out = box_pool.scatter_cells(x, indices, (*x.shape[:2], *out_size))
        if out is None:  # some index outside: the error names their range
            _check_range(indices, volume)
        return out
    _check_range(indices, volume)
    return scatter_last_flat(x, indices, (*x.shape[:2], *out_size))


def max_unpool_backward(grad_output: Any, indices: Any, strategy: str | None = None) -> Any:
    """Gradient w.r.t. the unpooled values: gathered from ``indices``."""
    if _compiled(strategy, grad_output, indices):
        return box_pool.gather_cells(grad_output, indices)
    return gather_flat(grad_output, indices)


def max_unpool(input: Any, indices: Any, args: UnpoolArgs, output_size: Any = None,
               strategy: str | None = None) -> Any:
    """The N-d body of ``max_unpool1d/2d/3d`` on checked ``args``.

    An output plane that the input library's index dtype cannot address (JAX
    without x64: int32) is refused here, before the compiled path on NumPy views
    would allocate it.
    """
    if not is_dask_array(input) and hasattr(input, "shape") and len(input.shape) >= args.ndim + 1:
        index_dtype(namespace(input), math.prod(args.out_size(tuple(input.shape[-args.ndim:]), output_size)),
                    "the output plane")
    return _max_unpool(input, indices, args, output_size, strategy)


@numpy_for_cpu_arrays
def _max_unpool(input: Any, indices: Any, args: UnpoolArgs, output_size: Any = None,
                strategy: str | None = None) -> Any:
    check_strategy(strategy)
    lazy = is_dask_array(input) or is_dask_array(indices)
    x, unbatched = check_spatial_input(stand_in(input) if is_dask_array(input) else input, "input", args.ndim)
    out_size = args.out_size(x.shape[2:], output_size)
    volume = math.prod(out_size)
    if lazy:
        from ..dask import pooling as dask_pooling

        index = stand_in(indices) if is_dask_array(indices) else indices
        check_unpool_indices(index, x, volume, unbatched, check_range=not is_dask_array(indices))
        batched = [array[np.newaxis] if unbatched and array.ndim == x.ndim - 1 else array
                   for array in (input, indices)]
        out = dask_pooling.max_unpool(batched[0], batched[1], x.dtype, out_size, max_unpool_forward)
        return out[0] if unbatched else out
    index = check_unpool_indices(indices, x, volume, unbatched, check_range=False, cast=True)
    return from_batched(max_unpool_forward(x, index, out_size, strategy), unbatched)


def max_unpool1d(input: Any, indices: Any, kernel_size: IntTuple, stride: IntTuple | None = None,
                 padding: IntTuple = 0, output_size: Any = None, *, strategy: str | None = None) -> np.ndarray:
    """1-D max unpooling, as ``torch.nn.functional.max_unpool1d``.

    ``input`` ``(N, C, L)`` or ``(C, L)``, ``indices`` of the same shape (from
    ``max_pool1d(..., return_indices=True)``) -> ``(N, C, out_l)`` of the input's dtype,
    zero except at the indices. ``output_size``: spatial sizes (or the full shape) within
    a stride of the default. Raises ValueError naming ``indices`` (shape, range) or ``output_size``.
    ``strategy``: None (NumPy arrays: one compiled scatter, :mod:`colnn.kernels.box_pool`) or
    ``"im2col"`` (the Array API reference).
    Dask arrays are unpooled lazily.

    >>> max_unpool1d(np.array([[5.]]), np.array([[1]]), 2)
    array([[0., 5.]])
    """
    return max_unpool(input, indices, UnpoolArgs.check(1, kernel_size, stride, padding), output_size, strategy)


def max_unpool2d(input: Any, indices: Any, kernel_size: IntTuple, stride: IntTuple | None = None,
                 padding: IntTuple = 0, output_size: Any = None, *, strategy: str | None = None) -> np.ndarray:
    """2-D max unpooling, as ``torch.nn.functional.max_unpool2d``; see :func:`max_unpool1d`."""
    return max_unpool(input, indices, UnpoolArgs.check(2, kernel_size, stride, padding), output_size, strategy)


def max_unpool3d(input: Any, indices: Any, kernel_size: IntTuple, stride: IntTuple | None = None,
                 padding: IntTuple = 0, output_size: Any = None, *, strategy: str | None = None) -> np.ndarray:
    """3-D max unpooling, as ``torch.nn.functional.max_unpool3d``; see :func:`max_unpool1d`."""
    return max_unpool(input, indices, UnpoolArgs.check(3, kernel_size, stride, padding), output_size, strategy)
