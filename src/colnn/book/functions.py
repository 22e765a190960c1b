"""The book's ``common/functions.py``: activations, their derivatives, softmax and the two losses.

Every function is the book's formula (chapters 3 and 4) on NumPy arrays of any
shape, so a script gets the book's numbers: ``cross_entropy_error`` adds the
book's ``1e-7`` inside the logarithm, ``relu_grad`` is 1 at 0 (the book's
choice), ``step_function`` returns integers. The only change: ``sigmoid`` of a
large negative input returns 0 without NumPy's overflow warning (the same value
as the book's).

>>> import numpy as np
>>> softmax(np.array([0.3, 2.9, 4.0])).round(3)
array([0.018, 0.245, 0.737])
>>> float(cross_entropy_error(np.array([0.1, 0.8, 0.1]), np.array([0, 1, 0])).round(4))
0.2231
"""

from __future__ import annotations

from typing import Any

import numpy as np

# ``np`` too, as the book's module (without __all__) gives it to ``import *``: a script may use NumPy
# only through it (chapter 6's optimizer_compare_mnist.py does, from common.optimizer).
__all__ = ["np", "identity_function", "step_function", "sigmoid", "sigmoid_grad", "relu", "relu_grad", "softmax",
           "sum_squared_error", "cross_entropy_error", "softmax_loss"]

# The book's guard against log(0) in cross_entropy_error (chapter 4.2.2).
LOG_GUARD = 1e-7


def numpy_input(x: Any, function: str) -> np.ndarray:
    """``x`` as a NumPy array; a TypeError for a Dask array, which ``np.asarray`` would compute whole, silently."""
    if type(x) is np.ndarray:  # the usual case, first: a gradient check calls this 10^5 times
        return x
    # Imported here, off the usual path: with its dtype helpers it would double this module's import.
    from colnn.core.namespace import is_dask_array

    if is_dask_array(x):
        raise TypeError(f"{function} takes NumPy arrays, got a Dask array: compute it first (x.compute()) if it fits "
                        f"in memory; colnn's own layers and functions take Dask arrays lazily")
    return np.asarray(x)


def check_labels(labels: np.ndarray, classes: int) -> None:
    """IndexError unless every label lies in ``[0, classes)`` (NumPy would read -1 as the last class, silently)."""
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        bad = labels[(labels < 0) | (labels >= classes)].flat[0]
        raise IndexError(f"t holds label {bad}, outside [0, {classes}) for scores of {classes} classes")


def identity_function(x: Any) -> Any:
    """``x`` itself: the output activation of regression (chapter 3.5)."""
    return x


def step_function(x: Any) -> np.ndarray:
    """1 where ``x > 0``, else 0, as integers of ``x``'s shape (chapter 3.2.2)."""
    return np.array(numpy_input(x, "step_function") > 0, dtype=int)


def sigmoid(x: Any) -> np.ndarray:
    """``1 / (1 + exp(-x))`` elementwise (chapter 3.2.4); NumPy's overflow for ``x < -709`` stays silent."""
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-numpy_input(x, "sigmoid")))


def sigmoid_grad(x: Any) -> np.ndarray:
    """Derivative of :func:`sigmoid` at ``x``: ``(1 - sigmoid(x)) * sigmoid(x)`` (chapter 5.5.2)."""
    y = sigmoid(x)
    return (1.0 - y) * y


def relu(x: Any) -> np.ndarray:
    """``max(0, x)`` elementwise (chapter 3.2.7)."""
    return np.maximum(0, x)


def relu_grad(x: Any) -> np.ndarray:
    """1 where ``x >= 0`` (the book takes 1 at 0), else 0, of ``x``'s shape and dtype."""
    x = numpy_input(x, "relu_grad")
    grad = np.zeros_like(x)
    grad[x >= 0] = 1
    return grad


def softmax(x: Any) -> np.ndarray:
    """``exp(x) / sum(exp(x))`` along the last axis, after subtracting its maximum (chapter 3.5.2)."""
    x = numpy_input(x, "softmax")
    # The array methods, not np.max/np.sum: their wrappers cost as much as the arithmetic of a few samples.
    exp = np.exp(x - x.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


def sum_squared_error(y: Any, t: Any) -> float:
    """``0.5 * sum((y - t)**2)`` over all elements (chapter 4.2.1)."""
    return 0.5 * np.sum((numpy_input(y, "sum_squared_error") - numpy_input(t, "sum_squared_error")) ** 2)


def cross_entropy_error(y: Any, t: Any) -> float:
    """Mean over the batch of ``-log(y[label] + 1e-7)`` (chapter 4.2.4).

    Parameters
    ----------
    y : probabilities ``(N, K)``, or ``(K,)`` for one sample
    t : labels ``(N,)`` (or the book's column ``(N, 1)``), or one-hot rows of ``y``'s
        shape (recognised, as in the book, by having ``y``'s size)

    Raises IndexError for a label outside ``[0, K)``, TypeError for labels
    that are not integers (nor one-hot rows of ``y``'s size), ValueError for a
    count of labels other than ``N``.
    """
    y, t = numpy_input(y, "cross_entropy_error"), numpy_input(t, "cross_entropy_error")
    if y.ndim == 1:
        t = t.reshape(1, t.size)
        y = y.reshape(1, y.size)
    if t.size == y.size:
        t = t.argmax(axis=1)
    # A column of labels is one label per row; the book's indexing would pair every row with every label.
    t = t.reshape(-1)
    integers = t.dtype.kind in "iu"
    if not integers or t.size != y.shape[0]:
        message = (f"cross_entropy_error: t must be {y.shape[0]} integer labels, (N,) or (N, 1), or one-hot rows "
                   f"of y's shape {y.shape}; got {t.dtype} of {t.size} values")
        raise ValueError(message) if integers else TypeError(message)
    check_labels(t, y.shape[1])
    batch_size = y.shape[0]
    return -np.log(y[np.arange(batch_size), t] + LOG_GUARD).sum() / batch_size


def softmax_loss(X: Any, t: Any) -> float:
    """:func:`cross_entropy_error` of :func:`softmax` of the scores ``X``."""
    return cross_entropy_error(softmax(X), t)
