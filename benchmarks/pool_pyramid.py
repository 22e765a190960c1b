"""Pyramid building: ``colnn pool`` against the tools an imaging user would pick, on one volume, one codec.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python benchmarks/pool_pyramid.py --dir /path/with/space [--gb 2] [--levels 4] [--codec zstd]
            [--methods max,avg,nearest,mode] [--repeat 1] [--only colnn,dask] [--keep]
            [--side 4096] [--dtype uint16|float32]

Not a test. It writes a synthetic volume ``(Z, --side, --side)`` of ``--dtype``
(uint16, the usual microscopy dtype, or float32) of about
``--gb`` GB to ``--dir`` as ``.npy`` (a smooth field plus Gaussian noise, and
for ``mode`` a label image of 40 labels in bands), then builds ``--levels`` levels of 2x2
pooling over y and x with each tool, each in a fresh child process (so that
its peak resident memory, ``ru_maxrss``, is its own), the tools interleaved
and their order rotated between repeats. Every tool writes Zarr v3 arrays of
1024x1024 chunks with the same ``--codec``: ngff-zarr and ome-zarr-py, whose
codec is their default (zstd), run only with ``--codec zstd``. Each row gives
the wall time, the CPU time (user + system, all threads: the steadier number
on a shared machine), the peak memory, the tool's times over colnn's (above
1: colnn is faster), and how far the top level is from the exact answer
(max: cells that differ; mean: the mean and largest error against the
float64 mean of level 0; nearest: against colnn's pick, the first cell of
each window, so a tool that picks another cell differs; mode: against a
NumPy mode of modes, ties to the smallest). A tool that is not
installed is skipped with a note. ``--only`` picks tools; ``--keep`` keeps
the input and outputs.

The tools, per method (what each offers that matches):
- max: colnn, hand-written Dask ``coarsen`` (``np.max``), xarray ``coarsen``,
  scikit-image ``block_reduce`` (in memory), dask-image ``maximum_filter`` and
  a strided pick;
- avg: colnn (float64 from level 0, rounded half to even), Dask ``coarsen``
  (``np.mean`` each level, rounded back), xarray, scikit-image, ngff-zarr
  (``itkwasm_bin_shrink``, ``dask_bin_shrink``), ome-zarr-py (``local_mean``);
- nearest: colnn, Dask slicing, ngff-zarr (``dask_image_nearest``), ome-zarr-py (``nearest``);
- mode: colnn, ngff-zarr (``dask_image_mode``).

It ends with the rounding study behind colnn's choice for integer means: the
error of each level against the exact mean of its level-0 cells, for levels
rounded once from level 0 (colnn) and for levels each rounded from the
rounded level before.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CHUNK = 1024
TOOLS = {
    "max": ["colnn", "dask", "xarray", "skimage", "dask-image"],
    "avg": ["colnn", "dask", "xarray", "skimage", "ngff-zarr", "ngff-zarr-dask", "ome-zarr-py"],
    "nearest": ["colnn", "dask", "ngff-zarr", "ome-zarr-py"],
    "mode": ["colnn", "ngff-zarr"],
}
NEEDS = {"xarray": "xarray", "skimage": "skimage", "dask-image": "dask_image", "ngff-zarr": "ngff_zarr",
         "ngff-zarr-dask": "ngff_zarr", "ome-zarr-py": "ome_zarr"}
DEFAULT_CODEC_ONLY = {"ngff-zarr", "ngff-zarr-dask", "ome-zarr-py"}


# --- the input -------------------------------------------------------------------------------


def make_volume(path: Path, planes: int, side: int, dtype: str, labels: bool) -> None:
    """A seeded volume, plane by plane (never all in memory): a smooth field plus noise, or uint16 labels."""
    dtype = np.dtype(np.uint16 if labels else dtype)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(planes, side, side))
    y, x = np.mgrid[0:side, 0:side].astype(np.float32)
    field = 400 + 300 * np.sin(y / 97.0) * np.cos(x / 61.0)
    rng = np.random.default_rng(0)
    for z in range(planes):
        if labels:  # 40 labels in bands that follow the smooth field: large regions, few values per window
            plane = (np.floor(field * (1 + 0.2 * np.sin(z / 5.0)) / 25.0) % 40).astype(np.uint16)
        else:
            noise = rng.normal(0, 20, field.shape).astype(np.float32)
            plane = field * (1 + 0.3 * np.sin(z / 7.0)) + noise
            plane = np.clip(plane, 0, 65535).astype(dtype) if dtype.kind == "u" else plane.astype(dtype)
        out[z] = plane
    out.flush()
    del out


# --- each tool, in a child process ----------------------------------------------------------------


def _compressors(codec: str):
    from zarr.codecs import BloscCodec, ZstdCodec

    name, _, level = codec.partition(":")
    if name == "none":  # no compression: what is left is the pooling and the writing
        return []
    if name == "zstd":
        return [ZstdCodec(level=int(level or 0))]
    return [BloscCodec(cname=name.split("-")[1], clevel=int(level or 5))]


def _store_all(levels, output: str, codec: str) -> None:
    """Write Dask levels as Zarr v3 arrays "0".."L" in one computation: what a hand-written pipeline does."""
    import dask.array as da
    import zarr

    group = zarr.open_group(output, mode="w", zarr_format=3)
    targets, sources = [], []
    for index, level in enumerate(levels):
        chunks = (1, min(CHUNK, level.shape[1]), min(CHUNK, level.shape[2]))
        targets.append(group.create_array(str(index), shape=level.shape, dtype=level.dtype, chunks=chunks,
                                          compressors=_compressors(codec), config={"write_empty_chunks": True}))
        sources.append(level.rechunk(chunks))
    da.store(sources, targets, lock=False, scheduler="threads")


def _lazy(path: str):
    import dask.array as da

    return da.from_array(np.load(path, mmap_mode="r"), chunks=(1, CHUNK, CHUNK))


def _as_input(mean, dtype):
    """A float64 mean back in the input's dtype: integers rounded half to even, as colnn does."""
    return (np.rint(mean) if np.dtype(dtype).kind in "iu" else mean).astype(dtype)


