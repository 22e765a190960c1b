"""Winograd F(4x4, 3x3): the default strategy's forward pass for 3x3 convolutions at stride 1.

The im2col + GEMM convolution spends most of its time in the GEMM, and with
OpenBLAS that GEMM alone took longer than PyTorch's whole oneDNN convolution
(C1 of ``colnn bench``: 33 ms against 23 ms). Winograd's minimal filtering
algorithm (Lavin and Gray, 2016) needs 36 multiplications per 4x4 output tile
and channel pair instead of 144, so its 36 GEMMs ``U[xi] (FN, C) @ V[xi] (C,
tiles)`` do 4x less work; the input and output transforms
(:mod:`colnn.kernels.winograd_loops`) are sums with small integer weights.

It is used by :func:`colnn.ops.conv.conv2d_forward` for ungrouped 3x3 filters at
stride 1 without dilation, float32 or float64, with at least
:data:`MIN_CHANNELS` input channels (below that the transforms cost more than
the GEMM saves). The result differs from im2col + GEMM by rounding only: the
transforms add a few operations per value (float32, random data: relative
error ~1e-5 of the largest output; float64: ~1e-14). Backward: at stride 1
the input gradient is itself such a convolution, of the output gradient by the
flipped filters (:func:`input_grad_window`, :func:`flipped_filters`), which
:func:`colnn.ops.conv.conv2d_backward` computes here for float32; the weight
gradient keeps im2col. C1 of ``colnn bench`` ((32, 64, 56, 56), 64 filters),
forward and backward on one thread, interleaved: 185-265 ms this way against
269-389 ms by im2col (PyTorch 280-375 ms, on the loaded 2-core AMD EPYC).

IEEE semantics. The transforms mix neighbouring cells, so one NaN or inf would
poison whole tiles, and a large finite value could overflow in a transform
where the direct sum does not. Winograd therefore runs only where neither can
happen: the weights and bias are checked once, and each chunk's inputs while
they are copied into tiles (no extra pass); a chunk with a non-finite or too
large value is computed by the exact im2col + GEMM path instead, whose sums
are the direct sums (NaN and inf only where a window's own sum gives them).
"""

from __future__ import annotations

import numpy as np

from ..core.window import Window
from . import conv_chunked
from .conv_chunked import chunk_images, in_parallel

__all__ = ["MIN_CHANNELS", "applies", "conv2d_forward_winograd", "filter_transform", "input_limit",
           "input_grad_window", "flipped_filters"]

MIN_CHANNELS = 16
# Each thread's transformed tiles stay within this (and the caller's budget): one
# C1 image (4 MB of tiles) per chunk ran in 25 ms, two per chunk in 28 ms.
_SHARE_BYTES = 4 << 20
# ...unless that leaves the 36 GEMMs fewer tile columns than this: on a small plane (ResNet's 14x14,
# 24 tiles an image) a chunk then takes enough images, within the caller's budget. C4 of ``colnn bench``,
# (32, 256, 14, 14) by (256, 256, 3, 3), CPU time on the loaded 2-core machine, alternated in one
# process: 90 and 108 ms with chunks of 4 images, 98 and 114 ms with 2.
_MIN_GEMM_TILES = 192

# How much the transforms can grow a value: the row sums of |B^T| are at most 10,
# so |B^T d B| <= 100 max|d|; of |G| at most 1, so |G g G^T| <= max|g|; of |A^T|
# at most 19, so every intermediate is <= 100 * 361 * C * max|x| * max|w|.
_INPUT_GROWTH = 10 * 10
_GROWTH = _INPUT_GROWTH * 19 * 19

# G of F(4x4, 3x3): U = G g G^T turns a 3x3 filter into its 6x6 transform.
_G = np.array([
    [1 / 4, 0, 0],
    [-1 / 6, -1 / 6, -1 / 6],
    [-1 / 6, 1 / 6, -1 / 6],
    [1 / 24, 1 / 12, 1 / 6],
    [1 / 24, -1 / 12, 1 / 6],
    [0, 0, 1],
])


def applies(x_shape: tuple[int, ...], weight_shape: tuple[int, ...], window: Window, groups: int) -> bool:
    """Whether the Winograd path takes this convolution (3x3, stride 1, no dilation, ungrouped, enough channels)."""
    return (
        groups == 1
        and tuple(weight_shape[2:]) == (3, 3)
        and (window.stride_h, window.stride_w, window.dilation_h, window.dilation_w) == (1, 1, 1, 1)
        and x_shape[1] >= MIN_CHANNELS
    )


def input_grad_window(window: Window) -> Window | None:
    """The window of the convolution that gives ``window``'s input gradient, where that is a plain one; else None.

    At stride 1, without dilation, with padding at most ``k - 1`` and the same
    at both ends, the input gradient of a convolution is the convolution of
    the output gradient, padded ``k - 1 - padding``, by :func:`flipped_filters`
    (2-D or 3-D): a forward pass that Winograd can take.
    """
    ones = (1,) * window.ndim
    if not (window.stride == ones and window.dilation == ones and window.padding == window.pad_end
            and all(p <= k - 1 for p, k in zip(window.padding, window.kernel_size))):
        return None
    back = Window.build(window.out_size, window.kernel_size, 1,
                        tuple(k - 1 - p for k, p in zip(window.kernel_size, window.padding)), 1)
    return back if back.out_size == window.in_size else None


