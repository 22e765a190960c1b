"""The Dask path of the public ops: lazy, chunk by chunk, equal to the NumPy path.

:mod:`colnn.ops.dispatch` sends a ``dask.array.Array`` here; every public
function below takes the arguments of its NumPy namesake, bound to that
function's signature (one dict, defaults filled in), checks them with the same
helpers (on a zero-memory stand-in of the input's shape and dtype, so that
nothing is loaded), and returns a Dask array without computing anything.

Chunks along N (and C, for pooling and unfold) map straight through. Along
each spatial axis the output is split to follow the input's chunks
(:func:`colnn.core.halo.output_chunks`), and each output chunk is one task that
reads the input cells its windows need (:func:`colnn.core.halo.input_span`):
its own stride-aligned cells plus ``(kernel-1)*dilation + 1 - stride`` cells of
halo from the chunks after it, however small they are, so any chunking works
and none is refused. Padding lives only at the array's border: pooling runs
each task with the part of the padding its own windows reach; convolution,
unfold and im2col, whose padding is plain data (zeros or ``pad_value``), pad
the array once and run unpadded. A transposed convolution scatters its
input's cells onto its output (``map_windows(..., scatter=True)``); adaptive
pooling moves the chunk boundaries onto bin boundaries
(:func:`colnn.core.halo.bin_chunks`). Each task runs the NumPy path on one
thread (:func:`set_threads_per_task`), since the scheduler already runs a task
per core.
"""

from __future__ import annotations

import functools
import operator
import uuid
from itertools import product
from typing import Any, Callable, Sequence

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from ..core.checks import cast_pad_value, check_array, check_flag
from ..core.halo import (
    AxisWindow, bin_chunks, input_span, output_chunks, scatter_chunks, scatter_span, window_axes, with_axes,
)
from ..core.spatial import check_spatial_input
from ..core.window import Window
from ..kernels.threads import task_threads
from . import conv as conv_ops
from .adaptive import adaptive_avg_forward, adaptive_max_forward, adaptive_output_size
from . import pooling as pooling_ops
from .conv_nd import check_conv_weight, conv_nd_forward
from .conv_transpose import check_transpose_args, conv_transpose_forward
from .lp_pool import check_norm_type, lp_pool_forward
from .pooling_nd import avg_pool_nd_forward, max_pool_nd_forward
# colnn.ops.im2col is also the name of a function in the package: import from the module.
from .im2col import unfold as numpy_unfold

__all__ = [
    "max_pool1d", "max_pool2d", "max_pool3d",
    "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "lp_pool1d", "lp_pool2d", "lp_pool3d",
    "conv1d", "conv2d", "conv3d",
    "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "unfold",
    "im2col",
    "map_batches",
    "set_threads_per_task",
    "map_windows",
]

_threads_per_task = 1


def set_threads_per_task(n: int) -> int:
    """Threads colnn's kernels and BLAS use inside one Dask task (default 1); returns the old value.

    Raise it only when the scheduler runs fewer tasks than there are cores
    (e.g. a worker with one thread per process on a many-core machine).
    """
    global _threads_per_task
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    previous, _threads_per_task = _threads_per_task, int(n)
    return previous


def _stand_in(x: da.Array, dtype: Any = None) -> np.ndarray:
    """An ndarray with ``x``'s shape and dtype (or ``dtype``) that takes no memory, for the NumPy path's checks."""
    cell = np.zeros(1, dtype=x.dtype if dtype is None else dtype)
    return np.lib.stride_tricks.as_strided(cell, shape=x.shape, strides=(0,) * x.ndim)


def _spatial(input: da.Array, ndim: int, floating: bool = False) -> tuple[da.Array, np.ndarray, bool]:
    """The checks of an ``ndim``-d op: ``(x batched, its checked stand-in, whether it was unbatched)``."""
    checked, unbatched = check_spatial_input(_stand_in(input), "input", ndim, floating=floating)
    return (input[np.newaxis] if unbatched else input), checked, unbatched


def _unbatch(out: da.Array, unbatched: bool) -> da.Array:
    return out[0] if unbatched else out


def _take(arguments: dict[str, Any], names: str) -> list[Any]:
    """The values of the space-separated ``names`` in the bound ``arguments`` of a public function."""
    return [arguments[name] for name in names.split()]


