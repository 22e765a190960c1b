"""Max unpooling in 1, 2 and 3 dimensions, as ``torch.nn.functional.max_unpool1d/2d/3d``.

The inverse scatter of the max pools' ``return_indices``: each input value goes
to its flat index in a zero output volume; backward gathers from the same
indices. The default output size per axis is ``(in-1)*stride - 2*padding + kernel_size``;
an ``output_size`` may move it by less than a stride either way (PyTorch's range).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..core.checks import from_batched
from ..core.spatial import check_spatial_input
from ..core.window import IntTuple, as_tuple

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


def check_unpool_indices(indices: Any, shape: tuple[int, ...], volume: int) -> np.ndarray:
    """``indices`` as int64 of ``shape`` (batched), each in ``[0, volume)``; errors name ``indices``."""
    array = np.asarray(indices)
    if array.dtype.kind not in "iu":
        raise TypeError(f"indices must be an integer array, got dtype {array.dtype}")
    if array.shape != shape:
        raise ValueError(f"indices must have the input's shape {shape}, got {array.shape}")
    if array.size and (array.min() < 0 or array.max() >= volume):
        raise ValueError(f"indices must lie in [0, {volume}) (the output plane), got values in "
                         f"[{array.min()}, {array.max()}]")
    return array.astype(np.int64, copy=False)


def _flat(indices: np.ndarray, volume: int) -> np.ndarray:
    n, c = indices.shape[:2]
    return (indices + np.arange(n * c, dtype=np.int64).reshape(n, c, *(1,) * (indices.ndim - 2)) * volume).reshape(-1)


def max_unpool_forward(x: np.ndarray, indices: np.ndarray, out_size: tuple[int, ...]) -> np.ndarray:
    """Scatter validated batched ``x`` to ``indices`` in a zero ``(N, C, *out_size)``; a repeated index keeps the last."""
    volume = int(np.prod(out_size))
    out = np.zeros(x.shape[0] * x.shape[1] * volume, dtype=x.dtype)
    out[_flat(indices, volume)] = x.reshape(-1)
    return out.reshape(*x.shape[:2], *out_size)


def max_unpool_backward(grad_output: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Gradient w.r.t. the unpooled values: gathered from ``indices``."""
    volume = int(np.prod(grad_output.shape[2:]))
    return grad_output.reshape(-1)[_flat(indices, volume)].reshape(indices.shape)


def _unpool(ndim, input, indices, kernel_size, stride, padding, output_size):
    x, unbatched = check_spatial_input(input, "input", ndim)
    out_size = unpool_output_size(x.shape[2:], kernel_size, stride, padding, output_size)
    index = np.asarray(indices)
    index = check_unpool_indices(index[np.newaxis] if unbatched and index.ndim == x.ndim - 1 else index,
                                 x.shape, int(np.prod(out_size)))
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
