"""2-D convolution (cross-correlation, as in PyTorch) by im2col and one matrix product per group.

Two strategies compute it. ``"im2col"``, the reference, is the tutorial's:
``col = im2col(x)`` ``(N*out_h*out_w, C*kh*kw)``, then for group ``g``
``out_g = col_g @ W_g.T``; backward reuses ``col``: ``dW_g = dout_g.T @ col_g``,
``dcol_g = dout_g @ W_g`` and ``dx = col2im(dcol)``. ``"numba"``, the default,
does the same chunk by chunk of images (:mod:`colnn.kernels.conv_chunked`): compiled
im2col into a buffer of at most :func:`get_column_budget` bytes laid out
``(C*kh*kw, B*out_h*out_w)``, one GEMM per chunk and group, and backward
rebuilds the columns instead of keeping them, so memory stays bounded.
float32 stays float32 on both.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.checks import check_float_array, to_batched
from ..core.window import IntPair, Window, as_pair
from ..kernels import conv_chunked, direct_conv, winograd
from ..kernels.geometry import STRATEGIES, use_kernels
from .im2col import col2im_window, im2col_window

__all__ = [
    "conv2d",
    "conv2d_forward",
    "conv2d_backward",
    "check_conv_args",
    "conv_window",
    "available_strategies",
    "set_column_budget",
    "get_column_budget",
]

_column_budget_bytes = 16 << 20


def available_strategies() -> tuple[str, ...]:
    """Names accepted by the convolution's ``strategy`` argument, the default first."""
    return STRATEGIES


def set_column_budget(nbytes: int) -> int:
    """Cap the default strategy's column buffer at ``nbytes`` (one image's columns at least); returns the old cap.

    A smaller buffer stays in cache and bounds the memory a call adds; each
    chunk is one GEMM, so a buffer of a few images keeps BLAS efficient.
    """
    global _column_budget_bytes
    if isinstance(nbytes, bool) or not isinstance(nbytes, (int, np.integer)) or nbytes < 1:
        raise ValueError(f"nbytes must be a positive int, got {nbytes!r}")
    previous, _column_budget_bytes = _column_budget_bytes, int(nbytes)
    return previous


def get_column_budget() -> int:
    """The column-buffer cap of the default strategy, in bytes (see :func:`set_column_budget`)."""
    return _column_budget_bytes


def _chunked(strategy: str | None, dtype: np.dtype) -> bool:
    """Whether to take the chunked path (float32 and float64; others use the reference)."""
    return use_kernels(strategy, dtype) and conv_chunked.supports_dtype(dtype)


