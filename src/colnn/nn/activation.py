"""The logistic sigmoid layer of the book (chapter 5), beside :class:`~colnn.nn.layers.Relu`."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.checks import check_float_array, same_library
from ..ops import dense
from .layers import Layer

__all__ = ["Sigmoid"]


class Sigmoid(Layer):
    """``1 / (1 + exp(-x))`` elementwise, as ``torch.sigmoid``; any shape, floating dtype preserved.

    ``backward(dout)`` returns ``dout * y * (1 - y)`` with ``y`` the forward output
    (the book's ``Sigmoid``, chapter 5.5). Large ``|x|`` neither overflows nor warns.
    Written on the Array API: another library's array (PyTorch, JAX, CuPy, ...)
    is computed in its library, on its device, and so is the gradient.

    Examples
    --------
    >>> Sigmoid().forward(np.array([0.0, 1000.0, -1000.0]))
    array([0.5, 1. , 0. ])
    """

    def __init__(self) -> None:
        self.out: np.ndarray | None = None

    def __repr__(self) -> str:
        return "Sigmoid()"

    def forward(self, x: Any) -> np.ndarray:
        x = check_float_array(x, "x", ndims=tuple(range(0, 9)), array_api=True)
        xp = dense.namespace_of(x)
        # exp(-|x|) never overflows; the two branches are the same function rearranged.
        decay = xp.exp(-xp.abs(x))
        out = xp.astype(xp.where(x >= 0, 1.0 / (1.0 + decay), decay / (1.0 + decay)), x.dtype)
        self.out = out
        return out

    def backward(self, dout: Any) -> np.ndarray:
        if self.out is None:
            raise RuntimeError("Sigmoid.backward called before forward")
        dout = same_library(dout, "dout", self.out, "the forward's input", moves=True)
        if tuple(dout.shape) != tuple(self.out.shape):
            raise ValueError(
                f"dout must have the forward output's shape {tuple(self.out.shape)}, got {tuple(dout.shape)}"
            )
        return dout * (1.0 - self.out) * self.out
