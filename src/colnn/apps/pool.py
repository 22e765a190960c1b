"""``colnn pool``: a multiscale pyramid of an array larger than memory, with Dask.

``colnn pool INPUT OUTPUT --kernel K`` reads a ``.npy`` file or a Zarr array,
pools its spatial axes ``y`` and ``x`` (max or average) ``--levels`` times, and
writes a Zarr group whose arrays ``0`` (the input) to ``L`` (each the previous
level pooled once) carry OME-NGFF 0.4 ``multiscales`` metadata, so that image
viewers (napari, the OME-Zarr viewers) open it. Each level is computed chunk by
chunk by the Dask path of :mod:`colnn.ops` and written before the next one is
read back, so memory stays proportional to the chunk size; ``--scheduler``
sends the work to a ``dask.distributed`` cluster instead of the local threads.
Dask, distributed and zarr come with ``pip install "colnn[dask]"`` and are
imported only when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["register", "run", "multiscales_metadata", "default_axes", "build_pyramid"]

# OME-NGFF axis types by name; the spatial axes pooled are those the 2-D ops cover
# (add "z" here, with a 3-D op in POOLS, when 3-D pooling lands).
AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
POOLED_AXES = "yx"
POOLS = {"max": "max_pool2d", "avg": "avg_pool2d"}


def default_axes(ndim: int) -> str:
    """OME-NGFF's axis order for ``ndim`` dimensions: ``yx``, ``cyx``, ``tcyx``, ``tczyx``."""
    if not 2 <= ndim <= 5:
        raise ValueError(f"INPUT must have 2 to 5 axes, got {ndim}")
    return {2: "yx", 3: "cyx", 4: "tcyx", 5: "tczyx"}[ndim]


def check_axes(axes: str, ndim: int) -> str:
    """``axes`` (one letter per axis of the input, from ``tczyx``) validated against ``ndim``."""
    if len(axes) != ndim or len(set(axes)) != ndim or set(axes) - set(AXIS_TYPES) or not set(POOLED_AXES) <= set(axes):
        raise ValueError(
            f"--axes must name each of the input's {ndim} axes once with letters of 'tczyx', "
            f"including 'y' and 'x', got {axes!r}"
        )
    return axes


def multiscales_metadata(
    axes: str, levels: int, kernel: int, stride: int, padding: int, mode: str, name: str
) -> dict[str, Any]:
    """The OME-NGFF 0.4 ``multiscales`` attribute of a pyramid of ``levels + 1`` arrays ``0``..``levels``.

    Level ``l`` has scale ``stride**l`` along the pooled axes; its translation
    puts each cell at the centre of the level-0 cells its windows cover:
    ``t_l = t_(l-1) + scale_(l-1) * ((kernel-1)/2 - padding)``.
    """
    datasets = []
    scale, translation = 1.0, 0.0
    for level in range(levels + 1):
        if level:
            translation += scale * ((kernel - 1) / 2 - padding)
            scale *= stride
        pooled = [name_ in POOLED_AXES for name_ in axes]
        datasets.append({
            "path": str(level),
            "coordinateTransformations": [
                {"type": "scale", "scale": [scale if p else 1.0 for p in pooled]},
                {"type": "translation", "translation": [translation if p else 0.0 for p in pooled]},
            ],
        })
    return {
        "version": "0.4",
        "name": name,
        "axes": [{"name": letter, "type": AXIS_TYPES[letter]} for letter in axes],
        "datasets": datasets,
        "type": f"colnn.{POOLS[mode]}",
        "metadata": {"kernel_size": kernel, "stride": stride, "padding": padding},
    }


