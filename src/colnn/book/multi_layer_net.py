"""The book's ``common/multi_layer_net.py``: ``MultiLayerNet``, a fully connected network with weight decay.

(affine - activation) x len(hidden_size_list), then affine - softmax; used by
chapter 6's comparisons of optimizers, initial weights and weight decay.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.checks import describe
from ._network import BookNetwork, draw_normal
from .layers import Affine, BatchNormalization, Dropout, Relu, Sigmoid

if TYPE_CHECKING:
    from colnn.nn import Layer

__all__ = ["MultiLayerNet"]

ACTIVATIONS = {"relu": Relu, "sigmoid": Sigmoid}


def initial_scale(weight_init_std: Any, fan_in: int) -> float | np.integer | np.floating:
    """The book's scale: ``'relu'``/``'he'`` give ``sqrt(2 / fan_in)``, ``'sigmoid'``/``'xavier'`` ``sqrt(1 / fan_in)``.

    A number is itself the standard deviation; anything else is a ValueError.
    """
    name = str(weight_init_std).lower()
    if name in ("relu", "he"):
        return np.sqrt(2.0 / fan_in)
    if name in ("sigmoid", "xavier"):
        return np.sqrt(1.0 / fan_in)
    if isinstance(weight_init_std, bool) or not isinstance(weight_init_std, (int, float, np.integer, np.floating)):
        raise ValueError(f"weight_init_std must be a number, 'relu', 'he', 'sigmoid' or 'xavier', "
                         f"got {describe(weight_init_std)}")
    return weight_init_std


class MultiLayerNet(BookNetwork):
    """The book's ``MultiLayerNet`` (chapter 6) on colnn's layers.

    A NumPy ``(N, input_size)`` batch runs through :attr:`layers` one by one, as
    the book's code does (colnn.book's ``Affine``, ``Relu`` and batch norm take their lean
    path); anything else goes through :class:`colnn.nn.Network`'s checked entry.
    The chapter's gradient checks call :meth:`loss` 10^5 times on one sample,
    where the network's per-call checks would cost more than the arithmetic.

    Parameters
    ----------
    input_size : features per sample (784 for MNIST); ``x`` ``(N, input_size)``, or any
        ``(N, ...)`` of that many features
    hidden_size_list : widths of the hidden layers, e.g. ``[100, 100, 100]``
    output_size : number of classes
    activation : ``'relu'`` or ``'sigmoid'``
    weight_init_std : a standard deviation, ``'relu'``/``'he'`` (He's ``sqrt(2 / n)``) or
        ``'sigmoid'``/``'xavier'`` (Xavier's ``sqrt(1 / n)``), ``n`` the layer's fan-in
    weight_decay_lambda : strength of the L2 penalty ``0.5 * lambda * sum(W**2)`` added to
        the loss (and ``lambda * W`` to each weight's gradient)
    seed : None draws the weights from NumPy's global random state, as the book does

    ``params``: ``W1``, ``b1``, ... ``W{L}``, ``b{L}`` (``L = len(hidden_size_list) + 1``);
    ``layers`` maps ``Affine1``, ``Activation_function1``, ... to the layers.

    Raises
    ------
    ValueError
        For an unknown ``activation`` or ``weight_init_std``, or sizes that are not positive ints.
    """

    def __init__(self, input_size: int, hidden_size_list: Sequence[int], output_size: int,
                 activation: str = "relu", weight_init_std: Any = "relu", weight_decay_lambda: float = 0, *,
                 seed: int | None = None) -> None:
        self._build(input_size, hidden_size_list, output_size, activation, weight_init_std, weight_decay_lambda,
                    seed, use_dropout=False, dropout_ration=0.5, use_batchnorm=False)

    def _build(self, input_size: int, hidden_size_list: Sequence[int], output_size: int, activation: str,
               weight_init_std: Any, weight_decay_lambda: float, seed: int | None, *, use_dropout: bool,
               dropout_ration: float, use_batchnorm: bool) -> None:
        sizes = [input_size, *hidden_size_list, output_size]
        if any(isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1 for size in sizes):
            raise ValueError(f"input_size, hidden_size_list and output_size must be positive ints, got "
                             f"{input_size!r}, {hidden_size_list!r}, {output_size!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be 'relu' or 'sigmoid', got {describe(activation)}")
        if isinstance(weight_decay_lambda, bool) or not isinstance(weight_decay_lambda, (int, float, np.number)):
            raise ValueError(f"weight_decay_lambda must be a number, got {describe(weight_decay_lambda)}")
        self.input_size, self.output_size = input_size, output_size
        self.hidden_size_list = list(hidden_size_list)
        self.hidden_layer_num = len(self.hidden_size_list)
        self.weight_decay_lambda = weight_decay_lambda
        self.use_dropout, self.use_batchnorm = use_dropout, use_batchnorm
        randn = draw_normal(seed)
        params: dict[str, np.ndarray] = {}
        # The book draws every weight before it builds a layer: the same order of draws.
        for idx in range(1, len(sizes)):
            params[f"W{idx}"] = initial_scale(weight_init_std, sizes[idx - 1]) * randn(sizes[idx - 1], sizes[idx])
            params[f"b{idx}"] = np.zeros(sizes[idx])
        layers: list[tuple[str, Layer]] = []
        sources: dict[str, tuple[Layer, str]] = {}
        for idx in range(1, len(sizes)):
            affine = Affine(params[f"W{idx}"], params[f"b{idx}"])
            layers.append((f"Affine{idx}", affine))
            sources[f"W{idx}"], sources[f"b{idx}"] = (affine, "dW"), (affine, "db")
            if idx == len(sizes) - 1:
                break
            if use_batchnorm:
                params[f"gamma{idx}"], params[f"beta{idx}"] = np.ones(sizes[idx]), np.zeros(sizes[idx])
                norm = BatchNormalization(params[f"gamma{idx}"], params[f"beta{idx}"])
                layers.append((f"BatchNorm{idx}", norm))
                sources[f"gamma{idx}"], sources[f"beta{idx}"] = (norm, "dgamma"), (norm, "dbeta")
            layers.append((f"Activation_function{idx}", ACTIVATIONS[activation]()))
            if use_dropout:
                layers.append((f"Dropout{idx}", Dropout(dropout_ration)))
        from colnn.nn import Network  # colnn's network code, when a script first builds one

        self._assemble(Network([layer for _, layer in layers]), [name for name, _ in layers], sources)
        self._weights = [self.params[f"W{idx}"] for idx in range(1, len(sizes))]
        self._dtype = self._weights[0].dtype

    def predict(self, x: Any) -> np.ndarray:  # type: ignore[override]
        """Scores ``(N, output_size)`` before softmax."""
        return self._scores(x, False)

    def loss(self, x: Any, t: Any) -> float:
        """The book's cross-entropy loss plus the weight decay ``0.5 * lambda * sum(W**2)`` of every weight."""
        return self._loss(x, t, False)

    def _plain(self, x: Any) -> bool:
        """Whether ``x`` is a batch the layers take one by one: NumPy ``(N, input_size)``, floating or integer."""
        return type(x) is np.ndarray and x.ndim == 2 and x.shape[1] == self.input_size and x.dtype.kind in "fiub"

    def _scores(self, x: Any, train_flg: bool) -> np.ndarray:
        """The layers' forward passes in order, each keeping its state for backward (the book's ``predict``)."""
        if not self._plain(x):
            return self.network.predict(x, train_flg)
        out = x if x.dtype == self._dtype else x.astype(self._dtype)
        layers: tuple[Any, ...] = self.network.layers  # forward(x, train_flg) where mode_dependent
        for layer in layers:
            out = layer.forward(out, train_flg) if layer.mode_dependent else layer.forward(out)
        return out

    def _loss(self, x: Any, t: Any, train_flg: bool) -> float:
        if not self._plain(x):
            return self.network.loss(x, t, train_flg) + self._weight_decay()
        return self.last_layer.forward(self._scores(x, train_flg), t) + self._weight_decay()

    def _weight_decay(self) -> float:
        if self.weight_decay_lambda == 0:
            return 0
        decay = 0
        for weight in self._weights:
            decay += 0.5 * self.weight_decay_lambda * np.sum(weight ** 2)
        return decay

    def accuracy(self, x: Any, t: Any) -> float:  # type: ignore[override]
        """Fraction of the samples ``x`` whose highest score is their label ``t`` (labels or one-hot rows)."""
        return self.network.accuracy(x, t, batch_size=max(len(x), 1))

    def gradient(self, x: Any, t: Any) -> dict[str, np.ndarray]:
        """Gradients by backpropagation, weight decay included (``dW + lambda * W``), keyed like :attr:`params`."""
        if self._plain(x):
            self.last_layer.forward(self._scores(x, True), t)
            dout = self.last_layer.backward(1)
            layers: tuple[Any, ...] = self.network.layers  # the first is an Affine: backward(dout, input_grad=False)
            for layer in reversed(layers[1:]):
                dout = layer.backward(dout)
            layers[0].backward(dout, input_grad=False)  # nothing needs the input's gradient
            grads = {key: getattr(layer, name) for key, (layer, name) in self._grad_sources.items()}
        else:
            grads = super().gradient(x, t)
        if self.weight_decay_lambda != 0:
            for idx, weight in enumerate(self._weights, start=1):
                grads[f"W{idx}"] = grads[f"W{idx}"] + self.weight_decay_lambda * weight
        return grads

    def numerical_gradient(self, x: Any, t: Any) -> dict[str, np.ndarray]:
        """Gradients by central differences of :meth:`loss` (``h = 1e-4``), keyed like :meth:`gradient`."""
        return self._numerical_gradient(x, t)
