"""NumPy's floating-point warnings where PyTorch answers NaN or inf quietly.

``x ** p`` of a negative ``x``, ``0 ** -1``, ``inf - inf`` and overflow give
NaN, inf and inf in both libraries, and that is the defined result (an op keeps
IEEE semantics, as ``torch.nn.functional`` does); only NumPy prints a
``RuntimeWarning`` about it. Ops whose arithmetic meets such values on user
data run under :func:`quiet_ieee`, so that ``warnings.simplefilter("error")``
code behaves as it does with PyTorch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

__all__ = ["quiet_ieee"]

F = TypeVar("F", bound=Callable[..., Any])


def quiet_ieee(function: F) -> F:
    """``function`` run with NumPy's divide, overflow and invalid warnings off (a fresh ``np.errstate`` per call)."""

    @functools.wraps(function)
    def quiet(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            return function(*args, **kwargs)

    return quiet  # type: ignore[return-value]
