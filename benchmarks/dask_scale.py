"""Pooling a Zarr array larger than memory with colnn's Dask path: throughput, memory, scaling.

    python benchmarks/dask_scale.py --dir /path/with/space [--big-gb 32] [--small-gb 4] [--chunk 4096]

Not a test: it writes ``--big-gb`` + ``--small-gb`` GB of float32 to ``--dir`` (and
a quarter of that again per pooled output), deletes them at the end, and prints
a table (``--json FILE`` saves it). For each run it starts a fresh
``distributed.LocalCluster`` of worker processes with one thread each, so the
peak resident memory it reports for each process (``ru_maxrss``) belongs to
that run alone:

- max and average pooling (2x2, stride 2) of the big array, Zarr to Zarr, on 2 workers;
- the same max pooling of the small array on 1 and on 2 workers (scaling);
- the same on 2 workers with the chunk side halved (memory follows the chunk);
- the in-memory NumPy path (``colnn.max_pool2d`` on an ndarray) on a slice that fits, in a child process.

Throughput is GB of input per second of wall time, including the disk.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

GB = 1e9


def peak_rss_gb() -> float:
    """This process's peak resident memory, in GB (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB


def fill_block(block: np.ndarray, block_info=None) -> np.ndarray:
    """Random float32 cells, seeded by the block's position: the same array on every run."""
    seed = block_info[None]["chunk-location"]
    return np.random.default_rng(seed).random(block.shape, dtype=np.float32)


def cluster(workers: int):
    import distributed

    return distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                    dashboard_address=":0", memory_limit="4GB")


def make_array(path: Path, gb: float, chunk: int) -> tuple[int, int]:
    """Write a ``(side, side)`` float32 Zarr array of about ``gb`` GB, computed by 2 workers."""
    import dask.array as da
    import distributed
    import zarr

    side = int(np.sqrt(gb * GB / 4)) // chunk * chunk
    target = zarr.create_array(str(path), shape=(side, side), chunks=(chunk, chunk), dtype=np.float32,
                               compressors=None)
    cells = da.empty((side, side), chunks=chunk, dtype=np.float32).map_blocks(fill_block, dtype=np.float32)
    with cluster(2) as local, distributed.Client(local) as client:
        client.compute(da.store(cells, target, lock=False, compute=False), sync=True)
    return side, side


def pool_on_disk(source: Path, output: Path, mode: str, workers: int, chunk: int | None = None) -> dict:
    """Pool ``source`` 2x2 into the Zarr array ``output`` on ``workers`` processes; time and memory."""
    import dask.array as da
    import distributed
    import zarr

    import colnn

    x = da.from_zarr(str(source))
    if chunk:
        x = x.rechunk(chunk)
    function = colnn.max_pool2d if mode == "max" else colnn.avg_pool2d
    pooled = function(x[None, None], 2)[0, 0]
    out_chunk = x.chunksize[0] // 2
    target = zarr.create_array(str(output), shape=pooled.shape, chunks=(out_chunk, out_chunk), dtype=np.float32,
                               compressors=None)
    with cluster(workers) as local, distributed.Client(local) as client:
        start = time.perf_counter()
        client.compute(da.store(pooled.rechunk(out_chunk), target, lock=False, compute=False), sync=True)
        seconds = time.perf_counter() - start
        worker_peaks = sorted(client.run(peak_rss_gb).values())
    shutil.rmtree(output)
    return {
        "mode": mode, "workers": workers, "input_gb": x.nbytes / GB, "chunk_mb": x.chunksize[0] ** 2 * 4 / 1e6,
        "seconds": seconds, "gb_per_s": x.nbytes / GB / seconds, "worker_peak_rss_gb": worker_peaks,
    }


def numpy_in_memory(source: str, rows: int, queue) -> None:
    """Child process: load ``rows`` rows of the array and time ``colnn.max_pool2d`` on the ndarray."""
    import zarr

    import colnn

    x = zarr.open_array(source, mode="r")[:rows][None, None]
    colnn.max_pool2d(x[..., :64, :64], 2)  # compile outside the timing
    start = time.perf_counter()
    colnn.max_pool2d(x, 2)
    queue.put({"mode": "max (NumPy, in memory)", "input_gb": x.nbytes / GB,
               "seconds": time.perf_counter() - start, "peak_rss_gb": peak_rss_gb()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="where the arrays go")
    parser.add_argument("--big-gb", type=float, default=32.0)
    parser.add_argument("--small-gb", type=float, default=4.0)
    parser.add_argument("--slice-gb", type=float, default=1.0, help="size of the in-memory NumPy slice")
    parser.add_argument("--chunk", type=int, default=4096, help="chunk side (cells) of the arrays on disk")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="colnn-dask-scale-", dir=args.dir))
    rows = []
    try:
        small, big = work / "small.zarr", work / "big.zarr"
        t0 = time.perf_counter()
        small_shape = make_array(small, args.small_gb, args.chunk)
        print(f"wrote {small_shape} in {time.perf_counter() - t0:.0f} s", flush=True)
        for workers in (1, 2):
            rows.append(pool_on_disk(small, work / "out.zarr", "max", workers))
            print(rows[-1], flush=True)
        rows.append(pool_on_disk(small, work / "out.zarr", "max", 2, chunk=args.chunk // 2))
        print(rows[-1], flush=True)
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        slice_rows = int(args.slice_gb * GB / 4 / small_shape[1])
        child = context.Process(target=numpy_in_memory, args=(str(small), slice_rows, queue))
        child.start()
        baseline = queue.get()
        child.join()
        baseline["gb_per_s"] = baseline["input_gb"] / baseline["seconds"]
        rows.append(baseline)
        print(rows[-1], flush=True)
        shutil.rmtree(small)
        if args.big_gb > 0:
            t0 = time.perf_counter()
            big_shape = make_array(big, args.big_gb, args.chunk)
            print(f"wrote {big_shape} in {time.perf_counter() - t0:.0f} s", flush=True)
            for mode in ("max", "avg"):
                rows.append(pool_on_disk(big, work / "out.zarr", mode, 2))
                print(rows[-1], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows.append({"client_peak_rss_gb": peak_rss_gb()})
    print(json.dumps(rows, indent=1))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