def _rounded_mean(block, axis=None):
    return _as_input(np.mean(block, axis=axis, dtype=np.float64), block.dtype)


def run_tool(tool: str, method: str, source: str, output: str, levels: int, codec: str) -> None:
    if tool == "colnn":
        from colnn.apps.cli import main

        code = main(["pool", source, output, "--kernel", "2", "--levels", str(levels), "--axes", "zyx",
                     "--method", method, "--codec", codec])
        if code:
            raise SystemExit(code)
    elif tool in ("dask", "xarray"):
        import dask.array as da

        pyramid = [_lazy(source)]
        for _ in range(levels):
            previous = pyramid[-1]
            if method == "nearest":
                pyramid.append(previous[:, ::2, ::2])
            elif tool == "dask":
                reduce = np.max if method == "max" else _rounded_mean
                pyramid.append(da.coarsen(reduce, previous, {1: 2, 2: 2}, trim_excess=True))
            else:
                import xarray

                coarse = xarray.DataArray(previous, dims=("z", "y", "x")).coarsen(y=2, x=2, boundary="trim")
                pooled = coarse.max() if method == "max" else _as_input(coarse.mean(), previous.dtype)
                pyramid.append(pooled.data)
        _store_all(pyramid, output, codec)
    elif tool == "skimage":
        import zarr
        from skimage.measure import block_reduce

        pyramid = [np.load(source)]  # in memory: block_reduce takes an ndarray
        for _ in range(levels):
            if method == "max":
                pyramid.append(block_reduce(pyramid[-1], (1, 2, 2), np.max))
            else:
                pyramid.append(_as_input(block_reduce(pyramid[-1], (1, 2, 2), np.mean), pyramid[-1].dtype))
        group = zarr.open_group(output, mode="w", zarr_format=3)
        for index, level in enumerate(pyramid):
            group.create_array(str(index), data=level, chunks=(1, min(CHUNK, level.shape[1]),
                                                               min(CHUNK, level.shape[2])),
                               compressors=_compressors(codec), config={"write_empty_chunks": True})
    elif tool == "dask-image":
        from dask_image.ndfilters import maximum_filter

        pyramid = [_lazy(source)]
        for _ in range(levels):
            # A 2x2 window starting at each cell (origin -1), then every second window.
            pyramid.append(maximum_filter(pyramid[-1], size=(1, 2, 2), origin=(0, -1, -1))[:, ::2, ::2])
        _store_all(pyramid, output, codec)
    elif tool in ("ngff-zarr", "ngff-zarr-dask"):
        import ngff_zarr

        method_of = {"avg": "ITKWASM_BIN_SHRINK" if tool == "ngff-zarr" else "DASK_BIN_SHRINK",
                     "nearest": "DASK_IMAGE_NEAREST", "mode": "DASK_IMAGE_MODE"}[method]
        image = ngff_zarr.to_ngff_image(_lazy(source), dims=["z", "y", "x"])
        factors = [{"z": 1, "y": 2 ** level, "x": 2 ** level} for level in range(1, levels + 1)]
        multiscales = ngff_zarr.to_multiscales(image, scale_factors=factors,
                                               method=getattr(ngff_zarr.Methods, method_of),
                                               chunks={"z": 1, "y": CHUNK, "x": CHUNK})
        ngff_zarr.to_ngff_zarr(output, multiscales, version="0.5")
    elif tool == "ome-zarr-py":
        import zarr
        from ome_zarr.scale import Methods
        from ome_zarr.writer import write_image

        write_image(_lazy(source), zarr.open_group(output, mode="w"),
                    scale_factors=[2 ** level for level in range(1, levels + 1)],
                    method=Methods.LOCAL_MEAN if method == "avg" else Methods.NEAREST, axes="zyx",
                    storage_options={"chunks": (1, CHUNK, CHUNK)})
    else:
        raise SystemExit(f"unknown tool {tool}")


