"""Direct convolution for few input channels: the default strategy's forward pass where im2col serves badly.

With ``C`` input channels and a ``kh x kw`` filter, im2col's column matrix is
``kh*kw`` times the input (25x for the 5x5 first layer of the book's
SimpleConvNet, ``C = 1``), and the GEMM that follows is thin (``C*kh*kw`` = 25
deep): writing and reading the columns costs more than the arithmetic. Here
each output plane is summed tap by tap straight from the input
(:mod:`colnn.kernels.direct_conv_loops`), with no column matrix at all. For
one input channel and a kernel size of :data:`UNROLLED_KERNELS` (the 5x5
first layer), a loop compiled for that size sums two filters of two images at
once, their sums in registers over a kernel row's taps (:func:`unrolls`). On
SimpleConvNet's layer it is a faster forward than the per-image GEMM of
:mod:`colnn.kernels.image_gemm`, and faster per core than ONNX Runtime: 100
images, one thread, on the 2-core AMD EPYC VM (AVX2), least of 40 interleaved
runs: 1.65 ms against ONNX Runtime's 1.9 ms (it was 2.5 ms before the loop
took pairs of images). Pairs of images go to Numba's threads; on two
threads, hot, 0.85 ms against ONNX Runtime's 1.1 ms. Called after a pause
(``colnn bench``'s peers wait 20 ms before each call) both take about twice
that, the VM's cores waking up: C2 (64 images) then 2.2 ms against ONNX
Runtime's 2.1 ms (:func:`colnn.apps.bench_peers.time_interleaved` with a
20 ms pause, 25 rounds, medians).

It is used by :func:`colnn.ops.conv.conv2d_forward` for ungrouped
convolutions without dilation, at a unit vertical stride and a horizontal one
that divides the kernel's width (conv1d's, through its unit axis; see
:func:`applies`), with at most :data:`MAX_CHANNELS` input channels, float32 or
float64. Padding is applied to a copy of the input, which is small next to the
columns it replaces (``1/(kh*kw)`` of them); a strided convolution's copy
splits the columns into their phases as well.
Backward keeps im2col.
"""

from __future__ import annotations

import numpy as np

from ..core.window import Window
from .conv_chunked import col_bytes
from .threads import threads_for

__all__ = ["MAX_CHANNELS", "UNROLLED_KERNELS", "applies", "unrolls", "preferred",
           "conv2d_forward_direct"]

MAX_CHANNELS = 4
# Kernel sizes (and dtypes) whose one-channel loop is compiled with its taps unrolled, each a compilation of its
# own (about 3 s the first time); the others go tap by tap. Measured on 100 MNIST-sized images and 30 filters,
# one thread, least of 21 interleaved runs (AMD EPYC, AVX2): 5x5 float32 1.7 ms against 2.3 ms tap by tap,
# float64 3.4 against 4.7; 3x3 float32 1.2 against 1.2-1.4, float64 2.1 against 2.2.
UNROLLED_KERNELS = {(3, 3): frozenset({"float32", "float64"}), (5, 5): frozenset({"float32", "float64"})}


def applies(x_shape: tuple[int, ...], weight_shape: tuple[int, ...], window: Window, groups: int) -> bool:
    """Whether the direct path takes this convolution: ungrouped, no dilation, few channels, unit vertical stride.

    A horizontal stride ``s`` is taken where it divides the kernel's width (a
    conv1d's stride, through the unit axis): the input's columns are split into
    their ``s`` phases (:func:`_phased`), and the convolution becomes a
    stride-1 one of ``C*s`` channels by a kernel ``kw/s`` wide, the same
    products. With a stride that does not divide it, some phases would have a
    tap fewer, padded with a zero weight: a zero times an inf or NaN outside
    the window would then reach the output.
    """
    return (
        groups == 1
        and (window.stride_h, window.dilation_h, window.dilation_w) == (1, 1, 1)
        and window.kernel_w % window.stride_w == 0
        and x_shape[1] <= MAX_CHANNELS
    )


def unrolls(x_shape: tuple[int, ...], dtype: np.dtype, window: Window) -> bool:
    """Whether the direct path runs its unrolled loop: one input channel, a size and dtype of :data:`UNROLLED_KERNELS`.

    Where it does, it is faster than :mod:`colnn.kernels.image_gemm` (see the module's note).
    """
    return (x_shape[1] == 1 and window.stride_w == 1
            and np.dtype(dtype).name in UNROLLED_KERNELS.get((window.kernel_h, window.kernel_w), ()))


