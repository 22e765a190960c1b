"""The ``colnn pool`` command: its flags, and a run that checks everything, writes, and sums up."""

from __future__ import annotations

import argparse
import contextlib
import math
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .methods import METHODS, compiled_means, pyramid
from .ngff import VERSIONS
from .plan import Plan, make_plan
from .source import InputUnreadable
from .writer import (
    CODECS,
    OutputChanged,
    OutputUnwritable,
    Terminated,
    check_replaceable,
    create_arrays,
    folder_bytes,
    peak_memory,
    staged,
    store_levels,
    terminable,
    uninterrupted,
)

__all__ = ["register", "run"]

SLAB_BLOCKS = 512  # level-0 blocks per Dask graph
TERMINATED = 143  # the shell's exit status for a process stopped by SIGTERM (128 + 15)


def run(args: argparse.Namespace) -> int:
    """Run ``colnn pool``: 0 after the pyramid is in place, or 1 after a one-line error (OUTPUT untouched).

    Ctrl-C propagates as KeyboardInterrupt (``colnn``'s entry point says
    "interrupted", exit 130) once the partial pyramid is removed; SIGTERM does
    the same cleanup, then says "terminated", exit 143.
    """
    try:
        with terminable():
            return _run(args)
    except Terminated:
        print("colnn pool: terminated", file=sys.stderr, flush=True)
        return TERMINATED


