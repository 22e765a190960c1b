"""An image pyramid's means by compiled loops: tiling windows summed in float64, and float64 rounded back.

The loops are :mod:`colnn.kernels.pyramid_loops` (imported on first use, so
``import colnn`` compiles nothing). A block of any number of axes is pooled
over up to three of them without moving any axis: the kept axes between the
pooled ones are merged, which a C-contiguous array allows for free. The
windows tile the pooled axes (stride = kernel, no padding), the last one of
an axis partial or dropped (``ceil_mode``), as PyTorch's ``avg_pool`` places
them with ``count_include_pad=False``. Any integer or floating input is read
as it is and summed in float64 (exact for integers below 2**53), so a
pyramid's level 0 is never copied into float64.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

__all__ = ["canonical_shape", "tiled_out_size", "window_means", "round_half_even"]

_READ_AS_IS = {np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
                                     np.float32, np.float64)}


def canonical_shape(shape: Sequence[int], pooled: Sequence[int]) -> tuple[int, ...]:
    """``shape`` as ``(a0, p0, a1, p1, a2, p2, a3)``: pooled sizes ``p``, merged kept runs ``a``.

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


def window_means(block: np.ndarray, pooled: Sequence[int], kernel: Sequence[int], ceil_mode: bool) -> np.ndarray:
    """The float64 mean of each window tiling the ``pooled`` axes of ``block`` (any integer or floating dtype).

    ``kernel`` gives one window size per pooled axis (1 to 3, ascending axis
    order); float16 and longdouble blocks are read as float64. Along each pooled axis of size ``n`` the output has
    ``ceil(n / k)`` cells with ``ceil_mode`` (a last partial window averages
    the cells it has) or ``n // k``. Other axes are kept. Equal, for windows
    of up to 7 cells exactly, to NumPy's float64 ``mean`` of each window.
    """
    from . import pyramid_loops

    out_shape = list(block.shape)
    for axis, k in zip(pooled, kernel):
        out_shape[axis] = tiled_out_size(block.shape[axis], k, ceil_mode)
    out = np.zeros(out_shape, dtype=np.float64)
    if out.size == 0:
        return out
    # Numba reads integers, float32 and float64; float16 (exactly) and longdouble (as colnn's means do) as float64.
    x = np.ascontiguousarray(block, dtype=block.dtype if block.dtype in _READ_AS_IS else np.float64)
    sizes = (*(1,) * (3 - len(kernel)), *kernel)
    pyramid_loops.window_means(x.reshape(canonical_shape(x.shape, pooled)), *sizes,
                               out.reshape(canonical_shape(out.shape, pooled)))
    return out


def round_half_even(chain: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The float64 ``chain`` as ``dtype``: integers rounded half to even and clipped to the dtype's range.

    Floating dtypes are rounded to nearest by NumPy's cast. 64-bit integers are
    clipped below their maximum's float64 neighbour, the largest float64 that converts.
    """
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu":
        return chain.astype(dtype)
    from . import pyramid_loops

    info = np.iinfo(dtype)
    high = float(info.max) if info.bits < 64 else float(np.nextafter(float(info.max), 0))
    out = np.empty(chain.shape, dtype=dtype)
    pyramid_loops.round_half_even(np.ascontiguousarray(chain, dtype=np.float64).reshape(-1), float(info.min), high,
                                  out.reshape(-1))
    return out
