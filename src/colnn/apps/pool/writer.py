"""Writing the pyramid: Zarr arrays with their codec and shards, every level in one Dask computation,
a progress bar per level, and the whole folder put in place only once it is complete.

All levels are computed in one pass over level 0: each level is pooled from
the chunks of the level before while they are in memory, and written as soon
as its own chunks are whole, so nothing is read back from disk and memory
holds a few chunks per level, whatever the input's size. Each Dask block is
one Zarr chunk, or with ``--shard`` one shard, so no two tasks write the same
file. The pyramid is written into a hidden folder beside OUTPUT and renamed
onto it at the end (an OUTPUT it replaces is moved away first and deleted
last): a failure, Ctrl-C or SIGTERM at any point leaves OUTPUT as it was,
and no partial folder behind; the folder of a run killed outright (SIGKILL)
is removed by the next run that writes the same OUTPUT.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ...core.checks import describe

__all__ = ["CODECS", "parse_codec", "Layout", "create_arrays", "store_levels", "uninterrupted", "terminable",
           "Terminated", "staged", "OutputUnwritable", "check_replaceable", "folder_bytes"]

# name -> (default level, lowest, highest); zstd's level 0 is zstd's own default (3), as in Zarr.
CODECS = {"zstd": (0, -131072, 22), "blosc-zstd": (5, 0, 9), "blosc-lz4": (5, 0, 9), "gzip": (6, 0, 9),
          "none": (0, 0, 0)}


def parse_codec(text: str) -> tuple[str, int]:
    """``--codec NAME[:LEVEL]`` as ``(name, level)``; ValueError naming the flag."""
    name, _, level_text = text.partition(":")
    if name not in CODECS:
        raise ValueError(f"--codec must be one of {', '.join(CODECS)} (optionally NAME:LEVEL), got {describe(text)}")
    default, lowest, highest = CODECS[name]
    try:
        level = int(level_text) if level_text else default
    except ValueError:
        level = None
    if level is None or not lowest <= level <= highest or (name == "none" and level_text):
        raise ValueError(f"--codec {name}: the level must be an int from {lowest} to {highest}, got {describe(text)}")
    return name, level


def _compressors(codec: tuple[str, int], zarr_format: int) -> Any:
    """Zarr's ``compressors`` for ``codec``: a list, or for no compression None (Zarr v2 refuses an empty list)."""
    name, level = codec
    if name == "none":
        return None
    if zarr_format == 2:
        import numcodecs

        if name == "zstd":
            return [numcodecs.Zstd(level=level)]
        if name == "gzip":
            return [numcodecs.GZip(level=level)]
        return [numcodecs.Blosc(cname=name.split("-")[1], clevel=level, shuffle=numcodecs.Blosc.SHUFFLE)]
    from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

    if name == "zstd":
        return [ZstdCodec(level=level)]
    if name == "gzip":
        return [GzipCodec(level=level)]
    cname: Any = name.split("-")[1]  # "lz4" or "zstd", one of Zarr's literal names
    return [BloscCodec(cname=cname, clevel=level)]  # byte shuffle chosen from the dtype by Zarr


BLOCK_BYTES = 8 << 20  # a Dask task's share: a few chunks, so that per-task costs stay small beside the codec's


