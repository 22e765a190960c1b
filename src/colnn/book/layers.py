"""The book's ``common/layers.py`` on colnn's layers (chapters 5-7).

Each class has the book's constructor, ``forward``/``backward`` and attributes
(``W``, ``b``, ``dW``, ``db``, ``mask``, ``dgamma``, ...); as ``from
common.layers import *`` does, ``from colnn.book.layers import *`` also brings
the ten functions of :mod:`colnn.book.functions` and ``im2col``/``col2im``.

* ``Relu``, ``Sigmoid``, ``Affine`` and ``Convolution`` are colnn's own
  (subclasses of :class:`colnn.Relu`, ...; colnn's layers are imported when a
  script first builds one, so importing this module costs about what the
  book's does): compiled where it pays, checked, and sharing the
  ``W`` and ``b`` they are given, as the book's do (an optimizer's in-place step
  on the network's ``params`` reaches them); ``b`` may be a scalar
  (``apply_filter.py``'s ``b = 0``). ``Convolution`` runs a process's first
  small convolutions on colnn's NumPy reference rather than load the compiled
  kernels for them (see :class:`Convolution`).
* ``Affine``, ``Relu`` and ``BatchNormalization`` take a lean path for the
  book's usual input, a NumPy ``(N, D)`` float batch: colnn's arithmetic, bit
  for bit, without its per-call checks and Array API dispatch, which cost more
  than the arithmetic of the gradient checks' one- to three-sample batches
  (``ch05/gradient_check.py`` calls the loss 8 * 10^4 times). Other inputs take
  colnn's checked path, which raises its errors. In the lean ``Affine``, a
  product too small to be worth a context manager warns of ``inf - inf`` as
  NumPy (and the book's code) does, where colnn.Affine is silent.
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

from typing import TYPE_CHECKING, Any

import numpy as np

from colnn.core.stand_ins import lazy_base, lazy_module

# As the book's layers.py, this module gives ``import *`` the ten functions too.
from . import functions as _functions
from .functions import *  # noqa: F403
from .functions import LOG_GUARD, check_labels, numpy_input, softmax
from .util import col2im, im2col

if TYPE_CHECKING:
    from colnn.kernels import blas
    from colnn.kernels import relu as relu_kernels
    from colnn.nn import Affine as _Affine
    from colnn.nn import BatchNormalization as _BatchNormalization
    from colnn.nn import Convolution as _Convolution
    from colnn.nn import Dropout as _Dropout
    from colnn.nn import Layer as _Layer
    from colnn.nn import Pooling as _Pooling
    from colnn.nn import Relu as _Relu
    from colnn.nn import Sigmoid as _Sigmoid
else:
    # colnn's layers (and its ops and kernels under them) are imported when a script first builds a layer, not
    # when it imports this module: the book's chapter 5 and 7 network files import it and define a class, and that
    # import alone would cost twice NumPy's. The kernels' wrappers of the lean paths, and threading under them,
    # likewise wait for the first forward.
    blas = lazy_module("colnn.kernels.blas", globals(), "blas")
    relu_kernels = lazy_module("colnn.kernels.relu", globals(), "relu_kernels")
    _Affine, _BatchNormalization, _Convolution, _Dropout, _Layer, _Pooling, _Relu, _Sigmoid = (
        lazy_base("colnn.nn", name) for name in
        ("Affine", "BatchNormalization", "Convolution", "Dropout", "Layer", "Pooling", "Relu", "Sigmoid"))

# The functions' names include ``np``, as the book's module (without __all__) gives it to ``import *``: a
# script may use NumPy only through it (chapter 6's optimizer_compare_mnist.py does, from common.optimizer).
__all__ = ["Relu", "Sigmoid", "Affine", "SoftmaxWithLoss", "Dropout", "BatchNormalization", "Convolution",
           "Pooling", "GLOBAL_RANDOM", "im2col", "col2im", *_functions.__all__]


# (x, W) dtypes of Affine's lean path: NumPy promotes float32 data (load_mnist's) to a float64 W as colnn.Affine does.
_LEAN_DTYPES = {(np.dtype(np.float32), np.dtype(np.float32)), (np.dtype(np.float64), np.dtype(np.float64)),
                (np.dtype(np.float32), np.dtype(np.float64))}


class Affine(_Affine):
    """The book's ``Affine(W, b)`` (chapter 5.6.2): :class:`colnn.Affine`, with a lean forward.

    ``forward``: ``(N, ...)`` -> ``(N, M)`` for ``W`` ``(D, M)`` and ``b`` ``(M,)``;
    ``backward`` sets ``dW``, ``db``. A NumPy float ``(N, D)`` ``x`` (float32 or
    ``W``'s dtype) with NumPy ``W`` and ``b`` of one dtype runs ``np.dot(x, W) +
    b`` with nothing else per call (the book's product, and colnn.Affine's
    result bit for bit); any other input takes colnn.Affine's checked path,
    which raises its errors.
    """

    def forward(self, x: Any) -> Any:
        out = lean_affine(x, self.W, self.b)
        if out is None:
            return super().forward(x)
        self._keep((x, x.shape))
        return out


def lean_affine(x: Any, weight: Any, bias: Any) -> np.ndarray | None:
    """``np.dot(x, W) + b`` for a NumPy float ``(N, D)`` batch and NumPy ``W``, ``b`` of one dtype, else None.

    :class:`colnn.Affine`'s result bit for bit, without its checks; None means
    "take colnn.Affine's checked path" (other inputs, and its errors).
    """
    if not (type(x) is np.ndarray and x.ndim == 2 and type(weight) is np.ndarray and type(bias) is np.ndarray
            and weight.dtype == bias.dtype and (x.dtype, weight.dtype) in _LEAN_DTYPES
            and x.shape[1] == weight.shape[0]):
        return None
    flops = 2.0 * x.shape[0] * weight.size
    if flops < blas.UNLIMITED_BELOW_FLOPS:
        # Even a context manager costs a tenth of this product; NumPy warns of inf - inf as the book's does.
        return np.dot(x, weight) + bias
    # inf - inf in the product is NaN without a warning, as in colnn.Affine.
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"), blas.blas_threads_for(flops):
        return np.dot(x, weight) + bias


class Relu(_Relu):
    """The book's ``Relu`` (chapter 5.5.1): :class:`colnn.Relu`, with a lean forward.

    ``forward(x)`` is ``max(x, 0)`` of ``x``'s shape and dtype and keeps ``mask =
    (x <= 0)``; a NumPy floating ``x`` goes straight to colnn's ReLU kernel
    (:func:`colnn.kernels.relu.relu_forward`, without colnn.Relu's per-call checks),
    anything else through colnn.Relu's checked path. ``backward(dout)`` is
    ``dout`` with the masked cells 0, a new array (the book's writes into
    ``dout``). Small arrays take NumPy's formulas there and never load Numba.
    """

    def forward(self, x: Any) -> Any:
        lean = lean_relu(x)
        if lean is None:
            return super().forward(x)
        out, mask = lean
        self.keep_mask(mask)
        return out

    def backward(self, dout: Any) -> Any:
        mask = self._saved()
        if (type(dout) is np.ndarray and type(mask) is np.ndarray and dout.dtype.kind == "f"
                and dout.shape == mask.shape):
            return relu_kernels.relu_backward(dout, mask)  # a new array, without colnn.Relu's per-call checks
        return super().backward(dout)


class Sigmoid(_Sigmoid):
    """The book's ``Sigmoid`` (chapter 5.5.2): :class:`colnn.Sigmoid`.

    ``forward(x)`` is ``1 / (1 + exp(-x))`` of ``x``'s shape and dtype, kept as ``out``;
    ``backward(dout)`` is ``dout * out * (1 - out)``.
    """


def window_work(layer: Any, in_shape: tuple[int, ...]) -> tuple[float, tuple[int, ...]] | None:
    """``(work, out_shape)`` of one pass of ``in_shape`` ``(N, C, H, W)`` through a 2-d convolution or max pooling.

    ``work`` is what :func:`colnn.ops.strategy.warm_up_strategy` weighs: a
    convolution's FLOP, or for a max pooling one comparison per window cell,
    counted as one. None for any other layer, or where the window does not fit
    (the layer's checked forward raises that, naming the arguments).
    """
    from colnn.nn import Conv2d, MaxPool2d

    try:
        if isinstance(layer, Conv2d) and type(layer.W) is np.ndarray and layer.groups == 1:
            window = layer.args.window(in_shape[2:], layer.W.shape[2:])
            channels, per_cell = layer.W.shape[0], 2.0 * layer.W.size
        elif isinstance(layer, MaxPool2d):
            window = layer.args.window(in_shape[2:])
            channels = in_shape[1]
            per_cell = float(channels * window.kernel_volume)
        else:
            return None
    except ValueError:
        return None
    return in_shape[0] * window.out_h * window.out_w * per_cell, (in_shape[0], channels, window.out_h, window.out_w)


class _WarmsUp:
    """The warm-up rule of :class:`Convolution` and :class:`Pooling` (mixed in before colnn's layer)."""

    _asked: str | None
    _path: str | None

    @property
    def strategy(self) -> str | None:
        """The path of the last ``forward`` (what its ``backward`` takes); setting it picks one for good."""
        return self._path

    @strategy.setter
    def strategy(self, value: str | None) -> None:
        from colnn.ops.strategy import check_strategy

        self._asked = self._path = check_strategy(value)

    def forward(self, x: Any) -> Any:
        if self._asked is None and type(x) is np.ndarray and x.ndim == 4:
            work = window_work(self, x.shape)
            if work is not None:
                from colnn.ops.strategy import warm_up_strategy

                self._path = warm_up_strategy(None, work[0])
        return super().forward(x)  # type: ignore[misc]  # colnn's layer, after this class in the MRO


class Convolution(_WarmsUp, _Convolution):
    """The book's ``Convolution(W, b, stride=1, pad=0)`` (chapter 7.4): :class:`colnn.Convolution`, warming up.

    ``forward``: ``(N, C, H, W)`` -> ``(N, FN, out_h, out_w)``; ``backward(dout)``
    returns ``dx`` and sets ``dW``, ``db``; ``W`` and ``b`` are the caller's arrays
    (``b`` may be a scalar). With the default ``strategy=None``, the first small
    convolutions of a process run on colnn's NumPy reference (the tutorial's
    im2col) instead of loading the compiled kernels, which costs more than a
    script that convolves a few images does in all (:func:`colnn.ops.strategy.warm_up_strategy`:
    ``apply_filter.py``'s 16 images); later ones run the kernels. Each
    ``backward`` takes the path of its ``forward``. ``strategy="numba"`` or
    ``"im2col"`` picks one path for good.
    """


def lean_relu(x: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """``(max(x, 0), x <= 0)`` of a NumPy floating ``x`` (:class:`colnn.Relu`'s values, NaN passing), else None.

    :func:`colnn.kernels.relu.relu_forward` without colnn.Relu's checks (small arrays: NumPy's passes).
    """
    if not (type(x) is np.ndarray and x.dtype.kind == "f"):
        return None
    return relu_kernels.relu_forward(x)


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


class Dropout(_Dropout):
    """The book's ``Dropout(dropout_ratio=0.5)`` (chapter 6.4.3): masks from NumPy's global random state.

    ``forward(x, train_flg=True)`` keeps each element with probability
    ``1 - dropout_ratio`` (``x * mask``) while training and scales every element
    by ``1 - dropout_ratio`` otherwise; ``backward(dout)`` is ``dout * mask``. See
    :class:`colnn.Dropout` for the checks and the other array libraries.
    """

    def __init__(self, dropout_ratio: float = 0.5) -> None:
        super().__init__(dropout_ratio)
        self.rng = GLOBAL_RANDOM


class BatchNormalization(_BatchNormalization):
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

    def _normalized(self, x: Any, train_flg: bool) -> tuple[Any, Any]:
        # The lean path: a NumPy (N, D) batch of the parameters' dtype skips the checks and the Array API
        # dispatch (half the time of a gradient check's one-sample loss); the arithmetic is colnn's, in its order.
        gamma, beta = self.gamma, self.beta
        if not (type(x) is np.ndarray and x.ndim == 2 and x.shape[0] > 0 and type(gamma) is np.ndarray
                and type(beta) is np.ndarray and x.dtype == gamma.dtype == beta.dtype
                and x.shape[1] == gamma.shape[0] and type(self.running_mean) is np.ndarray):
            return super()._normalized(x, train_flg)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            if train_flg:
                mean = x.mean(axis=0, keepdims=True)
                centered = x - mean
                var = (centered * centered).mean(axis=0, keepdims=True)
                inv_std = 1.0 / np.sqrt(var + self.eps)
                x_hat = centered * inv_std
                keep = self.momentum
                self.running_mean = (keep * self.running_mean + (1 - keep) * mean[0]).astype(gamma.dtype)
                self.running_var = (keep * self.running_var + (1 - keep) * var[0]).astype(gamma.dtype)
            else:
                std = np.sqrt(self.running_var + self.eps).astype(x.dtype, copy=False)
                x_hat, inv_std = (x - self.running_mean) / std, None
            return x_hat * gamma + beta, (x_hat, inv_std, x.shape)


class Pooling(_WarmsUp, _Pooling):
    """The book's max pooling ``Pooling(pool_h, pool_w, stride=2, pad=0)`` (chapter 7.4).

    ``forward``: ``(N, C, H, W)`` -> ``(N, C, out_h, out_w)`` with ``out_h = (H +
    2*pad - pool_h) // stride + 1``; ``backward`` routes each gradient to the
    first maximum of its window. Padding is ``-inf`` and counts in the output
    size (the book pads with 0 and leaves ``pad`` out of the size). As
    :class:`Convolution`, a process's first small poolings run colnn's NumPy
    reference rather than load the compiled kernels; each ``backward`` takes its
    ``forward``'s path.
    """

    def __init__(self, pool_h: int, pool_w: int, stride: int = 2, pad: int = 0) -> None:
        super().__init__(pool_h, pool_w, stride, pad)


class SoftmaxWithLoss(_Layer):
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

    def forward(self, x: Any, t: Any) -> float:  # type: ignore[override]  # the book's (x, t)
        x, t = numpy_input(x, "SoftmaxWithLoss.forward"), numpy_input(t, "SoftmaxWithLoss.forward")
        if x.ndim != 2:
            raise ValueError(f"x must be scores of shape (N, K), got shape {x.shape}")
        if t.shape == x.shape:
            target = t
        elif t.shape in ((x.shape[0],), (x.shape[0], 1)) and t.dtype.kind in "iu":
            target = t.reshape(x.shape[0])
        else:
            raise ValueError(f"t must be labels of shape ({x.shape[0]},) or ({x.shape[0]}, 1), or one-hot rows of "
                             f"shape {x.shape}; got {type(t).__name__} of dtype {t.dtype}, shape {t.shape}")
        # cross_entropy_error's formula, for the labels and shapes checked above; nothing is kept before the checks.
        if target.ndim == 2:
            labels = target.argmax(axis=1)  # of one-hot rows: in range by construction
        else:
            labels = target
            check_labels(labels, x.shape[1])
        y = softmax(x)
        batch_size = y.shape[0]
        self.t, self.y = target, y
        self.loss = -np.log(y[np.arange(batch_size), labels] + LOG_GUARD).sum() / batch_size
        self._claim()  # this thread's state, for backward's check
        return self.loss

    def __call__(self, x: Any, t: Any) -> float:  # type: ignore[override]  # the book's (x, t)
        return self.forward(x, t)

    def backward(self, dout: Any = 1) -> np.ndarray:
        if self.y is None or self.t is None:  # forward sets both
            raise RuntimeError("SoftmaxWithLoss.backward called before forward")
        self._check_thread()
        batch_size = self.t.shape[0]
        if self.t.size == self.y.size:
            dx = (self.y - self.t) / batch_size
        else:
            dx = self.y.copy()
            dx[np.arange(batch_size), self.t] -= 1
            dx = dx / batch_size
        return dx if np.ndim(dout) == 0 and dout == 1 else dx * dout
