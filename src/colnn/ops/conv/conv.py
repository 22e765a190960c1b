"""Convolution (cross-correlation, as in PyTorch) in 1, 2 and 3 dimensions, forward and backward.

One N-d computation (:func:`conv_forward`, :func:`conv_backward`) on the checked
:class:`~colnn.ops.conv._base.ConvArgs` and weights; the public functions
``conv1d/2d/3d`` are thin faces on it. Where it runs (:mod:`colnn.ops.strategy`):

- 2-d and 1-d (as 2-d with a unit height) NumPy float32/float64: the compiled
  2-D kernels, the specialised fast case (:func:`conv2d_forward`): Winograd
  F(4x4, 3x3) for float32 3x3 at stride 1 (:mod:`colnn.kernels.winograd`), one
  GEMM per image for one-channel inputs (:mod:`colnn.kernels.image_gemm`), direct
  loops for few input channels (:mod:`colnn.kernels.direct_conv`), else compiled
  im2col chunk by chunk of images into a buffer of at most :func:`get_column_budget`
  bytes, one GEMM per chunk and group (:mod:`colnn.kernels.conv_chunked`); backward
  rebuilds the columns instead of keeping them, so memory stays bounded, and takes a
  float32 3x3 stride-1 input gradient by Winograd (a convolution by the flipped filters);
- 3-d NumPy float32 ``kd x 3 x 3`` at stride 1: Winograd F(4x4, 3x3) on each plane, direct
  sums along the depth (:mod:`colnn.kernels.winograd3d`), and so the input gradient at stride 1;
  other 3-d float32/float64 forwards and backwards: the same chunked im2col + GEMM, its columns built
  plane by plane along the depth (:mod:`colnn.kernels.im2col3d_loops`), or, ungrouped
  with depth dilation 1, one GEMM per output depth on input planes' 2-D columns that
  the ``kd`` output depths reading a plane share (:mod:`colnn.kernels.conv3d_planes`);
- ``strategy="im2col"`` and every other library's arrays: the Array API
  reference of :mod:`colnn.ops.reference.conv` (the tutorial's im2col, keeping ``col``);
- a Dask array: :mod:`colnn.ops.dask.conv`, lazily.

:func:`conv_relu_forward` is ``relu(conv(x))`` with the ReLU applied as the
output is stored, for the layers that fuse with a following ``Relu``.
float32 stays float32 on every path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...core.checks import describe, from_batched, stand_in
from ...core.dtypes import accumulation_dtype, as_numpy_dtype
from ...core.ieee import quiet_ieee
from ...core.namespace import cast_array, is_dask_array
from ...core.spatial import check_spatial_input
from ...core.window import IntTuple, Window
from ...kernels import conv_chunked, direct_conv, image_gemm, winograd, winograd3d
from ...kernels.epilogue import LOOP_DTYPES, relu_in_place, relu_mask
from ...kernels.relu import relu_forward
from ..reference.conv import (
    add_bias,
    channels_first,
    channels_last,
    empty_batch_gradients,
    grouped_matmul,
    grouped_outer,
)
from ..reference.conv import conv_backward as reference_backward
from ..reference.conv import conv_forward as reference_forward
from ..strategy import check_strategy, numpy_for_cpu_arrays, runs_kernels
from ..unfold import col2im_nd, im2col_nd
from ..xp import as_common_dtype, expand_axis, namespace
from ._base import ConvArgs, check_weights

__all__ = [
    "conv1d",
    "conv2d",
    "conv3d",
    "conv",
    "conv_forward",
    "conv_backward",
    "conv_relu_forward",
    "conv2d_forward",
    "conv2d_backward",
    "conv2d_relu_forward",
    "set_column_budget",
    "get_column_budget",
]

_column_budget_bytes = 16 << 20


def set_column_budget(nbytes: int) -> int:
    """Cap the default strategy's column buffer at ``nbytes`` (one image's columns at least); returns the old cap.

    A smaller buffer stays in cache and bounds the memory a call adds; each
    chunk is one GEMM, so a buffer of a few images keeps BLAS efficient.
    """
    global _column_budget_bytes
    if isinstance(nbytes, bool) or not isinstance(nbytes, (int, np.integer)) or nbytes < 1:
        raise ValueError(f"nbytes must be a positive int, got {describe(nbytes)}")
    previous, _column_budget_bytes = _column_budget_bytes, int(nbytes)
    return previous


def get_column_budget() -> int:
    """The column-buffer cap of the default strategy, in bytes (see :func:`set_column_budget`)."""
    return _column_budget_bytes


# --- 2-D: the compiled kernels' specialised case -------------------------------------


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
    convolutions of few input channels at a unit vertical stride directly (:mod:`colnn.kernels.direct_conv`;
    in float64 one-channel inputs with enough filters by one GEMM per image, :mod:`colnn.kernels.image_gemm`,
    unless the direct loop is unrolled or strided: :func:`colnn.kernels.direct_conv.preferred`),
    when every value is finite and small enough that no transform can overflow;
    otherwise by im2col, whose sums are the direct sums (IEEE: NaN and inf only
    where a window's own sum gives them). float16 is computed in float32 and
    rounded once, without Winograd, whose float32 rounding could move a float16
    result to its neighbour.
    """
    acc = accumulation_dtype(x.dtype)
    if acc != as_numpy_dtype(x.dtype):
        bias_acc = None if bias is None else cast_array(bias, acc)
        out, saved = _forward(cast_array(x, acc), cast_array(weight, acc), bias_acc,
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


def _winograd_input_grad_window(grad_output: np.ndarray, weight: np.ndarray, window: Window,
                                groups: int) -> Window | None:
    """The window of the Winograd convolution that gives this 2-D input gradient, or None where none does."""
    back = winograd.input_grad_window(window)
    flipped_shape = (weight.shape[1], weight.shape[0], *weight.shape[2:])
    return back if back is not None and winograd.applies(grad_output.shape, flipped_shape, back, groups) else None


def takes_chunked_path(x: np.ndarray, weight: np.ndarray, window: Window, groups: int) -> bool:
    """Whether the default strategy's forward of this NumPy float32/float64 batch is the chunked im2col + GEMM.

    True for 3-d windows and for 2-d ones that no specialised kernel of :func:`_forward` takes.
    """
    if window.ndim != 2:
        return True
    return not ((_transforms_allowed(x.dtype) and winograd.applies(x.shape, weight.shape, window, groups))
                or image_gemm.applies(x.shape, weight.shape, window, groups)
                or direct_conv.applies(x.shape, weight.shape, window, groups))


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
    if runs_kernels(strategy, x, "conv"):
        if transforms and winograd.applies(x.shape, weight.shape, window, groups):
            out = winograd.conv2d_forward_winograd(x, weight, bias, window, _column_budget_bytes, out)
            if relu:  # Winograd's output transform does not take the epilogue: one pass in place
                relu_in_place(out)
            return out, x
        direct = direct_conv.applies(x.shape, weight.shape, window, groups)
        # Where both apply, direct_conv.preferred says which is faster (the GEMM only for some float64 cases).
        if direct and direct_conv.preferred(x.shape, x.dtype, window):
            return direct_conv.conv2d_forward_direct(x, weight, bias, window, relu, out), x
        if image_gemm.applies(x.shape, weight.shape, window, groups):
            return image_gemm.conv2d_forward_image_gemm(x, weight, bias, window, relu, out), x
        if direct:
            return direct_conv.conv2d_forward_direct(x, weight, bias, window, relu, out), x
        return conv_chunked.conv2d_forward_chunked(x, weight, bias, window, groups, _column_budget_bytes, relu,
                                                   out), x
    return reference_forward(x, weight, bias, window, groups)


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
    if as_numpy_dtype(x.dtype) in LOOP_DTYPES and runs_kernels(strategy, x, "conv"):
        out, saved = _forward(x, weight, bias, window, groups, strategy, transforms=_transforms_allowed(x.dtype),
                              relu=True, out=out)
        return out, saved, relu_mask(out, mask) if keep_mask else None
    out, saved = conv2d_forward(x, weight, bias, window, groups, strategy)
    out, mask = relu_forward(out, compiled=False)  # the reference path: NumPy, no Numba to load
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
) -> tuple[Any, Any, Any]:
    """Gradients ``(grad_input, grad_weight, grad_bias)`` of a convolution.

    ``saved`` is what :func:`conv2d_forward` returned with the same ``strategy``.
    The default strategy computes a float32 3x3 stride-1 input gradient as the
    Winograd convolution of ``grad_output`` by the flipped filters (its sums round
    as the forward's do), other input gradients by GEMM and col2im, and the
    weight gradient by GEMM. With ``input_grad=False`` ``grad_input`` is None: the default strategy then
    skips its GEMM and col2im (a network's first layer, whose input needs no
    gradient; PyTorch's autograd skips it there too).
    """
    acc = accumulation_dtype(grad_output.dtype)
    if acc != as_numpy_dtype(grad_output.dtype):
        # Without Winograd, as in forward: float32 sums rounded once to float16.
        grads = _backward(cast_array(grad_output, acc), input_shape, saved, cast_array(weight, acc),
                          window, groups, strategy, input_grad, transforms=False)
        dtype = as_numpy_dtype(grad_output.dtype)
        grad_input, grad_weight, grad_bias = (None if grad is None else cast_array(grad, dtype) for grad in grads)
        return grad_input, grad_weight, grad_bias
    return _backward(grad_output, input_shape, saved, weight, window, groups, strategy, input_grad,
                     transforms=_transforms_allowed(grad_output.dtype))


