"""Layer objects in the book's style: ``forward(x)`` keeps what ``backward(dout)`` needs.

Every layer has ``forward`` (also ``__call__``), ``backward`` (returns the
gradient w.r.t. the input) and the dicts ``params`` and ``grads`` (empty for
layers without parameters). After ``backward``, parameter gradients are also
the book's attributes ``dW`` and ``db``. A failed call leaves the layer as it
was, and no layer modifies the arrays it is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..ops.conv import available_strategies as conv_strategies
from ..ops.array_api import as_common_dtype, copy_as, device_of
from ..ops.conv import check_conv_args, conv2d_backward, conv2d_forward, conv_window
from ..ops.pooling import available_strategies as pool_strategies
from ..ops.pooling import (
    check_divisor,
    pool_window,
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from ..core.checks import (
    from_batched,
    as_numpy_dtype, cast_array, check_array, check_choice, check_flag, check_float_array, check_grad_shape, describe,
    gradient_dtype, library_token, to_batched,
)
from ..kernels.blas import blas_threads_for
from ..kernels.relu import relu_backward, relu_forward
from ..ops import dense
from ..core.ieee import quiet_ieee
from ..core.window import IntPair, as_pair

__all__ = [
    "Layer",
    "MaxPool2d",
    "AvgPool2d",
    "Pooling",
    "Convolution",
    "Relu",
    "Affine",
    "SoftmaxWithLoss",
]


# Ranks at which Relu and Affine read axis 0 as the batch, which may be empty.
_ANY_RANK = tuple(range(1, 33))


class Layer:
    """Base class: the forward/backward protocol and parameter bookkeeping."""

    def forward(self, x: Any) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def backward(self, dout: Any) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def __call__(self, x: Any) -> np.ndarray:
        return self.forward(x)

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Learnable parameters by name; optimizers update these arrays in place."""
        return {}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """Gradients of the loss w.r.t. :attr:`params`, set by :meth:`backward`."""
        return {}

    def _saved(self) -> Any:
        saved = getattr(self, "_cache", None)
        if saved is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return saved


class _WeightAndBias:
    """Mixin for layers with the book's parameters ``W``, ``b`` and gradients ``dW``, ``db``."""

    W: np.ndarray
    b: np.ndarray
    dW: np.ndarray | None = None
    db: np.ndarray | None = None

    @property
    def params(self) -> dict[str, np.ndarray]:
        return {"W": self.W, "b": self.b}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return {} if self.dW is None else {"W": self.dW, "b": self.db}


def scalar_bias(b: Any, W: Any, axis: int = 0) -> Any:
    """A scalar bias (the book's ``b = 0``) as one value per output, ``W.shape[axis]`` of them; anything else as given."""
    if b is not None and np.ndim(b) == 0 and np.ndim(W) > axis:
        return [b] * int(np.shape(W)[axis])
    return b


def shared_parameters(weight: Any, bias: Any) -> tuple[Any, Any]:
    """The checked ``weight`` and ``bias`` a layer keeps: the caller's arrays themselves wherever they can be.

    As the book's layers (and ``torch.nn.Parameter``) do, a layer shares its
    parameters with whoever built it: an optimizer that updates the arrays of a
    ``params`` dict in place trains the layer. Only a bias of another dtype than
    the weight's (or one given as a list or scalar) becomes a new array.
    """
    return weight, copy_as(bias, weight.dtype, copy=False)


@dataclass(frozen=True)
class _Saved:
    """What a windowed layer's forward keeps for backward."""

    input_shape: tuple[int, ...]  # batched (N, C, H, W)
    output_shape: tuple[int, ...]  # batched (N, C', out_h, out_w)
    dtype: np.dtype
    unbatched: bool
    window: Any
    state: Any  # the op's own: window offsets, divisor, or col
    like: Any = None  # the input's library_token: dout must be of its library and device, or NumPy


