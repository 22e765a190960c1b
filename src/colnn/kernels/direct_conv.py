"""Direct convolution for few input channels: the default strategy's forward pass where im2col serves badly.

With ``C`` input channels and a ``kh x kw`` filter, im2col's column matrix is
``kh*kw`` times the input (25x for the 5x5 first layer of the book's
SimpleConvNet, ``C = 1``), and the GEMM that follows is thin (``C*kh*kw`` = 25
deep): writing and reading the columns costs more than the arithmetic. Here
each output plane is summed tap by tap straight from the input
(:mod:`colnn.kernels.direct_conv_loops`), with no column matrix at all. For
one input channel and a kernel size of :data:`UNROLLED_KERNELS` (the 5x5
first layer in float32), a loop compiled for that size keeps each output's sum
in a register over all its taps (:func:`unrolls`). On SimpleConvNet's layer it
is a faster forward than the per-image GEMM of :mod:`colnn.kernels.image_gemm`:
``run_peers(repeat=15, only=["C2", "C3"])`` on the shared 2-core AVX-512 bench
machine, six interleaved rounds, medians of the rounds' ratios to ONNX
Runtime: C2 (64 images) 0.68x against 0.45x by the GEMM, C3 (100 images) 0.77x
against 0.72x. One thread, both run at about ONNX Runtime's speed per core
(1.2-1.4 ms on 64 images for all three, the machine loaded); the rest of the
gap is in running on two threads there: colnn's two threads took 1.2-1.8 ms
(minimum of each round) where one took 1.45, ONNX Runtime 1.1 with one or two.

It is used by :func:`colnn.ops.conv.conv2d_forward` for ungrouped
convolutions at stride 1 without dilation, with at most :data:`MAX_CHANNELS`
input channels, float32 or float64. Padding is applied to a copy of the input,
which is small next to the columns it replaces (``1/(kh*kw)`` of them).
Backward keeps im2col.
"""

from __future__ import annotations

import numpy as np

from ..core.window import Window
from .conv_chunked import in_parallel

__all__ = ["MAX_CHANNELS", "GROUP_IMAGES", "UNROLLED_KERNELS", "applies", "unrolls", "conv2d_forward_direct"]

MAX_CHANNELS = 4
# Images a thread takes from the shared queue at a time: a few, so the threads' last groups end close together.
GROUP_IMAGES = 4
# Kernel sizes (and dtypes) whose one-channel loop is compiled with its taps unrolled, each a compilation of its
# own (about 3 s the first time); the others go tap by tap. Measured on 64 MNIST-sized images, one thread, CPU
# time: 3x3 0.50 ms against 0.62 ms tap by tap (float64), 0.25 against 0.30 (float32); 5x5 float32 1.0-1.4
# against 1.1-1.45; 5x5 float64 is slower unrolled (1.2-1.25 against 1.05-1.1), so it stays tap by tap.
UNROLLED_KERNELS = {(3, 3): frozenset({"float32", "float64"}), (5, 5): frozenset({"float32"})}


def applies(x_shape: tuple[int, ...], weight_shape: tuple[int, ...], window: Window, groups: int) -> bool:
    """Whether the direct path takes this convolution (ungrouped, stride 1, no dilation, few channels)."""
    return (
        groups == 1
        and (window.stride_h, window.stride_w, window.dilation_h, window.dilation_w) == (1, 1, 1, 1)
        and x_shape[1] <= MAX_CHANNELS
    )


def unrolls(x_shape: tuple[int, ...], dtype: np.dtype, window: Window) -> bool:
    """Whether the direct path runs its unrolled loop: one input channel, a size and dtype of :data:`UNROLLED_KERNELS`.

    Where it does, it is faster than :mod:`colnn.kernels.image_gemm` (see the module's note).
    """
    return x_shape[1] == 1 and np.dtype(dtype).name in UNROLLED_KERNELS.get((window.kernel_h, window.kernel_w), ())


def _padded(x: np.ndarray, window: Window) -> np.ndarray:
    """``x`` in a zero frame of ``(out_h + kh - 1, out_w + kw - 1)`` with ``x`` at ``(pad_h, pad_w)``."""
    height, width = window.out_h + window.kernel_h - 1, window.out_w + window.kernel_w - 1
    if (window.pad_h, window.pad_w) == (0, 0) and x.shape[2:] == (height, width):
        return np.ascontiguousarray(x)
    frame = np.zeros((*x.shape[:2], height, width), dtype=x.dtype)
    inside = x[:, :, :height - window.pad_h, :width - window.pad_w]
    frame[:, :, window.pad_h:window.pad_h + inside.shape[2], window.pad_w:window.pad_w + inside.shape[3]] = inside
    return frame


def conv2d_forward_direct(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, window: Window,
    relu: bool = False, out: np.ndarray | None = None,
) -> np.ndarray:
    """Convolution summed directly from the input: ``(N, FN, out_h, out_w)``.

    ``x`` ``(N, C, H, W)``, ``weight`` ``(FN, C, kh, kw)``, ``bias`` ``(FN,)`` or
    None share a dtype (float32 or float64); ``window`` has stride 1 and no
    dilation. The batch is split over colnn's threads as in
    :func:`colnn.kernels.conv_chunked.in_parallel`. With ``relu`` the output is
    ``relu(conv + bias)`` (:mod:`colnn.kernels.epilogue`).
    """
    from . import direct_conv_loops

    source = _padded(x, window)
    weight = np.ascontiguousarray(weight)
    if out is None:
        out = np.empty((x.shape[0], weight.shape[0], window.out_h, window.out_w), dtype=x.dtype)
    bias_or_zero = np.zeros(weight.shape[0], x.dtype) if bias is None else np.ascontiguousarray(bias)
    n_images = x.shape[0]
    # Each thread takes the next group of images when done with one, rather than a fixed share: on a
    # machine shared with other work, a thread that gets less of a core does fewer images (as in
    # :mod:`colnn.kernels.image_gemm`).
    firsts = iter(range(0, n_images, GROUP_IMAGES))

    def forward_groups(share: slice, parts: int) -> None:
        if unrolls(x.shape, x.dtype, window):
            one_channel = direct_conv_loops.one_channel_conv(window.kernel_h, window.kernel_w)
            for first in firsts:
                group = slice(first, min(first + GROUP_IMAGES, n_images))
                one_channel(source[group], weight, bias_or_zero, bias is not None, relu, out[group])
            return
        grid = np.empty(direct_conv_loops.FILTERS * window.out_h * source.shape[3], dtype=x.dtype)
        for first in firsts:
            group = slice(first, min(first + GROUP_IMAGES, n_images))
            direct_conv_loops.conv_valid_into(source[group], weight, bias_or_zero, bias is not None, relu,
                                              out[group], grid)

    in_parallel(n_images, out.nbytes * window.kernel_area * x.shape[1] // weight.shape[0], forward_groups,
                shared_queue=True)
    return out