class NpyFile:
    """A ``.npy`` file as an array-like for ``dask.array.from_array``: opened (memory-mapped) per chunk.

    It pickles as its path, so a distributed worker reads the file itself
    instead of receiving the data through the scheduler.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        array = np.load(path, mmap_mode="r")
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.array(np.load(self.path, mmap_mode="r")[key])


def read_input(path: str, chunk: int) -> Any:
    """A Dask array of a ``.npy`` file (spatial chunks of ``chunk`` cells) or of a Zarr array (its own chunks)."""
    import dask.array as da

    if path.endswith(".npy"):
        source = NpyFile(path)
        chunks = tuple(1 if axis < source.ndim - 2 else chunk for axis in range(source.ndim))
        return da.from_array(source, chunks=chunks, asarray=True, name=f"npy-{Path(path).name}-{source.shape}")
    return da.from_zarr(path)


def _as_nchw(x: Any, axes: str) -> tuple[Any, tuple[int, ...], tuple[int, ...]]:
    """``x`` with its pooled axes last and the others folded into ``(N, C)``; what undoes it."""
    order = tuple(i for i, a in enumerate(axes) if a not in POOLED_AXES) + tuple(axes.index(a) for a in POOLED_AXES)
    moved = x.transpose(order)
    lead = moved.shape[:-2]
    batched = moved.reshape((int(np.prod(lead[:-1], dtype=np.int64)) if len(lead) > 1 else 1,
                             lead[-1] if lead else 1, *moved.shape[-2:]))
    return batched, order, lead


def _from_nchw(y: Any, order: tuple[int, ...], lead: tuple[int, ...]) -> Any:
    return y.reshape((*lead, *y.shape[-2:])).transpose(tuple(int(i) for i in np.argsort(order)))


def build_pyramid(
    source: Any, output: str, *, axes: str, kernel: int, stride: int, padding: int, ceil_mode: bool,
    mode: str, levels: int, chunk: int, compute: Any,
) -> list[tuple[int, ...]]:
    """Write ``source`` and ``levels`` pooled levels to the Zarr group ``output``; return each level's shape.

    ``compute(stores, description)`` runs the Dask graph that writes one level.
    """
    import dask.array as da
    import zarr

    from .. import ops

    pool = getattr(ops, POOLS[mode])
    group = zarr.open_group(output, mode="w", zarr_format=2)
    group.attrs["multiscales"] = [multiscales_metadata(axes, levels, kernel, stride, padding, mode, Path(output).stem)]
    shapes = []
    level_array = source
    for level in range(levels + 1):
        if level:
            batched, order, lead = _as_nchw(da.from_zarr(group[str(level - 1)]), axes)
            pooled = pool(batched, kernel, stride, padding, ceil_mode=ceil_mode)
            level_array = _from_nchw(pooled, order, lead)
        chunks = tuple(chunk if axes[axis] in POOLED_AXES else 1 for axis in range(level_array.ndim))
        target = group.create_array(str(level), shape=level_array.shape, chunks=chunks, dtype=level_array.dtype)
        compute(da.store(level_array.rechunk(chunks), target, lock=False, compute=False), f"level {level}")
        shapes.append(level_array.shape)
    return shapes


def _local_compute(stores: Any, description: str) -> None:
    from dask.diagnostics import ProgressBar

    print(description, flush=True)
    with ProgressBar():
        stores.compute(scheduler="threads")  # even if a distributed Client is the process's default


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive int, got {text}")
    return value


def _check_paths(source: Path, output: Path, overwrite: bool) -> None:
    """Refuse, before anything is read or written, what would lose data: an existing OUTPUT, or INPUT inside it."""
    if not source.exists():
        raise ValueError(f"INPUT {source}: no such file or Zarr array")
    if output.is_file():
        raise ValueError(f"OUTPUT {output} is a file; give a folder for the Zarr pyramid")
    resolved_output = output.resolve()
    if source.resolve() == resolved_output or resolved_output in source.resolve().parents:
        raise ValueError(f"INPUT {source} lies inside OUTPUT {output}, which would be replaced; write elsewhere")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise ValueError(f"OUTPUT {output} exists and is not empty; pass --overwrite to replace it")


def level_shapes(shape: tuple[int, ...], axes: str, *, kernel: int, stride: int, padding: int, ceil_mode: bool,
                 levels: int) -> list[tuple[int, ...]]:
    """The shape of every level, checked before anything is written (ValueError naming the level)."""
    from ..core.window import Window

    pooled = [axes.index(axis) for axis in POOLED_AXES]
    shapes = [tuple(shape)]
    for level in range(1, levels + 1):
        sizes = [shapes[-1][axis] for axis in pooled]
        try:
            window = Window.build(sizes, kernel, stride, padding, ceil_mode=ceil_mode, pooling=True,
                                  kernel_name="--kernel", stride_name="--stride", padding_name="--padding")
        except ValueError as error:
            raise ValueError(f"level {level} (from {tuple(sizes)} along {POOLED_AXES}): {error}") from None
        next_shape = list(shapes[-1])
        for axis, size in zip(pooled, window.out_size):
            next_shape[axis] = size
        shapes.append(tuple(next_shape))
    return shapes


def run(args: argparse.Namespace) -> int:
    """Run ``colnn pool``; returns 0, or 1 after a one-line error on stderr (nothing written)."""
    try:
        import dask  # noqa: F401
        import zarr  # noqa: F401
    except ImportError as error:
        raise SystemExit(f"colnn pool needs dask and zarr: pip install \"colnn[dask]\" ({error})") from None
    stride = args.stride or args.kernel
    try:
        _check_paths(args.input, args.output, args.overwrite)
        try:
            source = read_input(str(args.input), args.chunk)
        except Exception as error:  # numpy's and zarr's many ways of saying "not an array"
            raise ValueError(f"INPUT {args.input}: cannot be read as a .npy file or a Zarr array "
                             f"({type(error).__name__}: {error})") from None
        axes = check_axes(args.axes or default_axes(source.ndim), source.ndim)
        level_shapes(source.shape, axes, kernel=args.kernel, stride=stride, padding=args.padding,
                     ceil_mode=args.ceil_mode, levels=args.levels)
        return _write(args, source, axes, stride)
    except (ValueError, OSError) as error:
        print(f"colnn pool: error: {error}", file=sys.stderr)
        return 1


def _write(args: argparse.Namespace, source: Any, axes: str, stride: int) -> int:
    options = dict(axes=axes, kernel=args.kernel, stride=stride, padding=args.padding, ceil_mode=args.ceil_mode,
                   mode=args.mode, levels=args.levels, chunk=args.chunk)
    if args.scheduler:
        import distributed

        with distributed.Client(args.scheduler) as client:
            def cluster_compute(stores: Any, description: str) -> None:
                print(description, flush=True)
                future = client.compute(stores)
                distributed.progress(future)
                future.result()

            shapes = build_pyramid(source, str(args.output), compute=cluster_compute, **options)
    else:
        shapes = build_pyramid(source, str(args.output), compute=_local_compute, **options)
    for level, shape in enumerate(shapes):
        print(f"{args.output}/{level}: {shape}")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``pool`` sub-command."""
    pool = subparsers.add_parser(
        "pool", help="pool a .npy or Zarr array into a Zarr multiscale pyramid (Dask, larger than memory)",
        description="Read a .npy file or a Zarr array, pool its y and x axes --levels times, and write a Zarr "
                    "group with arrays 0 (the input) to L and OME-NGFF multiscales metadata. Needs "
                    "pip install \"colnn[dask]\".")
    pool.add_argument("input", type=Path, metavar="INPUT", help="a .npy file or a Zarr array")
    pool.add_argument("output", type=Path, metavar="OUTPUT",
                      help="the Zarr group to write (a new or empty folder, or --overwrite)")
    pool.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    pool.add_argument("--kernel", type=_positive_int, required=True, help="window size along y and x")
    pool.add_argument("--stride", type=_positive_int, help="window step; default: the kernel")
    pool.add_argument("--padding", type=int, default=0, help="padding at the border (<= kernel // 2); default 0")
    pool.add_argument("--ceil-mode", action="store_true", help="keep the last partial window of each axis")
    pool.add_argument("--mode", choices=sorted(POOLS), default="max", help="max or average pooling; default max")
    pool.add_argument("--levels", type=_positive_int, default=1, help="pooled levels after level 0; default 1")
    pool.add_argument("--axes", help="a letter of 'tczyx' per axis, e.g. 'cyx'; default by the number of axes")
    pool.add_argument("--chunk", type=_positive_int, default=1024,
                      help="chunk size along y and x of the output arrays (and of a .npy input); default 1024")
    pool.add_argument("--scheduler", metavar="ADDRESS",
                      help="a dask.distributed scheduler (tcp://host:port); default: local threads")
    pool.set_defaults(run=run)
