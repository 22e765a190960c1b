"""Halo arithmetic: which input cells each chunk of a windowed op's output reads.

A chunked (e.g. Dask) input is split along a spatial axis into pieces; each
piece of the output, the windows ``[out_start, out_stop)``, reads the input
cells from its first window's start to its last window's end. Consecutive
pieces of output therefore read overlapping input ranges: each reads
``extent - stride`` cells past the next piece's first window start, where
``extent = (kernel-1)*dilation + 1`` is the span of one window (a negative
halo means cells between windows that nobody reads). Padding exists only at the
array's border: a piece's range is clipped to the input, and the cells clipped
away are that piece's own padding.

Everything here depends only on the window geometry of one axis
(:class:`AxisWindow`); :func:`window_axes` and :func:`with_axes` are the one
place that reads and writes :class:`colnn.core.window.Window`'s per-axis fields,
so an op of any number of spatial dimensions uses the same arithmetic.

A transposed convolution runs the other way: its windows are the input's
cells, scattered onto its output (the window's ``size`` cells).
:func:`scatter_chunks` splits that output to follow the input's chunks and
:func:`scatter_span` names the windows that reach each piece: its own and
those of the chunks before it whose windows extend into it.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .window import Window

__all__ = [
    "AxisWindow", "window_axes", "with_axes", "output_chunks", "input_span", "scatter_chunks", "scatter_span",
    "bin_chunks",
]

# Window's per-axis tuples, in AxisWindow's field order.
_AXIS_FIELDS = ("in_size", "kernel_size", "stride", "padding", "dilation", "out_size")


@dataclass(frozen=True)
class AxisWindow:
    """The window geometry along one spatial axis (PyTorch's terms).

    Window ``o`` starts at input cell ``o*stride - pad`` and covers
    ``kernel`` cells ``dilation`` apart; there are ``out`` windows over ``size`` cells.
    """

    size: int
    kernel: int
    stride: int
    pad: int
    dilation: int
    out: int

    @property
    def extent(self) -> int:
        """Cells from a window's first to its last, inclusive: ``(kernel-1)*dilation + 1``."""
        return (self.kernel - 1) * self.dilation + 1

    @property
    def halo(self) -> int:
        """Cells a piece of output reads past the next piece's first window start: ``extent - stride``."""
        return self.extent - self.stride

    @property
    def pad_after(self) -> int:
        """Cells of padding past the input's end that the last window reaches."""
        return max(0, self.start(self.out - 1) + self.extent - self.size)

    def start(self, o: int) -> int:
        """Input cell where window ``o`` starts (negative inside the left padding)."""
        return o * self.stride - self.pad


def window_axes(window: Window) -> tuple[AxisWindow, ...]:
    """``window``'s geometry, one :class:`AxisWindow` per spatial axis."""
    return tuple(AxisWindow(*values) for values in zip(*(getattr(window, name) for name in _AXIS_FIELDS)))


def with_axes(window: Window, axes: Sequence[AxisWindow]) -> Window:
    """A copy of ``window`` whose per-axis geometry is ``axes`` (same order as :func:`window_axes`)."""
    if len(axes) != window.ndim:
        raise ValueError(f"axes must hold {window.ndim} AxisWindow, got {len(axes)}")
    columns = zip(*(dataclasses.astuple(axis) for axis in axes))
    return dataclasses.replace(window, **{name: tuple(values) for name, values in zip(_AXIS_FIELDS, columns)})


def _edges(chunks: Sequence[int]) -> Iterable[int]:
    """The inner boundaries between ``chunks``: their running sums, the total left out."""
    return itertools.accumulate(chunks[:-1])


def _pieces(bounds: Iterable[int], total: int) -> tuple[int, ...]:
    """Lengths of the pieces of ``[0, total)`` cut at ``bounds`` (non-decreasing, clipped to it); none empty."""
    cuts = sorted({0, total, *(min(max(bound, 0), total) for bound in bounds)})
    return tuple(stop - start for start, stop in itertools.pairwise(cuts))


def output_chunks(axis: AxisWindow, input_chunks: Sequence[int]) -> tuple[int, ...]:
    """Split ``axis``'s ``out`` windows into pieces that follow the input's chunks.

    A window goes to the input chunk in which it starts (those starting in the
    left padding to the first), so each piece's own cells begin on a stride
    boundary and end where the next piece's first window starts. Input chunks
    in which no window starts (smaller than the stride) give no piece.

    >>> output_chunks(AxisWindow(size=10, kernel=2, stride=2, pad=0, dilation=1, out=5), (4, 6))
    (2, 3)
    >>> output_chunks(AxisWindow(size=6, kernel=3, stride=3, pad=0, dilation=1, out=2), (1, 1, 1, 1, 1, 1))
    (1, 1)
    """
    # The first window starting at or after each input edge: ceil((edge + pad) / stride).
    return _pieces((-(-(edge + axis.pad) // axis.stride) for edge in _edges(input_chunks)), axis.out)


def input_span(axis: AxisWindow, out_start: int, out_stop: int) -> tuple[int, int, AxisWindow]:
    """Input cells ``[lo, hi)`` that windows ``[out_start, out_stop)`` read, and their local geometry.

    The local :class:`AxisWindow` runs those windows over the cells ``[lo, hi)``
    alone: its padding on the left is the part of the first window outside the
    input, and the right padding (what the last window reaches past ``hi``) is
    non-zero only at the array's end, so a window never sees a neighbour's
    cells as padding.

    >>> input_span(AxisWindow(size=10, kernel=3, stride=2, pad=1, dilation=1, out=5), 0, 2)
    (0, 4, AxisWindow(size=4, kernel=3, stride=2, pad=1, dilation=1, out=2))
    """
    first = axis.start(out_start)
    end = axis.start(out_stop - 1) + axis.extent
    lo = min(max(first, 0), axis.size)
    hi = min(max(end, lo), axis.size)
    local = AxisWindow(hi - lo, axis.kernel, axis.stride, lo - first, axis.dilation, out_stop - out_start)
    return lo, hi, local


def scatter_chunks(axis: AxisWindow, window_chunks: Sequence[int]) -> tuple[int, ...]:
    """Split the ``size`` cells that ``axis``'s windows are scattered onto into pieces that follow the windows' chunks.

    The piece of a chunk of windows runs from its first window's start (the
    first piece from cell 0) to the next piece's start (the last to ``size``);
    pieces that would be empty are left out.

    >>> scatter_chunks(AxisWindow(size=9, kernel=3, stride=2, pad=0, dilation=1, out=4), (2, 2))
    (4, 5)
    """
    return _pieces((axis.start(edge) for edge in _edges(window_chunks)), axis.size)


def scatter_span(axis: AxisWindow, cell_start: int, cell_stop: int) -> tuple[int, int, AxisWindow]:
    """Windows ``[lo, hi)`` that reach cells ``[cell_start, cell_stop)``, and their geometry over those cells alone.

    The first of them starts at or before ``cell_start`` (when stride exceeds the
    window, one that ends before it is taken, and contributes nothing), so the
    local :class:`AxisWindow`'s padding ``cell_start - start(lo)`` is never
    negative; what a window scatters outside the piece is dropped there and
    added in the piece that holds it.

    >>> scatter_span(AxisWindow(size=9, kernel=3, stride=2, pad=0, dilation=1, out=4), 4, 9)
    (1, 4, AxisWindow(size=5, kernel=3, stride=2, pad=2, dilation=1, out=3))
    """
    reaching = -(-(cell_start + axis.pad - axis.extent + 1) // axis.stride)  # first window ending at or after it
    starting = (cell_start + axis.pad) // axis.stride  # last window starting at or before it
    lo = min(max(min(reaching, starting), 0), axis.out - 1)
    hi = max(min((cell_stop - 1 + axis.pad) // axis.stride + 1, axis.out), lo + 1)
    local = AxisWindow(cell_stop - cell_start, axis.kernel, axis.stride, cell_start - axis.start(lo),
                       axis.dilation, hi - lo)
    return lo, hi, local


def bin_chunks(size: int, out: int, chunks: Sequence[int]) -> tuple[int, ...]:
    """Chunks of an axis of ``size`` cells, near ``chunks``, whose every boundary is one of ``out`` bins' boundaries.

    Bin ``i`` of PyTorch's adaptive pooling starts at ``floor(i*size/out)`` and
    ends at ``ceil((i+1)*size/out)``, so no bin straddles a cell ``i*size/out``
    that is a whole number, a multiple of ``size // gcd(size, out)``. Each chunk
    boundary moves to the nearest such cell (with ``gcd = 1`` the axis becomes
    one chunk). A chunk of ``c`` cells then holds ``c*out/size`` whole bins, and
    the bins of the chunk alone are the array's, shifted.

    >>> bin_chunks(12, 4, (4, 5, 3))
    (3, 6, 3)
    >>> bin_chunks(7, 3, (2, 2, 3))
    (7,)
    """
    step = size // math.gcd(size, out)
    return _pieces(((edge + step // 2) // step * step for edge in _edges(chunks)), size)
