"""Max unpooling in 1, 2 and 3 dimensions, as ``torch.nn.functional.max_unpool1d/2d/3d``.

The inverse scatter of the max pools' ``return_indices``: each input value goes
to its flat index in a zero output volume; backward gathers from the same
indices. The default output size per axis is ``(in-1)*stride - 2*padding + kernel_size``;
an ``output_size`` may move it by less than a stride either way (PyTorch's range).
Scatter and gather are :mod:`colnn.ops.flat_index`'s, on the Array API standard:
any library's arrays (indices in the input's library, or NumPy's) stay where they live.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..core.checks import from_batched
from ..core.indices import index_dtype
from ..core.spatial import check_spatial_input
from ..core.window import IntTuple, as_tuple
from .array_api import as_namespace_of, namespace
from .flat_index import gather_flat, scatter_last_flat

__all__ = ["max_unpool1d", "max_unpool2d", "max_unpool3d", "unpool_output_size", "check_unpool_indices",
           "max_unpool_forward", "max_unpool_backward"]


def unpool_output_size(in_size: Sequence[int], kernel_size: IntTuple, stride: IntTuple | None, padding: IntTuple,
                       output_size: Any) -> tuple[int, ...]:
    """The spatial output size; ValueError naming ``output_size`` outside ``(default - stride, default + stride)``."""
    ndim = len(in_size)
    kernel = as_tuple(kernel_size, "kernel_size", ndim, minimum=1)
    strides = kernel if stride is None else as_tuple(stride, "stride", ndim, minimum=1)
    pads = as_tuple(padding, "padding", ndim, minimum=0)
    default = tuple((i - 1) * s + k - 2 * p for i, s, k, p in zip(in_size, strides, kernel, pads))
    if output_size is None:
        sizes = default
    else:
        sizes = tuple(output_size)
        if len(sizes) == ndim + 2:
            sizes = sizes[2:]
        sizes = as_tuple(sizes, "output_size", ndim, minimum=1)
        for size, base, s in zip(sizes, default, strides):
            if not base - s < size < base + s:
                raise ValueError(f"output_size must lie between {tuple(d - s for d, s in zip(default, strides))} and "
                                 f"{tuple(d + s for d, s in zip(default, strides))} (exclusive), got {output_size!r}")
    if min(sizes) < 1:
        raise ValueError(f"output would be empty: kernel_size={kernel_size!r}, stride={stride!r}, "
                         f"padding={padding!r} give {sizes}")
    return sizes


def check_unpool_indices(indices: Any, x: Any, volume: int, unbatched: bool) -> Any:
    """``indices`` in the index dtype, of batched ``x``'s shape and namespace, each in ``[0, volume)``.

    Errors name ``indices``; a ``volume`` the index dtype cannot address is a ValueError.

    Unbatched indices (one axis fewer) go with an unbatched input.
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
    if math.prod(array.shape):
        low, high = int(xp.min(array)), int(xp.max(array))
        if low < 0 or high >= volume:
            raise ValueError(f"indices must lie in [0, {volume}) (the output plane), got values in [{low}, {high}]")
    return xp.astype(array, dtype)


def max_unpool_forward(x: Any, indices: Any, out_size: tuple[int, ...]) -> Any:
    """Scatter validated batched ``x`` to ``indices`` in a zero ``(N, C, *out_size)``; a repeated index keeps the last."""
    return scatter_last_flat(x, indices, (*x.shape[:2], *out_size))


def max_unpool_backward(grad_output: Any, indices: Any) -> Any:
    """Gradient w.r.t. the unpooled values: gathered from ``indices``."""
    return gather_flat(grad_output, indices)


def _unpool(ndim, input, indices, kernel_size, stride, padding, output_size):
    x, unbatched = check_spatial_input(input, "input", ndim)
    out_size = unpool_output_size(x.shape[2:], kernel_size, stride, padding, output_size)
    index = check_unpool_indices(indices, x, math.prod(out_size), unbatched)
    out = max_unpool_forward(x, index, out_size)
    return from_batched(out, unbatched)


def max_unpool1d(input: Any, indices: Any, kernel_size: IntTuple, stride: IntTuple | None = None,
                 padding: IntTuple = 0, output_size: Any = None) -> np.ndarray:
    """1-D max unpooling, as ``torch.nn.functional.max_unpool1d``.

    ``input`` ``(N, C, L)`` or ``(C, L)``, ``indices`` of the same shape (from
    ``max_pool1d(..., return_indices=True)``) -> ``(N, C, out_l)`` of the input's dtype,
    zero except at the indices. ``output_size``: spatial sizes (or the full shape) within
    a stride of the default. Raises ValueError naming ``indices`` (shape, range) or ``output_size``.

    >>> max_unpool1d(np.array([[5.]]), np.array([[1]]), 2)
    array([[0., 5.]])
    """
    return _unpool(1, input, indices, kernel_size, stride, padding, output_size)


def max_unpool2d(input: Any, indices: Any, kernel_size: IntTuple, stride: IntTuple | None = None,
                 padding: IntTuple = 0, output_size: Any = None) -> np.ndarray:
    """2-D max unpooling, as ``torch.nn.functional.max_unpool2d``; see :func:`max_unpool1d`."""
    return _unpool(2, input, indices, kernel_size, stride, padding, output_size)


def max_unpool3d(input: Any, indices: Any, kernel_size: IntTuple, stride: IntTuple | None = None,
                 padding: IntTuple = 0, output_size: Any = None) -> np.ndarray:
    """3-D max unpooling, as ``torch.nn.functional.max_unpool3d``; see :func:`max_unpool1d`."""
    return _unpool(3, input, indices, kernel_size, stride, padding, output_size)