def preferred(x_shape: tuple[int, ...], dtype: np.dtype, window: Window) -> bool:
    """Whether the direct path beats the per-image GEMM of :mod:`colnn.kernels.image_gemm` where both apply.

    Its unrolled loop does (see the module's note), and so do a strided one and
    the tap-by-tap loop in float32. Medians of 8 interleaved rounds of 5 calls,
    direct against GEMM, one and two threads, the 2-core AMD EPYC VM (AVX2):
    one channel, 7x7, 32 filters on (64, 1, 28, 28) 2.09 / 1.06 ms against
    2.33 / 1.36; 11x11, 16 filters on (32, 1, 64, 64) 9.2 / 4.9 against
    12.5 / 7.3; 4x4, 32 filters 1.17 / 0.61 against 1.24 / 0.84; W1 of
    ``colnn bench`` (80 taps at stride 4) 1.38-1.51 ms against 1.66-3.03 before
    the loop took pairs of filters and images. In float64, with half the
    vector's lanes, the GEMM is ahead (7x7, 64 filters: 8.8 / 4.5 against 8.1 / 4.3).
    Measured on AVX2 only; BLAS's AVX-512 kernels may move the line on such a machine.
    """
    return unrolls(x_shape, dtype, window) or window.stride_w > 1 or np.dtype(dtype) == np.float32


def _padded(x: np.ndarray, window: Window) -> np.ndarray:
    """``x`` in a zero frame of the rows and columns the windows read, ``x`` at ``(pad_h, pad_w)``.

    The frame is ``(out_h + kh - 1, (out_w - 1) * stride_w + kw)``: padding
    added, and the input's rows and columns that no window reaches left out.
    """
    height, width = window.out_h + window.kernel_h - 1, (window.out_w - 1) * window.stride_w + window.kernel_w
    if (window.pad_h, window.pad_w) == (0, 0) and x.shape[2:] == (height, width):
        return np.ascontiguousarray(x)
    frame = np.zeros((*x.shape[:2], height, width), dtype=x.dtype)
    inside = x[:, :, :height - window.pad_h, :width - window.pad_w]
    frame[:, :, window.pad_h:window.pad_h + inside.shape[2], window.pad_w:window.pad_w + inside.shape[3]] = inside
    return frame


def _phased(frame: np.ndarray, weight: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """A stride-``stride`` convolution of ``frame`` ``(N, C, H, W)`` as a stride-1 one: its input and weight.

    Channel ``c * stride + p`` holds columns ``p, p + stride, ...`` of channel
    ``c`` (``W`` and the kernel's width are multiples of ``stride``), and the
    weight's taps ``p, p + stride, ...`` of that channel's row: output column
    ``t`` then sums the same products as at stride ``stride``, taps in another
    order. Returns ``(N, C*stride, H, W/stride)`` and ``(FN, C*stride, kh, kw/stride)``.
    """
    def split(array: np.ndarray) -> np.ndarray:
        count, channels, height, width = array.shape
        columns = array.reshape(count, channels, height, width // stride, stride)
        return np.ascontiguousarray(columns.transpose(0, 1, 4, 2, 3)).reshape(
            count, channels * stride, height, width // stride)

    return split(frame), split(weight)


def conv2d_forward_direct(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, window: Window,
    relu: bool = False, out: np.ndarray | None = None,
) -> np.ndarray:
    """Convolution summed directly from the input: ``(N, FN, out_h, out_w)``.

    ``x`` ``(N, C, H, W)``, ``weight`` ``(FN, C, kh, kw)``, ``bias`` ``(FN,)`` or
    None share a dtype (float32 or float64); ``window`` is one that
    :func:`applies` takes. The batch is split over colnn's threads in pairs of images
    (:func:`colnn.kernels.threads.threads_for`). With ``relu`` the output is
    ``relu(conv + bias)`` (:mod:`colnn.kernels.epilogue`).
    """
    from . import direct_conv_loops

    source = _padded(x, window)
    weight = np.ascontiguousarray(weight)
    if window.stride_w > 1:
        source, weight = _phased(source, weight, window.stride_w)
    if out is None:
        out = np.empty((x.shape[0], weight.shape[0], window.out_h, window.out_w), dtype=x.dtype)
    bias_or_zero = np.zeros(weight.shape[0], x.dtype) if bias is None else np.ascontiguousarray(bias)
    # Pairs of images spread over Numba's threads (TBB hands a pair to whichever thread is free, so a
    # thread that gets less of a shared core does fewer).
    with threads_for(col_bytes(x.shape, window, x.itemsize)):
        if unrolls(x.shape, x.dtype, window):
            conv = direct_conv_loops.one_channel_conv(window.kernel_h, window.kernel_w)
        else:
            conv = direct_conv_loops.conv_valid_in_pairs
        conv(source, weight, bias_or_zero, bias is not None, relu, out)
    return out
