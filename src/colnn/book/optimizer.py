"""The book's ``common/optimizer.py``: SGD, Momentum, Nesterov, AdaGrad, RMSprop and Adam (chapter 6.1).

Each ``update(params, grads)`` takes one step with the book's rule and
defaults, written as the book writes it, so a script gets the book's numbers
bit for bit. Like the book's, it updates whatever ``params`` holds: a NumPy
array is overwritten in place (the layers that share it see the step), a plain
Python float is replaced in the dict (the chapter 6 demo on ``f(x, y) = x**2 /
20 + y**2`` keeps its position as two floats). State (``v``, ``h``, ``m``) is
allocated on the first update, one entry per key.

These differ from :mod:`colnn.nn.optim` on purpose: ``SGD()`` steps by 0.01
(colnn's 0.1), ``AdaGrad`` and ``RMSprop`` add ``1e-7`` to the root, and
``Adam`` folds the bias corrections into its rate and adds ``1e-7`` to
``sqrt(v)`` uncorrected, the book's form, where PyTorch (and colnn) add
``1e-8`` to ``sqrt(v / (1 - beta2**t))``.

>>> params = {'x': -7.0, 'y': 2.0}
>>> SGD(lr=0.95).update(params, {'x': -0.7, 'y': 4.0})
>>> params
{'x': -6.335, 'y': -1.7999999999999998}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, MutableMapping
from typing import Any

import numpy as np

from ..core.checks import describe

# ``np`` too: the book's module exports it to ``import *`` (it has no __all__), and
# chapter 6's optimizer_compare_mnist.py uses NumPy only through that.
__all__ = ["np", "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"]

# The book's guard against division by zero in AdaGrad, RMSprop and Adam.
EPSILON = 1e-7

Params = MutableMapping[str, Any]
Grads = Mapping[str, Any]
# A hyper-parameter as the caller gave it: a NumPy scalar keeps its type, so that the steps round as the book's do.
Number = float | np.integer | np.floating


def _number(value: Any, name: str, *, lower: float, upper: float | None = None, lower_open: bool = True) -> Number:
    """``value`` if it is a finite real number in the interval; TypeError or ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {describe(value)}")
    if not (math.isfinite(value) and (value > lower if lower_open else value >= lower)
            and (upper is None or value < upper)):
        interval = f"{'(' if lower_open else '['}{lower}, {'inf' if upper is None else upper})"
        raise ValueError(f"{name} must be a finite number in {interval}, got {describe(value)}")
    return value


class _BookOptimizer:
    """The loop every optimizer of the book writes: state allocated on the first update, then one step per key."""

    # Names of the per-parameter state dicts (the book's v, h, m), zeros shaped like params at the first update.
    _state: tuple[str, ...] = ()
    # The state dicts themselves, by key of params; each is None until the first update allocates it.
    v: dict[str, Any]
    h: dict[str, Any]
    m: dict[str, Any]

    def __init__(self, lr: float) -> None:
        self.lr = _number(lr, "lr", lower=0)
        for name in self._state:
            setattr(self, name, None)

    def update(self, params: Params, grads: Grads) -> None:
        """One step on every entry of ``params`` (arrays in place, floats replaced); KeyError for a missing gradient."""
        missing = [key for key in params if key not in grads]
        if missing:
            raise KeyError(f"grads must have every key of params; missing {missing}")
        for name in self._state:
            if getattr(self, name) is None:
                setattr(self, name, {key: np.zeros_like(value) for key, value in params.items()})
        self._begin_step()
        for key in params:
            self._step(params, grads, key)

    def _begin_step(self) -> None:
        """Once per update, before the steps (Adam counts its iterations here)."""

    def _step(self, params: Params, grads: Grads, key: str) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class SGD(_BookOptimizer):
    """Stochastic gradient descent: ``p -= lr * g``.

    Parameters
    ----------
    lr : learning rate, > 0 (the book's 0.01)
    """

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__(lr)

    def _step(self, params: Params, grads: Grads, key: str) -> None:
        params[key] -= self.lr * grads[key]


