"""The Dask graph every lazy op is built on: windows with halos, chunk by chunk; batches through a model.

:func:`map_windows` applies a windowed op to ``(N, C, *spatial)`` chunk by
chunk. Chunks along N (and C, where the op keeps channels apart) map straight
through. Along each spatial axis the output is split to follow the input's
chunks (:func:`colnn.core.halo.output_chunks`), and each output chunk is one
task that reads the input cells its windows need
(:func:`colnn.core.halo.input_span`): its own stride-aligned cells plus
``(kernel-1)*dilation + 1 - stride`` cells of halo from the chunks after it,
however small they are, so any chunking works and none is refused. Padding
lives only at the array's border. With ``scatter=True`` the windows run the
other way (a transposed convolution, fold): the input's cells are scattered
onto the output, and each output chunk reads the windows that reach it.

:func:`map_batches` runs a function of a batch (a network's ``predict``, a
layer's forward) over each chunk of samples. Each task runs colnn's kernels on
one thread (:func:`set_threads_per_task`), since the scheduler already runs a
task per core. Nothing here computes anything: every function returns a lazy
Dask array.
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Callable, Sequence
from itertools import product
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from ...core.checks import describe
from ...core.halo import AxisWindow, input_span, output_chunks, scatter_chunks, scatter_span, window_axes, with_axes
from ...core.window import Window
from ...kernels.threads import task_threads

__all__ = [
    "set_threads_per_task",
    "in_task",
    "map_windows",
    "split",
    "global_window",
    "pad_once",
    "map_batches",
    "unbatch",
]

_threads_per_task = 1


def set_threads_per_task(n: int) -> int:
    """Threads colnn's kernels and BLAS use inside one Dask task (default 1); returns the old value.

    Raise it only when the scheduler runs fewer tasks than there are cores
    (e.g. a worker with one thread per process on a many-core machine).
    """
    global _threads_per_task
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive int, got {describe(n)}")
    previous, _threads_per_task = _threads_per_task, int(n)
    return previous


def in_task(function: Callable[..., Any], *args: Any) -> Any:
    with task_threads(_threads_per_task):
        return function(*args)


def _assemble(parts: Any, axis: int = 2) -> np.ndarray:
    """Join the input pieces of one task, nested one list per spatial axis, into one ``(n, c, ...)`` block."""
    if not isinstance(parts, list):
        return parts
    return np.concatenate([_assemble(part, axis + 1) for part in parts], axis=axis)


def _spatial_plan(
    axis: AxisWindow, input_chunks: Sequence[int], scatter: bool = False
) -> list[tuple[tuple[int, int], AxisWindow, list]]:
    """Per output piece along one axis: its range, its local geometry and the input pieces it reads.

    Input pieces are ``(input block index, slice inside that block)``. The
    range is of windows, or with ``scatter`` of the cells the windows (the
    input's cells) are scattered onto.
    """
    chunks, span = (scatter_chunks, scatter_span) if scatter else (output_chunks, input_span)
    edges = np.cumsum((0, *input_chunks))
    plan = []
    out_start = 0
    for count in chunks(axis, input_chunks):
        lo, hi, local = span(axis, out_start, out_start + count)
        reads = [
            (block, slice(max(lo, edges[block]) - edges[block], min(hi, edges[block + 1]) - edges[block]))
            for block in range(len(input_chunks))
            if edges[block] < hi and edges[block + 1] > lo
        ]
        plan.append(((out_start, out_start + count), local, reads))
        out_start += count
    return plan


def map_windows(
    x: da.Array,
    window: Window,
    block_function: Callable[..., Any],  # (block, local window, pieces, *constants)
    *,
    dtypes: Sequence[np.dtype],
    channels: Callable[[int], int] = lambda c: c,
    constants: Sequence[Any] = (),
    scatter: bool = False,
) -> tuple[da.Array, ...]:
    """Apply a windowed op to ``x`` ``(N, C, *spatial)`` chunk by chunk, with halos (any number of spatial axes).

    ``block_function(block, local_window, pieces)`` gets the input cells of one
    output chunk, the window geometry over exactly those cells, and the output
    windows ``[start, stop)`` it computes along each spatial axis; it returns
    one array ``(n, channels(c), *out_spatial)`` per entry of ``dtypes`` (a
    tuple if there are several). Input chunks of ``c`` channels give output
    chunks of ``channels(c)``. ``constants`` (``dask.delayed`` objects, e.g.
    weights) are passed as further arguments: each is one key of the graph,
    sent once to each worker that needs it.

    With ``scatter`` the windows are ``x``'s cells, scattered onto an output of
    ``window.in_size`` (a transposed convolution): the pieces passed on are cell
    ranges of that output, and the local window runs the windows that reach them.
    """
    plans = [_spatial_plan(axis, chunks, scatter) for axis, chunks in zip(window_axes(window), x.chunks[2:])]
    # The block function is a closure over the op's arguments, which tokenize cannot see: a fresh name.
    name = f"colnn-{block_function.__name__}-{tokenize(x, window)}-{uuid.uuid4().hex[:8]}"
    read_name = f"{name}-read"
    layer: dict = {}
    for n, c, *pieces in product(range(len(x.chunks[0])), range(len(x.chunks[1])),
                                 *(range(len(plan)) for plan in plans)):
        chosen = [plan[index] for plan, index in zip(plans, pieces)]
        reads = _read_keys(layer, (read_name, n, c, *pieces), (x.name, n, c),
                           [axis_reads for _, _, axis_reads in chosen])
        local = with_axes(window, [local_axis for _, local_axis, _ in chosen])
        layer[(name, n, c, *pieces)] = (
            in_task, _run_block, block_function, reads, local,
            tuple(out_range for out_range, _, _ in chosen), len(dtypes) > 1,
            *(constant.key for constant in constants),
        )
    # ignore: dask's DaskCollection protocol rejects dask's own Array (its __dask_scheduler__).
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[x, *constants])  # type: ignore[list-item]
    out_chunks = (
        x.chunks[0],
        tuple(channels(c) for c in x.chunks[1]),
        *(tuple(stop - start for (start, stop), _, _ in plan) for plan in plans),
    )
    return split(da.Array(graph, name, out_chunks, dtype=dtypes[0]), dtypes)


def _read_keys(layer: dict, read_key: tuple, source_key: tuple, axis_reads: Sequence[Sequence[tuple[int, slice]]],
               blocks: tuple = (), cuts: tuple = ()) -> Any:
    """Nested lists, one level per spatial axis, of the keys of the input pieces read (each read added to ``layer``).

    ``axis_reads`` gives, per spatial axis, the ``(input block, cut)`` pairs one output chunk reads; ``blocks`` and
    ``cuts`` are those chosen on the axes above the current one.
    """
    if len(blocks) == len(axis_reads):
        key = (*read_key, *blocks)
        layer[key] = (operator.getitem, (*source_key, *blocks), (slice(None), slice(None), *cuts))
        return key
    return [_read_keys(layer, read_key, source_key, axis_reads, (*blocks, block), (*cuts, cut))
            for block, cut in axis_reads[len(blocks)]]


def split(combined: da.Array, dtypes: Sequence[np.dtype]) -> tuple[da.Array, ...]:
    """One Dask array per entry of ``dtypes``; with several, each block of ``combined`` is a tuple of them."""
    if len(dtypes) == 1:
        return (combined,)
    keys = [(combined.name, *index) for index in product(*(range(count) for count in combined.numblocks))]
    outputs = []
    for position, dtype in enumerate(dtypes):
        part_name = f"{combined.name}-{position}"
        part_layer: dict = {(part_name, *key[1:]): (operator.getitem, key, position) for key in keys}
        # ignore: dask's DaskCollection protocol rejects dask's own Array (its __dask_scheduler__).
        part_graph = HighLevelGraph.from_collections(
            part_name, part_layer, dependencies=[combined])  # type: ignore[list-item]
        outputs.append(da.Array(part_graph, part_name, combined.chunks, dtype=dtype))
    return tuple(outputs)


def _run_block(
    block_function: Callable, parts: list, local: Window, pieces: tuple, several: bool, *constants: Any
) -> Any:
    result = block_function(_assemble(parts), local, pieces, *constants)
    return tuple(result) if several else result


def global_window(window: Window, pieces: tuple[tuple[int, int], ...]) -> Window:
    """``window`` restricted to the output windows ``pieces``, in the whole array's coordinates."""
    return with_axes(window, [
        AxisWindow(axis.size, axis.kernel, axis.stride, axis.pad - start * axis.stride, axis.dilation, stop - start)
        for axis, (start, stop) in zip(window_axes(window), pieces)
    ])


def pad_once(x: da.Array, window: Window, pad_value: Any) -> tuple[da.Array, Window]:
    """Pad ``x`` at the array's border as ``window`` does, and the same windows over the padded array."""
    widths = ((0, 0), (0, 0), *((axis.pad, axis.pad_after) for axis in window_axes(window)))
    if any(before or after for before, after in widths):
        # The border chunks absorb the padding, rather than it becoming chunks of its own.
        chunks = [list(sizes) for sizes in x.chunks]
        for sizes, (before, after) in zip(chunks, widths):
            sizes[0] += before
            sizes[-1] += after
        x = da.pad(x, widths, mode="constant", constant_values=pad_value).rechunk(tuple(map(tuple, chunks)))
    axes = [
        AxisWindow(size, axis.kernel, axis.stride, 0, axis.dilation, axis.out)
        for size, axis in zip(x.shape[2:], window_axes(window))
    ]
    return x, with_axes(window, axes)


# --- whole models over batches -------------------------------------------------


def _call(function: Callable[[np.ndarray], np.ndarray], batch: np.ndarray) -> np.ndarray:
    return function(batch)


def map_batches(x: da.Array, function: Callable[[np.ndarray], np.ndarray]) -> da.Array:
    """``function`` (e.g. a network's ``predict``) applied to each chunk of samples of ``x``, lazily.

    ``x`` is ``(N, ...)``, chunked along N (other axes are gathered into one
    chunk); ``function`` maps ``(n, ...)`` to ``(n, ...)`` and is run once here on
    one zero sample to learn its output's shape and dtype. It enters the graph as
    one key, so its parameters travel once to each worker, not once per chunk.
    """
    x = x.rechunk(dict.fromkeys(range(1, x.ndim), -1))
    probe = np.asarray(function(np.zeros((1, *x.shape[1:]), dtype=x.dtype)))
    model = dask.delayed(function, pure=False)
    name = f"colnn-{getattr(function, '__name__', 'batches')}-{tokenize(x)}-{uuid.uuid4().hex[:8]}"
    tail = (0,) * (probe.ndim - 1)
    layer: dict = {
        (name, index, *tail): (in_task, _call, model.key, (x.name, index, *(0,) * (x.ndim - 1)))
        for index in range(len(x.chunks[0]))
    }
    # ignore: dask's DaskCollection protocol rejects dask's own Array (its __dask_scheduler__).
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[x, model])  # type: ignore[list-item]
    return da.Array(graph, name, (x.chunks[0], *((size,) for size in probe.shape[1:])), dtype=probe.dtype)




def unbatch(out: da.Array, unbatched: bool) -> da.Array:
    """``out[0]`` for an input that came without a batch axis."""
    return out[0] if unbatched else out
