"""Training as a library feature: the :func:`fit` loop, its :class:`History` and :class:`Callback` hooks.

:func:`fit` is plain Python (no argument parsing, no printing): it runs
mini-batch training and returns a :class:`History`; progress is reported to
:class:`Callback` objects. The ``colnn train`` command (:mod:`colnn.apps.train`)
adds a progress bar, a one-line summary per epoch and the output files.

>>> from colnn.nn.network import simple_conv_net
>>> from colnn.nn.optim import Adam
>>> rng = np.random.default_rng(0)
>>> data = SimpleNamespace(x_train=rng.random((60, 1, 8, 8)), t_train=rng.integers(0, 10, 60),
...                        x_test=rng.random((20, 1, 8, 8)), t_test=rng.integers(0, 10, 20))
>>> net = simple_conv_net((1, 8, 8), filter_num=4, filter_size=3, pad=1, hidden_size=20)
>>> history = fit(net, Adam(0.01), data, epochs=2, batch_size=30, seed=0)
>>> len(history.loss), 0.0 <= history.test_accuracy <= 1.0
(2, True)
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Protocol

import numpy as np

from ..core.checks import describe
from .network import Network, as_network_array
from .optim import Optimizer

__all__ = ["fit", "History", "Callback", "CosineDecay", "TrainingDiverged", "TrainingInterrupted", "TrainingData"]


class TrainingData(Protocol):
    """What :func:`fit` reads: a train/test split (e.g. :class:`colnn.apps.data.Dataset`)."""

    # Read-only: a frozen dataclass such as Dataset provides them.
    @property
    def x_train(self) -> Any: ...

    @property
    def t_train(self) -> Any: ...

    @property
    def x_test(self) -> Any: ...

    @property
    def t_test(self) -> Any: ...


@dataclass
class History:
    """What :func:`fit` measured; the per-epoch lists have one entry per completed epoch.

    ``loss`` is the mean training loss over the epoch's batches, ``accuracy`` the
    test accuracy after the epoch, ``train_running_accuracy`` the fraction of the
    epoch's training samples classified right as their batch was trained on,
    ``lr`` the optimizer's learning rate during the epoch.
    """

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    train_running_accuracy: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    train_accuracy: float = math.nan
    test_accuracy: float = math.nan
    seconds: float = 0.0


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the network holds the last weights that gave a finite loss."""

    def __init__(self, message: str, history: History) -> None:
        super().__init__(message)
        self.history = history


class TrainingInterrupted(KeyboardInterrupt):
    """Training was interrupted (Ctrl-C); ``history`` holds the epochs completed before it.

    A KeyboardInterrupt, so code that stops on Ctrl-C still does; the network
    keeps the weights it had, which a caller may save.
    """

    def __init__(self, message: str, history: History) -> None:
        super().__init__(message)
        self.history = history


class Callback:
    """Receives :func:`fit`'s progress; every method is a no-op unless overridden."""

    def on_epoch_start(self, epoch: int, epochs: int, num_batches: int) -> None:
        """Epoch ``epoch`` (1-based) of ``epochs`` starts; it has ``num_batches`` batches."""

    def on_batch_end(self, batch: int, loss: float) -> None:
        """Batch ``batch`` (0-based) was trained on; ``loss`` is its loss before the update."""

    def on_epoch_end(self, epoch: int, history: History) -> None:
        """Epoch ``epoch`` is done; its numbers are the last entries of ``history``'s lists."""


class CosineDecay(Callback):
    """Anneal ``optimizer.lr`` from its value at construction towards 0 along half a cosine.

    Epoch ``e`` of ``E`` (1-based) uses ``lr0 * (1 + cos(pi * (e - 1) / E)) / 2``:
    full steps early, small ones at the end, so the last epochs settle instead
    of hopping around the minimum.

    >>> from colnn.nn.optim import SGD
    >>> optimizer = SGD(lr=1.0)
    >>> CosineDecay(optimizer).on_epoch_start(epoch=2, epochs=3, num_batches=1)
    >>> optimizer.lr
    0.75
    """

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer
        self.base_lr = optimizer.lr

    def on_epoch_start(self, epoch: int, epochs: int, num_batches: int) -> None:
        self.optimizer.lr = self.base_lr * (1.0 + math.cos(math.pi * (epoch - 1) / epochs)) / 2.0


def _check_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {describe(value)}")
    return int(value)