def _backward(grad_output: np.ndarray, input_shape: tuple[int, ...], saved: np.ndarray, weight: np.ndarray,
              window: Window, groups: int, strategy: str | None, input_grad: bool,
              transforms: bool) -> tuple[Any, Any, Any]:
    """:func:`conv2d_backward` in ``grad_output``'s dtype; a Winograd input gradient only if ``transforms``."""
    if runs_kernels(strategy, grad_output, "conv"):
        back = _winograd_input_grad_window(grad_output, weight, window, groups) if input_grad and transforms else None
        if back is not None and not image_gemm.applies(saved.shape, weight.shape, window, groups):
            # Stride 1: the input gradient is a forward 3x3 convolution, which Winograd takes; dW stays on GEMMs.
            _, grad_weight, grad_bias = conv_chunked.conv2d_backward_chunked(
                grad_output, saved, weight, window, groups, _column_budget_bytes, input_grad=False)
            return (winograd.conv2d_forward_winograd(grad_output, winograd.flipped_filters(weight), None, back,
                                                     _column_budget_bytes), grad_weight, grad_bias)
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
    grad_input, grad_weight, grad_bias = reference_backward(grad_output, input_shape, saved, weight, window, groups)
    return (grad_input if input_grad else None), grad_weight, grad_bias