class Momentum(_BookOptimizer):
    """Momentum SGD: ``v = momentum * v - lr * g``; ``p += v`` (``v`` starts at 0).

    Parameters
    ----------
    lr : learning rate, > 0
    momentum : in [0, 1)
    """

    _state = ("v",)

    def __init__(self, lr: float = 0.01, momentum: float = 0.9) -> None:
        super().__init__(lr)
        self.momentum = _number(momentum, "momentum", lower=0, upper=1, lower_open=False)

    def _step(self, params: Params, grads: Grads, key: str) -> None:
        self.v[key] = self.momentum * self.v[key] - self.lr * grads[key]
        params[key] += self.v[key]


class Nesterov(Momentum):
    """Nesterov's accelerated gradient in the book's form (Bengio et al., 2012, arXiv:1212.0901)::

        p += momentum**2 * v - (1 + momentum) * lr * g
        v = momentum * v - lr * g

    Algebraically the step of :class:`colnn.nn.optim.Nesterov` (PyTorch's
    ``SGD(nesterov=True)``), written in another order, so it rounds otherwise.

    Parameters
    ----------
    lr : learning rate, > 0
    momentum : in [0, 1)
    """

    def _step(self, params: Params, grads: Grads, key: str) -> None:
        params[key] += self.momentum * self.momentum * self.v[key]
        params[key] -= (1 + self.momentum) * self.lr * grads[key]
        self.v[key] *= self.momentum
        self.v[key] -= self.lr * grads[key]


class AdaGrad(_BookOptimizer):
    """AdaGrad: ``h += g**2``; ``p -= lr * g / (sqrt(h) + 1e-7)``.

    Parameters
    ----------
    lr : learning rate, > 0
    """

    _state = ("h",)

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__(lr)

    def _step(self, params: Params, grads: Grads, key: str) -> None:
        self.h[key] += grads[key] * grads[key]
        params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + EPSILON)


class RMSprop(_BookOptimizer):
    """RMSprop: ``h = decay_rate * h + (1 - decay_rate) * g**2``; ``p -= lr * g / (sqrt(h) + 1e-7)``.

    Parameters
    ----------
    lr : learning rate, > 0
    decay_rate : in [0, 1)
    """

    _state = ("h",)

    def __init__(self, lr: float = 0.01, decay_rate: float = 0.99) -> None:
        super().__init__(lr)
        self.decay_rate = _number(decay_rate, "decay_rate", lower=0, upper=1, lower_open=False)

    def _step(self, params: Params, grads: Grads, key: str) -> None:
        self.h[key] *= self.decay_rate
        self.h[key] += (1 - self.decay_rate) * grads[key] * grads[key]
        params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + EPSILON)


class Adam(_BookOptimizer):
    """Adam in the book's form (Kingma & Ba, arXiv:1412.6980v8).

    At step ``t`` = 1, 2, ...::

        m += (1 - beta1) * (g - m);  v += (1 - beta2) * (g**2 - v)
        p -= lr * sqrt(1 - beta2**t) / (1 - beta1**t) * m / (sqrt(v) + 1e-7)

    Parameters
    ----------
    lr : learning rate, > 0 (the book's 0.001)
    beta1, beta2 : decay of the first and second moment estimates, in [0, 1)
    """

    _state = ("m", "v")

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999) -> None:
        super().__init__(lr)
        self.beta1 = _number(beta1, "beta1", lower=0, upper=1, lower_open=False)
        self.beta2 = _number(beta2, "beta2", lower=0, upper=1, lower_open=False)
        self.iter = 0
        self._lr_t = 0.0

    def _begin_step(self) -> None:
        self.iter += 1
        self._lr_t = self.lr * np.sqrt(1.0 - self.beta2 ** self.iter) / (1.0 - self.beta1 ** self.iter)

    def _step(self, params: Params, grads: Grads, key: str) -> None:
        self.m[key] += (1 - self.beta1) * (grads[key] - self.m[key])
        self.v[key] += (1 - self.beta2) * (grads[key] ** 2 - self.v[key])
        params[key] -= self._lr_t * self.m[key] / (np.sqrt(self.v[key]) + EPSILON)
