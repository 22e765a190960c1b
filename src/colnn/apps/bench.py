"""``colnn bench``: colnn's default strategy against the tutorial, the reference strategy and PyTorch.

Everything runs in one process: each case is warmed up once (which compiles
the kernels, or loads them from the cache), then timed ``repeat`` times, in
:data:`ROUNDS` rounds that take every implementation of every case in turn
(:func:`time_rounds`); the table gives the median and the min-max in
milliseconds and two kinds of ratio. "÷ colnn" is a row's time over colnn's
time (above 1: colnn is faster), the convention of the peers' section too. "x limit" is a row's time over a
limit's time (1.0 is the limit, below 1 the data stayed in cache). For pooling
the limit is memory bandwidth: the time needed just to read the input and
write the output (and offsets) at the bandwidth of a large ``np.copyto`` into
a prefaulted buffer (bytes read + written). For convolution it is compute: the GEMMs' FLOPs at the SGEMM rate.
A backward pass returns a fresh array of the input's size, whose first touch
(page faults, no prefaulted buffer) can cost more than that bandwidth limit:
its cases also time ``x.copy()`` of the input, and "x copy" is the time over it.
A limit under :data:`LIMIT_FLOOR_MS` is too short to time a ratio against
(printed "-"); a row whose repeats differ by more than :data:`NOISE_RATIO`
(max over min) is marked noisy, and so is the whole run when the load average
exceeds the number of cores.

Memory is the peak resident memory one call adds, read from ``VmHWM`` in
``/proc/self/status`` after resetting it (``echo 5 > /proc/self/clear_refs``)
and handing freed heap back with ``malloc_trim``; it is reported against the
input's size. The functions here are importable (:func:`run_benchmark`,
:func:`format_table`); :func:`register` adds the sub-command.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ..core.arrayfile import write_whole
from .bench_common import (
    COLNN_RATIO,
    COLNN_RATIO_NOTE,
    CONV_SHAPES,
    COPY_IMPL,
    COPY_RATIO,
    LIMIT_FLOOR_MS,
    LIMIT_RATIO,
    NOISE_RATIO,
    POOL_SHAPES,
    QUICK_CONV_SHAPES,
    QUICK_POOL_SHAPES,
    RATIO_LEGEND,
    SHAPE_LEGEND,
    Case,
    conv_geometry,
    noise_warnings,
    pool_geometry,
    spread_cell,
    summarize_times,
)
from .bench_conv_rows import conv_row_cases
from .bench_env import environment, format_environment, load_average
from .bench_family import family_cases
from .bench_foreign import foreign_cases
from .bench_tutorial import TutorialError, load_tutorial, missing_tutorial_note
from .options import positive_int

__all__ = ["Row", "Case", "run_benchmark", "format_table", "measure_bandwidth", "measure_sgemm", "time_rounds",
           "register", "ROUNDS", "SETTLE_S", "RATIO_LEGEND", "COLNN_RATIO_NOTE", "COLNN_RATIO", "LIMIT_FLOOR_MS",
           "NOISE_RATIO"]


def ratio_over(time_ms: float, reference_ms: float | None) -> float | None:
    """``time_ms / reference_ms``, or None where there is no reference or it is below :data:`LIMIT_FLOOR_MS`."""
    if reference_ms is None or reference_ms < LIMIT_FLOOR_MS:
        return None
    return time_ms / reference_ms


def ratio_cell(ratio: float | None, reference_ms: float | None) -> str:
    """A ratio as printed: blank where there is nothing to compare with, "-" where the reference is below the floor."""
    if ratio is not None:
        return f"{ratio:.2f}"
    return "" if reference_ms is None else "-"


@dataclass
class Row:
    """One timed implementation of one case; times in milliseconds."""

    case: str
    shape: str
    impl: str
    median_ms: float
    min_ms: float
    max_ms: float
    noisy: bool
    ratio_to_colnn: float | None = None  # this row's time / colnn's
    limit_ms: float | None = None
    ratio_limit: float | None = None  # this row's time / limit_ms; None below LIMIT_FLOOR_MS
    copy_ms: float | None = None
    ratio_copy: float | None = None  # this row's time / copy_ms; None below LIMIT_FLOOR_MS
    peak_added_mb: float | None = None
    input_mb: float | None = None


# --- measurements -----------------------------------------------------------------


def time_call(func: Callable[[], Any], repeat: int) -> list[float]:
    """Seconds of ``repeat`` calls of ``func`` after one warm-up call."""
    func()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return times


# Rounds over all cases and implementations, and the pause before each implementation's calls in a round:
# longer than OpenBLAS's workers and an OpenMP runtime (PyTorch's, Numba's) keep spinning after a call,
# which on two cores would halve the speed of whatever runs next in the process.
ROUNDS = 3
SETTLE_S = 0.3


def time_rounds(cases: list[Case], repeat: int, settle_s: float,
                log: Callable[[str], None] | None = None) -> dict[tuple[str, str], list[float]]:
    """Seconds of ``repeat`` calls of each case's implementations, in :data:`ROUNDS` interleaved rounds.

    A round takes each case in turn and times its implementations one after
    another, each after a pause of ``settle_s`` and a warm-up call, with a
    share of ``repeat`` calls back to back; the order of the implementations is
    reversed every other round. A shared machine's load changes over minutes:
    timed in rounds, every implementation of a case meets the same spells of it,
    where timing one implementation over all cases and then the next compared
    them across minutes.
    """
    rounds = min(ROUNDS, repeat)
    seconds: dict[tuple[str, str], list[float]] = {
        (case.name, impl): [] for case in cases for impl in case.impls}
    for index in range(rounds):
        calls = repeat // rounds + (index < repeat % rounds)
        if log:
            log(f"timing round {index + 1} of {rounds}")
        for case in cases:
            impls = list(case.impls.items())
            for impl, func in impls if index % 2 == 0 else reversed(impls):
                time.sleep(settle_s)
                seconds[case.name, impl] += time_call(func, calls)
    return seconds


def measure_bandwidth(nbytes: int = 512 << 20, repeat: int = 5) -> float:
    """Copy bandwidth in bytes/s (read + written) of ``np.copyto`` into a prefaulted buffer."""
    source = np.ones(nbytes // 4, dtype=np.float32)
    target = np.zeros_like(source)  # written once below, so every page is resident
    target[:] = 1
    best = min(time_call(lambda: np.copyto(target, source), repeat))
    return 2 * nbytes / best


def measure_sgemm(size: int = 2048, repeat: int = 5) -> float:
    """float32 matrix-product rate in FLOP/s of ``size`` x ``size`` matrices."""
    rng = np.random.default_rng(0)
    a, b = (rng.random((size, size), dtype=np.float32) for _ in range(2))
    out = np.empty_like(a)
    best = min(time_call(lambda: np.matmul(a, b, out=out), repeat))
    return 2 * size**3 / best


def _status_kib(field_name: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise OSError(f"{field_name} not in /proc/self/status")


def peak_added_mb(func: Callable[[], Any]) -> float | None:
    """Peak resident memory (MB) that one call of ``func`` adds, or None where it cannot be read (not Linux)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        gc.collect()
        libc.malloc_trim(0)
        before = _status_kib("VmRSS")
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # resets VmHWM to the current RSS
        result = func()
        peak = _status_kib("VmHWM")
        del result
    except OSError:
        return None
    return (peak - before) / 1024