def flipped_filters(weight: np.ndarray) -> np.ndarray:
    """``weight`` ``(FN, C, *k)`` flipped along every spatial axis, in and out channels exchanged: ``(C, FN, *k)``."""
    spatial = (slice(None), slice(None), *(slice(None, None, -1),) * (weight.ndim - 2))
    return np.ascontiguousarray(weight[spatial].swapaxes(0, 1))


def input_limit(weight: np.ndarray, bias: np.ndarray | None) -> np.generic | None:
    """Largest ``|x|`` for which no step of Winograd can overflow, or None if the weights or bias forbid it.

    With ``|x| <= limit`` every intermediate stays below half the dtype's
    maximum, so outputs, bias added, are finite on both paths and differ by
    rounding only. A non-finite weight or bias, or a bias above half the
    maximum, rules Winograd out for the whole call.
    """
    largest = float(np.finfo(weight.dtype).max)
    weight_peak = float(np.max(np.abs(weight), initial=0.0))
    bias_peak = 0.0 if bias is None else float(np.max(np.abs(bias), initial=0.0))
    if not (weight_peak <= largest and bias_peak <= largest / 2):  # NaN fails too
        return None
    scale = _GROWTH * weight.shape[1] * weight_peak
    limit = largest / 2 / _INPUT_GROWTH
    if scale > 0:
        limit = min(limit, largest / 2 / scale)
    cast = weight.dtype.type(limit)
    return cast if float(cast) <= limit else np.nextafter(cast, weight.dtype.type(0))  # round down, never up


def filter_transform(weight: np.ndarray) -> np.ndarray:
    """``G g G^T`` of each 3x3 filter ``g``, in float64 then cast: ``(FN, C, 3, 3)`` -> ``(36, FN, C)``."""
    from . import winograd_loops

    transformed = np.empty((36, *weight.shape[:2]), dtype=weight.dtype)
    winograd_loops.filter_transform(np.ascontiguousarray(weight), _G, transformed)
    return transformed


def conv2d_forward_winograd(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, window: Window, budget_bytes: int,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Convolution by Winograd F(4x4, 3x3), a chunk of images at a time: ``(N, FN, out_h, out_w)``.

    ``x`` ``(N, C, H, W)``, ``weight`` ``(FN, C, 3, 3)``, ``bias`` ``(FN,)`` share a
    dtype (float32 or float64); ``window`` has stride 1 and no dilation. The
    transformed input and the GEMM results of a chunk, ``(36, C, tiles)`` and
    ``(36, FN, tiles)``, stay within ``budget_bytes`` (one image at least) and,
    per thread, a few MB, so that they stay in cache.
    """
    from . import winograd_loops

    x = np.ascontiguousarray(x)
    n_images, channels = x.shape[:2]
    limit = input_limit(weight, bias)
    if limit is None:
        return conv_chunked.conv2d_forward_chunked(x, weight, bias, window, 1, budget_bytes, out=out)
    out_channels = weight.shape[0]
    tiles_h, tiles_w = -(-window.out_h // 4), -(-window.out_w // 4)
    plane_tiles = tiles_h * (tiles_w + 2)  # two padding tiles per tile row, see winograd_loops
    transformed_weight = filter_transform(weight)
    bias_or_zero = np.zeros(out_channels, x.dtype) if bias is None else np.ascontiguousarray(bias)
    if out is None:
        out = np.empty((n_images, out_channels, window.out_h, window.out_w), dtype=x.dtype)
    bytes_per_image = 36 * (channels + out_channels) * plane_tiles * x.itemsize

    def forward_share(share: slice, parts: int) -> None:
        images_in, images_out = x[share], out[share]
        share_bytes = max(_SHARE_BYTES, -(-_MIN_GEMM_TILES // plane_tiles) * bytes_per_image)
        chunk = chunk_images(len(images_in), bytes_per_image, min(budget_bytes // parts, share_bytes))
        tiles_in = np.empty((36, channels, chunk * plane_tiles), dtype=x.dtype)
        tiles_out = np.empty((36, out_channels, chunk * plane_tiles), dtype=x.dtype)
        phases = np.zeros((4, 4, tiles_h + 2, tiles_w + 2), dtype=x.dtype)
        row_transform = np.empty((6, 4, (tiles_h + 2) * (tiles_w + 2)), dtype=x.dtype)
        for first in range(0, len(images_in), chunk):
            images = min(chunk, len(images_in) - first)
            used = images * plane_tiles
            if not winograd_loops.input_transform(images_in[first:first + images], window.pad_h, window.pad_w,
                                                  tiles_h, tiles_w, limit, phases, row_transform, tiles_in):
                conv_chunked.forward_images(images_in[first:first + images], weight, bias, window, 1,
                                            min(budget_bytes // parts, _SHARE_BYTES), images_out[first:first + images])
                continue
            np.matmul(transformed_weight, tiles_in[:, :, :used], out=tiles_out[:, :, :used])
            winograd_loops.output_transform(tiles_out, bias_or_zero, tiles_h, tiles_w,
                                              images_out[first:first + images])

    in_parallel(n_images, n_images * bytes_per_image, forward_share)
    return out