# --- N-d: one computation, the 2-D kernels reached through it ---------------------------------


@quiet_ieee
def conv_forward(x: Any, weight: Any, bias: Any | None, window: Window, groups: int = 1,
                 strategy: str | None = None) -> tuple[Any, Any]:
    """Convolve a checked batch ``(N, C, *in)``: ``(out (N, FN, *out), saved)``.

    Pass ``saved`` to :func:`conv_backward`.
    """
    if window.ndim == 2:
        return conv2d_forward(x, weight, bias, window, groups, strategy)
    if window.ndim == 1:
        out, saved = conv2d_forward(expand_axis(x, 2), expand_axis(weight, 2), bias,
                                    window.with_unit_axis(), groups, strategy)
        return out[:, :, 0, ...], saved
    if runs_kernels(strategy, x, "conv"):
        if _transforms_allowed(x.dtype) and winograd3d.applies(x.shape, weight.shape, window, groups):
            return winograd3d.conv3d_forward_winograd(x, weight, bias, window, _column_budget_bytes), x
        return conv_chunked.conv2d_forward_chunked(x, weight, bias, window, groups, _column_budget_bytes), x
    xp = namespace(x, weight)
    out_channels = weight.shape[0]
    col = im2col_nd(x, window, strategy)
    weight_rows = xp.permute_dims(xp.reshape(weight, (groups, out_channels // groups, -1)), (0, 2, 1))
    out = channels_first(grouped_matmul(col, weight_rows, groups), x.shape[0], window.out_size)
    return add_bias(out, bias), col


@quiet_ieee
def conv_backward(grad_output: Any, input_shape: tuple[int, ...], saved: Any, weight: Any, window: Window,
                  groups: int = 1, strategy: str | None = None, input_grad: bool = True) -> tuple[Any, Any, Any]:
    """Gradients ``(grad_input, grad_weight, grad_bias)``.

    ``saved`` comes from :func:`conv_forward` with the same ``strategy``.

    ``input_grad=False``: ``grad_input`` is None and is not computed (see :func:`conv2d_backward`).
    """
    if window.ndim == 2:
        return conv2d_backward(grad_output, input_shape, saved, weight, window, groups, strategy, input_grad)
    if window.ndim == 1:
        grad_input, grad_weight, grad_bias = conv2d_backward(
            expand_axis(grad_output, 2), (*input_shape[:2], 1, *input_shape[2:]), saved,
            expand_axis(weight, 2), window.with_unit_axis(), groups, strategy, input_grad)
        return None if grad_input is None else grad_input[:, :, 0, ...], grad_weight[:, :, 0, ...], grad_bias
    if grad_output.shape[0] == 0:
        grad_input, grad_weight, grad_bias = empty_batch_gradients(input_shape, weight, weight.shape[0], grad_output)
        return grad_input if input_grad else None, grad_weight, grad_bias
    if runs_kernels(strategy, grad_output, "conv"):
        back = winograd3d.input_grad_window(input_shape, weight.shape, window, groups)
        if input_grad and back is not None and _transforms_allowed(grad_output.dtype):
            # Stride 1: the input gradient is a forward convolution, which Winograd takes; dW stays on GEMMs.
            grad_input = winograd3d.conv3d_input_grad_winograd(grad_output, weight, back, _column_budget_bytes)
            _, grad_weight, grad_bias = conv_chunked.conv2d_backward_chunked(
                grad_output, saved, weight, window, groups, _column_budget_bytes, input_grad=False)
            return grad_input, grad_weight, grad_bias
        # The 2-D kernels' functions take a 3-D window too (its columns built plane by plane).
        return conv_chunked.conv2d_backward_chunked(grad_output, saved, weight, window, groups,
                                                    _column_budget_bytes, input_grad)
    xp = namespace(grad_output, weight)
    col, out_channels = saved, weight.shape[0]
    grad_rows = channels_last(grad_output)
    grad_bias = xp.sum(grad_output, axis=(0, *range(2, grad_output.ndim)))
    weight_rows = xp.reshape(weight, (groups, out_channels // groups, -1))
    grad_weight = grouped_outer(grad_rows, col, groups, weight.shape)
    if not input_grad:
        return None, grad_weight, grad_bias
    grad_col = grouped_matmul(grad_rows, weight_rows, groups)
    return col2im_nd(grad_col, input_shape, window, strategy), grad_weight, grad_bias


def conv_relu_forward(x: Any, weight: Any, bias: Any | None, window: Window, groups: int = 1,
                      strategy: str | None = None, keep_mask: bool = True, out: np.ndarray | None = None,
                      mask: np.ndarray | None = None) -> tuple[Any, Any, Any]:
    """``relu(conv + bias)`` of a checked batch ``(N, C, *in)``: ``(out, saved, mask)`` as :func:`conv2d_relu_forward`.

    1-d and 2-d fuse the ReLU into the kernels' output pass (``out`` and ``mask``,
    of the N-d output's shape, are written where given); 3-d applies it after.
    Bit for bit :func:`conv_forward` followed by :class:`colnn.nn.Relu`'s forward.
    """
    if window.ndim == 2:
        return conv2d_relu_forward(x, weight, bias, window, groups, strategy, keep_mask, out, mask)
    if window.ndim == 1:
        planar = [None if array is None else array.reshape(array.shape[0], array.shape[1], 1, array.shape[2])
                  for array in (out, mask)]
        result, saved, relu = conv2d_relu_forward(expand_axis(x, 2), expand_axis(weight, 2), bias,
                                                  window.with_unit_axis(), groups, strategy, keep_mask, *planar)
        return result[:, :, 0, ...], saved, None if relu is None else relu[:, :, 0, ...]
    result, saved = conv_forward(x, weight, bias, window, groups, strategy)
    result, relu = relu_forward(result)
    return result, saved, relu if keep_mask else None


@numpy_for_cpu_arrays
def conv(input: Any, weight: Any, bias: Any, args: ConvArgs, strategy: str | None = None) -> Any:
    """The N-d body of :func:`conv1d`/:func:`conv2d`/:func:`conv3d` on checked ``args``."""
    check_strategy(strategy)
    if is_dask_array(input):
        x, _ = check_spatial_input(stand_in(input), "input", args.ndim, floating=True)
        weight, bias = check_weights(weight, bias, args.groups, args.ndim, x.shape[1])
        from ..dask import conv as dask_conv

        return dask_conv.conv(input, weight, bias, args, strategy, conv_forward)
    x, unbatched = check_spatial_input(input, "input", args.ndim, floating=True)
    weight, bias = check_weights(weight, bias, args.groups, args.ndim, x.shape[1], like=x)
    window = args.window(x.shape[2:], weight.shape[2:])
    x, weight, bias = as_common_dtype(x, weight, bias)
    out, _ = conv_forward(x, weight, bias, window, args.groups, strategy)
    return from_batched(out, unbatched)


def conv1d(input: Any, weight: Any, bias: Any = None, stride: IntTuple = 1, padding: IntTuple | str = 0,
           dilation: IntTuple = 1, groups: int = 1, *, strategy: str | None = None) -> np.ndarray:
    """1-D convolution, as ``torch.nn.functional.conv1d``.

    Parameters
    ----------
    input : floating ``(N, C, L)`` or unbatched ``(C, L)`` (a Dask array: lazily)
    weight : ``(FN, C/groups, K)``; bias : ``(FN,)`` or None
    stride, dilation : int or ``(s,)``; padding : int, ``(p,)``, ``"valid"`` or ``"same"`` (stride 1)
    groups : independent channel groups; strategy : ``None`` (compiled) or ``"im2col"`` (reference)

    Returns
    -------
    ``(N, FN, out_l)`` (or ``(FN, out_l)``), ``out_l = (L + 2*padding - dilation*(K-1) - 1) // stride + 1``;
    the arguments' common dtype.

    Raises
    ------
    TypeError for non-floating arrays or non-int arguments; ValueError for ranks, shapes, groups or
    arguments that do not fit (named).

    Examples
    --------
    >>> conv1d(np.ones((1, 1, 4)), np.ones((1, 1, 2)))
    array([[[2., 2., 2.]]])
    """
    return conv(input, weight, bias, ConvArgs.check(1, stride, padding, dilation, groups), strategy)


def conv2d(input: Any, weight: Any, bias: Any = None, stride: IntTuple = 1, padding: IntTuple | str = 0,
           dilation: IntTuple = 1, groups: int = 1, *, strategy: str | None = None) -> np.ndarray:
    """2-D convolution, as ``torch.nn.functional.conv2d``.

    Parameters
    ----------
    input : floating array ``(N, C, H, W)`` or unbatched ``(C, H, W)`` (a Dask array: lazily)
    weight : array ``(FN, C/groups, FH, FW)``
    bias : array ``(FN,)`` or None
    stride, dilation : int or ``(h, w)`` pair
    padding : int, ``(h, w)`` pair, ``"valid"`` or ``"same"`` (stride 1 only)
    groups : split channels into this many independent convolutions
    strategy : ``"numba"`` (default: the compiled kernels) or ``"im2col"``
        (the reference); see :func:`colnn.available_strategies`

    Returns
    -------
    array ``(N, FN, out_h, out_w)`` (or ``(FN, out_h, out_w)``), where
    ``out_h = (H + 2*padding - dilation*(FH-1) - 1) // stride + 1``. The dtype is
    the common dtype of the arguments (float32 stays float32).

    Raises
    ------
    As :func:`conv1d`.

    Examples
    --------
    >>> x = np.ones((1, 1, 3, 3), dtype=np.float32)
    >>> conv2d(x, np.ones((1, 1, 2, 2), dtype=np.float32))
    array([[[[4., 4.],
             [4., 4.]]]], dtype=float32)
    """
    return conv(input, weight, bias, ConvArgs.check(2, stride, padding, dilation, groups), strategy)


def conv3d(input: Any, weight: Any, bias: Any = None, stride: IntTuple = 1, padding: IntTuple | str = 0,
           dilation: IntTuple = 1, groups: int = 1, *, strategy: str | None = None) -> np.ndarray:
    """3-D convolution, as ``torch.nn.functional.conv3d``: ``(N, C, D, H, W)`` by ``(FN, C/groups, KD, KH, KW)``.

    Arguments, results and errors as :func:`conv1d`, with ``(d, h, w)`` triples.

    Examples
    --------
    >>> conv3d(np.ones((1, 1, 2, 2, 2)), np.ones((1, 1, 2, 2, 2)))
    array([[[[[8.]]]]])
    """
    return conv(input, weight, bias, ConvArgs.check(3, stride, padding, dilation, groups), strategy)