class _WindowLayer(Layer):
    """Shared forward/backward plumbing of pooling and convolution layers.

    Subclasses implement ``_check(x)``, ``_forward(x4) -> (out4, window, state)``
    and ``_backward(grad4, saved) -> grad_input4`` on batched arrays.
    """

    _cache: _Saved | None = None

    def forward(self, x: Any) -> np.ndarray:
        x4, unbatched = to_batched(self._check(x))
        out4, window, state = self._forward(x4)
        self._cache = _Saved(x4.shape, out4.shape, out4.dtype, unbatched, window, state, library_token(x4))
        return from_batched(out4, unbatched)

    def backward(self, dout: Any) -> np.ndarray:
        grad, saved = self._batched_grad(dout)
        return from_batched(self._backward(grad, saved), saved.unbatched)

    def _batched_grad(self, dout: Any) -> tuple[np.ndarray, _Saved]:
        """``dout`` checked against the forward's output and batched, with what the forward saved."""
        saved = self._saved()
        out_shape = saved.output_shape[1:] if saved.unbatched else saved.output_shape
        grad = check_grad_shape(dout, out_shape, saved.dtype, saved.like)
        return (grad[None, ...] if saved.unbatched else grad), saved


class MaxPool2d(_WindowLayer):
    """Max pooling layer, as ``torch.nn.MaxPool2d``; see :func:`colnn.max_pool2d`.

    ``forward``: ``(N, C, H, W)`` or ``(C, H, W)`` -> ``(N, C, out_h, out_w)``;
    ``backward``: ``dout`` of the output's shape -> ``dx`` of the input's shape.
    """

    def __init__(
        self,
        kernel_size: IntPair,
        stride: IntPair | None = None,
        padding: IntPair = 0,
        dilation: IntPair = 1,
        ceil_mode: bool = False,
        *,
        strategy: str | None = None,
    ) -> None:
        self.kernel_size = as_pair(kernel_size, "kernel_size", minimum=1)
        self.stride = self.kernel_size if stride is None else as_pair(stride, "stride", minimum=1)
        self.padding = as_pair(padding, "padding", minimum=0)
        self.dilation = as_pair(dilation, "dilation", minimum=1)
        self.ceil_mode = check_flag(ceil_mode, "ceil_mode")
        self.strategy = check_choice(strategy, "strategy", (None, *pool_strategies()))

    def __repr__(self) -> str:
        return (
            f"MaxPool2d(kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode})"
        )

    def _check(self, x: Any) -> np.ndarray:
        return check_array(x, "x", array_api=True)

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any, Any]:
        window = pool_window(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)
        out, window_offset = max_pool2d_forward(x, window, self.strategy)
        return out, window, window_offset

    def _backward(self, grad: np.ndarray, saved: _Saved) -> np.ndarray:
        return max_pool2d_backward(grad, saved.state, saved.input_shape, saved.window, self.strategy)

    @property
    def indices(self) -> np.ndarray:
        """int64 flat indices (into ``H*W``) of the maxima chosen by the last forward."""
        saved = self._saved()
        flat = saved.window.flat_indices(saved.state)
        return flat[0] if saved.unbatched else flat


class AvgPool2d(_WindowLayer):
    """Average pooling layer, as ``torch.nn.AvgPool2d``; see :func:`colnn.avg_pool2d`."""

    def __init__(
        self,
        kernel_size: IntPair,
        stride: IntPair | None = None,
        padding: IntPair = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
        *,
        strategy: str | None = None,
    ) -> None:
        self.kernel_size = as_pair(kernel_size, "kernel_size", minimum=1)
        self.stride = self.kernel_size if stride is None else as_pair(stride, "stride", minimum=1)
        self.padding = as_pair(padding, "padding", minimum=0)
        self.ceil_mode = check_flag(ceil_mode, "ceil_mode")
        self.count_include_pad = check_flag(count_include_pad, "count_include_pad")
        self.divisor_override = check_divisor(divisor_override)
        self.strategy = check_choice(strategy, "strategy", (None, *pool_strategies()))

    def __repr__(self) -> str:
        return (
            f"AvgPool2d(kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"ceil_mode={self.ceil_mode}, count_include_pad={self.count_include_pad}, "
            f"divisor_override={self.divisor_override})"
        )

    def _check(self, x: Any) -> np.ndarray:
        return check_float_array(x, "x", array_api=True)

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any, Any]:
        window = pool_window(x, self.kernel_size, self.stride, self.padding, 1, self.ceil_mode)
        divisor = window.avg_divisor(self.count_include_pad, self.divisor_override)
        return avg_pool2d_forward(x, window, divisor, self.strategy), window, divisor

    def _backward(self, grad: np.ndarray, saved: _Saved) -> np.ndarray:
        return avg_pool2d_backward(grad, saved.input_shape, saved.window, saved.state, self.strategy)


