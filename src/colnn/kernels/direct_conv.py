"""Direct convolution for few input channels: the default strategy's forward pass where im2col serves badly.

With ``C`` input channels and a ``kh x kw`` filter, im2col's column matrix is
``kh*kw`` times the input (25x for the 5x5 first layer of the book's
SimpleConvNet, ``C = 1``), and the GEMM that follows is thin (``C*kh*kw`` = 25
deep): writing and reading the columns costs more than the arithmetic. Here
each output plane is summed tap by tap straight from the input
(:mod:`colnn.kernels.direct_conv_loops`), with no column matrix at all.

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

__all__ = ["MAX_CHANNELS", "applies", "conv2d_forward_direct"]

MAX_CHANNELS = 4


def applies(x_shape: tuple[int, ...], weight_shape: tuple[int, ...], window: Window, groups: int) -> bool:
    """Whether the direct path takes this convolution (ungrouped, stride 1, no dilation, few channels)."""
    return (
        groups == 1
        and (window.stride_h, window.stride_w, window.dilation_h, window.dilation_w) == (1, 1, 1, 1)
        and x_shape[1] <= MAX_CHANNELS
    )


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

    def forward_share(share: slice, parts: int) -> None:
        grid = np.empty(direct_conv_loops.FILTERS * window.out_h * source.shape[3], dtype=x.dtype)
        direct_conv_loops.conv_valid_into(source[share], weight, bias_or_zero, bias is not None, relu, out[share], grid)

    in_parallel(x.shape[0], out.nbytes * window.kernel_area * x.shape[1] // weight.shape[0], forward_share)
    return out