@dataclass(frozen=True)
class Layout:
    """How the levels are stored: Zarr format, codec, chunk and shard shapes (full, per axis), axis names.

    ``wide_axis`` is the axis along which a Dask block spans several chunks
    (the last pooled axis: contiguous in a C-order ``.npy``), up to
    :data:`BLOCK_BYTES` of ``itemsize``-byte cells; with shards a block is one shard.
    """

    zarr_format: Literal[2, 3]
    codec: tuple[str, int]
    chunks: tuple[int, ...]
    shards: tuple[int, ...] | None
    dimension_names: tuple[str, ...]
    wide_axis: int
    itemsize: int

    def blocks(self, shape: Sequence[int]) -> tuple[int, ...]:
        """The Dask blocks of a level of ``shape``: whole chunks (or one shard), clipped to the level."""
        block = list(self.shards or self.chunks)
        if self.shards is None:
            chunk_bytes = int(np.prod(self.chunks, dtype=np.int64)) * self.itemsize
            block[self.wide_axis] *= max(1, BLOCK_BYTES // chunk_bytes)
        return tuple(min(b, size) for b, size in zip(block, shape))


def create_arrays(path: Path, attributes: dict[str, Any], layout: Layout, shapes: Sequence[tuple[int, ...]],
                  dtype: np.dtype) -> list[Any]:
    """A new Zarr group at ``path`` with ``attributes`` and one empty array per level (``"0"``, ``"1"``, ...)."""
    import zarr

    group = zarr.open_group(str(path), mode="w-", zarr_format=layout.zarr_format)
    group.attrs.update(attributes)
    arrays = []
    for level, shape in enumerate(shapes):
        options: dict[str, Any] = dict(
            shape=shape, dtype=dtype, chunks=tuple(min(c, s) for c, s in zip(layout.chunks, shape)),
            compressors=_compressors(layout.codec, layout.zarr_format), fill_value=np.zeros((), dtype)[()],
            # Every chunk is written whole: checking each one for "all fill value" cost 15% of the time.
            config={"write_empty_chunks": True},
        )
        if layout.zarr_format == 2:
            options["chunk_key_encoding"] = {"name": "v2", "separator": "/"}  # OME-NGFF 0.4 asks for "/"
        else:
            options["dimension_names"] = layout.dimension_names
            if layout.shards is not None:
                blocks = layout.blocks(shape)
                options["shards"] = tuple(-(-b // c) * c for b, c in zip(blocks, options["chunks"]))
        arrays.append(group.create_array(str(level), **options))
    return arrays


# The bars of the local run, by run and level: a task in this process finds its level's bar here. A
# distributed worker finds none (its process has its own, empty, dict); its progress comes from its futures.
_LOCAL_BARS: dict[str, Any] = {}


def _store_block(block: np.ndarray, target: Any, bar: str, offset: int, block_info: dict | None = None) -> np.ndarray:
    assert block_info is not None  # Dask passes it to a function that takes it
    location = block_info[0]["array-location"]
    target[(slice(location[0][0] + offset, location[0][1] + offset),
            *(slice(start, stop) for start, stop in location[1:]))] = block
    if bar in _LOCAL_BARS:
        _LOCAL_BARS[bar].update(1)
    return np.zeros((1,) * block.ndim, np.uint8)


def _stores(levels: Sequence[Any], targets: Sequence[Any], run: str, offset: int) -> list[Any]:
    """Per level, a Dask array of one tiny block per written block (the levels start at ``offset`` along axis 0)."""
    from dask.base import tokenize

    stores = []
    for level, (array, target) in enumerate(zip(levels, targets)):
        stores.append(array.map_blocks(
            _store_block, target, f"{run}-{level}", offset, dtype=np.uint8,
            chunks=tuple((1,) * len(c) for c in array.chunks),
            name=f"colnn-pool-level{level}-{tokenize(array, str(target.store_path), offset)}"))
    return stores


def _bars(totals: Sequence[int]) -> list[Any]:
    """A tqdm bar per level on a terminal; none when stderr is not one (a log, a pipe) or tqdm is absent."""
    if not sys.stderr.isatty():
        return []
    try:
        from tqdm import tqdm
    except ImportError:
        return []
    return [tqdm(total=total, desc=f"level {level}", unit="block", file=sys.stderr, leave=True, dynamic_ncols=True)
            for level, total in enumerate(totals)]


def store_levels(parts: Iterable[tuple[int, Sequence[Any]]], targets: Sequence[Any], totals: Sequence[int],
                 client: Any = None, threads: int | None = None) -> None:
    """Compute every level and write it into its Zarr array, one Dask computation per part.

    ``parts`` gives, part after part, an offset along axis 0 and the levels of
    the slab that starts there (one part: the whole pyramid); a graph per slab
    keeps Dask's own memory, which grows with the number of tasks, bounded.
    ``totals`` are the blocks per level, for the progress bars. Locally on
    ``threads`` threads (all cores by default), else on the
    ``dask.distributed`` ``client``. On any exception or Ctrl-C, the tasks
    still running are waited for (or cancelled) before it propagates, so that
    nothing writes into the folder after the caller has removed it.
    """
    run = uuid.uuid4().hex
    bars = _bars(totals)
    try:
        if client is None:
            _LOCAL_BARS.update({f"{run}-{level}": bar for level, bar in enumerate(bars)})
        for offset, levels in parts:
            stores = _stores(levels, targets, run, offset)
            if client is None:
                _store_locally(stores, threads or os.cpu_count() or 1)
            else:
                _store_distributed(stores, bars, client)
    finally:
        for level, bar in enumerate(bars):
            _LOCAL_BARS.pop(f"{run}-{level}", None)
            bar.close()


def _store_locally(stores: Sequence[Any], threads: int) -> None:
    import dask
    import dask.threaded

    executor = ThreadPoolExecutor(threads, thread_name_prefix="colnn-pool")
    try:
        # The threaded scheduler itself: named "threads", Dask imports dask.distributed to look for a client.
        dask.compute(*stores, scheduler=dask.threaded.get, pool=executor)
    finally:
        # Let running tasks end before the caller removes the folder they write into.
        executor.shutdown(wait=True, cancel_futures=True)


def _store_distributed(stores: Sequence[Any], bars: Sequence[Any], client: Any) -> None:
    import dask
    import distributed

    # Optimized together, so that the levels share the tasks they have in common; then one future per block.
    stores = dask.optimize(*stores)
    blocks = [(level, block) for level, store in enumerate(stores)
              for block in store.to_delayed(optimize_graph=False).ravel()]
    futures = client.compute([block for _, block in blocks])
    level_of = {future.key: level for future, (level, _) in zip(futures, blocks)}
    try:
        for future in distributed.as_completed(futures, loop=client.loop):  # our client is not the default
            future.result()  # raises the task's exception here
            if bars:
                bars[level_of[future.key]].update(1)
    except BaseException:
        client.cancel(futures)
        _wait_until_idle(client, {future.key for future in futures})
        raise


def _wait_until_idle(client: Any, keys: set, timeout: float = 30.0) -> None:
    """Wait (at most ``timeout`` s) until no worker runs any of ``keys``, so their writes are over."""
    deadline = time.monotonic() + timeout
    with contextlib.suppress(Exception):  # the cluster may be gone too: nothing then runs
        while time.monotonic() < deadline:
            running = {key for tasks in client.processing().values() for key in tasks}
            if not running & {str(key) for key in keys} and not running & keys:
                return
            time.sleep(0.1)


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, a batch system's end of a job), raised like Ctrl-C for the same cleanup."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


@contextlib.contextmanager
def terminable() -> Iterator[None]:
    """SIGTERM raised as :class:`Terminated` in the main thread while the block runs (its default kills at once,
    leaving the hidden folder behind)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """Ctrl-C and SIGTERM held back until the block ends, then raised (KeyboardInterrupt, :class:`Terminated`).

    Zarr does its I/O on an event loop of its own thread while the caller
    waits: a KeyboardInterrupt in the waiting thread would abandon that I/O
    midway (it may go on writing into a folder being removed) and leave
    asyncio to print "Task was destroyed but it is pending!" at exit. The
    blocks held back this way are short: metadata, never the pooling.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: received.append(signum))
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if signal.SIGTERM in received and previous[signal.SIGTERM] is _raise_terminated:
        raise Terminated
    if signal.SIGINT in received:
        raise KeyboardInterrupt
    if signal.SIGTERM in received:  # outside terminable(): SIGTERM's own handler, as it would have run
        signal.raise_signal(signal.SIGTERM)


class OutputUnwritable(ValueError):
    """OUTPUT's folder refused the hidden folder (no permission, a read-only file system)."""


PARTIAL_TAG = "colnn-pool"


def check_replaceable(output: Path) -> None:
    """Refuse to ``--overwrite`` a folder that is neither a Zarr group or array nor empty: it may hold anything."""
    if output.is_dir() and not any((output / name).is_file() for name in ("zarr.json", ".zgroup", ".zarray")) \
            and any(output.iterdir()):
        raise ValueError(f"OUTPUT {output} is a folder that is neither empty nor a Zarr group or array "
                         f"(no zarr.json, .zgroup or .zarray in it); --overwrite replaces only those")


def _alive(pid: int) -> bool:
    if sys.platform == "win32":  # os.kill(pid, 0) would end the process there: never taken as dead
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process (EPERM): alive
        return True
    return True


def _remove_stale(output: Path) -> None:
    """Remove the hidden folders of ``output`` left by runs that were killed (SIGKILL cannot be caught).

    A folder's name holds the PID of its run; one whose process is still alive
    (perhaps a run writing the same OUTPUT now) is left alone. The ``.old``
    folders are kept: one holds a replaced OUTPUT if a run died between its two renames.
    """
    stale = []
    for folder in output.parent.glob(f".{glob.escape(output.name)}.{PARTIAL_TAG}-*-*.partial"):
        pid_text = folder.name[len(f".{output.name}.{PARTIAL_TAG}-"):].split("-")[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not _alive(int(pid_text)):
            shutil.rmtree(folder, ignore_errors=True)
            stale.append(folder.name)
    if stale:
        print(f"colnn pool: removed {len(stale)} partial folder(s) of {output} left by a killed run "
              f"({', '.join(stale)})", file=sys.stderr, flush=True)


class OutputChanged(ValueError):
    """OUTPUT appeared, or changed into something ``--overwrite`` may not replace, while the pyramid was written."""


def _check_still_replaceable(output: Path, overwrite: bool) -> None:
    # OUTPUT was checked at the start, but another program (or run) may have written it since.
    if not (output.exists() or output.is_symlink()):
        return
    if output.is_dir() and not output.is_symlink() and not any(output.iterdir()):
        return  # an empty folder, replaceable as at the start
    if not overwrite or not output.is_dir():
        raise OutputChanged(f"OUTPUT {output} appeared while the pyramid was written; it was kept and the "
                            f"pyramid discarded (pass --overwrite to replace a Zarr folder)")
    try:
        check_replaceable(output)
    except ValueError as error:
        raise OutputChanged(f"{error}; it changed while the pyramid was written, and the pyramid was discarded") \
            from None


@contextlib.contextmanager
def staged(output: Path, overwrite: bool = False) -> Iterator[Path]:
    """A hidden folder beside ``output`` to write into; renamed onto ``output`` if the block succeeds.

    An existing ``output`` is moved aside first and deleted only once the new
    one is in place; on failure (or Ctrl-C, SIGTERM) the hidden folder is
    removed and ``output`` is as it was. The folders left by killed runs are
    removed first. :class:`OutputUnwritable` if the hidden folder cannot be made;
    :class:`OutputChanged` (and ``output`` kept) if, by the time the block ends,
    ``output`` holds something that ``overwrite`` does not allow to replace.
    """
    _remove_stale(output)
    tag = f"{PARTIAL_TAG}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    partial = output.with_name(f".{output.name}.{tag}.partial")
    try:
        partial.mkdir()
    except OSError as error:
        raise OutputUnwritable(f"OUTPUT {output}: cannot write in its folder {output.resolve().parent} "
                               f"({error.strerror or type(error).__name__})") from None
    try:
        yield partial
        _check_still_replaceable(output, overwrite)
        if output.exists():
            previous = output.with_name(f".{output.name}.{tag}.old")
            os.rename(output, previous)
            try:
                os.rename(partial, output)
            except BaseException:
                os.rename(previous, output)
                raise
            shutil.rmtree(previous, ignore_errors=True)
        else:
            os.rename(partial, output)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def folder_bytes(path: Path) -> int:
    """The bytes of all files under ``path``."""
    return sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file())


def peak_memory() -> int | None:
    """This process's peak resident memory in bytes (None where the platform does not say).

    Linux's VmHWM counts from the program's start; ``ru_maxrss`` would keep the
    peak of a parent that forked it (it survives ``exec``).
    """
    with contextlib.suppress(OSError, StopIteration, ValueError), open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS gives bytes, Linux KiB