class Pooling(MaxPool2d):
    """Drop-in replacement for the book's max-pooling layer ``Pooling(pool_h, pool_w, stride=1, pad=0)``.

    Same constructor and results where the book is right; unlike the book, padded
    cells are ``-inf`` (never chosen) and ``pad`` enters the output size.
    """

    def __init__(self, pool_h: int, pool_w: int, stride: IntPair = 1, pad: IntPair = 0) -> None:
        super().__init__((pool_h, pool_w), stride, pad)
        self.pool_h, self.pool_w = self.kernel_size
        self.pad = self.padding

    def __repr__(self) -> str:
        return f"Pooling(pool_h={self.pool_h}, pool_w={self.pool_w}, stride={self.stride}, pad={self.pad})"


class Convolution(_WeightAndBias, _WindowLayer):
    """Convolution layer, a drop-in replacement for the book's ``Convolution(W, b, stride, pad)``.

    ``W`` ``(FN, C/groups, FH, FW)`` and ``b`` ``(FN,)`` (or a scalar, one value for
    every filter) are kept, not copied, as in the book: the layer trains the caller's arrays. ``forward``: ``(N, C, H, W)`` ->
    ``(N, FN, out_h, out_w)``; ``backward(dout)`` returns ``dx`` and sets
    ``dW``, ``db``. With the default ``strategy`` forward keeps ``x`` itself (not
    a copy, nor its im2col matrix) and backward rebuilds the columns from it, so
    ``x`` must not be changed in between.
    """

    def __init__(
        self,
        W: Any,
        b: Any,
        stride: IntPair = 1,
        pad: IntPair | str = 0,
        *,
        dilation: IntPair = 1,
        groups: int = 1,
        strategy: str | None = None,
    ) -> None:
        weight, bias, groups = check_conv_args(W, scalar_bias(b, W), groups, names=("W", "b"))
        if bias is None:
            raise TypeError("b must be an array of shape (FN,), got None")
        self.W, self.b = shared_parameters(weight, bias)
        self.stride = as_pair(stride, "stride", minimum=1)
        self.pad = pad if isinstance(pad, str) else as_pair(pad, "pad", minimum=0)
        self.dilation = as_pair(dilation, "dilation", minimum=1)
        self.groups = groups
        self.strategy = check_choice(strategy, "strategy", (None, *conv_strategies()))
        self.dW: np.ndarray | None = None
        self.db: np.ndarray | None = None

    def __repr__(self) -> str:
        return (
            f"Convolution(W={self.W.shape}, stride={self.stride}, pad={self.pad}, "
            f"dilation={self.dilation}, groups={self.groups})"
        )

    def _check(self, x: Any) -> np.ndarray:
        return check_float_array(x, "x", array_api=True, like=self.W, like_name="W")

    def window_for(self, x: np.ndarray) -> Any:
        """The window geometry of a batch ``x`` ``(N, C, H, W)``, after checking it against ``W`` and ``b``."""
        check_conv_args(self.W, self.b, self.groups, in_channels=x.shape[-3], names=("W", "b"))
        return conv_window(x.shape[2:], self.W.shape[2:], self.stride, self.pad, self.dilation)

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any, Any]:
        window = self.window_for(x)
        out, saved = conv2d_forward(*as_common_dtype(x, self.W, self.b), window, self.groups, self.strategy)
        return out, window, saved

    def backward(self, dout: Any, *, input_grad: bool = True) -> np.ndarray | None:
        """``dx`` for ``dout`` of the output's shape; sets ``dW`` and ``db``.

        With ``input_grad=False`` only ``dW`` and ``db`` are computed and None is
        returned: a network's first layer, whose input needs no gradient (PyTorch's
        autograd skips it there too). The default strategy then leaves out a GEMM
        and col2im.
        """
        if check_flag(input_grad, "input_grad"):
            return super().backward(dout)
        grad, saved = self._batched_grad(dout)
        self._gradients(grad, saved, input_grad=False)
        return None

    def _backward(self, grad: np.ndarray, saved: _Saved) -> np.ndarray:
        return self._gradients(grad, saved, input_grad=True)

    def _gradients(self, grad: np.ndarray, saved: _Saved, input_grad: bool) -> np.ndarray | None:
        grad_input, grad_weight, grad_bias = conv2d_backward(
            grad, saved.input_shape, saved.state, cast_array(self.W, as_numpy_dtype(saved.dtype)),
            saved.window, self.groups, self.strategy, input_grad,
        )
        self.dW = cast_array(grad_weight, as_numpy_dtype(self.W.dtype))
        self.db = cast_array(grad_bias, as_numpy_dtype(self.b.dtype))
        return grad_input


