"""The book's fully connected layer ``Affine`` (chapter 5.6)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..core.checks import check_flag, check_float_array, check_grad_shape, stand_in
from ..core.dtypes import as_numpy_dtype
from ..core.ieee import quiet_ieee
from ..core.namespace import is_dask_array
from ..kernels.blas import blas_threads_for
from ..kernels.epilogue import LOOP_DTYPES, affine_bias_relu, relu_mask
from ..ops.reference import dense
from ..ops.xp import namespace_of
from .activation import Relu
from .base import Layer, WeightAndBias
from .cpu_views import backward_on_views, forward_on_views, infer_on_views
from .parameters import fuses, scalar_bias, shared_parameters

__all__ = ["Affine"]

# Ranks at which Affine reads axis 0 as the batch, which may be empty.
_ANY_RANK = tuple(range(1, 33))


class Affine(WeightAndBias, Layer):
    """Fully connected layer ``x @ W + b`` (the book's ``Affine``, chapter 5.6).

    ``forward``: ``(N, ...)`` (flattened to ``(N, D)``) -> ``(N, M)`` with ``W``
    ``(D, M)`` and ``b`` ``(M,)``; ``backward`` restores the input's shape and sets
    ``dW``, ``db``. ``W`` and ``b`` are kept, not copied (the book's sharing).
    A following ``Relu`` is fused into the output pass (:meth:`forward_relu`), and
    as a network's first layer ``backward(dout, input_grad=False)`` skips ``dx``.
    A Dask batch is mapped lazily over its chunks of samples (``backward`` then refuses).
    """

    fresh_gradient = True
    skips_input_grad = True
    infers_statelessly = True

    def __init__(self, W: Any, b: Any) -> None:
        weight = check_float_array(W, "W", ndims=(2,), batch_ndims=(), array_api=True)
        b = scalar_bias(b, weight, axis=1)
        bias = check_float_array(b, "b", ndims=(1,), batch_ndims=(), array_api=True, like=weight, like_name="W")
        if tuple(bias.shape) != (weight.shape[1],):
            raise ValueError(f"b must have shape ({weight.shape[1]},), got {tuple(bias.shape)}")
        self.W, self.b = shared_parameters(weight, bias)
        self.dW: np.ndarray | None = None
        self.db: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"Affine(W={tuple(self.W.shape)}, dtype={as_numpy_dtype(self.W.dtype)})"

    def _on_numpy(self, *arrays: Any) -> bool:
        return all(isinstance(array, np.ndarray) for array in (self.W, *arrays))

    def _check(self, x: Any) -> Any:
        x = check_float_array(x, "x", ndims=tuple(range(1, 9)), batch_ndims=_ANY_RANK[1:], array_api=True,
                              like=self.W, like_name="W")
        features = math.prod(x.shape[1:]) if x.ndim > 1 else x.shape[0]
        if features != self.W.shape[0]:
            raise ValueError(
                f"x has {features} features per sample but W expects {self.W.shape[0]} (x shape {tuple(x.shape)})"
            )
        return x

    @quiet_ieee  # inf - inf in the products: NaN, as torch gives it without a warning
    def _affine(self, x: Any) -> tuple[Any, Any]:
        """``(out, x2)`` of a checked ``x``: ``x2`` the ``(N, D)`` rows backward needs."""
        if not self._on_numpy(x):
            # Another library's arrays: the same formula in their namespace.
            return dense.affine_forward(x, self.W, self.b)
        x2 = x.reshape(x.shape[0], int(np.prod(x.shape[1:]))) if x.ndim > 1 else x.reshape(1, -1)
        with blas_threads_for(2.0 * x2.shape[0] * self.W.size):
            out = x2 @ self.W + self.b
        return out, x2

    @forward_on_views
    def forward(self, x: Any) -> np.ndarray:
        if is_dask_array(x):
            self._check(stand_in(x))
            return self._lazy(x, batched=x.ndim > 1)
        x = self._check(x)
        out, x2 = self._affine(x)
        self._keep((x2, tuple(x.shape)))
        return out

    @infer_on_views
    def infer(self, x: Any) -> Any:
        if is_dask_array(x):
            self._check(stand_in(x))
            from ..ops.dask import map_batches

            return map_batches(x, self.infer) if x.ndim > 1 else map_batches(x[np.newaxis], self.infer)[0]
        return self._affine(self._check(x))[0]

    def forward_relu(self, x: Any, relu: Layer, *, keep: bool = True, workspace: Any = None) -> Any:
        """``relu(x @ W + b)`` with the bias and ReLU in one pass over the product (:mod:`colnn.kernels.epilogue`).

        Taken for a following :class:`~colnn.nn.activation.Relu` (exactly that
        class) on a batch of NumPy float32/float64 arrays of one dtype; None
        otherwise. Outputs, mask and gradients equal the two layers' bit for bit.
        """
        if not (type(relu) is Relu and fuses(self, Affine, relu) and type(x) is np.ndarray and 2 <= x.ndim <= 8
                and self._native(x.dtype)):
            return None
        features = int(np.prod(x.shape[1:]))
        if features != self.W.shape[0]:
            return None  # the layer's own forward raises the error
        x2 = x.reshape(x.shape[0], features)
        with blas_threads_for(2.0 * x2.shape[0] * self.W.size):
            out = x2 @ self.W
        affine_bias_relu(out, self.b)
        if keep:
            self._keep((x2, x.shape))
            relu.keep_mask(relu_mask(out))
        return out

    def _native(self, dtype: np.dtype) -> bool:
        """Whether the fused loops take this layer's parameters with an input of ``dtype``."""
        return (type(self.W) is np.ndarray and type(self.b) is np.ndarray and dtype in LOOP_DTYPES
                and dtype == self.W.dtype == self.b.dtype)

    @backward_on_views
    @quiet_ieee
    def backward(self, dout: Any, *, input_grad: bool = True) -> np.ndarray | None:
        """``dx`` of the input's shape for ``dout`` ``(N, M)``; sets ``dW`` and ``db``.

        ``input_grad=False``: only ``dW`` and ``db`` (a network's first layer), and None.
        """
        x2, input_shape = self._saved()
        input_grad = check_flag(input_grad, "input_grad")
        dout = check_grad_shape(dout, (x2.shape[0], self.W.shape[1]), self.W.dtype, x2)
        if not self._on_numpy(x2):
            grad_input, grad_weight, grad_bias = dense.affine_backward(dout, x2, self.W, self.b.dtype)
            self._check_thread()
            self.dW, self.db = grad_weight, grad_bias
            return namespace_of(grad_input).reshape(grad_input, input_shape) if input_grad else None
        with blas_threads_for(2.0 * x2.shape[0] * self.W.size):
            grad_weight = (x2.T @ dout).astype(self.W.dtype, copy=False)
            grad_input = dout @ self.W.T if input_grad else None
        grad_bias = dout.sum(axis=0).astype(self.b.dtype, copy=False)
        self._check_thread()  # another thread's forward during this backward: its state, not ours
        self.dW, self.db = grad_weight, grad_bias
        return None if grad_input is None else grad_input.reshape(input_shape)