def fit(
    network: Network,
    optimizer: Optimizer,
    data: TrainingData,
    *,
    epochs: int,
    batch_size: int,
    seed: int | None = 0,
    callbacks: Sequence[Callback] = (),
) -> History:
    """Train ``network`` on ``data.x_train`` with mini-batches; evaluate on ``data.x_test`` after each epoch.

    Parameters
    ----------
    network : updated in place
    optimizer : steps ``network.params`` with each batch's gradients
    data : the train/test split (``x_train``, ``t_train``, ``x_test``, ``t_test``); its arrays are not
        modified. They may be another library's CPU arrays (PyTorch, JAX...): read as NumPy once,
        as :meth:`Network.predict` reads its input
    epochs, batch_size : number of passes and samples per batch (the last one may be smaller)
    seed : seed of the per-epoch shuffling; with the same network, data and seed
        the results are identical from run to run
    callbacks : told of each epoch and batch (progress bars, logging)

    Returns
    -------
    History

    Raises
    ------
    TrainingDiverged
        When a batch's loss is NaN or infinite. The weights are first set back to
        those before the last update, which still gave a finite loss.
    TrainingInterrupted
        On Ctrl-C (KeyboardInterrupt), with the history of the completed epochs.
    """
    epochs, batch_size = _check_count(epochs, "epochs"), _check_count(batch_size, "batch_size")
    # The four arrays as NumPy (views where they are NumPy already): the split itself is not modified.
    data = SimpleNamespace(**{name: as_network_array(getattr(data, name), f"data.{name}")
                              for name in ("x_train", "t_train", "x_test", "t_test")})
    rng = np.random.default_rng(seed)
    history = History()
    started = time.perf_counter()
    try:
        _run_epochs(network, optimizer, data, epochs, batch_size, rng, callbacks, history, started)
        history.train_accuracy = network.accuracy(data.x_train, data.t_train, batch_size=max(batch_size, 100))
    except KeyboardInterrupt:
        history.seconds = time.perf_counter() - started
        raise TrainingInterrupted(f"interrupted after {len(history.loss)} of {epochs} epochs", history) from None
    history.test_accuracy = history.accuracy[-1]
    history.seconds = time.perf_counter() - started
    return history


def _run_epochs(network: Network, optimizer: Optimizer, data: TrainingData, epochs: int, batch_size: int,
                rng: np.random.Generator, callbacks: Sequence[Callback], history: History, started: float) -> None:
    """:func:`fit`'s loop over the epochs, appending to ``history``."""
    params = network.params
    last_good = {key: param.copy() for key, param in params.items()}
    num_train = len(data.x_train)
    num_batches = math.ceil(num_train / batch_size)
    for epoch in range(1, epochs + 1):
        epoch_started = time.perf_counter()
        for callback in callbacks:
            callback.on_epoch_start(epoch, epochs, num_batches)
        history.lr.append(optimizer.lr)
        order = rng.permutation(num_train)
        loss_sum, correct = 0.0, 0
        for batch in range(num_batches):
            indices = order[batch * batch_size:(batch + 1) * batch_size]
            x_batch, t_batch = data.x_train[indices], data.t_train[indices]
            loss, grads = network.loss_and_gradient(x_batch, t_batch)
            if not math.isfinite(loss):
                for key, param in params.items():
                    np.copyto(param, last_good[key])
                history.seconds = time.perf_counter() - started
                raise TrainingDiverged(
                    f"training diverged: the loss became {loss} at epoch {epoch}, batch {batch + 1} "
                    f"(lr={optimizer.lr}); the weights were set back to the last ones with a finite loss",
                    history)
            for key, param in params.items():
                np.copyto(last_good[key], param)
            optimizer.update(params, grads)
            loss_sum += loss * len(indices)
            scores = network.loss_layer.y
            assert scores is not None  # the loss's forward above set them
            correct += int(np.count_nonzero(scores.argmax(axis=1) == t_batch))
            for callback in callbacks:
                callback.on_batch_end(batch, loss)
        history.loss.append(loss_sum / num_train)
        history.train_running_accuracy.append(correct / num_train)
        history.accuracy.append(network.accuracy(data.x_test, data.t_test, batch_size=max(batch_size, 100)))
        history.epoch_seconds.append(time.perf_counter() - epoch_started)
        for callback in callbacks:
            callback.on_epoch_end(epoch, history)
