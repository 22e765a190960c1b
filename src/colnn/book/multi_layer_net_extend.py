"""The book's ``common/multi_layer_net_extend.py``: ``MultiLayerNetExtend``, with dropout and batch normalization.

Chapter 6.3-6.4's network: each hidden layer is affine - [batch norm] -
activation - [dropout]; ``use_batchnorm`` adds ``gamma{i}``/``beta{i}`` to
``params``, ``use_dropout`` drops ``dropout_ration`` of the activations while training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .multi_layer_net import MultiLayerNet

__all__ = ["MultiLayerNetExtend"]


class MultiLayerNetExtend(MultiLayerNet):
    """The book's ``MultiLayerNetExtend`` (chapter 6) on colnn's layers.

    Parameters
    ----------
    input_size, hidden_size_list, output_size, activation, weight_init_std, weight_decay_lambda, seed :
        as for :class:`~colnn.book.multi_layer_net.MultiLayerNet`
    use_dropout : a :class:`~colnn.book.layers.Dropout` after each hidden activation
    dropout_ration : the ratio it drops (the book's spelling)
    use_batchnorm : a :class:`~colnn.book.layers.BatchNormalization` after each hidden affine
        layer, with ``params`` ``gamma{i}`` (ones) and ``beta{i}`` (zeros)

    ``predict``, ``loss`` and ``accuracy`` evaluate unless given ``train_flg=True``;
    :meth:`gradient` and :meth:`numerical_gradient` train (dropout masks and batch
    statistics), as in the book. ``layers`` adds ``BatchNorm{i}`` and
    ``Dropout{i}`` to :class:`MultiLayerNet`'s names.
    """

    def __init__(self, input_size: int, hidden_size_list: Sequence[int], output_size: int,
                 activation: str = "relu", weight_init_std: Any = "relu", weight_decay_lambda: float = 0,
                 use_dropout: bool = False, dropout_ration: float = 0.5, use_batchnorm: bool = False, *,
                 seed: int | None = None) -> None:
        self._build(input_size, hidden_size_list, output_size, activation, weight_init_std, weight_decay_lambda,
                    seed, use_dropout=bool(use_dropout), dropout_ration=dropout_ration,
                    use_batchnorm=bool(use_batchnorm))

    def predict(self, x: Any, train_flg: bool = False) -> np.ndarray:
        """Scores ``(N, output_size)`` before softmax; ``train_flg`` drops out and uses the batch's statistics."""
        return self._scores(x, train_flg)

    def loss(self, x: Any, t: Any, train_flg: bool = False) -> float:
        """The book's cross-entropy loss plus the weight decay; ``train_flg`` as for :meth:`predict`."""
        return self._loss(x, t, train_flg)

    def _loss_for_numerical_gradient(self, x: Any, t: Any) -> float:
        return self.loss(x, t, train_flg=True)