def peak_rss() -> int:
    """This process's peak resident memory in bytes: VmHWM (Linux: since exec; ``ru_maxrss`` keeps the
    parent's peak across fork and exec), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(argv: list[str]) -> None:
    tool, method, source, output, levels, codec = argv
    cpu, wall = time.process_time(), time.perf_counter()
    run_tool(tool, method, source, output, int(levels), codec)
    result = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu, "rss": peak_rss()}
    print("RESULT " + json.dumps(result), flush=True)


# --- checking the top level ----------------------------------------------------------------------


def top_level(output: Path, levels: int) -> np.ndarray:
    """The pyramid's smallest array, wherever the tool put it ("4", "scale4/image", ...)."""
    import zarr

    group = zarr.open_group(str(output), mode="r")
    arrays = [node for _, node in group.members(max_depth=None) if isinstance(node, zarr.Array)]
    return min(arrays, key=lambda array: array.size)[:]


def exact_top(source: Path, levels: int, method: str) -> np.ndarray:
    """The top level, plane by plane: from level 0 directly for max, the float64 mean of each block and
    nearest (the first cell); level by level for mode (a mode of modes), by sorting each 2x2 window."""
    x = np.load(source, mmap_mode="r")
    block = 2 ** levels
    planes = []
    for plane in x:
        cells = np.asarray(plane, np.float64 if method == "avg" else plane.dtype)
        if method == "mode":
            for _ in range(levels):
                cells = _mode_2x2(cells)
            planes.append(cells)
            continue
        cells = cells.reshape(plane.shape[0] // block, block, plane.shape[1] // block, block)
        if method == "max":
            planes.append(cells.max(axis=(1, 3)))
        elif method == "avg":
            planes.append(cells.mean(axis=(1, 3)))
        else:
            planes.append(cells[:, 0, :, 0])
    return np.stack(planes)


def _mode_2x2(plane: np.ndarray) -> np.ndarray:
    """The most frequent value of each 2x2 window, ties to the smallest: the first of the sorted cells
    whose count is the largest."""
    h, w = plane.shape[0] // 2, plane.shape[1] // 2
    cells = np.sort(plane[:2 * h, :2 * w].reshape(h, 2, w, 2).transpose(0, 2, 1, 3).reshape(h, w, 4), axis=-1)
    counts = (cells[..., :, None] == cells[..., None, :]).sum(axis=-1)
    first = np.argmax(counts == counts.max(axis=-1, keepdims=True), axis=-1)
    return np.take_along_axis(cells, first[..., None], axis=-1)[..., 0]


def error_of(top: np.ndarray, exact: np.ndarray, method: str) -> str:
    if top.shape != exact.shape:
        return f"shape {top.shape}"
    if method == "avg":
        error = top.astype(np.float64) - exact
        return f"mean {error.mean():+.3g}, max {np.abs(error).max():.3g}"
    differ = int(np.count_nonzero(top != exact))
    return "exact" if differ == 0 else f"{differ} cells differ"


# --- the rounding study ---------------------------------------------------------------------------


def rounding_study(source: Path, levels: int, planes: int = 4) -> list[str]:
    """Error against the exact mean, per level: colnn's (rounded once from level 0) and level-by-level rounding."""
    x = np.asarray(np.load(source, mmap_mode="r")[:planes], np.float64)
    rows = ["| level | rounded once from level 0 (colnn): mean, max error | rounded each level: mean, max error |",
            "| --- | --- | --- |"]
    exact, stepwise = x, x
    for level in range(1, levels + 1):
        def halve(a):
            return a.reshape(a.shape[0], a.shape[1] // 2, 2, a.shape[2] // 2, 2).mean(axis=(2, 4))
        exact = halve(exact)
        stepwise = np.rint(halve(stepwise))
        once = np.rint(exact) - exact
        each = stepwise - exact
        rows.append(f"| {level} | {once.mean():+.4f}, {np.abs(once).max():.3f} | "
                    f"{each.mean():+.4f}, {np.abs(each).max():.3f} |")
    return rows


# --- the parent ----------------------------------------------------------------------------------


def installed(tool: str) -> bool:
    import importlib.util

    return tool not in NEEDS or importlib.util.find_spec(NEEDS[tool]) is not None


def measure(tool: str, method: str, source: Path, output: Path, levels: int, codec: str) -> dict | str:
    shutil.rmtree(output, ignore_errors=True)
    command = [sys.executable, __file__, "--child", tool, method, str(source), str(output), str(levels), codec]
    done = subprocess.run(command, capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return f"failed: {(done.stderr.strip().splitlines() or ['?'])[-1][:100]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--gb", type=float, default=2.0, help="input size, GB (2**30 bytes)")
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument("--codec", default="zstd", help="zstd[:LEVEL], blosc-lz4[:LEVEL], blosc-zstd[:LEVEL] or none")
    parser.add_argument("--methods", default="max,avg,nearest,mode")
    parser.add_argument("--only", help="comma-separated tools to run (default: all installed)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--side", type=int, default=4096, help="y and x size, a multiple of 2**levels")
    parser.add_argument("--dtype", choices=["uint16", "float32"], default="uint16",
                        help="the volume's dtype (mode always pools uint16 labels)")
    args = parser.parse_args()
    itemsize = np.dtype(args.dtype).itemsize
    side = args.side
    planes = max(1, round(args.gb * 2 ** 30 / (side * side * itemsize)))
    args.dir.mkdir(parents=True, exist_ok=True)
    print(f"# colnn pool benchmark, {datetime.date.today()}: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
          f"input {args.dtype} ({planes}, {side}, {side}) = {planes * side * side * itemsize / 2 ** 30:.2f} GiB, "
          f"{args.levels} levels of 2x2 over yx, codec {args.codec}")
    print(f"# command: {' '.join(sys.argv)}")
    print("| method | tool | wall s | CPU s | peak RSS MB | wall ÷ colnn | CPU ÷ colnn | top level vs exact |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    only = set(args.only.split(",")) if args.only else None
    try:
        for method in args.methods.split(","):
            source = args.dir / ("labels.npy" if method == "mode" else "volume.npy")
            if not source.exists():
                make_volume(source, planes, side, args.dtype, labels=method == "mode")
            tools = [t for t in TOOLS[method] if (only is None or t in only)
                     and (args.codec in ("zstd", "zstd:0") or t not in DEFAULT_CODEC_ONLY)]
            results: dict[str, list] = {tool: [] for tool in tools}
            for repeat in range(args.repeat):
                order = tools[repeat % len(tools):] + tools[:repeat % len(tools)]
                for tool in order:
                    if not installed(tool):
                        results[tool].append("not installed")
                        continue
                    output = args.dir / f"out-{tool}.zarr"
                    result = measure(tool, method, source, output, args.levels, args.codec)
                    if isinstance(result, dict):
                        result["error"] = error_of(top_level(output, args.levels),
                                                   exact_top(source, args.levels, method), method)
                    results[tool].append(result)
                    if not args.keep:
                        shutil.rmtree(output, ignore_errors=True)
            print_rows(method, results)
        if "avg" in args.methods.split(",") and args.dtype == "uint16":
            print()
            print("\n".join(rounding_study(args.dir / "volume.npy", args.levels)))
    finally:
        if not args.keep:
            for name in ("volume.npy", "labels.npy"):
                (args.dir / name).unlink(missing_ok=True)


def print_rows(method: str, results: dict[str, list]) -> None:
    def median(tool: str, key: str) -> float | None:
        values = [r[key] for r in results.get(tool, []) if isinstance(r, dict)]
        return float(np.median(values)) if values else None

    base_wall, base_cpu = median("colnn", "wall"), median("colnn", "cpu")
    for tool, runs in results.items():
        wall, cpu, rss = median(tool, "wall"), median(tool, "cpu"), median(tool, "rss")
        if wall is None:
            print(f"| {method} | {tool} | {runs[0] if runs else '-'} | | | | | |")
            continue
        errors = {r["error"] for r in runs if isinstance(r, dict)}
        ratio_wall = f"{wall / base_wall:.2f}" if base_wall else "-"
        ratio_cpu = f"{cpu / base_cpu:.2f}" if base_cpu else "-"
        print(f"| {method} | {tool} | {wall:.1f} | {cpu:.1f} | {rss / 1e6:.0f} | {ratio_wall} | {ratio_cpu} | "
              f"{'; '.join(sorted(errors))} |", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
    else:
        main()