class Relu(Layer):
    """``max(x, 0)`` elementwise, as ``torch.relu``; any shape, dtype preserved (the gradient is floating).

    NumPy input takes the compiled kernels; another Array API library's array
    (PyTorch, JAX, CuPy, ...) is computed in its library, on its device, and
    ``mask`` and ``backward``'s result are of that library.
    """

    def __init__(self) -> None:
        self.mask: np.ndarray | None = None

    def __repr__(self) -> str:
        return "Relu()"

    def forward(self, x: Any) -> np.ndarray:
        x = check_array(x, "x", ndims=None, batch_ndims=_ANY_RANK, array_api=True)
        # NumPy takes the compiled pass; another library's array the Array API formula where it lives.
        out, self.mask = relu_forward(x) if isinstance(x, np.ndarray) else dense.relu_forward(x)
        return out

    def backward(self, dout: Any) -> np.ndarray:
        if self.mask is None:
            raise RuntimeError("Relu.backward called before forward")
        dout = check_grad_shape(dout, tuple(self.mask.shape), np.dtype(np.int8), self.mask)
        if isinstance(self.mask, np.ndarray):
            return relu_backward(dout, self.mask)
        return dense.relu_backward(dout, self.mask)


class Affine(_WeightAndBias, Layer):
    """Fully connected layer ``x @ W + b``.

    ``forward``: ``(N, ...)`` (flattened to ``(N, D)``) -> ``(N, M)`` with ``W``
    ``(D, M)`` and ``b`` ``(M,)``; ``backward`` restores the input's shape and sets
    ``dW``, ``db``. ``W`` and ``b`` are kept, not copied (the book's sharing).
    """

    def __init__(self, W: Any, b: Any) -> None:
        weight = check_float_array(W, "W", ndims=(2,), batch_ndims=(), array_api=True)
        b = scalar_bias(b, weight, axis=1)
        bias = check_float_array(b, "b", ndims=(1,), batch_ndims=(), array_api=True, like=weight, like_name="W")
        if tuple(bias.shape) != (weight.shape[1],):
            raise ValueError(f"b must have shape ({weight.shape[1]},), got {tuple(bias.shape)}")
        self.W, self.b = shared_parameters(weight, bias)
        self.dW: np.ndarray | None = None
        self.db: np.ndarray | None = None
        self._cache: tuple[np.ndarray, tuple[int, ...]] | None = None

    def __repr__(self) -> str:
        return f"Affine(W={tuple(self.W.shape)}, dtype={as_numpy_dtype(self.W.dtype)})"

    def _on_numpy(self, *arrays: Any) -> bool:
        return all(isinstance(array, np.ndarray) for array in (self.W, *arrays))

    @quiet_ieee  # inf - inf in the products: NaN, as torch gives it without a warning
    def forward(self, x: Any) -> np.ndarray:
        x = check_float_array(x, "x", ndims=tuple(range(1, 9)), batch_ndims=_ANY_RANK[1:], array_api=True,
                              like=self.W, like_name="W")
        features = math.prod(x.shape[1:]) if x.ndim > 1 else x.shape[0]
        if features != self.W.shape[0]:
            raise ValueError(
                f"x has {features} features per sample but W expects {self.W.shape[0]} (x shape {tuple(x.shape)})"
            )
        if not self._on_numpy(x):
            # Another library's arrays: the same formula in their namespace.
            out, x2 = dense.affine_forward(x, self.W, self.b)
            self._cache = (x2, tuple(x.shape))
            return out
        x2 = x.reshape(x.shape[0], int(np.prod(x.shape[1:]))) if x.ndim > 1 else x.reshape(1, -1)
        with blas_threads_for(2.0 * x2.shape[0] * self.W.size):
            out = x2 @ self.W + self.b
        self._cache = (x2, x.shape)
        return out

    @quiet_ieee
    def backward(self, dout: Any) -> np.ndarray:
        x2, input_shape = self._saved()
        dout = check_grad_shape(dout, (x2.shape[0], self.W.shape[1]), self.W.dtype, x2)
        if not self._on_numpy(x2):
            grad_input, grad_weight, grad_bias = dense.affine_backward(dout, x2, self.W, self.b.dtype)
            self.dW, self.db = grad_weight, grad_bias
            return dense.namespace_of(grad_input).reshape(grad_input, input_shape)
        with blas_threads_for(2.0 * x2.shape[0] * self.W.size):
            self.dW = (x2.T @ dout).astype(self.W.dtype, copy=False)
            grad_input = dout @ self.W.T
        self.db = dout.sum(axis=0).astype(self.b.dtype, copy=False)
        return grad_input.reshape(input_shape)


