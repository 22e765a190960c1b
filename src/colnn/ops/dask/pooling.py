"""The lazy path of pooling: max, average, LP, adaptive and fractional pooling, and max unpooling of Dask arrays.

Each function takes a Dask input whose shape and dtype the public function has
checked already (on a stand-in), the family's checked arguments
(:mod:`colnn.ops.pooling._base`) and the NumPy computation to run per chunk, and
returns a lazy Dask array equal to the NumPy path's answer: window pools chunk
by chunk with halos (:func:`colnn.ops.dask.graph.map_windows`); adaptive pooling
with its chunk boundaries moved onto bin boundaries
(:func:`colnn.core.halo.bin_chunks`); fractional pooling and unpooling plane by
plane (their windows and indices may reach anywhere in a plane).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import dask.array as da
import numpy as np

from ...core.halo import AxisWindow, bin_chunks, window_axes, with_axes
from ...core.window import Window
from ..pooling._base import AdaptiveArgs, AvgPoolArgs, FractionalArgs, LPPoolArgs, MaxPoolArgs
from .graph import global_window, in_task, map_windows, split, unbatch

__all__ = ["max_pool", "avg_pool", "lp_pool", "adaptive_avg_pool", "adaptive_max_pool", "fractional_max_pool",
           "max_unpool"]


def _batched(x: da.Array, ndim: int) -> tuple[da.Array, bool]:
    """``x`` with a batch axis, and whether it came without one (its shape is checked already)."""
    unbatched = x.ndim == ndim + 1
    return (x[np.newaxis] if unbatched else x), unbatched


def max_pool(input: da.Array, args: MaxPoolArgs, strategy: str | None, forward: Callable) -> Any:
    """:func:`colnn.max_pool1d/2d/3d` of a Dask array: a lazy Dask array (and int64 indices), bit for bit the same.

    ``forward`` is :func:`colnn.ops.pooling.max.max_pool_forward`.
    """
    x, unbatched = _batched(input, args.ndim)
    window = args.window(x.shape[2:])
    keep_offset = args.return_indices

    def pool(block: np.ndarray, local: Window, pieces: tuple) -> Any:
        out, window_offset = forward(block, local, strategy, keep_offset)
        if not keep_offset:
            return out
        # Offsets inside a window do not depend on the chunk; the flat index into the volume does.
        return out, global_window(window, pieces).flat_indices(window_offset)

    if not keep_offset:
        (out,) = map_windows(x, window, pool, dtypes=[x.dtype])
        return unbatch(out, unbatched)
    out, indices = map_windows(x, window, pool, dtypes=[x.dtype, np.dtype(np.int64)])
    return unbatch(out, unbatched), unbatch(indices, unbatched)


def _axis_divisors(window: Window, count_include_pad: bool) -> list[np.ndarray]:
    """The average-pooling divisor along each spatial axis alone; the divisor of a window is their product.

    Each is read from :meth:`Window.avg_divisor` of a window that has every
    other axis trivial, so the rule stays in one place.
    """
    axes = window_axes(window)
    trivial = AxisWindow(1, 1, 1, 0, 1, 1)
    divisors = []
    for index, axis in enumerate(axes):
        alone = with_axes(window, [axis if other == index else trivial for other in range(len(axes))])
        divisors.append(alone.avg_divisor(count_include_pad, None).reshape(-1))
    return divisors


def avg_pool(input: da.Array, args: AvgPoolArgs, strategy: str | None, forward: Callable) -> da.Array:
    """:func:`colnn.avg_pool1d/2d/3d` of a Dask array: a lazy Dask array, equal to the NumPy path.

    ``forward`` is :func:`colnn.ops.pooling.avg.avg_pool_forward`; each chunk's
    divisors are the whole array's, cut to its windows.
    """
    x, unbatched = _batched(input, args.ndim)
    window = args.window(x.shape[2:])
    divisors = _axis_divisors(window, args.count_include_pad)
    override = args.divisor_override

    def average(block: np.ndarray, local: Window, pieces: tuple) -> np.ndarray:
        if override is not None:
            divisor = np.full([stop - start for start, stop in pieces], override, dtype=np.int64)
        else:
            divisor = functools.reduce(np.multiply.outer, [
                axis_divisor[start:stop] for axis_divisor, (start, stop) in zip(divisors, pieces)])
        return forward(block, local, divisor, strategy)

    (out,) = map_windows(x, window, average, dtypes=[x.dtype])
    return unbatch(out, unbatched)


def lp_pool(input: da.Array, args: LPPoolArgs, strategy: str | None, forward: Callable) -> da.Array:
    """:func:`colnn.lp_pool1d/2d/3d` of a Dask array: lazy, equal to the NumPy path to rounding.

    Without padding, each chunk's windows are whole windows of the array (a
    ``ceil_mode`` window clipped at the end is clipped the same in its chunk),
    so ``forward`` (:func:`colnn.ops.pooling.lp.lp_pool_forward`) runs per chunk unchanged.
    """
    x, unbatched = _batched(input, args.ndim)
    window = args.window(x.shape[2:])

    def power_average(block: np.ndarray, local: Window, pieces: tuple) -> np.ndarray:
        return forward(block, args.norm_type, local, strategy)[0]

    (out,) = map_windows(x, window, power_average, dtypes=[x.dtype])
    return unbatch(out, unbatched)


# --- adaptive pooling: bins rather than windows -------------------------------


def _map_bins(input: da.Array, args: AdaptiveArgs, block_function: Callable,
              dtypes: Sequence[Any]) -> tuple[tuple[da.Array, ...], bool]:
    """Adaptive pooling chunk by chunk: ``(outputs, unbatched)``.

    The spatial axes are rechunked by :func:`colnn.core.halo.bin_chunks`; ``block_function(block,
    out_size, starts)`` pools one block into ``out_size`` bins, ``starts`` being
    the block's first cell along each spatial axis.
    """
    x, unbatched = _batched(input, args.ndim)
    in_size = x.shape[2:]
    out_size = args.out_size(in_size)
    x = x.rechunk((*x.chunks[:2], *(
        bin_chunks(size, out, chunks) for size, out, chunks in zip(in_size, out_size, x.chunks[2:]))))
    out_chunks = (*x.chunks[:2], *(
        tuple(chunk * out // size for chunk in chunks) for size, out, chunks in zip(in_size, out_size, x.chunks[2:])))

    def pool(block: np.ndarray, block_info: dict | None = None) -> Any:
        assert block_info is not None  # Dask passes it to a function that takes it
        starts = tuple(start for start, _ in block_info[0]["array-location"][2:])
        bins = tuple(cells * out // size for cells, out, size in zip(block.shape[2:], out_size, in_size))
        return in_task(block_function, block, bins, starts)

    several = len(dtypes) > 1
    combined = x.map_blocks(pool, chunks=out_chunks, dtype=object if several else dtypes[0],
                            meta=np.empty((0,) * x.ndim, dtype=object if several else dtypes[0]))
    return split(combined, [np.dtype(dtype) for dtype in dtypes]), unbatched


def adaptive_avg_pool(input: da.Array, args: AdaptiveArgs, forward: Callable) -> da.Array:
    """:func:`colnn.adaptive_avg_pool1d/2d/3d` of a Dask array: lazy, equal to the NumPy path to rounding."""

    def average(block: np.ndarray, bins: tuple, starts: tuple) -> np.ndarray:
        return forward(block, bins)

    (out,), unbatched = _map_bins(input, args, average, [input.dtype])
    return unbatch(out, unbatched)


def adaptive_max_pool(input: da.Array, args: AdaptiveArgs, forward: Callable) -> Any:
    """:func:`colnn.adaptive_max_pool1d/2d/3d` of a Dask array: lazy, bit for bit the same (indices too)."""
    in_size = input.shape[-args.ndim:]

    def maximum(block: np.ndarray, bins: tuple, starts: tuple) -> tuple[np.ndarray, np.ndarray]:
        out, block_flat = forward(block, bins)
        # Indices into the block's volume, moved into the whole array's.
        coordinates = np.unravel_index(block_flat, block.shape[2:])
        flat = np.ravel_multi_index([cell + start for cell, start in zip(coordinates, starts)], in_size)
        return out, flat.astype(np.int64, copy=False)

    (out, indices), unbatched = _map_bins(input, args, maximum, [input.dtype, np.int64])
    if not args.return_indices:
        return unbatch(out, unbatched)
    return unbatch(out, unbatched), unbatch(indices, unbatched)


# --- plane by plane: windows or indices anywhere in a plane ---------------------------


def _whole_planes(x: da.Array) -> da.Array:
    """``x`` rechunked so that each chunk holds whole ``(n, c)`` planes (chunks along N and C kept)."""
    return x.rechunk(dict.fromkeys(range(2, x.ndim), -1))


def fractional_max_pool(x: da.Array, args: FractionalArgs, out_size: tuple[int, ...], samples: np.ndarray,
                        forward: Callable) -> tuple[da.Array, da.Array]:
    """:func:`colnn.fractional_max_pool2d/3d` of a batched Dask array: ``(out, indices)``, lazy, bit for bit the same.

    ``samples`` ``(N, C, ndim)`` (NumPy, drawn or checked by the public function)
    are cut per chunk of planes; ``forward`` is
    :func:`colnn.ops.pooling.fractional.fractional_max_forward`.
    """
    x = _whole_planes(x)
    samples = np.asarray(samples)

    def pool(block: np.ndarray, block_info: dict | None = None) -> Any:
        assert block_info is not None  # Dask passes it to a function that takes it
        (n0, n1), (c0, c1) = block_info[0]["array-location"][:2]
        return in_task(forward, block, args.kernel_size, out_size, samples[n0:n1, c0:c1])

    chunks = (*x.chunks[:2], *((size,) for size in out_size))
    combined = da.map_blocks(pool, x, chunks=chunks, dtype=object, meta=np.empty((0,) * x.ndim, dtype=object))
    out, indices = split(combined, [x.dtype, np.dtype(np.int64)])
    return out, indices


def max_unpool(input: Any, indices: Any, dtype: np.dtype, out_size: tuple[int, ...],
               forward: Callable) -> da.Array:
    """:func:`colnn.max_unpool1d/2d/3d` of batched Dask (or NumPy) ``input`` and ``indices``: lazy, the same.

    Each chunk of planes scatters into its own output planes; an index outside
    its plane raises the NumPy path's ValueError as that chunk is computed.
    ``forward`` is :func:`colnn.ops.pooling.unpool.max_unpool_forward`.
    """
    x = _whole_planes(da.asarray(input))
    index = da.asarray(indices).rechunk(x.chunks)
    volume = int(np.prod(out_size))

    def scatter(block: np.ndarray, block_index: np.ndarray) -> np.ndarray:
        if block_index.size and (block_index.min() < 0 or block_index.max() >= volume):
            raise ValueError(f"indices must lie in [0, {volume}) (the output plane), got values in "
                             f"[{int(block_index.min())}, {int(block_index.max())}]")
        return in_task(forward, block, block_index.astype(np.int64, copy=False), out_size)

    chunks = (*x.chunks[:2], *((size,) for size in out_size))
    return da.map_blocks(scatter, x, index, chunks=chunks, dtype=dtype, meta=np.empty((0,) * x.ndim, dtype=dtype))
