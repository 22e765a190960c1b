"""Convolution layers in 1, 2 and 3 dimensions, built from weights: ``Conv{1,2,3}d``, ``ConvTranspose{1,2,3}d``
and the book's ``Convolution``.

Like the book's ``Convolution`` (chapter 7.4), a layer is made from its
weights: ``Conv{1,2,3}d(W, b, stride=1, padding=0, dilation=1, groups=1)`` with
``W`` ``(FN, C/groups, *k)``, and ``ConvTranspose{1,2,3}d(W, b, stride=1,
padding=0, output_padding=0, groups=1, dilation=1)`` with ``W`` ``(C, FN/groups, *k)``.
``W`` and ``b`` are kept, not copied (an optimizer's in-place update trains them), in
the library and on the device they came in (NumPy, PyTorch, JAX, CuPy...);
``backward(dout)`` returns ``dx`` in the input's library and sets ``dW``, ``db``
in the weights'.

As in ``torch.nn``, the constructor checks everything that depends on the
hyper-parameters alone (:class:`~colnn.ops.conv.ConvArgs`,
:class:`~colnn.ops.conv.ConvTransposeArgs`: PyTorch's rules) and the weights;
``forward`` checks what depends on the input (its channels, an empty output).
Every convolution layer fuses a following ``Relu`` into its output pass
(:meth:`_ConvNd.forward_relu`), and as a network's first layer skips its input
gradient (``backward(dout, input_grad=False)``).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ..core.checks import check_flag, describe, from_batched
from ..core.dtypes import as_numpy_dtype
from ..core.namespace import cast_array, library_token
from ..core.window import IntTuple
from ..kernels.epilogue import LOOP_DTYPES
from ..ops.conv import (
    ConvArgs,
    ConvTransposeArgs,
    check_weights,
    conv_backward,
    conv_forward,
    conv_relu_forward,
    conv_transpose_backward,
    conv_transpose_forward,
)
from ..ops.strategy import check_strategy
from ..ops.xp import as_common_dtype
from .activation import Relu
from .base import Layer, Saved, WeightAndBias, WindowLayer
from .cpu_views import backward_on_views
from .parameters import fuses, scalar_bias, shared_parameters

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "Convolution"]


class _ConvBase(WeightAndBias, WindowLayer):
    """Weights, the common dtype, and the gradients' bookkeeping."""

    transposed = False
    skips_input_grad = True
    _weight_names = ("W", "b")
    args: ConvArgs | ConvTransposeArgs

    def _take_weights(self, W: Any, b: Any, groups: int) -> None:
        if isinstance(W, numbers.Integral):
            # torch.nn's convolutions take channel counts; a PyTorch user's first call looks like that.
            name, weights = type(self).__name__, ", ".join(self._weight_names)
            raise TypeError(f"{self._weight_names[0]} must be the weight array, got {describe(W)}: colnn's {name} is "
                            f"built from its weights, {name}({weights}, ...), not from channel counts "
                            f"as torch.nn's (in_channels, out_channels, kernel_size)")
        if b is None:
            raise TypeError("b must be an array of output channels, got None")
        weight, bias = check_weights(W, b if self.transposed else scalar_bias(b, W), groups, self.ndim,
                                     transposed=self.transposed, names=self._weight_names)
        self.W, self.b = shared_parameters(weight, bias)
        self.dW: np.ndarray | None = None
        self.db: np.ndarray | None = None

    @property
    def groups(self) -> int:
        return self.args.groups

    def _weights(self) -> Any:
        return self.W

    def _cast(self, x: Any) -> tuple[Any, Any, Any]:
        """``x``, ``W`` and ``b`` in their common dtype, the weights checked against ``x``'s channels."""
        check_weights(self.W, self.b, self.groups, self.ndim, x.shape[1], transposed=self.transposed,
                      names=self._weight_names, input_name="x")
        return as_common_dtype(x, self.W, self.b)

    def _set_grads(self, grad_weight: Any, grad_bias: Any) -> None:
        self._check_thread()  # another thread's forward during this backward: its state, not ours
        self.dW = cast_array(grad_weight, as_numpy_dtype(self.W.dtype))
        self.db = cast_array(grad_bias, as_numpy_dtype(self.b.dtype))

    @backward_on_views
    def backward(self, dout: Any, *, input_grad: bool = True) -> Any:
        """``dx`` for ``dout`` of the output's shape; sets ``dW`` and ``db``.

        With ``input_grad=False`` only ``dW`` and ``db`` are computed and None is
        returned: a network's first layer, whose input needs no gradient (PyTorch's
        autograd skips it there too). The compiled path then leaves out a GEMM and col2im.
        """
        input_grad = check_flag(input_grad, "input_grad")
        grad, saved = self._batched_grad(dout)
        grad_input = self._gradients(grad, saved, input_grad)
        return None if grad_input is None else from_batched(grad_input, saved.unbatched)

    def _backward(self, grad: Any, saved: Saved) -> Any:
        return self._gradients(grad, saved, True)

    def _gradients(self, grad: Any, saved: Saved, input_grad: bool) -> Any:
        """The input's gradient (None without ``input_grad``), after setting ``dW`` and ``db``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        arguments = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._config_names)
        return f"{type(self).__name__}(W={tuple(self.W.shape)}, {arguments})"


class _ConvNd(_ConvBase):
    """``W, b, stride=1, padding=0, dilation=1, groups=1``: PyTorch's ``_ConvNd`` computation, from weights."""

    _config_names = ("stride", "padding", "dilation", "groups")
    args: ConvArgs

    def __init__(self, W: Any, b: Any, stride: IntTuple = 1, padding: IntTuple | str = 0, dilation: IntTuple = 1,
                 groups: int = 1, *, strategy: str | None = None) -> None:
        self.args = ConvArgs.check(self.ndim, stride, padding, dilation, groups, padding_name=self._padding_name)
        self._take_weights(W, b, self.args.groups)
        self.strategy = check_strategy(strategy)

    _padding_name = "padding"
    stride = property(lambda self: self.args.stride)
    padding = property(lambda self: self.args.padding)
    dilation = property(lambda self: self.args.dilation)

    def _forward(self, x: Any) -> tuple[Any, Any, Any]:
        x, weight, bias = self._cast(x)
        window = self.args.window(x.shape[2:], weight.shape[2:])
        out, saved = conv_forward(x, weight, bias, window, self.groups, self.strategy)
        return out, window, saved

    def _gradients(self, grad: Any, saved: Saved, input_grad: bool) -> Any:
        grad_input, grad_weight, grad_bias = conv_backward(
            grad, saved.input_shape, saved.state, cast_array(self.W, as_numpy_dtype(saved.dtype)), saved.window,
            self.groups, self.strategy, input_grad)
        self._set_grads(grad_weight, grad_bias)
        return grad_input

    def window_for(self, x: Any) -> Any:
        """The window of a batch ``x`` ``(N, C, *spatial)``, after checking it against ``W`` and ``b``."""
        self._cast(x)
        return self.args.window(x.shape[2:], self.W.shape[2:])

    def forward_relu(self, x: Any, relu: Layer, *, keep: bool = True, workspace: Any = None) -> Any:
        """``relu(conv(x) + b)`` with the bias and ReLU applied as the convolution stores its output.

        Taken for a following :class:`~colnn.nn.activation.Relu` (exactly that
        class) on a batch of NumPy float32/float64 arrays of one dtype, by a
        layer that computes as this class does; None otherwise (the caller then
        runs the two layers, which also raise their errors). Both layers are left
        exactly as after their own forward (with ``keep``): outputs, masks and
        gradients equal theirs bit for bit. ``workspace``: the output and mask are
        written into its buffers, keyed by this layer.
        """
        if not (type(relu) is Relu and fuses(self, _ConvNd, relu) and type(x) is np.ndarray and x.ndim == self.ndim + 2
                and type(self.W) is np.ndarray and type(self.b) is np.ndarray and x.dtype in LOOP_DTYPES
                and x.dtype == self.W.dtype == self.b.dtype):
            return None
        window = self.window_for(x)
        out = mask = None
        if workspace is not None:
            shape = (x.shape[0], self.W.shape[0], *window.out_size)
            out = workspace.empty((id(self), "out"), shape, x.dtype)
            mask = workspace.empty((id(self), "mask"), shape, np.bool_) if keep else None
        out, saved, mask = conv_relu_forward(x, self.W, self.b, window, self.groups, self.strategy, keep, out, mask)
        if keep:
            self._keep(Saved(tuple(x.shape), tuple(out.shape), out.dtype, False, window, saved, library_token(x)))
            relu.keep_mask(mask)
        return out