class SoftmaxWithLoss(Layer):
    """Softmax followed by mean cross-entropy loss, as ``torch.nn.functional.cross_entropy``.

    ``forward(x, t)``: scores ``x`` ``(N, K)`` and a target ``t``, either integer
    labels ``(N,)`` (or the book's column ``(N, 1)``, for ``K > 1``) or class probabilities ``(N, K)`` (rows >= 0 that sum to 1;
    one-hot rows are the special case, integer or floating) -> scalar loss
    ``-mean_n sum_k t[n, k] * log softmax(x)[n, k]``. ``backward(dout=1)`` ->
    ``(N, K)`` gradient ``dout * (softmax(x) - t) / N``. Uses log-sum-exp, so
    large scores neither overflow nor give ``log(0)``. An empty batch gives
    NaN, as PyTorch's mean over no samples, and an empty gradient.

    Raises ValueError for a ``t`` of the wrong shape, labels outside
    ``[0, K)``, or probability rows that are negative or do not sum to 1
    (within ``max(1e-6, sqrt(eps))`` of ``t``'s dtype).
    """

    def __init__(self) -> None:
        self.y: np.ndarray | None = None  # softmax probabilities of the last forward
        self.t: np.ndarray | None = None  # target of the last forward: labels (N,) or probabilities (N, K)
        self.loss: float | None = None

    def __repr__(self) -> str:
        return "SoftmaxWithLoss()"

    def forward(self, x: Any, t: Any) -> float:  # type: ignore[override]
        # Written on the Array API (NumPy 2's namespace is one), so another library's
        # scores are computed where they live; ``y`` and the gradient stay there.
        x = check_float_array(x, "x", ndims=(2,), batch_ndims=(2,), array_api=True)
        xp = dense.namespace_of(x)
        target = _check_target(t, x)
        shifted = x - xp.max(x, axis=1, keepdims=True)
        log_probs = shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))
        if target.ndim == 2:
            chosen = target > 0
            terms = xp.where(chosen, target, dense.zero_like(target)) * xp.where(chosen, log_probs,
                                                                                dense.zero_like(log_probs))
        else:
            terms = xp.where(_one_hot(target, x.shape[1]), log_probs, dense.zero_like(log_probs))
        per_sample = -xp.sum(terms, axis=1)
        loss = float(xp.mean(per_sample)) if per_sample.shape[0] else float("nan")
        self.y, self.t, self.loss = xp.exp(log_probs), target, loss
        return loss

    def __call__(self, x: Any, t: Any) -> float:  # type: ignore[override]
        return self.forward(x, t)

    def backward(self, dout: Any = 1.0) -> np.ndarray:
        if self.y is None:
            raise RuntimeError("SoftmaxWithLoss.backward called before forward")
        xp = dense.namespace_of(self.y)
        if self.t.ndim == 2:
            subtrahend = xp.astype(self.t, xp.result_type(self.y, self.t))
        else:
            subtrahend = xp.astype(_one_hot(self.t, self.y.shape[1]), self.y.dtype)
        grad = xp.astype(self.y - subtrahend, self.y.dtype)
        scale = float(check_array(dout, "dout", ndims=(0,), array_api=True))
        divisor = xp.asarray(scale, dtype=grad.dtype, device=device_of(grad)) / max(grad.shape[0], 1)
        return grad * divisor


