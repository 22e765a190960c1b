"""First-layer convolutions (few input channels) by each forward kernel of colnn, against ONNX Runtime.

``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/conv_first_layer.py [--rounds 3] [--threads 1]``

Each case is timed interleaved (``colnn.apps.bench_peers.time_interleaved``),
in several rounds; the median of each round is printed with its ratio to ONNX
Runtime (ONNX Runtime's ms / kernel's ms: above 1 the kernel is faster).
"""

from __future__ import annotations

import argparse

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--only", default=None)
    args = parser.parse_args()
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
        for round_ in range(args.rounds):
            medians = time_interleaved(impls, args.repeat, 0.02)
            ort = medians["onnxruntime"]
            print("  " + "  ".join(f"{impl} {1e3 * s:.2f} ms ({ort / s:.2f}x, {flops / s / 1e9:.0f} GF/s)"
                                   for impl, s in medians.items()))


if __name__ == "__main__":
    main()