class _ConvTransposeNd(_ConvBase):
    """``W, b, stride=1, padding=0, output_padding=0, groups=1, dilation=1``: PyTorch's ``_ConvTransposeNd``."""

    transposed = True
    _config_names = ("stride", "padding", "output_padding", "groups", "dilation")
    args: ConvTransposeArgs

    def __init__(self, W: Any, b: Any, stride: IntTuple = 1, padding: IntTuple = 0, output_padding: IntTuple = 0,
                 groups: int = 1, dilation: IntTuple = 1, *, strategy: str | None = None) -> None:
        # PyTorch's constructor rules (output_padding < max(stride, dilation)); an empty output depends on
        # the input and is checked in forward.
        self.args = ConvTransposeArgs.check(self.ndim, stride, padding, output_padding, groups, dilation)
        self._take_weights(W, b, self.args.groups)
        self.strategy = check_strategy(strategy)

    stride = property(lambda self: self.args.stride)
    padding = property(lambda self: self.args.padding)
    output_padding = property(lambda self: self.args.output_padding)
    dilation = property(lambda self: self.args.dilation)

    def _forward(self, x: Any) -> tuple[Any, Any, Any]:
        x, weight, bias = self._cast(x)
        window = self.args.window(x.shape[2:], weight.shape[2:])
        return conv_transpose_forward(x, weight, bias, window, self.groups, self.strategy), window, x

    def _gradients(self, grad: Any, saved: Saved, input_grad: bool) -> Any:
        grad_input, grad_weight, grad_bias = conv_transpose_backward(
            grad, saved.state, cast_array(self.W, as_numpy_dtype(saved.dtype)), saved.window, self.groups,
            self.strategy)
        self._set_grads(grad_weight, grad_bias)
        return grad_input if input_grad else None


