"""Numba loop of :mod:`colnn.kernels.adam`: Adam's update, one pass.

The loop runs on the calling thread: it is bound by memory traffic, which
one core streams at the rate of a copy (as :mod:`.relu_loops`). No
``fastmath``: each product and sum is rounded as NumPy rounds it (no fused
multiply-add), so the pass equals the expression form bit for bit. NumPy's error
model: a division by zero gives inf as in NumPy, instead of Python's check
inside the loop, which kept it from being vectorized.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["adam_step_into"]


@njit(cache=True, nogil=True, error_model="numpy")
def adam_step_into(param, grad, first, second, keep1, keep2, bias1, bias2, lr, eps):
    """``m += keep1*(g-m)``; ``v += keep2*(g*g-v)``; ``p -= lr*(m/bias1) / (sqrt(v/bias2) + eps)``."""
    for i in range(param.shape[0]):
        g = grad[i]
        m = first[i] + (g - first[i]) * keep1
        v = second[i] + (g * g - second[i]) * keep2
        first[i] = m
        second[i] = v
        param[i] -= lr * (m / bias1) / (np.sqrt(v / bias2) + eps)
