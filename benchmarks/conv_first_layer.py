"""First-layer convolutions (few input channels) by each forward kernel of colnn, against ONNX Runtime.

``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/conv_first_layer.py [--rounds 3] [--threads 1]``
(``--profile``: the per-image GEMM's steps on C3, one thread, each timed on its own).

Each case is timed interleaved (``colnn.apps.bench_peers.time_interleaved``),
in several rounds; the median of each round is printed with its ratio to ONNX
Runtime (ONNX Runtime's ms / kernel's ms: above 1 the kernel is faster).
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

import colnn
from colnn.apps.bench_peers import ort_conv, time_interleaved
from colnn.kernels import conv_chunked, direct_conv, image_gemm
from colnn.ops.conv import conv2d, conv2d_relu_forward, conv_window, get_column_budget

CASES = {
    "C2 (64,1,28,28)x(30,1,5,5)": ((64, 1, 28, 28), (30, 1, 5, 5), 0),
    "C3 (100,1,28,28)x(30,1,5,5)": ((100, 1, 28, 28), (30, 1, 5, 5), 0),
    "CIFAR (100,3,32,32)x(32,3,5,5)": ((100, 3, 32, 32), (32, 3, 5, 5), 0),
    "small (8,1,28,28)x(6,1,5,5)": ((8, 1, 28, 28), (6, 1, 5, 5), 0),
    "3x3 pad 1 (100,1,28,28)x(16,1,3,3)": ((100, 1, 28, 28), (16, 1, 3, 3), 1),
}


def profile(rounds: int, repeat: int) -> None:
    """Time split of the per-image GEMM on C3, one thread: im2col, GEMM, ReLU, first touch of the output, threads."""
    from colnn.kernels import epilogue_loops, im2col_loops
    from colnn.kernels.conv_chunked import in_parallel
    from colnn.kernels.geometry import window_args

    colnn.set_num_threads(1)
    rng = np.random.default_rng(0)
    (x_shape, w_shape, pad), n = CASES["C3 (100,1,28,28)x(30,1,5,5)"], 100
    x = rng.random(x_shape, dtype=np.float32)
    weight = rng.random(w_shape, dtype=np.float32) - 0.5
    bias = rng.random(w_shape[0], dtype=np.float32)
    window = conv_window(x_shape[2:], w_shape[2:], 1, pad, 1)
    geometry, plane_len = window_args(window), window.out_h * window.out_w
    group = image_gemm.GROUP_BYTES // (26 * plane_len * 4)
    cols = np.ones((group, 26, plane_len), np.float32)
    weight_rows = np.concatenate([weight.reshape(30, 25), bias[:, None]], axis=1)
    out = np.empty((n, 30, plane_len), np.float32)

    def im2col_only() -> None:
        for first in range(0, n, group):
            im2col_loops.im2col_images(x[first:first + group], *geometry, cols)

    def gemm_only() -> None:  # into memory already touched, from hot column blocks
        for first in range(0, n, group):
            np.matmul(weight_rows, cols[:min(group, n - first)], out=out[first:first + group])

    impls = {
        "image_gemm (all)": lambda: image_gemm.conv2d_forward_image_gemm(x, weight, bias, window),
        "image_gemm+relu": lambda: image_gemm.conv2d_forward_image_gemm(x, weight, bias, window, True),
        "im2col": im2col_only,
        "gemm": gemm_only,
        "relu pass": lambda: epilogue_loops.relu_in_place(out.reshape(-1)),
        "np.empty+fill (first touch)": lambda: np.empty_like(out).fill(0),
        "onnxruntime 1 thread": ort_conv(x, weight, bias, (n, 30, window.out_h, window.out_w), pad, 1),
    }
    two_threads = {
        "image_gemm, 2 threads": impls["image_gemm (all)"],
        "in_parallel, 2 threads, no work": lambda: in_parallel(n, 1 << 30, lambda share, parts: None),
        "onnxruntime 2 threads": ort_conv(x, weight, bias, (n, 30, window.out_h, window.out_w), pad, 2),
    }
    flops = 2 * n * np.prod(w_shape) * plane_len
    for _ in range(rounds):
        for threads, timed in ((1, impls), (2, two_threads)):
            colnn.set_num_threads(threads)
            medians = _medians(time_interleaved(timed, repeat, 0.02))
            print("  " + "  ".join(f"{impl} {1e3 * s:.2f} ms" + (f" ({flops / s / 1e9:.0f} GF/s)" if impl in (
                "image_gemm (all)", "gemm", "onnxruntime 1 thread", "image_gemm, 2 threads",
                "onnxruntime 2 threads") else "") for impl, s in medians.items()))


def _medians(seconds: dict[str, list[float]]) -> dict[str, float]:
    """The median of each implementation's timed calls (``time_interleaved`` returns every call's seconds)."""
    return {impl: statistics.median(times) for impl, times in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--only", default=None)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if args.profile:
        profile(args.rounds, args.repeat)
        return
    if args.threads:
        colnn.set_num_threads(args.threads)
    threads = colnn.get_num_threads()
    rng = np.random.default_rng(0)
    for name, (x_shape, w_shape, pad) in CASES.items():
        if args.only and args.only not in name:
            continue
        x = rng.random(x_shape, dtype=np.float32)
        weight = rng.random(w_shape, dtype=np.float32) - 0.5
        bias = rng.random(w_shape[0], dtype=np.float32)
        window = conv_window(x_shape[2:], w_shape[2:], 1, pad, 1)
        flops = 2 * np.prod(x_shape[:1]) * np.prod(w_shape) * window.out_h * window.out_w
        impls = {
            "default": lambda: conv2d(x, weight, bias, padding=pad),
            "direct": lambda: direct_conv.conv2d_forward_direct(x, weight, bias, window),
            "image_gemm": lambda: image_gemm.conv2d_forward_image_gemm(x, weight, bias, window),
            "chunked": lambda: conv_chunked.conv2d_forward_chunked(x, weight, bias, window, 1, get_column_budget()),
            "default+relu": lambda: conv2d_relu_forward(x, weight, bias, window, keep_mask=False),
            "onnxruntime": ort_conv(x, weight, bias, (x_shape[0], w_shape[0], window.out_h, window.out_w), pad,
                                    threads),
        }
        print(f"{name}, {threads} threads, {flops / 1e6:.1f} MFLOP")
        for _ in range(args.rounds):
            medians = _medians(time_interleaved(impls, args.repeat, 0.02))
            ort = medians["onnxruntime"]
            print("  " + "  ".join(f"{impl} {1e3 * s:.2f} ms ({ort / s:.2f}x, {flops / s / 1e9:.0f} GF/s)"
                                   for impl, s in medians.items()))


if __name__ == "__main__":
    main()