class Conv1d(_ConvNd):
    """1-D convolution layer (``torch.nn.Conv1d``'s computation) from ``W`` ``(FN, C/groups, K)``, ``b``."""

    ndim = 1


class Conv2d(_ConvNd):
    """2-D convolution layer (``torch.nn.Conv2d``'s computation) from ``W`` ``(FN, C/groups, KH, KW)``, ``b``."""

    ndim = 2


class Conv3d(_ConvNd):
    """3-D convolution layer (``torch.nn.Conv3d``'s computation) from ``W`` ``(FN, C/groups, KD, KH, KW)``, ``b``."""

    ndim = 3


class Convolution(Conv2d):
    """Convolution layer, a drop-in replacement for the book's ``Convolution(W, b, stride, pad)``.

    ``W`` ``(FN, C/groups, FH, FW)`` and ``b`` ``(FN,)`` (or a scalar, one value for
    every filter) are kept, not copied, as in the book: the layer trains the
    caller's arrays. ``forward``: ``(N, C, H, W)`` -> ``(N, FN, out_h, out_w)``;
    ``backward(dout)`` returns ``dx`` and sets ``dW``, ``db``. With the default
    ``strategy`` forward keeps ``x`` itself (not a copy, nor its im2col matrix) and
    backward rebuilds the columns from it, so ``x`` must not be changed in
    between. It is :class:`Conv2d` with the book's argument names (``pad``).
    """

    _config_names = ("stride", "pad", "dilation", "groups")
    _padding_name = "pad"

    def __init__(self, W: Any, b: Any, stride: IntTuple = 1, pad: IntTuple | str = 0, *, dilation: IntTuple = 1,
                 groups: int = 1, strategy: str | None = None) -> None:
        super().__init__(W, b, stride, pad, dilation, groups, strategy=strategy)

    pad = property(lambda self: self.args.padding)

    @classmethod
    def from_config(cls, config: dict[str, Any], params: dict[str, np.ndarray]) -> Convolution:
        return cls(params["W"], params["b"], config["stride"], config["pad"], dilation=config["dilation"],
                   groups=config["groups"])


class ConvTranspose1d(_ConvTransposeNd):
    """1-D transposed convolution layer (``torch.nn.ConvTranspose1d``) from ``W`` ``(C, FN/groups, K)``, ``b``."""

    ndim = 1


class ConvTranspose2d(_ConvTransposeNd):
    """2-D transposed convolution layer (``torch.nn.ConvTranspose2d``) from ``W`` ``(C, FN/groups, KH, KW)``, ``b``."""

    ndim = 2


class ConvTranspose3d(_ConvTransposeNd):
    """3-D transposed convolution layer (``torch.nn.ConvTranspose3d``) from ``W`` ``(C, FN/groups, KD, KH, KW)``."""

    ndim = 3
