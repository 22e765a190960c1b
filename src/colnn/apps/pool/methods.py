"""The pooling methods of ``colnn pool``, on Dask arrays: each pyramid level from the one before.

- ``max`` and ``avg``: colnn's own pooling (:func:`colnn.max_pool2d`,
  :func:`colnn.avg_pool3d`, ... by the number of pooled axes), which is
  PyTorch's ``max_pool``/``avg_pool``. An average counts only the cells inside
  the image (``count_include_pad=False``), so a border is not darkened.
- ``min``: ``max`` of the order-reversed values (``~x`` for integers, exact and
  without overflow; ``-x`` for floats), reversed back.
- ``nearest``: the cell nearest each window's centre (the first of the two
  middle cells for an even kernel), clipped into the image: a strided pick,
  for label images that must not blend.
- ``mode``: the most frequent value among each window's cells inside the
  image, ties to the smallest value (ngff-zarr's label method).

Means carry float64 window SUMS along one chain from level 0; each level is
divided by the count of level-0 cells each of its cells covers (a product of
per-axis counts, :meth:`Geometry.next_counts`) and rounded once to the input's
dtype (integers: half to even, :func:`numpy.rint`), so rounding does not add
up across levels. For integers (sums below 2**53) each level is thus the
rounded exact mean of the level-0 cells it covers, partial ``--ceil-mode``
windows included; overlapping windows weigh a level-0 cell by the number of
windows that reach it, and padding counts nothing. Windows that tile the
blocks (stride = kernel, no padding: a pyramid's usual case) are pooled
block by block, each block alone (:mod:`colnn.kernels.pyramid`, level 0 read
in its own dtype): by NumPy, so that a short run loads no Numba, except the means of a large pyramid
(:func:`compiled_means`), whose compiled loops repay Numba's start-up. Other
windows run through colnn's compiled pooling, with halos across blocks. A
run that uses compiled kernels says so on its first, compiling, run. A
bool mask is pooled as 0/1 (max: any, min: all) and written as bool; its mean
is refused (a mean of a mask is not a mask). 64-bit integers above 2**53 lose
precision in a mean, as in float64.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import colnn

from ...core.window import Window

__all__ = ["METHODS", "Geometry", "check_method_dtype", "compiled_means", "pyramid", "mode_of"]

METHODS = ("max", "avg", "min", "nearest", "mode")
# From this many level-0 cells, Numba's mean loops save (about 0.5 ns a cell) more than Numba's start costs (0.5 s).
COMPILED_MEANS_FROM_CELLS = 1 << 29
CHAIN_BLOCK_CELLS = 1 << 18  # the smallest blocks in which a mean's float64 chain goes on (2 MB)
MODE_SLAB_CELLS = 1 << 18


@dataclass(frozen=True)
class Geometry:
    """How one level is pooled from the one before: the pooled axes (indices) and each one's window."""

    pooled: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    ceil_mode: bool

    def window(self, shape: Sequence[int]) -> Window:
        """The window over the pooled axes of an array of ``shape`` (ValueError naming the flag if empty)."""
        return Window.build([shape[axis] for axis in self.pooled], self.kernel, self.stride, self.padding,
                            ceil_mode=self.ceil_mode, pooling=True, kernel_name="--kernel",
                            stride_name="--stride", padding_name="--padding")

    def next_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        pooled_shape = list(shape)
        for axis, size in zip(self.pooled, self.window(shape).out_size):
            pooled_shape[axis] = size
        return tuple(pooled_shape)

    def next_counts(self, counts: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
        """Per pooled axis, the level-0 cells that each next-level cell's window sums, from ``counts`` (this level's).

        ``counts`` holds one float64 vector per pooled axis (level 0: ones). A
        window adds the counts of its cells inside the image (padding adds none);
        overlapping windows count a level-0 cell once per path to it.
        """
        shape = [1] * (max(self.pooled) + 1)
        for axis, count in zip(self.pooled, counts):
            shape[axis] = count.size
        window = self.window(shape)
        result = []
        for count, out_size, k, s, p in zip(counts, window.out_size, self.kernel, self.stride, self.padding):
            cells = np.arange(out_size)[:, None] * s - p + np.arange(k)[None, :]
            inside = (cells >= 0) & (cells < count.size)
            result.append(np.where(inside, count[np.clip(cells, 0, count.size - 1)], 0.0).sum(axis=1))
        return tuple(result)

    def offsets(self, method: str) -> tuple[float, ...]:
        """Where a pooled cell lies in its window, per pooled axis, in cells of the level before."""
        if method == "nearest":
            return tuple(float((k - 1) // 2 - p) for k, p in zip(self.kernel, self.padding))
        return tuple((k - 1) / 2 - p for k, p in zip(self.kernel, self.padding))


def _pools(count: int) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """colnn's max and average pooling over ``count`` spatial axes (compiled: the first run says it compiles)."""
    from ...kernels.compile_notice import announce_compiles

    announce_compiles()
    return {1: (colnn.max_pool1d, colnn.avg_pool1d), 2: (colnn.max_pool2d, colnn.avg_pool2d),
            3: (colnn.max_pool3d, colnn.avg_pool3d)}[count]


def _batched(x: Any, pooled: tuple[int, ...]) -> tuple[Any, Callable[[Any], Any]]:
    """``x`` as colnn's ``(N, 1, *pooled)`` layout, the other axes folded into N; and what undoes that."""
    others = tuple(axis for axis in range(x.ndim) if axis not in pooled)
    order = others + pooled
    moved = x.transpose(order)
    lead = moved.shape[:len(others)]
    batched = moved.reshape((math.prod(lead), 1, *moved.shape[len(others):]))
    inverse = tuple(int(i) for i in np.argsort(order))

    def restore(y: Any) -> Any:
        return y.reshape((*lead, *y.shape[2:])).transpose(inverse)

    return batched, restore


def _reverse(x: Any) -> Any:
    """An order-reversing bijection of ``x``'s values, its own inverse: ``~x`` (integers) or ``-x`` (floats)."""
    return ~x if x.dtype.kind in "iu" else -x


def _positions(start: int, stop: int, stride: int, padding: int, offset: int) -> np.ndarray:
    """Along one axis, the cell at ``offset`` in windows ``start..stop-1`` (may fall outside the image)."""
    return np.arange(start, stop, dtype=np.int64) * stride - padding + offset


def _gather(x: Any, geometry: Geometry, window: Window, offsets: Sequence[int]) -> Any:
    """The cell at ``offsets`` of every window of the batched ``x`` (clipped into the image)."""
    import dask.array as da

    for index, (size, out_size, s, p, offset) in enumerate(zip(
            window.in_size, window.out_size, geometry.stride, geometry.padding, offsets)):
        cells = np.clip(_positions(0, out_size, s, p, offset), 0, size - 1)
        x = da.take(x, cells, axis=2 + index)
    return x


def mode_of(values: Sequence[np.ndarray], valid: Sequence[Any]) -> np.ndarray:
    """The most frequent of the ``values`` (one array per window cell) where ``valid``, ties to the smallest.

    Each ``valid`` entry is a bool array broadcastable to the values; every
    window has at least one valid cell. Each pair of cells is compared once
    (``cells * (cells - 1) / 2`` passes over the block): exact, with no sort and
    no assumption on the value range. NaN equals nothing, so it is the mode
    only of a window of NaN alone.
    """
    shape = np.broadcast_shapes(values[0].shape, *(np.shape(v) for v in valid))
    count_dtype = np.uint8 if len(values) < 256 else np.uint32
    # A cell counts itself (NaN does not: it equals nothing), then each equal valid partner.
    counts = [np.broadcast_to(np.logical_and(here == here, ok), shape).astype(count_dtype)
              for here, ok in zip(values, valid)]
    for i, j in itertools.combinations(range(len(values)), 2):
        equal = values[i] == values[j]
        equal &= valid[i]
        equal &= valid[j]
        np.add(counts[i], equal, out=counts[i])
        np.add(counts[j], equal, out=counts[j])
    best = np.maximum.reduce(counts)
    dtype = values[0].dtype
    mode = np.full(shape, np.inf if dtype.kind == "f" else np.iinfo(dtype).max, dtype)
    for count, value, ok in zip(counts, values, valid):
        np.minimum(mode, value, out=mode, where=(count == best) & ok)
    return mode


def _mode(x: Any, geometry: Geometry, window: Window) -> Any:
    import dask.array as da

    offsets = list(itertools.product(*(range(k) for k in geometry.kernel)))
    views = [_gather(x, geometry, window, offset) for offset in offsets]
    axes = list(zip(window.in_size, geometry.stride, geometry.padding))

    def block_mode(*blocks: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        # Which of the gathered cells lie inside the image depends on where this block's windows are.
        assert block_info is not None  # Dask passes it to a function that takes it
        location = block_info[None]["array-location"][2:]
        valid = []
        for offset in offsets:
            masks = []
            for (size, s, p), (start, stop), j in zip(axes, location, offset):
                cells = _positions(start, stop, s, p, j)
                masks.append((cells >= 0) & (cells < size))
            valid.append(_outer(masks))
        # In slabs along the first pooled axis, so the counts and comparisons stay a few MB.
        mode = np.empty_like(blocks[0])
        step = max(1, MODE_SLAB_CELLS // max(1, blocks[0][0, 0, :1].size))
        for start in range(0, mode.shape[2], step):
            slab = (slice(None), slice(None), slice(start, start + step))
            mode[slab] = mode_of([block[slab] for block in blocks],
                                 [mask[slab] if mask.shape[2] > 1 else mask for mask in valid])
        return mode

    return da.map_blocks(block_mode, *views, dtype=x.dtype)


def _outer(masks: Sequence[np.ndarray]) -> np.ndarray:
    """The ``(1, 1, *sizes)`` AND of one bool mask per spatial axis."""
    grid = masks[0]
    for mask in masks[1:]:
        grid = np.logical_and.outer(grid, mask)
    return grid.reshape((1, 1, *grid.shape))


def _round_to(sums: Any, counts: Sequence[np.ndarray], pooled: tuple[int, ...], dtype: np.dtype,
              compiled: bool) -> Any:
    """The float64 window ``sums`` as means in ``dtype``: divided by ``counts`` (per pooled axis), then rounded."""
    from ...kernels.pyramid import round_means

    def block_means(block: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        assert block_info is not None  # Dask passes it to a function that takes it
        location = block_info[0]["array-location"]
        return round_means(block, [count[slice(*location[axis])] for axis, count in zip(pooled, counts)],
                           pooled, dtype, compiled)

    return sums.map_blocks(block_means, dtype=dtype, meta=np.empty((0,) * sums.ndim, dtype))


def _tiled(chain: Any, geometry: Geometry, pool: Callable[..., np.ndarray], dtype: Any, *options: Any) -> Any:
    """``pool(block, pooled, kernel, ceil_mode, *options)`` on each block alone, if the windows tile the blocks.

    None when they do not: overlapping or padded windows, or blocks whose
    sizes cut windows (a window would need cells of the next block).
    """
    from ...kernels.pyramid import tiled_out_size

    if geometry.stride != geometry.kernel or any(geometry.padding):
        return None
    chunks = list(chain.chunks)
    for axis, k in zip(geometry.pooled, geometry.kernel):
        if any(size % k for size in chunks[axis][:-1]):
            return None
        chunks[axis] = tuple(tiled_out_size(size, k, geometry.ceil_mode) for size in chunks[axis])
    if tuple(sum(c) for c in chunks) != geometry.next_shape(chain.shape):
        return None  # ceil_mode's partial window at a block's end that is not the array's
    # meta: Dask would otherwise call ``pool`` on an empty block to learn its output type.
    return chain.map_blocks(pool, geometry.pooled, geometry.kernel, geometry.ceil_mode, *options,
                            chunks=tuple(chunks), dtype=dtype, meta=np.empty((0,) * chain.ndim, dtype))


def _sum_level(chain: Any, geometry: Geometry, compiled: bool) -> Any:
    """The next level's float64 window sums of ``chain`` (the input's dtype at level 0, float64 sums above)."""
    from ...kernels.pyramid import window_sums

    tiled = _tiled(chain, geometry, window_sums, np.float64, compiled)
    if tiled is not None:
        return tiled
    # Overlapping or padded windows, or blocks that cut windows: colnn's average pooling with a divisor of 1
    # (a sum; padding adds nothing), with halos. 1-D pooling runs as 2-D over a unit axis, which has a divisor.
    batched, restore = _batched(chain.astype(np.float64), geometry.pooled)
    single = len(geometry.pooled) == 1
    if single:
        batched = batched[:, :, None, :]
    pad = (0,) if single else ()
    one = (1,) if single else ()
    average = _pools(len(geometry.pooled) + single)[1]
    sums = average(batched, one + geometry.kernel, one + geometry.stride, pad + geometry.padding,
                   ceil_mode=geometry.ceil_mode, count_include_pad=True, divisor_override=1)
    return restore(sums[:, :, 0, :] if single else sums)


def _extreme_level(current: Any, geometry: Geometry, method: str) -> Any:
    """The next level's maxima or minima (``method``) of ``current``, in its dtype."""
    from ...kernels.pyramid import window_extremes

    tiled = _tiled(current, geometry, window_extremes, current.dtype, method == "max")
    if tiled is not None:
        return tiled
    batched, restore = _batched(current, geometry.pooled)
    maximum = _pools(len(geometry.pooled))[0]
    flipped = _reverse(batched) if method == "min" else batched
    pooled = maximum(flipped, geometry.kernel, geometry.stride, geometry.padding, ceil_mode=geometry.ceil_mode)
    return restore(_reverse(pooled) if method == "min" else pooled)


def _keeps_blocks(sums: Any, geometry: Geometry) -> bool:
    """Whether a level's float64 sums can stay in the blocks they were pooled in for the next level.

    Rechunking them into the level's written blocks copies float64 cells (four
    times a uint16 level's bytes); rounded first, the copy is of the input's
    dtype. They stay while their blocks hold :data:`CHAIN_BLOCK_CELLS` cells
    (below, the tasks' own cost grows) and the next windows still tile them.
    """
    if min(math.prod(block) for block in itertools.product(*sums.chunks)) < CHAIN_BLOCK_CELLS:
        return False
    return all(size % k == 0 for axis, k in zip(geometry.pooled, geometry.kernel) for size in sums.chunks[axis][:-1])


def compiled_means(method: str, cells: int) -> bool:
    """Whether a pyramid of ``cells`` level-0 cells takes Numba's loops for its means (see :func:`pyramid`)."""
    return method == "avg" and cells >= COMPILED_MEANS_FROM_CELLS


def check_method_dtype(method: str, dtype: Any) -> None:
    """ValueError if ``method`` cannot pool ``dtype`` exactly: the mean of a bool mask, or of 64-bit integers.

    The mean is accumulated in float64, exact for integers below 2**53: 64-bit
    integers above that would lose their low bits silently.
    """
    dtype = np.dtype(dtype)
    if method != "avg":
        return
    if dtype == np.bool_:
        raise ValueError("--method avg of a bool mask: a mean of a mask is not a mask; use max, min, nearest or mode")
    if dtype.kind in "iu" and dtype.itemsize == 8:
        raise ValueError(f"--method avg of {dtype}: the mean is accumulated in float64, exact only below 2**53; "
                         f"convert the image to a narrower integer type or to float64 first, or use max, min, "
                         f"nearest or mode")


def pyramid(level0: Any, geometry: Geometry, method: str, levels: int,
            rechunk: Callable[[Any], Any], compiled: bool = False) -> list[Any]:
    """Level 0 and ``levels`` pooled levels of the Dask array ``level0``, lazily, each passed through ``rechunk``.

    ``rechunk`` gives a level the chunks it will be written in; the next level
    is pooled from those chunks (a mean's float64 chain may stay in the
    blocks it was pooled in: :func:`_keeps_blocks`). Shapes were checked beforehand
    (:meth:`Geometry.next_shape`). ``compiled``: tiling sums by Numba's loops
    (the same bits, faster once Numba has started; see :func:`compiled_means`).
    """
    dtype = level0.dtype
    check_method_dtype(method, dtype)
    out = [rechunk(level0)]
    if method == "avg":
        if compiled:
            from ...kernels.compile_notice import announce_compiles

            announce_compiles()
        chain = out[0]
        counts = tuple(np.ones(level0.shape[axis]) for axis in geometry.pooled)
        for _ in range(levels):
            sums = _sum_level(chain, geometry, compiled)
            counts = geometry.next_counts(counts)
            chain = sums if _keeps_blocks(sums, geometry) else rechunk(sums)
            out.append(rechunk(_round_to(chain, counts, geometry.pooled, dtype, compiled)))
        return out
    current = out[0].astype(np.uint8) if dtype == np.bool_ else out[0]
    for _ in range(levels):
        if method in ("max", "min"):
            current = rechunk(_extreme_level(current, geometry, method))
        else:
            batched, restore = _batched(current, geometry.pooled)
            window = geometry.window(current.shape)
            if method == "nearest":
                pooled = _gather(batched, geometry, window, [(k - 1) // 2 for k in geometry.kernel])
            else:
                pooled = _mode(batched, geometry, window)
            current = rechunk(restore(pooled))
        out.append(current.astype(np.bool_) if dtype == np.bool_ else current)
    return out
