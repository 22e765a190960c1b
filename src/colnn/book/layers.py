"""The book's ``common/layers.py`` on colnn's layers (chapters 5-7).

Each class has the book's constructor, ``forward``/``backward`` and attributes
(``W``, ``b``, ``dW``, ``db``, ``mask``, ``dgamma``, ...); as ``from
common.layers import *`` does, ``from colnn.book.layers import *`` also brings
the ten functions of :mod:`colnn.book.functions` and ``im2col``/``col2im``.

* ``Relu``, ``Sigmoid``, ``Affine`` and ``Convolution`` are colnn's own
  (:class:`colnn.Relu`, ...): compiled where it pays, checked, and sharing the
  ``W`` and ``b`` they are given, as the book's do (an optimizer's in-place step
  on the network's ``params`` reaches them); ``b`` may be a scalar
  (``apply_filter.py``'s ``b = 0``).
* ``Pooling`` is :class:`colnn.Pooling` with the book's default ``stride=2``.
  It is right where the book's is not (no script of the book meets either
  case): padded cells are ``-inf``, never the maximum, where the book pads
  with 0; and ``pad`` enters the output size, which the book's leaves out.
* ``Dropout`` is :class:`colnn.Dropout` drawing its masks from NumPy's global
  random state, as the book's does (``np.random.seed`` makes a run repeatable).
* ``BatchNormalization`` is :class:`colnn.BatchNormalization` sharing ``gamma``
  and ``beta`` with the caller, as the book's does.
* ``SoftmaxWithLoss`` is the book's: softmax, then the mean of
  ``-log(y[label] + 1e-7)``; ``backward`` returns ``(y - t) / N``.

Unlike the book's, no ``backward`` writes into the ``dout`` it is given.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import colnn
from colnn import Affine, Convolution, Relu, Sigmoid, col2im, im2col

from .functions import (cross_entropy_error, identity_function, relu, relu_grad, sigmoid, sigmoid_grad, softmax,
                        softmax_loss, step_function, sum_squared_error)

# ``np`` too, as the book's module (without __all__) gives it to ``import *``: a script may use NumPy
# only through it (chapter 6's optimizer_compare_mnist.py does, from common.optimizer).
__all__ = ["np", "Relu", "Sigmoid", "Affine", "SoftmaxWithLoss", "Dropout", "BatchNormalization", "Convolution",
           "Pooling", "GLOBAL_RANDOM",
           # what the book's module brings along to ``import *``
           "identity_function", "step_function", "sigmoid", "sigmoid_grad", "relu", "relu_grad", "softmax",
           "sum_squared_error", "cross_entropy_error", "softmax_loss", "im2col", "col2im"]


class _GlobalRandom:
    """The one method of a ``numpy.random.Generator`` that :class:`colnn.Dropout` calls, on NumPy's global state.

    ``random(shape)`` draws what the book's ``np.random.rand(*shape)`` draws,
    from the same stream, so masks follow ``np.random.seed`` as in the book.
    """

    def random(self, size: Any = None) -> Any:
        return np.random.random_sample(size)

    def __repr__(self) -> str:
        return "GLOBAL_RANDOM"


#: Give it to a :class:`colnn.Dropout` as ``rng`` to draw its masks as the book's ``Dropout`` does.
GLOBAL_RANDOM = _GlobalRandom()


class Dropout(colnn.Dropout):
    """The book's ``Dropout(dropout_ratio=0.5)`` (chapter 6.4.3): masks from NumPy's global random state.

    ``forward(x, train_flg=True)`` keeps each element with probability
    ``1 - dropout_ratio`` (``x * mask``) while training and scales every element
    by ``1 - dropout_ratio`` otherwise; ``backward(dout)`` is ``dout * mask``. See
    :class:`colnn.Dropout` for the checks and the other array libraries.
    """

    def __init__(self, dropout_ratio: float = 0.5) -> None:
        super().__init__(dropout_ratio)
        self.rng = GLOBAL_RANDOM


class BatchNormalization(colnn.BatchNormalization):
    """The book's ``BatchNormalization(gamma, beta, momentum=0.9, running_mean=None, running_var=None)``.

    As in the book (chapter 6.3), ``gamma`` and ``beta`` are kept, not copied,
    when they are float NumPy arrays ``(D,)`` of one dtype: the network's
    ``params`` entries are the layer's, so an optimizer's in-place step trains it.
    ``forward(x, train_flg=True)`` normalises ``(N, D)`` or ``(N, C, H, W)``
    (flattened to ``(N, C*H*W)``) with the batch's statistics while training and
    the running ones otherwise, adding the book's ``10e-7`` to the variance; see
    :class:`colnn.BatchNormalization`.
    """

    def __init__(self, gamma: Any, beta: Any, momentum: float = 0.9, running_mean: Any = None,
                 running_var: Any = None) -> None:
        super().__init__(gamma, beta, momentum, running_mean, running_var)
        # colnn's layer copies what it is given; the book's shares it (see the module docstring).
        for name, given in (("gamma", gamma), ("beta", beta)):
            own = getattr(self, name)
            if type(given) is np.ndarray and given.dtype == own.dtype and given.shape == own.shape:
                setattr(self, name, given)


class Pooling(colnn.Pooling):
    """The book's max pooling ``Pooling(pool_h, pool_w, stride=2, pad=0)`` (chapter 7.4).

    ``forward``: ``(N, C, H, W)`` -> ``(N, C, out_h, out_w)`` with ``out_h = (H +
    2*pad - pool_h) // stride + 1``; ``backward`` routes each gradient to the
    first maximum of its window. Padding is ``-inf`` and counts in the output
    size (the book pads with 0 and leaves ``pad`` out of the size).
    """

    def __init__(self, pool_h: int, pool_w: int, stride: int = 2, pad: int = 0) -> None:
        super().__init__(pool_h, pool_w, stride, pad)


class SoftmaxWithLoss:
    """The book's softmax with cross-entropy loss (chapter 5.6.3), with its ``1e-7``.

    ``forward(x, t)``: scores ``x`` ``(N, K)`` and labels ``t`` ``(N,)``, the column
    ``(N, 1)``, or one-hot rows ``(N, K)`` -> ``mean(-log(softmax(x)[label] + 1e-7))``.
    ``backward(dout=1)`` -> ``dout * (y - t) / N`` ``(N, K)``, ``y = softmax(x)``.
    Keeps ``y``, ``t`` and ``loss`` as the book's does.

    Raises
    ------
    ValueError
        When ``x`` is not ``(N, K)`` or ``t`` is not labels or one-hot rows for it.
    IndexError
        When a label is outside ``[0, K)``.
    """

    def __init__(self) -> None:
        self.loss: float | None = None
        self.y: np.ndarray | None = None
        self.t: np.ndarray | None = None

    def __repr__(self) -> str:
        return "SoftmaxWithLoss()"

    def forward(self, x: Any, t: Any) -> float:
        x, t = np.asarray(x), np.asarray(t)
        if x.ndim != 2:
            raise ValueError(f"x must be scores of shape (N, K), got shape {x.shape}")
        if t.shape == x.shape:
            target = t
        elif t.shape in ((x.shape[0],), (x.shape[0], 1)) and t.dtype.kind in "iu":
            target = t.reshape(x.shape[0])
        else:
            raise ValueError(f"t must be labels of shape ({x.shape[0]},) or ({x.shape[0]}, 1), or one-hot rows of "
                             f"shape {x.shape}; got {type(t).__name__} of dtype {t.dtype}, shape {t.shape}")
        self.t = target
        self.y = softmax(x)
        self.loss = cross_entropy_error(self.y, self.t)
        return self.loss

    def __call__(self, x: Any, t: Any) -> float:
        return self.forward(x, t)

    def backward(self, dout: Any = 1) -> np.ndarray:
        if self.y is None:
            raise RuntimeError("SoftmaxWithLoss.backward called before forward")
        batch_size = self.t.shape[0]
        if self.t.size == self.y.size:
            dx = (self.y - self.t) / batch_size
        else:
            dx = self.y.copy()
            dx[np.arange(batch_size), self.t] -= 1
            dx = dx / batch_size
        return dx if np.ndim(dout) == 0 and dout == 1 else dx * dout