def _in_task(function: Callable[..., Any], *args: Any) -> Any:
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
    block_function: Callable[[np.ndarray, Window, tuple[tuple[int, int], ...]], Any],
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

        def reads(depth: int, blocks: tuple, cuts: tuple) -> Any:
            """Nested lists, one level per spatial axis, of the keys of the input pieces read."""
            if depth == len(chosen):
                key = (read_name, n, c, *pieces, *blocks)
                layer[key] = (operator.getitem, (x.name, n, c, *blocks), (slice(None), slice(None), *cuts))
                return key
            return [reads(depth + 1, (*blocks, block), (*cuts, cut)) for block, cut in chosen[depth][2]]

        local = with_axes(window, [local_axis for _, local_axis, _ in chosen])
        layer[(name, n, c, *pieces)] = (
            _in_task, _run_block, block_function, reads(0, (), ()), local,
            tuple(out_range for out_range, _, _ in chosen), len(dtypes) > 1,
            *(constant.key for constant in constants),
        )
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[x, *constants])
    out_chunks = (
        x.chunks[0],
        tuple(channels(c) for c in x.chunks[1]),
        *(tuple(stop - start for (start, stop), _, _ in plan) for plan in plans),
    )
    return _split(da.Array(graph, name, out_chunks, dtype=dtypes[0]), dtypes)


def _split(combined: da.Array, dtypes: Sequence[np.dtype]) -> tuple[da.Array, ...]:
    """One Dask array per entry of ``dtypes``; with several, each block of ``combined`` is a tuple of them."""
    if len(dtypes) == 1:
        return (combined,)
    keys = [(combined.name, *index) for index in product(*(range(count) for count in combined.numblocks))]
    outputs = []
    for position, dtype in enumerate(dtypes):
        part_name = f"{combined.name}-{position}"
        part_layer = {(part_name, *key[1:]): (operator.getitem, key, position) for key in keys}
        part_graph = HighLevelGraph.from_collections(part_name, part_layer, dependencies=[combined])
        outputs.append(da.Array(part_graph, part_name, combined.chunks, dtype=dtype))
    return tuple(outputs)


def _run_block(
    block_function: Callable, parts: list, local: Window, pieces: tuple, several: bool, *constants: Any
) -> Any:
    result = block_function(_assemble(parts), local, pieces, *constants)
    return tuple(result) if several else result


def _global_window(window: Window, pieces: tuple[tuple[int, int], ...]) -> Window:
    """``window`` restricted to the output windows ``pieces``, in the whole array's coordinates."""
    return with_axes(window, [
        AxisWindow(axis.size, axis.kernel, axis.stride, axis.pad - start * axis.stride, axis.dilation, stop - start)
        for axis, (start, stop) in zip(window_axes(window), pieces)
    ])


# --- pooling ---------------------------------------------------------------


def _max_pool(ndim: int, arguments: dict[str, Any]) -> da.Array | tuple[da.Array, da.Array]:
    """:func:`colnn.max_pool1d/2d/3d` of a Dask array: a lazy Dask array (and int64 indices), bit for bit the same."""
    input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, strategy = _take(
        arguments, "input kernel_size stride padding dilation ceil_mode return_indices strategy")
    x, checked, unbatched = _spatial(input, ndim)
    window = pooling_ops.pool_window(checked, kernel_size, stride, padding, dilation, ceil_mode)
    pooling_ops.get_strategy(strategy)
    keep_offset = check_flag(return_indices, "return_indices")

    def pool(block: np.ndarray, local: Window, pieces: tuple) -> Any:
        out, window_offset = max_pool_nd_forward(block, local, strategy, keep_offset)
        if not keep_offset:
            return out
        # Offsets inside a window do not depend on the chunk; the flat index into the volume does.
        return out, _global_window(window, pieces).flat_indices(window_offset)

    if not keep_offset:
        (out,) = map_windows(x, window, pool, dtypes=[x.dtype])
        return _unbatch(out, unbatched)
    out, indices = map_windows(x, window, pool, dtypes=[x.dtype, np.dtype(np.int64)])
    return _unbatch(out, unbatched), _unbatch(indices, unbatched)


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


