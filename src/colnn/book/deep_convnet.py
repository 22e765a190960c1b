"""The book's ``ch08/deep_convnet.py``: ``DeepConvNet``, six 3x3 convolutions, two affine layers, dropout.

``from deep_convnet import DeepConvNet`` becomes ``from
colnn.book.deep_convnet import DeepConvNet``; ``load_params`` then reads the
book's trained ``deep_convnet_params.pkl`` (safely: see
:func:`colnn.book.load_pickle`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._network import BookNetwork, conv_param_values, draw_normal, he_draws, numbered_sources
from .layers import GLOBAL_RANDOM

__all__ = ["DeepConvNet"]

# The book's conv_param_1 ... conv_param_6 (the fourth pads by 2).
CONV_PARAM_1: Mapping[str, int] = {"filter_num": 16, "filter_size": 3, "pad": 1, "stride": 1}
CONV_PARAM_2: Mapping[str, int] = {"filter_num": 16, "filter_size": 3, "pad": 1, "stride": 1}
CONV_PARAM_3: Mapping[str, int] = {"filter_num": 32, "filter_size": 3, "pad": 1, "stride": 1}
CONV_PARAM_4: Mapping[str, int] = {"filter_num": 32, "filter_size": 3, "pad": 2, "stride": 1}
CONV_PARAM_5: Mapping[str, int] = {"filter_num": 64, "filter_size": 3, "pad": 1, "stride": 1}
CONV_PARAM_6: Mapping[str, int] = {"filter_num": 64, "filter_size": 3, "pad": 1, "stride": 1}


class DeepConvNet(BookNetwork):
    """The book's ``DeepConvNet`` (chapter 8.1) on colnn's layers (:func:`colnn.nn.deep_conv_net`).

    conv - relu - conv - relu - pool, three times (2x2 pooling, stride 2), then
    affine - relu - dropout - affine - dropout - softmax.

    Parameters
    ----------
    input_dim : ``(C, H, W)`` of one sample
    conv_param_1 ... conv_param_6 : ``{'filter_num', 'filter_size', 'pad', 'stride'}`` (the book's by default)
    hidden_size, output_size : widths of the two affine layers
    seed : None draws the weights from NumPy's global random state, as the book
        does; an int draws what ``np.random.seed(seed)`` and then the book's
        constructor would. Dropout masks come from the global state either way.
    dtype : of the parameters and the computation (the book's float64 by default)

    Weights are He-initialised (std ``sqrt(2 / fan_in)``), biases start at 0.
    ``params``: ``W1`` ... ``W8``, ``b1`` ... ``b8``; ``layers`` is the book's list
    of 20 layers, the weights at positions 0, 2, 5, 7, 10, 12, 15 and 18. As in
    the book, :meth:`loss` (and so :meth:`gradient`) runs with dropout on,
    :meth:`predict` and :meth:`accuracy` without. The book computes the fan-ins
    and ``W7``'s rows for the default ``(1, 28, 28)`` input only; these follow
    the given ``input_dim`` and ``conv_param``s (the same numbers by default).

    Raises
    ------
    ValueError
        For an ``input_dim`` or ``conv_param`` that is not positive ints, or an input
        too small for the layers.
    """

    _loss_train_flg = True

    def __init__(self, input_dim: Sequence[int] = (1, 28, 28),
                 conv_param_1: Mapping[str, int] = CONV_PARAM_1, conv_param_2: Mapping[str, int] = CONV_PARAM_2,
                 conv_param_3: Mapping[str, int] = CONV_PARAM_3, conv_param_4: Mapping[str, int] = CONV_PARAM_4,
                 conv_param_5: Mapping[str, int] = CONV_PARAM_5, conv_param_6: Mapping[str, int] = CONV_PARAM_6,
                 hidden_size: int = 50, output_size: int = 10, *, seed: int | None = None,
                 dtype: Any = np.float64) -> None:
        # colnn's layers, when a script first builds a network (importing this module stays a NumPy import).
        from colnn.nn import Dropout, deep_conv_net

        conv_params = [conv_param_values(conv, f"conv_param_{index}") for index, conv in enumerate(
            (conv_param_1, conv_param_2, conv_param_3, conv_param_4, conv_param_5, conv_param_6), start=1)]
        network = deep_conv_net(input_dim, conv_params, hidden_size, output_size, dtype=dtype)
        he_draws(network, draw_normal(seed))
        for layer in network.layers:
            if isinstance(layer, Dropout):
                layer.rng = GLOBAL_RANDOM  # the book's masks: np.random.rand, so np.random.seed repeats them
        self._assemble(network, [str(index) for index in range(len(network.layers))],
                       numbered_sources(network.layers))
        self.layers = list(network.layers)

    def predict(self, x: Any, train_flg: bool = False) -> np.ndarray:
        """Scores ``(N, output_size)`` before softmax; ``train_flg=True`` drops out as in training."""
        self._warm_up(x)
        return self.network.predict(x, train_flg)