def _one_hot(labels: Any, classes: int) -> Any:
    """``(N, K)`` booleans, true at ``labels[n]`` in row ``n``: the standard has no fancy indexing to gather with."""
    xp = dense.namespace_of(labels)
    return labels[:, None] == xp.arange(classes, dtype=labels.dtype, device=device_of(labels))[None, :]


def _check_target(t: Any, x: Any) -> np.ndarray:
    """``t`` as integer labels ``(N,)`` or float class probabilities ``(N, K)`` of checked scores ``x``'s library.

    ValueError naming ``t`` if neither; NumPy labels move to ``x``'s library, another
    library's are a TypeError, another device's a ValueError (:func:`same_library`).
    """
    scores_shape = tuple(x.shape)
    n, classes = scores_shape
    target = check_array(t, "t", ndims=(1, 2), batch_ndims=(1, 2), array_api=True, like=x, like_name="x",
                         moves=True)
    xp = dense.namespace_of(target)
    if target.ndim == 2 and tuple(target.shape) == (n, 1) and classes > 1 and xp.isdtype(target.dtype, "integral"):
        target = target[:, 0]  # the book's labels as a column (t.reshape(-1, 1)): one label per row
    if target.ndim == 1:
        if tuple(target.shape) != (n,) or not xp.isdtype(target.dtype, "integral"):
            raise ValueError(
                f"t must be integer labels of shape ({n},) or class probabilities of shape {scores_shape}, "
                f"got shape {tuple(target.shape)} dtype {target.dtype}"
            )
        if n and (int(xp.min(target)) < 0 or int(xp.max(target)) >= classes):
            raise ValueError(
                f"t must hold labels in [0, {classes}), got range [{int(xp.min(target))}, {int(xp.max(target))}]"
            )
        return target
    if tuple(target.shape) != scores_shape:
        raise ValueError(f"t of class probabilities must have x's shape {scores_shape}, got {tuple(target.shape)}")
    probs = cast_array(target, gradient_dtype(target.dtype, target.dtype))
    tolerance = max(1e-6, float(np.sqrt(np.finfo(as_numpy_dtype(probs.dtype)).eps)))
    sums = xp.sum(probs, axis=1)
    bad = ~(xp.all(probs >= 0, axis=1) & (xp.abs(sums - 1) <= tolerance))
    if bool(xp.any(bad)):
        rows = xp.arange(n, device=device_of(bad))
        row = int(xp.min(xp.where(bad, rows, xp.full_like(rows, n))))
        shown = target[row] if isinstance(target, np.ndarray) else [float(v) for v in probs[row, ...]]
        raise ValueError(
            f"t must hold class probabilities (rows >= 0 that sum to 1 within {tolerance:.1e}); "
            f"row {row} is {describe(shown)}, summing to {float(sums[row])!r}"
        )
    return probs
