"""The book's ``common/gradient.py``: gradients by central differences (chapter 4.3-4.4).

``numerical_gradient(f, x)`` perturbs ``x`` itself, one element at a time, by
``h = 1e-4`` and calls ``f(x)`` twice per element, restoring the element
afterwards: ``f`` may ignore its argument and read the perturbed array through a
network that shares it, which is how the book's networks use it
(``lambda W: net.loss(x, t)``).

>>> import numpy as np
>>> numerical_gradient(lambda x: float(np.sum(x ** 2)), np.array([3.0, 4.0])).round(6)
array([6., 8.])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["numerical_gradient", "numerical_gradient_2d"]

# The book's step (chapter 4.3.1): small enough for the truncation error, large enough for rounding.
STEP = 1e-4


def numerical_gradient(f: Callable[[np.ndarray], Any], x: np.ndarray) -> np.ndarray:
    """``(f(x + h e_i) - f(x - h e_i)) / 2h`` for every element ``i`` of ``x``, with ``h = 1e-4``.

    Parameters
    ----------
    f : scalar function of ``x``; it is called with ``x`` itself, perturbed in place
    x : floating array of any shape; every element is restored after its two calls

    Returns
    -------
    array of ``x``'s shape and dtype

    Raises
    ------
    TypeError
        When ``x`` is not a writeable NumPy array of a floating dtype: the
        perturbation could not be written into it (the book's code would
        silently round ``x +- h`` to integers).
    """
    _check_perturbable(x)
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        original = x[index]
        x[index] = original + STEP
        upper = f(x)
        x[index] = original - STEP
        lower = f(x)
        grad[index] = (upper - lower) / (2 * STEP)
        x[index] = original
    return grad


def numerical_gradient_2d(f: Callable[[np.ndarray], Any], X: np.ndarray) -> np.ndarray:
    """Row by row :func:`numerical_gradient` of ``f`` for a 2-D ``X`` (each row passed to ``f`` alone).

    The book's version for ``f`` that takes one sample (chapter 4.4's
    ``gradient_2d.py``); a 1-D ``X`` is one row.
    """
    _check_perturbable(X)
    if X.ndim == 1:
        return numerical_gradient(f, X)
    grad = np.zeros_like(X)
    for index, row in enumerate(X):
        grad[index] = numerical_gradient(f, row)
    return grad


def _check_perturbable(x: Any) -> None:
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f" or not x.flags.writeable:
        kind = (f"{type(x).__name__} of dtype {x.dtype}, shape {x.shape}"
                + ("" if x.flags.writeable else ", read-only") if isinstance(x, np.ndarray) else type(x).__name__)
        raise TypeError(f"x must be a writeable floating NumPy array, perturbed in place; got {kind}")
