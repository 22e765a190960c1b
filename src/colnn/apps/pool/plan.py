"""Everything ``colnn pool`` will do, checked before the first byte is written.

:func:`make_plan` reads INPUT's header or metadata (not its data), resolves
the axes, the windows, every level's shape, the storage layout and the
metadata, and checks OUTPUT and the scheduler. Any problem is one ValueError
naming the flag or path and its value; nothing has been created by then.
"""

from __future__ import annotations

import argparse
import math
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from ... import __version__
from ...core.checks import describe
from .methods import Geometry, check_method_dtype
from .ngff import AXIS_TYPES, SPACE_UNITS, Axis, check_ngff_axes, group_attributes, level_transforms, ngff_order
from .source import Source, open_source
from .writer import Layout, parse_codec

__all__ = ["Plan", "make_plan", "default_axes", "default_chunks", "level_shapes", "check_scheduler"]

DEFAULT_CHUNK = {1: 1024, 2: 1024, 3: 128}  # cells per pooled axis: about 1 Mi cells per chunk, as the peers do
CHUNK_CELLS = 1 << 20  # a default chunk's cells: the peers' 1024 x 1024, 1 MB (uint8) to 8 MB (float64)
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Plan:
    """A checked ``colnn pool`` run: what is read, how it is pooled, and how and where it is written."""

    source: Source
    input_axes: tuple[Axis, ...]
    order: tuple[int, ...]            # input axis of each output axis (OME-NGFF order)
    axes: tuple[Axis, ...]            # the output's axes
    geometry: Geometry                # over the output's axes
    method: str
    shapes: tuple[tuple[int, ...], ...]
    layout: Layout
    attributes: dict[str, Any]
    output: Path
    scheduler: str | None

    @property
    def read_chunks(self) -> tuple[int, ...]:
        """Level 0's Dask blocks in the input's axis order."""
        blocks = self.layout.blocks(self.shapes[0])
        return tuple(blocks[self.order.index(axis)] for axis in range(len(self.order)))


def default_axes(ndim: int) -> str:
    """OME-NGFF's axis order for ``ndim`` dimensions: ``yx``, ``cyx``, ``tcyx``, ``tczyx``."""
    if not 2 <= ndim <= 5:
        raise ValueError(f"INPUT must have 2 to 5 axes, got {ndim}")
    return {2: "yx", 3: "cyx", 4: "tcyx", 5: "tczyx"}[ndim]


