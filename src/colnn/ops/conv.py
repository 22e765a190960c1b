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

from ..core.checks import (
    from_batched,
    accumulation_dtype, as_numpy_dtype, cast_array, check_float_array, foreign_namespace, to_batched,
)
from ..core.ieee import quiet_ieee
from ..core.window import IntPair, Window, as_tuple
from ..kernels import conv_chunked, direct_conv, image_gemm, winograd
from ..kernels.epilogue import LOOP_DTYPES, relu_in_place, relu_mask
from ..kernels.relu import relu_forward
from ..kernels.geometry import STRATEGIES, use_kernels
from .array_api import as_common_dtype, check_strategy, conv_backward, conv_forward
from .dispatch import dask_dispatch

__all__ = [
    "conv2d",
    "conv2d_forward",
    "conv2d_backward",
    "conv2d_relu_forward",
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


def _chunked(strategy: str | None, x: Any) -> bool:
    """Whether to take the chunked path (NumPy float32 and float64; others use the reference).

    Another library's array runs the Array API reference on its own device.
    """
    if foreign_namespace(x) is not None:
        check_strategy(strategy, x, STRATEGIES)
        return False
    return use_kernels(strategy, x.dtype) and conv_chunked.supports_dtype(x.dtype)


def check_conv_args(
    weight: Any, bias: Any, groups: Any, in_channels: int | None = None, *, names: tuple[str, str] = ("weight", "bias"),
    like: Any = None,
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Validate a weight ``(FN, C/groups, FH, FW)``, a bias ``(FN,)`` or None, and ``groups``.

    Every axis of the weight and bias must be non-empty (no filters is a
    ValueError); messages call them by ``names`` (the layer's ``W`` and ``b``).
    The weight must be of ``like``'s library and device (the input; None: no
    check), the bias of the weight's (TypeError/ValueError naming both).
    """
    weight_name, bias_name = names
    weight = check_float_array(weight, weight_name, ndims=(4,), batch_ndims=(), array_api=True, like=like)
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)):
        raise TypeError(f"groups must be an int, got {groups!r}")
    groups = int(groups)
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    out_channels = weight.shape[0]
    if out_channels % groups != 0:
        raise ValueError(
            f"{weight_name}'s out_channels ({out_channels}) must be divisible by groups ({groups})"
        )
    if in_channels is not None:
        if in_channels % groups != 0:
            raise ValueError(f"input's channels ({in_channels}) must be divisible by groups ({groups})")
        if weight.shape[1] * groups != in_channels:
            raise ValueError(
                f"{weight_name} of shape {tuple(weight.shape)} expects {weight.shape[1] * groups} input channels "
                f"with groups={groups}, but input has {in_channels}"
            )
    if bias is not None:
        bias = check_float_array(bias, bias_name, ndims=(1,), batch_ndims=(), array_api=True, like=weight,
                                 like_name=weight_name)
        if tuple(bias.shape) != (out_channels,):
            raise ValueError(f"{bias_name} must have shape ({out_channels},), got {tuple(bias.shape)}")
    return weight, bias, groups


def conv_window(
    in_hw: tuple[int, int], kernel_hw: tuple[int, int], stride: IntPair, padding: IntPair | str, dilation: IntPair
) -> Window:
    """Window geometry of a convolution; ``padding`` may also be ``"valid"`` or ``"same"``."""
    if isinstance(padding, str):
        if padding == "valid":
            padding = 0
        elif padding == "same":
            if set(as_tuple(stride, "stride", len(in_hw), minimum=1)) != {1}:
                raise ValueError(f"padding='same' requires stride 1, got stride={stride!r}")
            return Window.same_padding(in_hw, kernel_hw, dilation)
        else:
            raise ValueError(f"padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    return Window.build(in_hw, kernel_hw, stride, padding, dilation, kernel_name="weight's (FH, FW)")


@quiet_ieee
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
    float32 3x3 convolutions at stride 1 by Winograd F(4x4, 3x3) (:mod:`colnn.kernels.winograd`),
    one-channel inputs with enough filters by one GEMM per image (:mod:`colnn.kernels.image_gemm`), and
    other stride-1 convolutions of few input channels directly (:mod:`colnn.kernels.direct_conv`),
    when every value is finite and small enough that no transform can overflow;
    otherwise by im2col, whose sums are the direct sums (IEEE: NaN and inf only
    where a window's own sum gives them). float16 is computed in float32 and
    rounded once, without Winograd, whose float32 rounding could move a float16
    result to its neighbour.
    """
    acc = accumulation_dtype(x.dtype)
    if acc != as_numpy_dtype(x.dtype):
        out, saved = _forward(cast_array(x, acc), cast_array(weight, acc), None if bias is None else cast_array(bias, acc),
                              window, groups, strategy, transforms=False)
        return cast_array(out, as_numpy_dtype(x.dtype)), saved
    return _forward(x, weight, bias, window, groups, strategy, transforms=_transforms_allowed(x.dtype))


def _transforms_allowed(dtype: Any) -> bool:
    """Whether the default strategy may take Winograd's transforms for ``dtype``: float32 only.

    Winograd's sums round differently from the direct sum: an output whose exact
    value is 0 (a blank image region with a zero bias) may come out as 1e-16,
    which flips ReLU's mask at its kink. float64 (the book's dtype and that of
    gradient checks) keeps direct sums, whose exact zeros stay zero; float32,
    where speed matters, keeps the transforms.
    """
    return as_numpy_dtype(dtype) == np.float32


def _forward(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, window: Window, groups: int,
    strategy: str | None, transforms: bool, relu: bool = False, out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`conv2d_forward` in ``x``'s dtype; Winograd only if ``transforms``; ReLU on the kernels' path if ``relu``.

    ``out``: a C-contiguous array of the output's shape and ``x``'s dtype for the kernels' path to write
    (else a new one); any other is a ValueError naming it.
    """
    if out is not None:
        shape = (x.shape[0], weight.shape[0], window.out_h, window.out_w)
        if not (isinstance(out, np.ndarray) and out.shape == shape and out.dtype == x.dtype
                and out.flags.c_contiguous and out.flags.writeable):
            raise ValueError(f"out must be a writeable C-contiguous {x.dtype} array of shape {shape}, got "
                             f"{getattr(out, 'dtype', type(out).__name__)} of shape {getattr(out, 'shape', None)}")
    if _chunked(strategy, x):
        if transforms and winograd.applies(x.shape, weight.shape, window, groups):
            out = winograd.conv2d_forward_winograd(x, weight, bias, window, _column_budget_bytes, out)
            if relu:  # Winograd's output transform does not take the epilogue: one pass in place
                relu_in_place(out)
            return out, x
        if image_gemm.applies(x.shape, weight.shape, window, groups):
            return image_gemm.conv2d_forward_image_gemm(x, weight, bias, window, relu, out), x
        if direct_conv.applies(x.shape, weight.shape, window, groups):
            return direct_conv.conv2d_forward_direct(x, weight, bias, window, relu, out), x
        return conv_chunked.conv2d_forward_chunked(x, weight, bias, window, groups, _column_budget_bytes, relu,
                                                   out), x
    return conv_forward(x, weight, bias, window, groups)


def conv2d_relu_forward(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, window: Window, groups: int = 1,
    strategy: str | None = None, keep_mask: bool = True, out: np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``relu(conv2d + bias)`` with the ReLU applied as the convolution stores its output.

    Arguments as :func:`conv2d_forward`, whose ``saved`` it returns too:
    ``(out, saved, mask)``, where ``mask`` ``(N, FN, out_h, out_w)`` bool is
    ``conv + bias <= 0`` (what :class:`colnn.nn.layers.Relu` keeps for backward),
    or None unless ``keep_mask``. ``out`` and ``mask`` equal ``conv2d_forward``
    followed by :func:`colnn.kernels.relu.relu_forward` bit for bit, NaN passing
    through as in ``torch.relu``. The default strategy on float32/float64
    NumPy arrays fuses the two passes (:mod:`colnn.kernels.epilogue`); other
    cases run them one after the other. On the fused path, ``out`` and ``mask``
    (C-contiguous, of the output's shape; ``out`` of ``x``'s dtype, ``mask``
    bool) are written instead of new arrays where given.
    """
    if as_numpy_dtype(x.dtype) in LOOP_DTYPES and _chunked(strategy, x):
        out, saved = _forward(x, weight, bias, window, groups, strategy, transforms=_transforms_allowed(x.dtype),
                              relu=True, out=out)
        return out, saved, relu_mask(out, mask) if keep_mask else None
    out, saved = conv2d_forward(x, weight, bias, window, groups, strategy)
    out, mask = relu_forward(out)
    return out, saved, mask if keep_mask else None


@quiet_ieee
def conv2d_backward(
    grad_output: np.ndarray,
    input_shape: tuple[int, ...],
    saved: np.ndarray,
    weight: np.ndarray,
    window: Window,
    groups: int = 1,
    strategy: str | None = None,
    input_grad: bool = True,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients ``(grad_input, grad_weight, grad_bias)`` of a convolution.

    ``saved`` is what :func:`conv2d_forward` returned with the same ``strategy``.
    With ``input_grad=False`` ``grad_input`` is None: the default strategy then
    skips its GEMM and col2im (a network's first layer, whose input needs no
    gradient; PyTorch's autograd skips it there too).
    """
    acc = accumulation_dtype(grad_output.dtype)
    if acc != as_numpy_dtype(grad_output.dtype):
        grads = conv2d_backward(cast_array(grad_output, acc), input_shape, saved, cast_array(weight, acc),
                                window, groups, strategy, input_grad)
        return tuple(None if grad is None else cast_array(grad, as_numpy_dtype(grad_output.dtype))
                     for grad in grads)
    if _chunked(strategy, grad_output):
        if not image_gemm.applies(saved.shape, weight.shape, window, groups):
            return conv_chunked.conv2d_backward_chunked(grad_output, saved, weight, window, groups,
                                                        _column_budget_bytes, input_grad)
        # One input channel: dW and db by one GEMM per image, whether or not dx is asked for (the same sums).
        grad_weight, grad_bias = image_gemm.conv2d_weight_grad_image_gemm(grad_output, saved, weight, window)
        grad_input = None
        if input_grad:
            grad_input = conv_chunked.conv2d_backward_chunked(grad_output, saved, weight, window, groups,
                                                              _column_budget_bytes, weight_grad=False)[0]
        return grad_input, grad_weight, grad_bias
    grad_input, grad_weight, grad_bias = conv_backward(grad_output, input_shape, saved, weight, window, groups)
    return (grad_input if input_grad else None), grad_weight, grad_bias


@dask_dispatch
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
    check_strategy(strategy, input, STRATEGIES)
    x, unbatched = to_batched(check_float_array(input, "input", array_api=True))
    weight, bias, groups = check_conv_args(weight, bias, groups, in_channels=x.shape[1], like=x)
    window = conv_window(x.shape[2:], weight.shape[2:], stride, padding, dilation)
    out, _ = conv2d_forward(*as_common_dtype(x, weight, bias), window, groups, strategy)
    return from_batched(out, unbatched)
