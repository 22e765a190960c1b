"""The book's loss layer: softmax followed by the mean cross-entropy (chapter 5.6.3)."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ..core.checks import check_array, check_float_array, describe
from ..core.dtypes import as_numpy_dtype, gradient_dtype
from ..core.namespace import cast_array
from ..ops.xp import device_of, namespace_of, zero_like
from .base import Layer
from .cpu_views import backward_on_views, forward_on_views

__all__ = ["SoftmaxWithLoss", "column_labels"]


class LossLayer(Protocol):
    """What a :class:`~colnn.nn.network.Network` asks of its loss: this module's layer or the book's.

    ``forward(x, t)`` keeps the softmax probabilities as ``y`` and returns the
    loss; ``backward(dout)`` returns the scores' gradient.
    """

    y: np.ndarray | None

    def forward(self, x: Any, t: Any) -> float: ...

    def backward(self, dout: Any = 1.0) -> Any: ...


class SoftmaxWithLoss(Layer):
    """Softmax followed by mean cross-entropy loss, as ``torch.nn.functional.cross_entropy``.

    ``forward(x, t)``: scores ``x`` ``(N, K)`` and a target ``t``, either integer
    labels ``(N,)`` (or the book's column ``(N, 1)``, for ``K > 1``) or class probabilities ``(N, K)``
    (rows >= 0 that sum to 1; one-hot rows are the special case, integer or floating) -> scalar loss
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

    @forward_on_views
    def forward(self, x: Any, t: Any) -> float:  # type: ignore[override]
        # Written on the Array API (NumPy 2's namespace is one), so another library's
        # scores are computed where they live; ``y`` and the gradient stay there. (PyTorch and
        # JAX CPU arrays come as NumPy views, colnn.nn.cpu_views; y and the gradient go back.)
        self._refuse_lazy(x, "the loss is a mean over the whole batch")
        x = check_float_array(x, "x", ndims=(2,), batch_ndims=(2,), array_api=True)
        xp = namespace_of(x)
        target = _check_target(t, x)
        shifted = x - xp.max(x, axis=1, keepdims=True)
        log_probs = shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))
        if target.ndim == 2:
            chosen = target > 0
            terms = xp.where(chosen, target, zero_like(target)) * xp.where(chosen, log_probs,
                                                                                zero_like(log_probs))
        else:
            terms = xp.where(_one_hot(target, x.shape[1]), log_probs, zero_like(log_probs))
        per_sample = -xp.sum(terms, axis=1)
        loss = float(xp.mean(per_sample)) if per_sample.shape[0] else float("nan")
        self.y, self.t, self.loss = xp.exp(log_probs), target, loss
        self._keep((self.y, self.t))
        return loss

    def __call__(self, x: Any, t: Any) -> float:  # type: ignore[override]
        return self.forward(x, t)

    @backward_on_views
    def backward(self, dout: Any = 1.0) -> np.ndarray:
        y, t = self._saved()
        xp = namespace_of(y)
        if t.ndim == 2:
            subtrahend = xp.astype(t, xp.result_type(y, t))
        else:
            subtrahend = xp.astype(_one_hot(t, y.shape[1]), y.dtype)
        grad = xp.astype(y - subtrahend, y.dtype)
        scale = float(check_array(dout, "dout", ndims=(0,), array_api=True))
        divisor = xp.asarray(scale, dtype=grad.dtype, device=device_of(grad)) / max(grad.shape[0], 1)
        return grad * divisor


def _one_hot(labels: Any, classes: int) -> Any:
    """``(N, K)`` booleans, true at ``labels[n]`` in row ``n``: the standard has no fancy indexing to gather with."""
    xp = namespace_of(labels)
    return labels[:, None] == xp.arange(classes, dtype=labels.dtype, device=device_of(labels))[None, :]


def column_labels(target: Any, classes: int | None = None) -> Any:
    """The book's labels as a column, integers ``(N, 1)``, as ``(N,)``; any other ``target`` as it is.

    With ``classes`` (the scores' ``K``), only for ``K > 1``: for one class an
    ``(N, 1)`` target is also class probabilities of the scores' shape.
    """
    xp = namespace_of(target)
    if (target.ndim == 2 and target.shape[1] == 1 and (classes is None or classes > 1)
            and xp.isdtype(target.dtype, "integral")):
        return target[:, 0]
    return target


def _check_target(t: Any, x: Any) -> np.ndarray:
    """``t`` as integer labels ``(N,)`` or float class probabilities ``(N, K)`` of checked scores ``x``'s library.

    ValueError naming ``t`` if neither; NumPy labels move to ``x``'s library, another
    library's are a TypeError, another device's a ValueError (:func:`same_library`).
    """
    scores_shape = tuple(x.shape)
    n, classes = scores_shape
    target = check_array(t, "t", ndims=(1, 2), batch_ndims=(1, 2), array_api=True, like=x, like_name="x",
                         moves=True)
    xp = namespace_of(target)
    target = column_labels(target, classes)  # the book's t.reshape(-1, 1): one label per row
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
