"""Convolution and transposed-convolution layers in 1, 2 and 3 dimensions, built from weights.

Like the book's ``Convolution`` (which stays), a layer is made from its
weights: ``Conv{1,2,3}d(W, b, stride=1, padding=0, dilation=1, groups=1)`` with
``W`` ``(FN, C/groups, *k)``, and ``ConvTranspose{1,2,3}d(W, b, stride=1,
padding=0, output_padding=0, groups=1, dilation=1)`` with ``W`` ``(C, FN/groups, *k)``.
``W`` and ``b`` are kept, not copied (an optimizer's in-place update trains them), in
the library and on the device they came in (NumPy, PyTorch, JAX, CuPy...); ``backward(dout)`` returns ``dx`` in the input's library
and sets ``dW``, ``db`` in the weights'.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.checks import as_numpy_dtype, cast_array
from ..core.window import IntTuple, as_tuple
from ..ops.array_api import as_common_dtype
from ..ops.conv import conv_window
from ..ops.conv_nd import check_conv_weight, conv_nd_backward, conv_nd_forward
from ..ops.conv_transpose import conv_transpose_backward, conv_transpose_forward, transpose_window
from .layers import _Saved, _WeightAndBias, scalar_bias, shared_parameters
from .spatial import SpatialLayer

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"]


class _ConvBase(_WeightAndBias, SpatialLayer):
    """Weights, the common dtype, and the gradients' bookkeeping."""

    transposed = False

    def _take_weights(self, W: Any, b: Any, groups: Any) -> None:
        if b is None:
            raise TypeError("b must be an array of output channels, got None")
        weight, bias, self.groups = check_conv_weight(W, b if self.transposed else scalar_bias(b, W),
                                                      groups, self.ndim, None, transposed=self.transposed)
        self.W, self.b = shared_parameters(weight, bias)
        self.dW: np.ndarray | None = None
        self.db: np.ndarray | None = None

    def _weights(self) -> Any:
        return self.W

    def _cast(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        check_conv_weight(self.W, self.b, self.groups, self.ndim, x.shape[1], transposed=self.transposed)
        return as_common_dtype(x, self.W, self.b)

    def _set_grads(self, grad_weight: np.ndarray, grad_bias: np.ndarray) -> None:
        self.dW = cast_array(grad_weight, as_numpy_dtype(self.W.dtype))
        self.db = cast_array(grad_bias, as_numpy_dtype(self.b.dtype))

    def __repr__(self) -> str:
        arguments = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._config_names)
        return f"{type(self).__name__}(W={tuple(self.W.shape)}, {arguments})"


class _ConvNd(_ConvBase):
    _config_names = ("stride", "padding", "dilation", "groups")

    def __init__(self, W: Any, b: Any, stride: IntTuple = 1, padding: IntTuple | str = 0, dilation: IntTuple = 1,
                 groups: int = 1, *, strategy: str | None = None) -> None:
        self._take_weights(W, b, groups)
        self.stride = as_tuple(stride, "stride", self.ndim, minimum=1)
        self.padding = padding if isinstance(padding, str) else as_tuple(padding, "padding", self.ndim, minimum=0)
        self.dilation = as_tuple(dilation, "dilation", self.ndim, minimum=1)
        self.strategy = strategy

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any, Any]:
        x, weight, bias = self._cast(x)
        window = conv_window(x.shape[2:], weight.shape[2:], self.stride, self.padding, self.dilation)
        out, saved = conv_nd_forward(x, weight, bias, window, self.groups, self.strategy)
        return out, window, saved

    def _backward(self, grad: np.ndarray, saved: _Saved) -> np.ndarray:
        grad_input, grad_weight, grad_bias = conv_nd_backward(
            grad, saved.input_shape, saved.state, cast_array(self.W, saved.dtype), saved.window,
            self.groups, self.strategy)
        self._set_grads(grad_weight, grad_bias)
        return grad_input


class _ConvTransposeNd(_ConvBase):
    transposed = True
    _config_names = ("stride", "padding", "output_padding", "groups", "dilation")

    def __init__(self, W: Any, b: Any, stride: IntTuple = 1, padding: IntTuple = 0, output_padding: IntTuple = 0,
                 groups: int = 1, dilation: IntTuple = 1, *, strategy: str | None = None) -> None:
        self._take_weights(W, b, groups)
        self.stride = as_tuple(stride, "stride", self.ndim, minimum=1)
        self.padding = as_tuple(padding, "padding", self.ndim, minimum=0)
        self.output_padding = as_tuple(output_padding, "output_padding", self.ndim, minimum=0)
        self.dilation = as_tuple(dilation, "dilation", self.ndim, minimum=1)
        transpose_window((1,) * self.ndim, self.W.shape[2:], self.stride, self.padding, self.output_padding,
                         self.dilation)  # output_padding's rule, checked now
        self.strategy = strategy

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any, Any]:
        x, weight, bias = self._cast(x)
        window = transpose_window(x.shape[2:], weight.shape[2:], self.stride, self.padding, self.output_padding,
                                  self.dilation)
        return conv_transpose_forward(x, weight, bias, window, self.groups, self.strategy), window, x

    def _backward(self, grad: np.ndarray, saved: _Saved) -> np.ndarray:
        grad_input, grad_weight, grad_bias = conv_transpose_backward(
            grad, saved.state, cast_array(self.W, saved.dtype), saved.window, self.groups, self.strategy)
        self._set_grads(grad_weight, grad_bias)
        return grad_input


class Conv1d(_ConvNd):
    """1-D convolution layer (``torch.nn.Conv1d``'s computation) from ``W`` ``(FN, C/groups, K)``, ``b``."""

    ndim = 1


class Conv2d(_ConvNd):
    """2-D convolution layer (``torch.nn.Conv2d``'s computation) from ``W`` ``(FN, C/groups, KH, KW)``, ``b``."""

    ndim = 2


class Conv3d(_ConvNd):
    """3-D convolution layer (``torch.nn.Conv3d``'s computation) from ``W`` ``(FN, C/groups, KD, KH, KW)``, ``b``."""

    ndim = 3


class ConvTranspose1d(_ConvTransposeNd):
    """1-D transposed convolution layer (``torch.nn.ConvTranspose1d``) from ``W`` ``(C, FN/groups, K)``, ``b``."""

    ndim = 1


class ConvTranspose2d(_ConvTransposeNd):
    """2-D transposed convolution layer (``torch.nn.ConvTranspose2d``) from ``W`` ``(C, FN/groups, KH, KW)``, ``b``."""

    ndim = 2


class ConvTranspose3d(_ConvTransposeNd):
    """3-D transposed convolution layer (``torch.nn.ConvTranspose3d``) from ``W`` ``(C, FN/groups, KD, KH, KW)``."""

    ndim = 3