def _run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    try:
        _check_output_folder(args.output)
        if args.overwrite:
            check_replaceable(args.output)
        with uninterrupted():  # INPUT's Zarr metadata are read on Zarr's own thread
            plan = make_plan(args)
            slabs = _slabs(plan)
            first = _levels(plan, slabs[0])  # building the graph checks the ops' arguments too
    except (ValueError, OSError) as error:
        return _error(str(error))
    parts = ((slab.start, first if slab == slabs[0] else _levels(plan, slab)) for slab in slabs)
    totals = [math.prod(-(-size // block) for size, block in zip(shape, plan.layout.blocks(shape)))
              for shape in plan.shapes]
    try:
        with _client(plan.scheduler) as client, staged(plan.output, args.overwrite) as partial:
            with uninterrupted():
                targets = create_arrays(partial, plan.attributes, plan.layout, plan.shapes, first[0].dtype)
            store_levels(parts, targets, totals, client)
            written = folder_bytes(partial)
    except (SchedulerUnreachable, OutputUnwritable, OutputChanged) as error:  # changed since the checks
        return _error(str(error))
    except InputUnreadable as error:  # a damaged chunk of INPUT, a file cut short since the check
        return _error(f"{error}, nothing was written")
    except Exception as error:  # a read or write that failed midway (a damaged chunk, a full disk...)
        reason = str(error).splitlines()[0] if str(error) else ""
        return _error(f"writing {plan.output} failed, nothing was left behind ({type(error).__name__}: {reason})")
    for level, shape in enumerate(plan.shapes):
        print(f"{plan.output}/{level}: {shape}")
    print(_summary(plan, written, time.perf_counter() - started))
    return 0


def _slabs(plan: Plan) -> list[slice]:
    """Slabs along the output's axis 0, when it is not pooled, of about :data:`SLAB_BLOCKS` level-0 blocks each.

    Dask's graph takes memory in proportion to its tasks: one graph per slab
    keeps a 10 GiB volume under 512 MB, where one graph for all of it did not.
    """
    shape = plan.shapes[0]
    if 0 in plan.geometry.pooled:
        return [slice(0, shape[0])]
    blocks = plan.layout.blocks(shape)
    per_index = math.prod(-(-size // block) for size, block in zip(shape[1:], blocks[1:]))
    step = max(1, SLAB_BLOCKS // per_index) * blocks[0]
    return [slice(start, min(start + step, shape[0])) for start in range(0, shape[0], step)]


def _levels(plan: Plan, slab: slice) -> list[Any]:
    """The pyramid of the ``slab`` of level 0 (along axis 0) as lazy Dask arrays, in the output's axis order."""
    level0 = plan.source.to_dask(plan.read_chunks).transpose(plan.order)[slab]
    if not level0.dtype.isnative:  # a big-endian Zarr v2 array: pooled and written in native order
        level0 = level0.astype(level0.dtype.newbyteorder("="))

    def rechunk(array: Any) -> Any:
        # method="tasks": left to choose, Dask imports dask.distributed to look for a p2p client.
        return array.rechunk(plan.layout.blocks(array.shape), method="tasks")

    return pyramid(level0, plan.geometry, plan.method, len(plan.shapes) - 1, rechunk,
                   compiled=compiled_means(plan.method, math.prod(plan.shapes[0])))


URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def _local_path(text: str) -> Path:
    """INPUT's or OUTPUT's path; argparse's error for "" (which Path reads as ".") and for a URL."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path")
    if URL.match(text):
        raise argparse.ArgumentTypeError(f"URLs are not supported (local paths only), got {text!r}")
    return Path(text)


def _check_output_folder(output: Path) -> None:
    """OUTPUT's folder must be a folder: a file there reads, to Path, as a folder that "does not exist"."""
    for folder in output.absolute().parents:
        if folder.exists():
            if not folder.is_dir():
                raise ValueError(f"OUTPUT {output}: {folder} is a file, not a folder")
            return


class SchedulerUnreachable(ValueError):
    """``--scheduler`` named a cluster that cannot be reached."""


@contextlib.contextmanager
def _client(scheduler: str | None) -> Iterator[Any]:
    if scheduler is None:
        yield None
        return
    import distributed

    try:
        client = distributed.Client(scheduler, timeout="10s", set_as_default=False)
    except OSError as error:
        raise SchedulerUnreachable(f"--scheduler {scheduler}: cannot connect ({error})") from None
    with client:
        yield client


def _error(message: str) -> int:
    print(f"colnn pool: error: {message}", file=sys.stderr, flush=True)
    return 1


def _size(count: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"


def _summary(plan: Plan, written: int, seconds: float) -> str:
    """One line: what was written, its size on disk, the time and this process's peak memory."""
    peak = peak_memory()
    where = "" if plan.scheduler is None else " (this process; the workers' is on the dashboard)"
    memory = "" if peak is None else f", peak memory {_size(peak)}{where}"
    pooled = "".join(plan.axes[axis].name for axis in plan.geometry.pooled)
    return (f"colnn pool: {plan.output}: {len(plan.shapes)} levels ({plan.method} over {pooled}, OME-NGFF "
            f"{'0.4, Zarr v2' if plan.layout.zarr_format == 2 else '0.5, Zarr v3'}, {plan.layout.codec[0]}), "
            f"{_size(written)} written in {seconds:.1f} s{memory}")


def register(subparsers: Any) -> None:
    """Add the ``pool`` sub-command."""
    from ..options import positive_int

    pool = subparsers.add_parser(
        "pool", help="pool a .npy, Zarr array or OME-Zarr image into an OME-Zarr multiscale pyramid (Dask)",
        description="Read a .npy file, a Zarr array or an OME-Zarr image (its level 0), pool its space axes "
                    "--levels times, and write an OME-Zarr image (OME-NGFF 0.5 on Zarr v3, or 0.4 on Zarr v2) "
                    "with arrays 0 (the input) to L. Larger than memory: chunk by chunk, all levels in one "
                    "pass. Needs pip install \"colnn[dask]\".")
    pool.add_argument("input", type=_local_path, metavar="INPUT", help="a .npy file, a Zarr array or an OME-Zarr image")
    pool.add_argument("output", type=_local_path, metavar="OUTPUT",
                      help="the OME-Zarr folder to write (new, empty, or --overwrite)")
    pool.add_argument("--overwrite", action="store_true",
                      help="replace an existing OUTPUT, a Zarr group or array (or an empty folder), only once the "
                           "new pyramid is complete")
    pool.add_argument("--method", "--mode", dest="method", choices=METHODS, default="max",
                      help="max, avg (integers rounded half to even), min, nearest (a strided pick) or mode "
                           "(most frequent, for labels); default max")
    pool.add_argument("--kernel", required=True, metavar="K[,K...]",
                      help="window size, one for all pooled axes or one per letter of --pool-axes in its order "
                           "(as --stride, --padding, --chunk, --shard: --pool-axes xz --kernel 1,3 gives x 1, z 3)")
    pool.add_argument("--stride", metavar="S[,S...]", help="window step; default: the kernel")
    pool.add_argument("--padding", metavar="P[,P...]", help="padding at the border (<= kernel // 2); default 0")
    pool.add_argument("--ceil-mode", action="store_true", help="keep the last partial window of each axis")
    pool.add_argument("--levels", type=positive_int, default=1, help="pooled levels after level 0; default 1")
    pool.add_argument("--axes", help="INPUT's axes, a letter of 'tczyx' each (e.g. 'czyx'); default: from "
                                     "INPUT's metadata, else by the number of axes (yx, cyx, tcyx, tczyx)")
    pool.add_argument("--pool-axes", default="yx", metavar="AXES",
                      help="the space axes to pool: yx (default), zyx (3-D pooling), or any of them")
    pool.add_argument("--scale", metavar="S,S,...",
                      help="level 0's pixel size, per axis or space axis (--axes order); default: INPUT's own, else 1")
    pool.add_argument("--unit", help="the space axes' unit (e.g. micrometer); default: INPUT's own, else none")
    pool.add_argument("--ngff", choices=VERSIONS, default="0.5",
                      help="OME-NGFF version: 0.5 on Zarr v3 (default), or 0.4 on Zarr v2")
    pool.add_argument("--codec", default="zstd", metavar="NAME[:LEVEL]",
                      help=f"compression: {', '.join(CODECS)}; default zstd (level 0: zstd's default), as "
                           f"Zarr, ngff-zarr and ome-zarr-py")
    pool.add_argument("--chunk", metavar="C[,C...]",
                      help="chunk size per pooled axis (other axes: 1); default 1024 (128 when 3 axes are pooled), "
                           "the other space axes filled up to about 1 Mi cells a chunk")
    pool.add_argument("--shard", metavar="S[,S...]",
                      help="Zarr v3 shard size per pooled axis, a multiple of --chunk: one file per shard")
    pool.add_argument("--scheduler", metavar="ADDRESS",
                      help="a dask.distributed scheduler (tcp://host:port); default: this machine's cores")
    # Its compile notice comes from the methods that use compiled kernels (a usual pyramid uses none).
    pool.set_defaults(run=run, announces_compiles=True)