# --- cases -------------------------------------------------------------------------


def _pool_cases(shapes: dict, torch: Any, tutorial: Any, bandwidth: float) -> list[Case]:
    from ..kernels.geometry import offset_dtype
    from ..ops.pooling import avg_pool2d, max_pool2d, pool_window
    from ..ops.pooling import max_pool_backward as max_pool2d_backward
    from ..ops.pooling import max_pool_forward as max_pool2d_forward

    rng = np.random.default_rng(0)
    cases = []
    for name, (shape, kernel, stride, pad) in shapes.items():
        x = rng.random(shape, dtype=np.float32)
        window = pool_window(x, kernel, stride, pad, 1, False)
        out_shape = (*shape[:2], window.out_h, window.out_w)
        out_bytes = int(np.prod(out_shape)) * 4
        offsets_bytes = int(np.prod(out_shape)) * offset_dtype(window).itemsize
        _, window_offset = max_pool2d_forward(x, window)
        grad = rng.random(out_shape, dtype=np.float32)
        geometry = pool_geometry(shape, kernel, stride, pad)

        def limit(nbytes: int) -> float:
            return nbytes / bandwidth * 1e3

        forward = Case(f"{name} max fwd (inference)", geometry, limit(x.nbytes + out_bytes), x.nbytes / 2**20)
        forward.impls["colnn"] = partial(max_pool2d, x, kernel, stride, pad)
        forward.impls["colnn im2col"] = partial(max_pool2d, x, kernel, stride, pad, strategy="im2col")
        if tutorial is not None and pad == 0:  # the tutorial's output size ignores padding
            layer = tutorial.Pooling(kernel, kernel, stride, pad)
            forward.impls["tutorial"] = partial(layer.forward, x)
        training = Case(f"{name} max fwd + offsets", geometry, limit(x.nbytes + out_bytes + offsets_bytes),
                        x.nbytes / 2**20)
        training.impls["colnn"] = partial(max_pool2d_forward, x, window)
        training.impls["colnn im2col"] = partial(max_pool2d_forward, x, window, "im2col")
        backward = Case(f"{name} max bwd", geometry, limit(x.nbytes + out_bytes + offsets_bytes), x.nbytes / 2**20)
        backward.impls["colnn"] = partial(max_pool2d_backward, grad, window_offset, x.shape, window)
        # The gradient is fresh memory of the input's size: first touching it is the floor (no prefaulted buffer).
        backward.impls[COPY_IMPL] = x.copy
        _, im2col_offset = max_pool2d_forward(x, window, "im2col")
        backward.impls["colnn im2col"] = partial(max_pool2d_backward, grad, im2col_offset, x.shape, window, "im2col")
        average = Case(f"{name} avg fwd", geometry, limit(x.nbytes + out_bytes), x.nbytes / 2**20)
        average.impls["colnn"] = partial(avg_pool2d, x, kernel, stride, pad)
        average.impls["colnn im2col"] = partial(avg_pool2d, x, kernel, stride, pad, strategy="im2col")
        if torch is not None:
            functional = torch.nn.functional
            x_nchw = torch.from_numpy(x)
            x_last = x_nchw.contiguous(memory_format=torch.channels_last)
            _, indices = functional.max_pool2d(x_nchw, kernel, stride, pad, return_indices=True)
            grad_t = torch.from_numpy(grad)
            for layout, tensor in (("NCHW", x_nchw), ("channels_last", x_last)):
                forward.impls[f"torch {layout}"] = partial(functional.max_pool2d, tensor, kernel, stride, pad)
                training.impls[f"torch {layout}"] = partial(functional.max_pool2d, tensor, kernel, stride, pad,
                                                            return_indices=True)
                average.impls[f"torch {layout}"] = partial(functional.avg_pool2d, tensor, kernel, stride, pad)
            backward.impls["torch NCHW"] = partial(torch.ops.aten.max_pool2d_with_indices_backward, grad_t, x_nchw,
                                                   [kernel, kernel], [stride, stride], [pad, pad], [1, 1], False,
                                                   indices)
        cases += [forward, training, backward, average]
    return cases


