"""The book's ``common/trainer.py``: ``Trainer``, mini-batch training with the book's bookkeeping and output.

Every iteration draws a random batch (``np.random.choice``, with replacement,
from NumPy's global state), takes one gradient step, then computes the loss of
that batch again with the new weights; every ``train_size / mini_batch_size``
iterations (at the first too) it measures the accuracies. It prints what the
book's prints, line for line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..core.checks import describe
from . import optimizer as optimizers

__all__ = ["Trainer"]

OPTIMIZERS = {"sgd": optimizers.SGD, "momentum": optimizers.Momentum, "nesterov": optimizers.Nesterov,
              "adagrad": optimizers.AdaGrad, "rmsprop": optimizers.RMSprop, "adam": optimizers.Adam}


class Trainer:
    """The book's ``Trainer`` (chapter 7's ``train_convnet.py``, chapter 8's ``train_deepnet.py``).

    Parameters
    ----------
    network : any of the book's networks (``gradient``, ``loss``, ``accuracy``, ``params``)
    x_train, t_train, x_test, t_test : samples and labels (integers or one-hot rows)
    epochs : ``epochs * train_size / mini_batch_size`` iterations are run
    mini_batch_size : samples per iteration
    optimizer : ``'SGD'``, ``'Momentum'``, ``'Nesterov'``, ``'AdaGrad'``, ``'RMSprop'`` or
        ``'Adam'`` (any case), from :mod:`colnn.book.optimizer`
    optimizer_param : its keyword arguments (None: ``{'lr': 0.01}``, the book's default)
    evaluate_sample_num_per_epoch : accuracies per epoch on the first this many training
        and test samples (None: all of them)
    verbose : print each iteration's loss, each epoch's accuracies and the final test accuracy

    After :meth:`train`: ``train_loss_list`` (one loss per iteration),
    ``train_acc_list`` and ``test_acc_list`` (one per epoch).

    Raises
    ------
    ValueError
        For an unknown optimizer, a non-positive ``mini_batch_size`` or ``epochs``, or
        samples and labels of different lengths.
    """

    def __init__(self, network: Any, x_train: Any, t_train: Any, x_test: Any, t_test: Any, epochs: int = 20,
                 mini_batch_size: int = 100, optimizer: str = "SGD",
                 optimizer_param: Mapping[str, Any] | None = None,
                 evaluate_sample_num_per_epoch: int | None = None, verbose: bool = True) -> None:
        name = optimizer.lower() if isinstance(optimizer, str) else optimizer
        if name not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of 'SGD', 'Momentum', 'Nesterov', 'AdaGrad', 'RMSprop', 'Adam' "
                             f"(any case), got {describe(optimizer)}")
        for size, label in ((mini_batch_size, "mini_batch_size"), (epochs, "epochs")):
            if isinstance(size, bool) or not isinstance(size, (int, float, np.integer, np.floating)) or size <= 0:
                raise ValueError(f"{label} must be a positive number, got {describe(size)}")
        for x, t, label in ((x_train, t_train, "train"), (x_test, t_test, "test")):
            if len(x) != len(t) or len(x) == 0:
                raise ValueError(f"x_{label} and t_{label} must hold the same non-zero number of samples, "
                                 f"got {len(x)} and {len(t)}")
        self.network = network
        self.verbose = verbose
        self.x_train, self.t_train, self.x_test, self.t_test = x_train, t_train, x_test, t_test
        self.epochs = epochs
        self.batch_size = mini_batch_size
        self.evaluate_sample_num_per_epoch = evaluate_sample_num_per_epoch
        self.optimizer = OPTIMIZERS[name](**({"lr": 0.01} if optimizer_param is None else optimizer_param))
        self.train_size = x_train.shape[0]
        self.iter_per_epoch = max(self.train_size / mini_batch_size, 1)
        self.max_iter = int(epochs * self.iter_per_epoch)
        self.current_iter = 0
        self.current_epoch = 0
        self.train_loss_list: list[float] = []
        self.train_acc_list: list[float] = []
        self.test_acc_list: list[float] = []

    def train_step(self) -> None:
        """One iteration: a random batch, a gradient step, its loss; the accuracies at an epoch's start."""
        batch_mask = np.random.choice(self.train_size, self.batch_size)
        x_batch, t_batch = self.x_train[batch_mask], self.t_train[batch_mask]
        grads = self.network.gradient(x_batch, t_batch)
        self.optimizer.update(self.network.params, grads)
        loss = self.network.loss(x_batch, t_batch)
        self.train_loss_list.append(loss)
        if self.verbose:
            print("train loss:" + str(loss))
        # The book's test, on a float iter_per_epoch: true at the iterations 0, k, 2k, ...
        if self.current_iter % self.iter_per_epoch == 0:
            self.current_epoch += 1
            sample = self.evaluate_sample_num_per_epoch
            x_train, t_train, x_test, t_test = self.x_train, self.t_train, self.x_test, self.t_test
            if sample is not None:
                x_train, t_train = x_train[:sample], t_train[:sample]
                x_test, t_test = x_test[:sample], t_test[:sample]
            train_acc = self.network.accuracy(x_train, t_train)
            test_acc = self.network.accuracy(x_test, t_test)
            self.train_acc_list.append(train_acc)
            self.test_acc_list.append(test_acc)
            if self.verbose:
                print("=== epoch:" + str(self.current_epoch) + ", train acc:" + str(train_acc)
                      + ", test acc:" + str(test_acc) + " ===")
        self.current_iter += 1

    def train(self) -> None:
        """Run every iteration, then measure (and with ``verbose`` print) the test accuracy on all test samples."""
        for _ in range(self.max_iter):
            self.train_step()
        test_acc = self.network.accuracy(self.x_test, self.t_test)
        if self.verbose:
            print("=============== Final Test Accuracy ===============")
            print("test acc:" + str(test_acc))
