"""An image pyramid's tiling windows, block by block: sums in float64 (for means), maxima, minima, rounding back.

A block of any number of axes is pooled over some of them by windows that
tile those axes (stride = kernel, no padding), the last one of an axis
partial or dropped (``ceil_mode``), as PyTorch's ``max_pool``/``avg_pool``
place them (``count_include_pad=False``). Each window's cells are visited in
row-major order, one strided view of the block per cell offset, so NumPy's
vectorized loops do the work and no axis is moved or copied.

Sums and their rounding have compiled loops too (``compiled=True``:
:mod:`colnn.kernels.pyramid_loops`, the same sums in the same order, so the
same bits). They are faster per cell (a 2x2 mean of a 1024 x 2048 uint16
block: 1.2 ms against NumPy's 1.9 ms on 2 cores), but starting Numba and
loading cached kernels takes 0.4 to 0.6 s of CPU in a fresh process: they
repay it only on large pyramids (the caller chooses). Maxima and minima are
as fast in NumPy (one ``np.maximum`` per cell offset), so ``colnn pool``
loads no Numba for a pyramid of tiling windows below that size.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence

import numpy as np

__all__ = ["tiled_out_size", "window_sums", "round_means", "window_extremes", "round_half_even", "canonical_shape"]

# Read as they are (exact in float64, or the float64 the caller's chain holds); other dtypes become float64 first.
_READ_AS_IS = {np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
                                     np.float32, np.float64)}


def canonical_shape(shape: Sequence[int], pooled: Sequence[int]) -> tuple[int, ...]:
    """``shape`` as ``(a0, p0, a1, p1, a2, p2, a3)``: pooled sizes ``p``, merged kept runs ``a`` (the compiled loops').

    Fewer than three pooled axes leave unit axes in front, so that the last
    pooled axis is always ``p2``, next to the innermost loop.
    """
    edges = [*sorted(pooled), len(shape)]
    sizes = [math.prod(shape[:edges[0]])]
    for axis, after in itertools.pairwise(edges):
        sizes += [shape[axis], math.prod(shape[axis + 1:after])]
    return (1, 1) * (3 - len(pooled)) + tuple(sizes)


def tiled_out_size(size: int, kernel: int, ceil_mode: bool) -> int:
    """Windows of ``kernel`` cells tiling ``size`` cells: the last partial one kept with ``ceil_mode``."""
    return -(-size // kernel) if ceil_mode else size // kernel


def _out_shape(shape: Sequence[int], pooled: Sequence[int], kernel: Sequence[int], ceil_mode: bool) -> list[int]:
    out_shape = list(shape)
    for axis, k in zip(pooled, kernel):
        out_shape[axis] = tiled_out_size(shape[axis], k, ceil_mode)
    return out_shape


def _cells(block: np.ndarray, pooled: Sequence[int], kernel: Sequence[int],
           out_shape: Sequence[int]) -> Iterator[tuple[tuple[slice, ...], np.ndarray]]:
    """Per cell offset of the window, in row-major order: the windows that hold that cell, and those cells.

    Both are views: ``out[region]`` lines up with ``cells``. A window cut short
    by the block's end (``ceil_mode``) lacks its cells past the end: the
    region then stops before it.
    """
    for offset in itertools.product(*(range(k) for k in kernel)):
        region = [slice(None)] * block.ndim
        index = [slice(None)] * block.ndim
        for axis, k, q in zip(pooled, kernel, offset):
            count = min(out_shape[axis], -(-(block.shape[axis] - q) // k))
            region[axis] = slice(0, count)
            index[axis] = slice(q, q + k * count, k)
        yield tuple(region), block[tuple(index)]


def window_sums(block: np.ndarray, pooled: Sequence[int], kernel: Sequence[int], ceil_mode: bool,
                compiled: bool = False) -> np.ndarray:
    """The float64 sum of each window tiling the ``pooled`` axes of ``block`` (any integer or floating dtype).

    ``kernel`` gives one window size per pooled axis (ascending axis order).
    Along each pooled axis of size ``n`` the output has ``ceil(n / k)`` cells
    with ``ceil_mode`` (a last partial window sums the cells it has) or
    ``n // k``; other axes are kept. Each window's cells are added to 0.0 one
    by one in row-major order (float16 and longdouble read as float64): exact
    for integers while the sums stay below 2**53. A pyramid's means carry these
    sums from level to level and divide only when a level is rounded out
    (:func:`round_means`), so a partial window's mean is that of the level-0
    cells it covers. ``compiled``: by Numba's loops, the same bits.
    """
    out_shape = _out_shape(block.shape, pooled, kernel, ceil_mode)
    x = block if block.dtype in _READ_AS_IS else block.astype(np.float64)
    if compiled:
        return _compiled_sums(x, pooled, kernel, out_shape)
    cells = _cells(x, pooled, kernel, out_shape)
    _, first = next(cells)  # every window has its first cell
    out = np.add(first, 0.0, dtype=np.float64)  # 0.0 + the first cell: a sum from 0.0, so -0.0 gives 0.0
    for region, later in cells:
        target = out[region]
        np.add(target, later, out=target)
    return out


def round_means(sums: np.ndarray, counts: Sequence[np.ndarray], pooled: Sequence[int], dtype: np.dtype,
                compiled: bool = False) -> np.ndarray:
    """``sums`` divided by their level-0 cell counts, as ``dtype`` (:func:`round_half_even`).

    ``counts`` holds one float64 vector per pooled axis (ascending axis order),
    as long as ``sums`` along that axis: the level-0 cells (counted as often as
    windows overlap them) that each cell's sum holds along that axis. A cell's
    count is their product; a float64 division gives the correctly rounded
    mean, and a power-of-two count the same bits as dividing level by level.
    """
    # Counts are integers: their products are exact in any order. A constant count (whole windows) is a scalar
    # factor, so a block of whole windows is divided by one number, not by a divisor array as large as itself.
    divisor: float | np.ndarray = 1.0
    for axis, count in zip(pooled, counts):
        count = np.asarray(count, np.float64)
        if count.size and (count == count[0]).all():
            divisor = divisor * float(count[0])
        else:
            divisor = divisor * count.reshape([-1 if a == axis else 1 for a in range(sums.ndim)])
    return round_half_even(sums / divisor, dtype, compiled, overwrite=True)


def _compiled_sums(x: np.ndarray, pooled: Sequence[int], kernel: Sequence[int], out_shape: list[int]) -> np.ndarray:
    from . import pyramid_loops

    out = np.zeros(out_shape, dtype=np.float64)
    if out.size == 0:
        return out
    x = np.ascontiguousarray(x)
    sizes = (*(1,) * (3 - len(kernel)), *kernel)
    pyramid_loops.window_sums(x.reshape(canonical_shape(x.shape, pooled)), *sizes,
                               out.reshape(canonical_shape(out.shape, pooled)))
    return out


def window_extremes(block: np.ndarray, pooled: Sequence[int], kernel: Sequence[int], ceil_mode: bool,
                    largest: bool = True) -> np.ndarray:
    """The maximum (``largest``) or minimum of each window tiling the ``pooled`` axes of ``block``, in its dtype.

    Windows as :func:`window_sums`. PyTorch's rule, bit for bit: scanning a
    window row-major from its first cell, a cell replaces the running maximum
    when it is greater (minimum: smaller) or NaN. So among equal cells
    (``-0.0`` and ``0.0``) the first stays, and a window with NaN gives its
    last NaN. Bool blocks give any (max) and all (min).
    """
    out_shape = _out_shape(block.shape, pooled, kernel, ceil_mode)
    cells = _cells(block, pooled, kernel, out_shape)
    _, first = next(cells)  # every window has its first cell
    out = first.copy()
    if out.size == 0:
        return out
    # np.maximum(a, b) is where(a >= b, a, b) without NaN, the rule above; it keeps a NaN but maybe not the last.
    pick = np.maximum if largest else np.minimum
    for region, later in cells:
        target = out[region]
        pick(target, later, out=target)
    if out.dtype.kind == "f" and np.isnan(out).any():
        out = _extremes_with_nan(block, pooled, kernel, out_shape, largest)
    return out


def _extremes_with_nan(block: np.ndarray, pooled: Sequence[int], kernel: Sequence[int], out_shape: Sequence[int],
                       largest: bool) -> np.ndarray:
    """:func:`window_extremes` by PyTorch's replacement test itself, for the blocks that hold NaN."""
    cells = _cells(block, pooled, kernel, out_shape)
    _, first = next(cells)
    out = first.copy()
    for region, later in cells:
        target = out[region]
        beats = np.greater(later, target) if largest else np.less(later, target)
        np.copyto(target, later, where=beats | np.isnan(later))
    return out


def round_half_even(chain: np.ndarray, dtype: np.dtype, compiled: bool = False, overwrite: bool = False) -> np.ndarray:
    """The float64 ``chain`` as ``dtype``: integers rounded half to even and clipped to the dtype's range.

    Floating dtypes are rounded to nearest by NumPy's cast. 64-bit integers are
    clipped below their maximum's float64 neighbour, the largest float64 that
    converts. ``compiled``: by Numba's loop, the same values. ``overwrite``:
    ``chain`` (float64) is the caller's scratch, rounded in place.
    """
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu":
        return chain.astype(dtype)
    info = np.iinfo(dtype)
    high = float(info.max) if info.bits < 64 else float(np.nextafter(float(info.max), 0))
    if compiled:
        from . import pyramid_loops

        out = np.empty(chain.shape, dtype=dtype)
        pyramid_loops.round_half_even(np.ascontiguousarray(chain, dtype=np.float64).reshape(-1), float(info.min),
                                      high, out.reshape(-1))
        return out
    rounded = np.rint(chain, out=chain) if overwrite else np.rint(np.asarray(chain, dtype=np.float64))
    np.clip(rounded, float(info.min), high, out=rounded)
    return rounded.astype(dtype)