def _conv_cases(shapes: dict, torch: Any, sgemm: float) -> list[Case]:
    """Convolution cases; their limit is compute: the GEMMs' FLOPs at the measured SGEMM rate."""
    from ..ops.conv import conv2d_backward, conv2d_forward, conv_window

    rng = np.random.default_rng(1)
    cases = []
    for name, (x_shape, w_shape, pad) in shapes.items():
        x = rng.random(x_shape, dtype=np.float32)
        weight = rng.random(w_shape, dtype=np.float32) - 0.5
        bias = rng.random(w_shape[0], dtype=np.float32)
        window = conv_window(x.shape[2:], weight.shape[2:], 1, pad, 1)
        out, col = conv2d_forward(x, weight, bias, window, strategy="im2col")
        grad = rng.random(out.shape, dtype=np.float32)
        gemm_flop = 2.0 * out.size * weight[0].size  # every output: one dot product of a weight row
        geometry = conv_geometry(x_shape, w_shape, 1, pad)
        forward = Case(f"{name} conv fwd", geometry, gemm_flop / sgemm * 1e3, x.nbytes / 2**20)
        # The timed calls return (out, col); the runner drops what they return.
        forward.impls["colnn"] = partial(conv2d_forward, x, weight, bias, window)
        forward.impls["colnn im2col"] = partial(conv2d_forward, x, weight, bias, window, strategy="im2col")
        backward = Case(f"{name} conv bwd", geometry, 2 * gemm_flop / sgemm * 1e3, x.nbytes / 2**20)
        backward.impls["colnn"] = partial(conv2d_backward, grad, x.shape, x, weight, window)
        backward.impls["colnn im2col"] = partial(conv2d_backward, grad, x.shape, col, weight, window, strategy="im2col")
        if torch is not None:
            functional = torch.nn.functional
            x_nchw, w_t, b_t, g_t = (torch.from_numpy(a) for a in (x, weight, bias, grad))
            last = torch.channels_last
            forward.impls["torch NCHW"] = partial(functional.conv2d, x_nchw, w_t, b_t, 1, pad)
            forward.impls["torch channels_last"] = partial(functional.conv2d, x_nchw.contiguous(memory_format=last),
                                                           w_t.contiguous(memory_format=last), b_t, 1, pad)
            backward.impls["torch NCHW"] = partial(torch.ops.aten.convolution_backward, g_t, x_nchw, w_t,
                                                   [w_t.shape[0]], [1, 1], [pad, pad], [1, 1], False, [0, 0], 1,
                                                   [True, True, True])
        cases += [forward, backward]
    return cases


