"""Winograd F(4x4, 3x3) across each plane of a 3-D convolution, direct sums along the depth.

A ``kd x 3 x 3`` filter at stride 1 is ``kd`` 3x3 filters, one per input
plane that an output plane reads: output depth ``od`` is the 2-D convolution of
the stack of input planes ``od - pad_d .. od - pad_d + kd - 1`` (``kd*C``
channels, rows ``(kd, c)``) by the filters laid out the same way. So each input
plane's Winograd tiles ``V = B^T d B`` (:func:`colnn.kernels.winograd_loops.input_transform`,
the planes of one image taken as its batch) are built once and read by the
``kd`` output depths that need them, as :mod:`colnn.kernels.conv3d_planes`
shares im2col columns; a run of output depths then takes 36 GEMMs
``U[xi] (FN, kd*C) @ stack[xi] (kd*C, depths*tiles)``, and the output
transform writes the run's planes. The products per output are 36 against 144
per 4x4 tile and channel pair, as in 2-D (:mod:`colnn.kernels.winograd`), whose
rules this path follows: float32 only, and an image with a value that a
transform could overflow, NaN or inf is computed by the exact im2col path.

At stride 1 the input gradient is such a convolution too, of the output
gradient by the filters flipped and with in and out channels exchanged, padded
``k - 1 - padding`` (:func:`conv3d_input_grad_winograd`).

conv3d ``(4, 16, 16, 32, 32)`` by ``(32, 16, 3, 3, 3)``, padding 1 (D3 of
``colnn bench``), one thread, interleaved in one process on the loaded 2-core
AMD EPYC: forward 16-17 ms this way against 36-42 ms by shared planes and GEMM
(PyTorch 17-19 ms); forward and backward 69-84 ms against 92-109 ms (PyTorch
54-68 ms), where the weight gradient stays on GEMMs.
"""

from __future__ import annotations

import numpy as np

from ..core.window import Window
from . import conv_chunked, winograd

__all__ = ["RUN_BYTES", "applies", "conv3d_forward_winograd", "input_grad_window", "conv3d_input_grad_winograd"]

# A run of output depths holds its stacked tiles and GEMM results within this many bytes (one depth at least).
RUN_BYTES = 4 << 20


def applies(x_shape: tuple[int, ...], weight_shape: tuple[int, ...], window: Window, groups: int) -> bool:
    """Whether this path takes the 3-D convolution: ungrouped, ``kd x 3 x 3`` at stride 1, no dilation."""
    return (window.ndim == 3 and groups == 1 and tuple(weight_shape[3:]) == (3, 3)
            and window.stride == (1, 1, 1) and window.dilation == (1, 1, 1)
            and x_shape[1] >= winograd.MIN_CHANNELS)


def conv3d_forward_winograd(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, window: Window,
                            budget_bytes: int) -> np.ndarray:
    """``(N, FN, *out)`` of ``x`` ``(N, C, D, H, W)`` by ``weight`` ``(FN, C, kd, 3, 3)`` (+ ``bias`` ``(FN,)``).

    float32 (or float64) arrays of one dtype; ``window`` as :func:`applies`
    takes it. Each thread takes a share of the images, with its buffers.
    """
    from . import winograd_loops

    x = np.ascontiguousarray(x)
    n_images, channels, depth = x.shape[:3]
    out_channels, kernel_d = weight.shape[0], weight.shape[2]
    # Rows (kd, c), as the stacked planes: kd*C channels of one 2-D convolution.
    stacked_weight = np.ascontiguousarray(weight.transpose(0, 2, 1, 3, 4)).reshape(
        out_channels, kernel_d * channels, 3, 3)
    limit = winograd.input_limit(stacked_weight, bias)
    if limit is None:
        return conv_chunked.conv2d_forward_chunked(x, weight, bias, window, 1, budget_bytes)
    out_depth, out_h, out_w = window.out_size
    pad_d, pad_h, pad_w = window.padding
    tiles_h, tiles_w = -(-out_h // 4), -(-out_w // 4)
    plane_tiles = tiles_h * (tiles_w + 2)  # two padding tiles per tile row, see winograd_loops
    transformed_weight = winograd.filter_transform(stacked_weight)  # (36, FN, kd*C)
    bias_or_zero = np.zeros(out_channels, x.dtype) if bias is None else np.ascontiguousarray(bias)
    out = np.empty((n_images, out_channels, *window.out_size), dtype=x.dtype)
    depth_bytes = 36 * (kernel_d * channels + out_channels) * plane_tiles * x.itemsize
    run = max(1, min(out_depth, RUN_BYTES // depth_bytes))

    def forward_share(share: slice, parts: int) -> None:
        # Every input plane's tiles, with pad_d zero planes before and enough after for the last output depth.
        planes = np.zeros((36, channels, (out_depth + kernel_d - 1) * plane_tiles), dtype=x.dtype)
        inside = planes[:, :, pad_d * plane_tiles:(pad_d + depth) * plane_tiles]
        stack = np.empty((36, kernel_d * channels, run * plane_tiles), dtype=x.dtype)
        tiles_out = np.empty((36, out_channels, run * plane_tiles), dtype=x.dtype)
        phases = np.zeros((4, 4, tiles_h + 2, tiles_w + 2), dtype=x.dtype)
        row_transform = np.empty((6, 4, (tiles_h + 2) * (tiles_w + 2)), dtype=x.dtype)
        for n in range(share.start, share.stop):
            if not winograd_loops.input_transform(x[n].transpose(1, 0, 2, 3), pad_h, pad_w, tiles_h, tiles_w, limit,
                                                  phases, row_transform, inside):
                conv_chunked.forward_images(x[n:n + 1], weight, bias, window, 1, budget_bytes // parts, out[n:n + 1])
                continue
            for lo in range(0, out_depth, run):
                hi = min(lo + run, out_depth)
                used = (hi - lo) * plane_tiles
                for k in range(kernel_d):
                    stack[:, k * channels:(k + 1) * channels, :used] = planes[:, :, (lo + k) * plane_tiles:
                                                                              (lo + k) * plane_tiles + used]
                np.matmul(transformed_weight, stack[:, :, :used], out=tiles_out[:, :, :used])
                winograd_loops.output_transform(tiles_out, bias_or_zero, tiles_h, tiles_w,
                                                out[n, :, lo:hi].transpose(1, 0, 2, 3))

    conv_chunked.in_parallel(n_images, n_images * depth_bytes * out_depth, forward_share)
    return out


def input_grad_window(x_shape: tuple[int, ...], weight_shape: tuple[int, ...], window: Window,
                      groups: int) -> Window | None:
    """:func:`colnn.kernels.winograd.input_grad_window` where this path takes that convolution; else None."""
    back = winograd.input_grad_window(window)
    flipped_shape = (weight_shape[1], weight_shape[0], *weight_shape[2:])
    if back is None or not applies((x_shape[0], weight_shape[0], *window.out_size), flipped_shape, back, groups):
        return None
    return back


def conv3d_input_grad_winograd(grad_output: np.ndarray, weight: np.ndarray, back: Window,
                               budget_bytes: int) -> np.ndarray:
    """``grad_input`` ``(N, C, *in)`` of a convolution by ``weight`` ``(FN, C, kd, 3, 3)``.

    ``grad_output`` ``(N, FN, *out)``; ``back`` from :func:`input_grad_window`.
    """
    return conv3d_forward_winograd(grad_output, winograd.flipped_filters(weight), None, back, budget_bytes)