def check_conv_args(
    weight: Any, bias: Any, groups: Any, in_channels: int | None = None
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Validate a weight ``(FN, C/groups, FH, FW)``, a bias ``(FN,)`` or None, and ``groups``."""
    weight = check_float_array(weight, "weight", ndims=(4,))
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)):
        raise TypeError(f"groups must be an int, got {groups!r}")
    groups = int(groups)
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    out_channels = weight.shape[0]
    if out_channels % groups != 0:
        raise ValueError(
            f"weight's out_channels ({out_channels}) must be divisible by groups ({groups})"
        )
    if in_channels is not None:
        if in_channels % groups != 0:
            raise ValueError(f"input's channels ({in_channels}) must be divisible by groups ({groups})")
        if weight.shape[1] * groups != in_channels:
            raise ValueError(
                f"weight of shape {weight.shape} expects {weight.shape[1] * groups} input channels "
                f"with groups={groups}, but input has {in_channels}"
            )
    if bias is not None:
        bias = check_float_array(bias, "bias", ndims=(1,))
        if bias.shape != (out_channels,):
            raise ValueError(f"bias must have shape ({out_channels},), got {bias.shape}")
    return weight, bias, groups


def conv_window(
    in_hw: tuple[int, int], kernel_hw: tuple[int, int], stride: IntPair, padding: IntPair | str, dilation: IntPair
) -> Window:
    """Window geometry of a convolution; ``padding`` may also be ``"valid"`` or ``"same"``."""
    if isinstance(padding, str):
        if padding == "valid":
            padding = 0
        elif padding == "same":
            if as_pair(stride, "stride", minimum=1) != (1, 1):
                raise ValueError(f"padding='same' requires stride 1, got stride={stride!r}")
            return Window.same_padding(in_hw, kernel_hw, dilation)
        else:
            raise ValueError(f"padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    return Window.build(in_hw, kernel_hw, stride, padding, dilation, kernel_name="weight's (FH, FW)")


def _grouped(matrix: np.ndarray, groups: int) -> np.ndarray:
    """``(R, groups*K)`` -> ``(groups, R, K)`` view."""
    rows = matrix.shape[0]
    return matrix.reshape(rows, groups, -1).transpose(1, 0, 2)


def _ungrouped(stack: np.ndarray) -> np.ndarray:
    """``(groups, R, K)`` -> ``(R, groups*K)``."""
    return stack.transpose(1, 0, 2).reshape(stack.shape[1], -1)


def conv2d_forward(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    window: Window,
    groups: int = 1,
    strategy: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Convolve a validated batch: ``(out (N, FN, out_h, out_w), saved)``; pass ``saved`` to backward.

    ``saved`` is ``col`` for the ``"im2col"`` strategy and ``x`` itself for the
    default one, which rebuilds the columns in backward. The default computes
    3x3 convolutions at stride 1 by Winograd F(4x4, 3x3) (:mod:`colnn.kernels.winograd`), and
    other stride-1 convolutions of few input channels directly (:mod:`colnn.kernels.direct_conv`).
    """
    if _chunked(strategy, x.dtype):
        if winograd.applies(x.shape, weight.shape, window, groups):
            return winograd.conv2d_forward_winograd(x, weight, bias, window, _column_budget_bytes), x
        if direct_conv.applies(x.shape, weight.shape, window, groups):
            return direct_conv.conv2d_forward_direct(x, weight, bias, window), x
        return conv_chunked.conv2d_forward_chunked(x, weight, bias, window, groups, _column_budget_bytes), x
    n = x.shape[0]
    out_channels = weight.shape[0]
    col = im2col_window(x, window, 0)
    weight_rows = weight.reshape(groups, out_channels // groups, -1)
    if groups == 1:
        out_rows = col @ weight_rows[0].T
    else:
        out_rows = _ungrouped(_grouped(col, groups) @ weight_rows.transpose(0, 2, 1))
    out = out_rows.reshape(n, window.out_h, window.out_w, out_channels).transpose(0, 3, 1, 2)
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1)
    return np.ascontiguousarray(out), col


def conv2d_backward(
    grad_output: np.ndarray,
    input_shape: tuple[int, ...],
    saved: np.ndarray,
    weight: np.ndarray,
    window: Window,
    groups: int = 1,
    strategy: str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients ``(grad_input, grad_weight, grad_bias)`` of a convolution.

    ``saved`` is what :func:`conv2d_forward` returned with the same ``strategy``.
    """
    if _chunked(strategy, grad_output.dtype):
        return conv_chunked.conv2d_backward_chunked(grad_output, saved, weight, window, groups, _column_budget_bytes)
    col = saved
    out_channels = weight.shape[0]
    grad_rows = grad_output.transpose(0, 2, 3, 1).reshape(-1, out_channels)
    grad_bias = grad_output.sum(axis=(0, 2, 3))
    weight_rows = weight.reshape(groups, out_channels // groups, -1)
    if groups == 1:
        grad_weight = (grad_rows.T @ col).reshape(weight.shape)
        grad_col = grad_rows @ weight_rows[0]
    else:
        grad_stack = _grouped(grad_rows, groups)
        grad_weight = (grad_stack.transpose(0, 2, 1) @ _grouped(col, groups)).reshape(weight.shape)
        grad_col = _ungrouped(grad_stack @ weight_rows)
    grad_input = col2im_window(grad_col, input_shape, window)
    return grad_input, grad_weight, grad_bias


def conv2d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: IntPair = 1,
    padding: IntPair | str = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    *,
    strategy: str | None = None,
) -> np.ndarray:
    """2-D convolution, as ``torch.nn.functional.conv2d``.

    Parameters
    ----------
    input : floating array ``(N, C, H, W)`` or unbatched ``(C, H, W)``
    weight : array ``(FN, C/groups, FH, FW)``
    bias : array ``(FN,)`` or None
    stride, dilation : int or ``(h, w)`` pair
    padding : int, ``(h, w)`` pair, ``"valid"`` or ``"same"`` (stride 1 only)
    groups : split channels into this many independent convolutions
    strategy : ``"numba"`` (default: chunked, compiled im2col) or ``"im2col"``
        (the reference); see :func:`available_strategies`

    Returns
    -------
    array ``(N, FN, out_h, out_w)`` (or ``(FN, out_h, out_w)``), where
    ``out_h = (H + 2*padding - dilation*(FH-1) - 1) // stride + 1``. The dtype is
    the common dtype of the arguments (float32 stays float32).

    Examples
    --------
    >>> x = np.ones((1, 1, 3, 3), dtype=np.float32)
    >>> conv2d(x, np.ones((1, 1, 2, 2), dtype=np.float32))
    array([[[[4., 4.],
             [4., 4.]]]], dtype=float32)
    """
    x, unbatched = to_batched(check_float_array(input, "input"))
    weight, bias, groups = check_conv_args(weight, bias, groups, in_channels=x.shape[1])
    dtype = np.result_type(x, weight, *(() if bias is None else (bias,)))
    window = conv_window(x.shape[2:], weight.shape[2:], stride, padding, dilation)
    out, _ = conv2d_forward(
        x.astype(dtype, copy=False), weight.astype(dtype, copy=False),
        None if bias is None else bias.astype(dtype, copy=False), window, groups, strategy,
    )
    return out[0] if unbatched else out