def _avg_pool(ndim: int, arguments: dict[str, Any]) -> da.Array:
    """:func:`colnn.avg_pool1d/2d/3d` of a Dask array: a lazy Dask array, equal to the NumPy path."""
    input, kernel_size, stride, padding, ceil_mode, count_include_pad, strategy = _take(
        arguments, "input kernel_size stride padding ceil_mode count_include_pad strategy")
    x, checked, unbatched = _spatial(input, ndim, floating=True)
    window = pooling_ops.pool_window(checked, kernel_size, stride, padding, 1, ceil_mode)
    # avg_pool1d has no divisor_override (as in PyTorch).
    override = pooling_ops.check_divisor(arguments.get("divisor_override"))
    divisors = _axis_divisors(window, check_flag(count_include_pad, "count_include_pad"))
    pooling_ops.get_strategy(strategy)

    def average(block: np.ndarray, local: Window, pieces: tuple) -> np.ndarray:
        if override is not None:
            divisor = np.full([stop - start for start, stop in pieces], override, dtype=np.int64)
        else:
            divisor = functools.reduce(np.multiply.outer, [
                axis_divisor[start:stop] for axis_divisor, (start, stop) in zip(divisors, pieces)])
        return avg_pool_nd_forward(block, local, divisor, strategy)

    (out,) = map_windows(x, window, average, dtypes=[x.dtype])
    return _unbatch(out, unbatched)


def _lp_pool(ndim: int, arguments: dict[str, Any]) -> da.Array:
    """:func:`colnn.lp_pool1d/2d/3d` of a Dask array: lazy, equal to the NumPy path to rounding.

    Without padding, each chunk's windows are whole windows of the array (a
    ``ceil_mode`` window clipped at the end is clipped the same in its chunk), so
    the NumPy forward runs per chunk unchanged.
    """
    input, norm_type, kernel_size, stride, ceil_mode, strategy = _take(
        arguments, "input norm_type kernel_size stride ceil_mode strategy")
    x, checked, unbatched = _spatial(input, ndim, floating=True)
    norm_type = check_norm_type(norm_type)
    window = pooling_ops.pool_window(checked, kernel_size, stride, 0, 1, ceil_mode)
    pooling_ops.get_strategy(strategy)

    def power_average(block: np.ndarray, local: Window, pieces: tuple) -> np.ndarray:
        return lp_pool_forward(block, norm_type, local, strategy)[0]

    (out,) = map_windows(x, window, power_average, dtypes=[x.dtype])
    return _unbatch(out, unbatched)


# --- adaptive pooling: bins rather than windows -------------------------------