# --- running and reporting ----------------------------------------------------------


def run_benchmark(quick: bool = False, repeat: int | None = None, use_torch: bool = True,
                  tutorial: ModuleType | None = None, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run every case; returns a JSON-ready dict (environment, limits, rows, memory).

    ``tutorial``: the tutorial's module (:func:`~colnn.apps.bench_tutorial.load_tutorial`),
    whose ``Pooling`` gives the "tutorial" rows; None leaves them out.
    """
    repeat = repeat or (3 if quick else 7)
    torch: Any = None
    if use_torch:
        try:
            import torch
        except ImportError:
            torch = None
    # Autograd off for PyTorch's forward calls, and back as it was afterwards.
    no_grad = torch.no_grad() if torch is not None else contextlib.nullcontext()
    with no_grad:
        return _run_cases(quick, repeat, torch, tutorial, log)


def _run_cases(quick: bool, repeat: int, torch: Any, tutorial: ModuleType | None,
               log: Callable[[str], None] | None) -> dict[str, Any]:
    from .. import __version__

    load = load_average()  # before the timing, which adds its own threads to it
    settle_s = 0.05 if quick else SETTLE_S
    bandwidth = measure_bandwidth(64 << 20 if quick else 512 << 20)
    sgemm = measure_sgemm(512 if quick else 2048)
    cases = _pool_cases(QUICK_POOL_SHAPES if quick else POOL_SHAPES, torch, tutorial, bandwidth)
    cases += _conv_cases(QUICK_CONV_SHAPES if quick else CONV_SHAPES, torch, sgemm)
    cases += family_cases(quick, torch, bandwidth, sgemm)
    cases += conv_row_cases(quick, torch, sgemm)
    cases += foreign_cases(quick, torch, bandwidth, sgemm)
    seconds = time_rounds(cases, repeat, settle_s, log)
    timed = {(case.name, impl): Row(case.name, case.shape, impl, **summarize_times(seconds[case.name, impl]),
                                    peak_added_mb=peak_added_mb(func), input_mb=case.input_mb)
             for case in cases for impl, func in case.impls.items()}
    rows = []
    for case in cases:
        case_rows = [timed[case.name, impl] for impl in case.impls]
        colnn_ms = timed[case.name, "colnn"].median_ms
        copy_ms = timed[case.name, COPY_IMPL].median_ms if COPY_IMPL in case.impls else None
        for row in case_rows:
            row.ratio_to_colnn = row.median_ms / colnn_ms
            row.limit_ms, row.ratio_limit = case.limit_ms, ratio_over(row.median_ms, case.limit_ms)
            row.copy_ms, row.ratio_copy = copy_ms, ratio_over(row.median_ms, copy_ms)
        rows += case_rows
    result = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
              **environment(__version__, torch),
              "load_average": load,
              "bandwidth_GBps": bandwidth / 1e9,
              "sgemm_GFLOPS": sgemm / 1e9,
              "quick": quick,
              "repeat": repeat,
              "conventions": {"ratios": RATIO_LEGEND, "limit_floor_ms": LIMIT_FLOOR_MS, "noise_ratio": NOISE_RATIO},
              "rows": [asdict(row) for row in rows]}
    result["noisy"] = bool(noise_warnings(result["rows"], load, result["machine"]["cores"]))
    return result


def format_table(result: dict[str, Any]) -> str:
    """The result as a plain-text table (a Markdown table, so the README can show it as is).

    The header says once what the ratios mean (:data:`RATIO_LEGEND`), for this
    table and the peers' after it; warnings about noise follow the table.
    """
    lines = [
        *format_environment(result),
        "",
        f"Median and min-max of {result['repeat']} calls (* : repeats more than {NOISE_RATIO}x apart); "
        "memory: peak resident memory one call adds (x input: over the input's size).",
        RATIO_LEGEND,
        SHAPE_LEGEND,
        "",
        f"| case | shape | implementation | median ms | min-max ms | {COLNN_RATIO} | {LIMIT_RATIO} | {COPY_RATIO} "
        "| added MB (x input) |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in result["rows"]:
        memory = "" if row["peak_added_mb"] is None else (
            f"{row['peak_added_mb']:.0f} ({row['peak_added_mb'] / row['input_mb']:.2f})")
        lines.append(
            f"| {row['case']} | {row['shape']} | {row['impl']} | {row['median_ms']:.2f} | "
            f"{spread_cell(row)} | {ratio_cell(row['ratio_to_colnn'], None)} | "
            f"{ratio_cell(row['ratio_limit'], row['limit_ms'])} | {ratio_cell(row['ratio_copy'], row['copy_ms'])} | "
            f"{memory} |")
    warnings = noise_warnings(result["rows"], result["load_average"], result["machine"]["cores"])
    return "\n".join(lines + (["", *warnings] if warnings else []))


# --- command line ---------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """``colnn bench``: run the benchmark, print the table, save JSON if asked."""
    # Bad paths are found before the minutes of timing, not after.
    try:
        tutorial = load_tutorial(args.tutorial)
    except TutorialError as error:
        return _error(str(error))
    if args.json:
        existed = os.path.exists(args.json)
        try:
            with open(args.json, "a"):
                pass
            if not existed:
                os.remove(args.json)
        except OSError as error:
            return _error(f"--json {args.json}: cannot write there ({error.strerror or error})")
    if tutorial is None:
        print(f"colnn bench: warning: {missing_tutorial_note()}", file=sys.stderr)
    if args.threads is not None:
        from .. import set_num_threads

        set_num_threads(args.threads)
    result = run_benchmark(quick=args.quick, repeat=args.repeat, use_torch=not args.no_torch,
                           tutorial=tutorial, log=lambda message: print(message, file=sys.stderr))
    if not args.no_peers:
        from . import bench_peers

        result["peers"] = bench_peers.run_peers(args.quick, result["repeat"], lambda m: print(m, file=sys.stderr))
        result["noisy"] = result["noisy"] or any(row["noisy"] for row in result["peers"])
    print(format_table(result))
    if "peers" in result:  # after the main table, whose header stated the ratio convention for both
        print(bench_peers.format_peers(result["peers"], legend=False))
    if args.json:
        text = json.dumps(result, indent=2) + "\n"
        try:
            write_whole(args.json, lambda partial_file: partial_file.write_text(text))
        except OSError as error:
            return _error(f"--json {args.json}: cannot write the results ({error.strerror or error})")
    return 0


def _error(message: str) -> int:
    print(f"colnn bench: error: {message}", file=sys.stderr)
    return 1


def register(subparsers: Any) -> None:
    """Add the ``bench`` sub-command."""
    bench = subparsers.add_parser(
        "bench", help="time colnn against the tutorial, its reference strategy, PyTorch, ONNX Runtime and JAX",
        description="Time colnn's pooling and convolution against the tutorial's im2col code, colnn's "
                    "reference strategy and torch.nn.functional (NCHW and channels_last), with the "
                    "memory-bandwidth and SGEMM limits; then, unless --no-peers, ONNX Runtime and jax.jit on "
                    "the same cases and training steps against PyTorch (each where installed). "
                    "Run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset. "
                    "Ratios 'X ÷ colnn' are X's time over colnn's (above 1: colnn is faster); 'x limit' and "
                    "'x copy' are a time over a limit's (1.0 is the limit).")
    bench.add_argument("--quick", action="store_true", help="small shapes and few repeats (a smoke test)")
    bench.add_argument("--repeat", type=positive_int, help="timed calls per row; default 7 (--quick: 3)")
    bench.add_argument("--json", metavar="FILE", help="also save the results as JSON")
    bench.add_argument("--threads", type=positive_int, help="limit colnn and BLAS to this many threads")
    bench.add_argument("--no-torch", action="store_true", help="skip PyTorch even if it is installed")
    bench.add_argument("--no-peers", action="store_true",
                       help="skip ONNX Runtime, JAX and the training steps against PyTorch (see bench_peers)")
    bench.add_argument("--tutorial", type=Path, metavar="FILE",
                       help="the tutorial's code (a .py file); default: benchmarks/tutorial.py of the colnn "
                            "checkout at or above the package or the current folder (a wheel has none)")
    bench.set_defaults(run=run)