def default_chunks(shape: Sequence[int], axes: Sequence[Axis], pooled: Sequence[int]) -> tuple[int, ...]:
    """Level 0's chunk shape when ``--chunk`` is not given: about :data:`CHUNK_CELLS` cells whatever is pooled.

    The pooled axes take :data:`DEFAULT_CHUNK` cells (Zarr cuts a chunk to its
    array); the other space axes then fill the chunk up to :data:`CHUNK_CELLS`, the
    innermost first (contiguous in a C-order file); time and channel axes
    take one index a chunk; if the chunk is still under half that, the
    pooled axes double. Pooling x alone thus writes 1024 x 1024 chunks, not
    rows of 1024 cells (a file of a few kB each).
    """
    chunks = [1] * len(shape)
    for axis in pooled:
        chunks[axis] = DEFAULT_CHUNK[len(pooled)]
    # Cells a chunk holds so far: a pooled axis shorter than its chunk holds only its size.
    cells = math.prod(min(chunks[axis], shape[axis]) for axis in pooled)
    for axis in reversed(range(len(shape))):
        if axis not in pooled and axes[axis].type == "space":
            chunks[axis] = max(1, min(shape[axis], CHUNK_CELLS // cells))
            cells *= chunks[axis]
    # Still small (short pooled axes: a thin volume pooled over zyx): the pooled axes double, innermost first.
    while cells * 2 <= CHUNK_CELLS:
        longer = [axis for axis in reversed(pooled) if chunks[axis] < shape[axis]]
        if not longer:
            break
        cells //= min(chunks[longer[0]], shape[longer[0]])
        chunks[longer[0]] *= 2
        cells *= min(chunks[longer[0]], shape[longer[0]])
    return tuple(chunks)


def _ints(text: str, flag: str, count: int, minimum: int) -> tuple[int, ...]:
    """``--flag N`` or ``--flag N,N,...`` (one per letter of ``--pool-axes``, as written), each at least ``minimum``."""
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) not in (1, count) or min(values, default=minimum - 1) < minimum:
        per_axis = "" if count == 1 else f", or {count} comma-separated (one per letter of --pool-axes, in its order)"
        allowed = f"one int >= {minimum}{per_axis}"
        raise ValueError(f"{flag} must be {allowed}, got {describe(text)}")
    return values * count if len(values) == 1 else values


def _resolve_axes(args: argparse.Namespace, source: Source) -> tuple[Axis, ...]:
    """INPUT's axes: from its metadata, else ``--axes``, else by its number of axes; ``--unit`` applied."""
    ndim = len(source.shape)
    if source.axes is not None and source.kind == "an OME-Zarr image":
        if args.axes and args.axes != "".join(axis.name for axis in source.axes):
            raise ValueError(f"--axes {args.axes!r}: INPUT is an OME-Zarr image whose axes are "
                             f"{[axis.name for axis in source.axes]}; leave --axes out")
        axes = source.axes
    else:
        letters = args.axes or ("".join(a.name for a in source.axes) if source.axes else default_axes(ndim))
        if len(letters) != ndim or len(set(letters)) != ndim or set(letters) - set(AXIS_TYPES):
            raise ValueError(f"--axes must name each of INPUT's {ndim} axes once with letters of 'tczyx', "
                             f"got {describe(letters)}")
        axes = tuple(Axis(letter, AXIS_TYPES[letter]) for letter in letters)
    if args.unit is not None:
        if args.unit not in SPACE_UNITS:
            raise ValueError(f"--unit must be an OME-NGFF space unit (e.g. micrometer, nanometer), got {args.unit!r}")
        axes = tuple(Axis(a.name, a.type, args.unit if a.type == "space" else a.unit) for a in axes)
    check_ngff_axes(axes, "--axes" if args.axes else "INPUT's axes")
    return axes


def _scale(args: argparse.Namespace, source: Source, axes: Sequence[Axis]) -> list[float]:
    """Level 0's pixel size per INPUT axis: ``--scale`` (per axis, or per space axis), INPUT's own, or 1."""
    if args.scale is None:
        return list(source.scale) if source.scale is not None else [1.0] * len(axes)
    try:
        values = [float(part) for part in args.scale.split(",")]
    except ValueError:
        values = []
    space = [index for index, axis in enumerate(axes) if axis.type == "space"]
    if not values or not all(np.isfinite(v) and v > 0 for v in values) or len(values) not in (len(axes), len(space)):
        counts = f"one per axis ({len(axes)})"
        if len(space) != len(axes):
            counts += f" or per space axis ({len(space)})"
        raise ValueError(f"--scale must be positive numbers, {counts}, got {args.scale!r}")
    if len(values) == len(axes):
        return values
    scale = list(source.scale) if source.scale is not None else [1.0] * len(axes)
    for index, value in zip(space, values):
        scale[index] = value
    return scale


def _check_dtype(source: Source, path: Path) -> None:
    dtype, shape = source.dtype, source.shape
    if dtype.kind not in "biuf" or dtype.fields is not None:
        raise ValueError(f"INPUT {path}: dtype {dtype} cannot be pooled; colnn pool takes bool, integer and "
                         f"floating arrays (shape {shape})")
    if 0 in shape:
        raise ValueError(f"INPUT {path}: an array of shape {shape} has no cells")


def level_shapes(shape: Sequence[int], geometry: Geometry, levels: int, pool_axes: str) -> list[tuple[int, ...]]:
    """The shape of every level (ValueError naming the first level that cannot be made)."""
    shapes = [tuple(shape)]
    for level in range(1, levels + 1):
        try:
            shapes.append(geometry.next_shape(shapes[-1]))
        except ValueError as error:
            sizes = tuple(shapes[-1][axis] for axis in geometry.pooled)
            if level == 1:  # the window's own arguments (a --padding too large, a --kernel larger than INPUT)
                raise ValueError(f"level 1 (from {sizes} along {pool_axes}): {error}") from None
            raise ValueError(f"--levels {levels}: INPUT allows at most {level - 1}; level {level} "
                             f"(from {sizes} along {pool_axes}): {error}") from None
    return shapes


def _check_paths(source: Path, output: Path, overwrite: bool) -> None:
    """Refuse, before anything is read or written, what would lose data or cannot be written."""
    if output.is_file():
        raise ValueError(f"OUTPUT {output} is a file; give a folder for the Zarr pyramid")
    parent = output.resolve().parent
    if not parent.is_dir():
        raise ValueError(f"OUTPUT {output}: its folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"OUTPUT {output}: its folder {parent} is not writable")
    inside, around = output.resolve(), source.resolve()
    if around == inside or inside in around.parents:
        raise ValueError(f"INPUT {source} lies inside OUTPUT {output}, which would be replaced; write elsewhere")
    if around in inside.parents:
        raise ValueError(f"OUTPUT {output} lies inside INPUT {source}; write elsewhere")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise ValueError(f"OUTPUT {output} exists and is not empty; pass --overwrite to replace it")


def check_scheduler(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse at once a ``--scheduler`` that nothing listens on (instead of Dask's 30 s of retries)."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme not in ("tcp", "tls"):
        return  # other transports (ucx, inproc) are left to distributed
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or not port:
        raise ValueError(f"--scheduler must be an address like tcp://host:port, got {describe(address)}")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as error:
        reason = "no answer" if isinstance(error, TimeoutError) else (error.strerror or type(error).__name__)
        raise ValueError(f"--scheduler {address}: cannot connect ({reason.lower()})") from None


def _description(method: str, geometry: Geometry, pool_axes: str) -> tuple[str, str, dict[str, Any]]:
    """The multiscales ``metadata``'s method name, description and keyword arguments."""
    count = len(geometry.pooled)
    kwargs: dict[str, Any] = {"kernel_size": list(geometry.kernel), "stride": list(geometry.stride),
                              "padding": list(geometry.padding), "ceil_mode": geometry.ceil_mode, "axes": pool_axes}
    if method == "avg":
        kwargs["count_include_pad"] = False
        return (f"colnn.avg_pool{count}d", "the mean of the level-0 cells inside the image that each cell "
                "covers, from float64 window sums carried from level 0, rounded once per level to the input's "
                "dtype (integers: half to even)", kwargs)
    words = {"max": (f"colnn.max_pool{count}d", "the maximum of each window"),
             "min": (f"colnn.max_pool{count}d", "the minimum of each window (a maximum of the reversed values)"),
             "nearest": ("colnn.apps.pool.methods", "the cell nearest each window's centre (a strided pick)"),
             "mode": ("colnn.apps.pool.methods.mode_of",
                      "the most frequent value of each window, ties to the smallest")}
    return (*words[method], kwargs)


def make_plan(args: argparse.Namespace) -> Plan:
    """Check every argument and INPUT's header against each other; ValueError (one line) on the first problem."""
    _check_paths(args.input, args.output, args.overwrite)
    source = open_source(args.input)
    _check_dtype(source, args.input)
    input_axes = _resolve_axes(args, source)
    scale = _scale(args, source, input_axes)
    translation = list(source.translation) if source.translation is not None else [0.0] * len(input_axes)
    order = ngff_order(input_axes)
    axes = tuple(input_axes[i] for i in order)
    names = [axis.name for axis in axes]
    pool_axes = args.pool_axes
    if (len(set(pool_axes)) != len(pool_axes) or not 1 <= len(pool_axes) <= 3
            or any(letter not in names or axes[names.index(letter)].type != "space" for letter in pool_axes)):
        space = "".join(a.name for a in axes if a.type == "space")
        raise ValueError(f"--pool-axes must name 1 to {min(3, len(space))} of INPUT's space axes {space!r} once each "
                         f"(INPUT's axes read as {''.join(names)!r}; --axes names them), got {describe(pool_axes)}")
    pooled = tuple(sorted(names.index(letter) for letter in pool_axes))
    written = pool_axes  # per-axis lists (--kernel, --stride, ...) follow the letters as written
    pool_axes = "".join(names[axis] for axis in pooled)  # the array's order, as the geometry and metadata hold them
    count = len(pooled)

    def per_axis(text: str, flag: str, minimum: int) -> tuple[int, ...]:
        """A per-pooled-axis list, entry i for the i-th letter of --pool-axes, in the array's order."""
        values = _ints(text, flag, count, minimum)
        return tuple(values[written.index(names[axis])] for axis in pooled)

    kernel = per_axis(args.kernel, "--kernel", 1)
    stride = kernel if args.stride is None else per_axis(args.stride, "--stride", 1)
    padding = (0,) * count if args.padding is None else per_axis(args.padding, "--padding", 0)
    geometry = Geometry(pooled, kernel, stride, padding, args.ceil_mode)
    check_method_dtype(args.method, source.dtype)
    shape = tuple(source.shape[i] for i in order)
    shapes = level_shapes(shape, geometry, args.levels, pool_axes)
    if args.chunk is None:
        chunks = list(default_chunks(shape, axes, pooled))
    else:
        chunks = [1] * len(shape)
        for axis, size in zip(pooled, per_axis(args.chunk, "--chunk", 1)):
            chunks[axis] = size
    chunk = tuple(chunks[axis] for axis in pooled)
    shards: tuple[int, ...] | None = None
    version = args.ngff
    if args.shard is not None:
        if version == "0.4":
            raise ValueError("--shard needs Zarr v3: OME-NGFF 0.5 (leave --ngff 0.4 out)")
        shard = per_axis(args.shard, "--shard", 1)
        if any(s % c for s, c in zip(shard, chunk)):
            chunk_text = ",".join(str(chunk[pool_axes.index(letter)]) for letter in written)
            raise ValueError(f"--shard {args.shard} must be a multiple of --chunk {chunk_text} along each axis")
        shard_sizes = list(chunks)
        for axis, size in zip(pooled, shard):
            shard_sizes[axis] = size
        shards = tuple(shard_sizes)
    layout = Layout(2 if version == "0.4" else 3, parse_codec(args.codec), tuple(chunks), shards, tuple(names),
                    wide_axis=pooled[-1], itemsize=source.dtype.itemsize)
    transforms = level_transforms([scale[i] for i in order], [translation[i] for i in order], pooled,
                                  geometry.stride, geometry.offsets(args.method), args.levels)
    method_name, description, kwargs = _description(args.method, geometry, pool_axes)
    attributes = group_attributes(version, axes, transforms, name=source.name, method=args.method, metadata={
        "description": f"colnn pool: {description}", "method": method_name, "version": __version__,
        "kwargs": kwargs})
    if args.scheduler:
        check_scheduler(args.scheduler)
    return Plan(source, input_axes, order, axes, geometry, args.method, tuple(shapes), layout, attributes,
                args.output, args.scheduler)