def _map_bins(
    input: da.Array, output_size: Any, floating: bool, ndim: int, block_function: Callable, dtypes: Sequence[Any]
) -> tuple[tuple[da.Array, ...], bool]:
    """Adaptive pooling chunk by chunk: ``(outputs, unbatched)``.

    The spatial axes are rechunked by :func:`colnn.core.halo.bin_chunks`; ``block_function(block,
    out_size, starts)`` pools one block into ``out_size`` bins, ``starts`` being
    the block's first cell along each spatial axis.
    """
    x, checked, unbatched = _spatial(input, ndim, floating=floating)
    out_size = adaptive_output_size(output_size, checked.shape[2:])
    in_size = x.shape[2:]
    x = x.rechunk((*x.chunks[:2], *(
        bin_chunks(size, out, chunks) for size, out, chunks in zip(in_size, out_size, x.chunks[2:]))))
    out_chunks = (*x.chunks[:2], *(
        tuple(chunk * out // size for chunk in chunks) for size, out, chunks in zip(in_size, out_size, x.chunks[2:])))

    def pool(block: np.ndarray, block_info: dict | None = None) -> Any:
        starts = tuple(start for start, _ in block_info[0]["array-location"][2:])
        bins = tuple(cells * out // size for cells, out, size in zip(block.shape[2:], out_size, in_size))
        return _in_task(block_function, block, bins, starts)

    several = len(dtypes) > 1
    combined = x.map_blocks(pool, chunks=out_chunks, dtype=object if several else dtypes[0],
                            meta=np.empty((0,) * x.ndim, dtype=object if several else dtypes[0]))
    return _split(combined, [np.dtype(dtype) for dtype in dtypes]), unbatched


def _adaptive_avg(ndim: int, arguments: dict[str, Any]) -> da.Array:
    """:func:`colnn.adaptive_avg_pool1d/2d/3d` of a Dask array: lazy, equal to the NumPy path to rounding."""
    input, output_size = _take(arguments, "input output_size")

    def average(block: np.ndarray, bins: tuple, starts: tuple) -> np.ndarray:
        return adaptive_avg_forward(block, bins)

    (out,), unbatched = _map_bins(input, output_size, True, ndim, average, [input.dtype])
    return _unbatch(out, unbatched)


def _adaptive_max(ndim: int, arguments: dict[str, Any]) -> da.Array | tuple[da.Array, da.Array]:
    """:func:`colnn.adaptive_max_pool1d/2d/3d` of a Dask array: lazy, bit for bit the same (indices too)."""
    input, output_size, return_indices = _take(arguments, "input output_size return_indices")
    in_size = input.shape[-ndim:]

    def maximum(block: np.ndarray, bins: tuple, starts: tuple) -> tuple[np.ndarray, np.ndarray]:
        out, block_flat = adaptive_max_forward(block, bins)
        # Indices into the block's volume, moved into the whole array's.
        coordinates = np.unravel_index(block_flat, block.shape[2:])
        flat = np.ravel_multi_index([cell + start for cell, start in zip(coordinates, starts)], in_size)
        return out, flat.astype(np.int64, copy=False)

    (out, indices), unbatched = _map_bins(input, output_size, False, ndim, maximum, [input.dtype, np.int64])
    if not return_indices:
        return _unbatch(out, unbatched)
    return _unbatch(out, unbatched), _unbatch(indices, unbatched)


# --- convolution, unfold and im2col: padding is data --------------------------


def _pad_once(x: da.Array, window: Window, pad_value: Any) -> tuple[da.Array, Window]:
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


def _unfold_blocks(x: da.Array, window: Window, pad_value: Any, strategy: str | None) -> da.Array:
    """``(N, C*kh*kw, out_h, out_w)``: each window's cells, columns ordered (c, ky, kx)."""
    x, padded = _pad_once(x, window, pad_value)

    def cells(block: np.ndarray, local: Window, pieces: tuple) -> np.ndarray:
        blocks = numpy_unfold(
            block, (local.kernel_h, local.kernel_w), (local.dilation_h, local.dilation_w), 0,
            (local.stride_h, local.stride_w), strategy=strategy,
        )
        return blocks.reshape(*blocks.shape[:2], local.out_h, local.out_w)

    (out,) = map_windows(x, padded, cells, dtypes=[x.dtype], channels=lambda c: c * window.kernel_area)
    return out


def unfold(arguments: dict[str, Any]) -> da.Array:
    """:func:`colnn.unfold` of a Dask array: ``(N, C*kh*kw, L)`` lazily, bit for bit the same."""
    input, kernel_size, dilation, padding, stride, strategy = _take(
        arguments, "input kernel_size dilation padding stride strategy")
    x, _, unbatched = _spatial(input, 2)
    window = Window.build(x.shape[2:], kernel_size, stride, padding, dilation)
    blocks = _unfold_blocks(x, window, 0, strategy)
    blocks = blocks.reshape(*blocks.shape[:2], window.out_h * window.out_w)
    return _unbatch(blocks, unbatched)


def im2col(arguments: dict[str, Any]) -> da.Array:
    """:func:`colnn.im2col` of a Dask array: ``(N*out_h*out_w, C*filter_h*filter_w)`` lazily, bit for bit the same."""
    input_data, filter_h, filter_w, stride, pad, dilation, pad_value, strategy = _take(
        arguments, "input_data filter_h filter_w stride pad dilation pad_value strategy")
    checked = check_array(_stand_in(input_data), "input_data", ndims=(4,))
    window = Window.build(
        checked.shape[2:], (filter_h, filter_w), stride, pad, dilation,
        kernel_name="(filter_h, filter_w)", padding_name="pad",
    )
    pad_value = cast_pad_value(pad_value, checked.dtype)
    blocks = _unfold_blocks(input_data, window, pad_value, strategy)
    rows = blocks.transpose(0, 2, 3, 1)
    return rows.reshape(-1, rows.shape[3])


def _conv(ndim: int, arguments: dict[str, Any]) -> da.Array:
    """:func:`colnn.conv1d/2d/3d` of a Dask array with in-memory weights: lazy, equal to the NumPy path to rounding.

    The weights enter the graph once, as one key, so a distributed worker
    receives them once whatever the number of chunks. Channels are gathered into
    one chunk (each output channel reads all of them).
    """
    input, weight, bias, stride, padding, dilation, groups, strategy = _take(
        arguments, "input weight bias stride padding dilation groups strategy")
    x, checked, unbatched = _spatial(input, ndim, floating=True)
    weight, bias, groups = check_conv_weight(weight, bias, groups, ndim, x.shape[1])
    dtype = np.result_type(checked, weight, *(() if bias is None else (bias,)))
    weight = weight.astype(dtype, copy=False)
    bias = None if bias is None else bias.astype(dtype, copy=False)
    window = conv_ops.conv_window(x.shape[2:], weight.shape[2:], stride, padding, dilation)
    x, padded = _pad_once(x.rechunk({1: -1}), window, 0)
    parameters = dask.delayed((weight, bias), pure=True)

    def convolve(block: np.ndarray, local: Window, pieces: tuple, weights: tuple) -> np.ndarray:
        return conv_nd_forward(block.astype(dtype, copy=False), *weights, local, groups, strategy)[0]

    (out,) = map_windows(
        x, padded, convolve, dtypes=[dtype], channels=lambda c: weight.shape[0], constants=[parameters]
    )
    return _unbatch(out, unbatched)


def _conv_transpose(ndim: int, arguments: dict[str, Any]) -> da.Array:
    """:func:`colnn.conv_transpose1d/2d/3d` of a Dask array with in-memory weights: lazy, equal to rounding.

    Each output chunk follows a chunk of the input and reads the input cells
    whose windows reach it (its own and a halo from the chunks before it);
    channels are gathered into one chunk, the weights are one key of the graph.
    """
    input, weight, bias, stride, padding, output_padding, groups, dilation, strategy = _take(
        arguments, "input weight bias stride padding output_padding groups dilation strategy")
    # The checks cast the input to the common dtype: a stand-in of that dtype already costs no copy.
    dtype = input.dtype
    if dtype.kind == "f":
        try:
            dtype = np.result_type(dtype, *(np.asarray(array) for array in (weight, bias) if array is not None))
        except TypeError:
            pass  # the checks raise it, naming the argument
    checked, weight, bias, groups, window, unbatched = check_transpose_args(
        ndim, _stand_in(input, dtype), weight, bias, stride, padding, output_padding, groups, dilation)
    x = (input[np.newaxis] if unbatched else input).rechunk({1: -1})
    parameters = dask.delayed((weight, bias), pure=True)

    def scatter(block: np.ndarray, local: Window, pieces: tuple, weights: tuple) -> np.ndarray:
        return conv_transpose_forward(block.astype(checked.dtype, copy=False), *weights, local, groups, strategy)

    (out,) = map_windows(x, window, scatter, dtypes=[checked.dtype], channels=lambda c: weight.shape[1] * groups,
                         constants=[parameters], scatter=True)
    return _unbatch(out, unbatched)


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
    x = x.rechunk({axis: -1 for axis in range(1, x.ndim)})
    probe = np.asarray(function(np.zeros((1, *x.shape[1:]), dtype=x.dtype)))
    model = dask.delayed(function, pure=False)
    name = f"colnn-{getattr(function, '__name__', 'batches')}-{tokenize(x)}-{uuid.uuid4().hex[:8]}"
    tail = (0,) * (probe.ndim - 1)
    layer = {
        (name, index, *tail): (_in_task, _call, model.key, (x.name, index, *(0,) * (x.ndim - 1)))
        for index in range(len(x.chunks[0]))
    }
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[x, model])
    return da.Array(graph, name, (x.chunks[0], *((size,) for size in probe.shape[1:])), dtype=probe.dtype)


# The dispatcher calls the namesake of each public function: one per number of spatial axes.
for _ndim in (1, 2, 3):
    for _family, _function in (
        ("max_pool", _max_pool), ("avg_pool", _avg_pool), ("lp_pool", _lp_pool),
        ("adaptive_max_pool", _adaptive_max), ("adaptive_avg_pool", _adaptive_avg),
        ("conv", _conv), ("conv_transpose", _conv_transpose),
    ):
        globals()[f"{_family}{_ndim}d"] = functools.partial(_function, _ndim)
