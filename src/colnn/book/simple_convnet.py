"""The book's ``ch07/simple_convnet.py``: ``SimpleConvNet``, conv -> relu -> pool -> affine -> relu -> affine.

``from simple_convnet import SimpleConvNet`` becomes ``from
colnn.book.simple_convnet import SimpleConvNet``; the rest of a chapter 7
script stays as it is.

>>> net = SimpleConvNet(input_dim=(1, 10, 10), conv_param={'filter_num': 3, 'filter_size': 3, 'pad': 0, 'stride': 1},
...                     hidden_size=8, output_size=4, seed=0)
>>> [(key, value.shape) for key, value in net.params.items()][:3]
[('W1', (3, 1, 3, 3)), ('b1', (3,)), ('W2', (48, 8))]
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._network import BookNetwork, conv_param_values, draw_normal, numbered_sources

if TYPE_CHECKING:
    from colnn.core.simple_conv_spec import SimpleConvSpec

__all__ = ["SimpleConvNet"]

DEFAULT_CONV_PARAM: Mapping[str, int] = {"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1}
LAYER_NAMES = ("Conv1", "Relu1", "Pool1", "Affine1", "Relu2", "Affine2")
PARAM_NAMES = ("W1", "b1", "W2", "b2", "W3", "b3")


class SimpleConvNet(BookNetwork):
    """The book's ``SimpleConvNet`` (chapter 7.5) on colnn's layers (:func:`colnn.nn.simple_conv_net`).

    Parameters
    ----------
    input_dim : ``(C, H, W)`` of one sample
    conv_param : ``{'filter_num', 'filter_size', 'pad', 'stride'}`` of the convolution
        (default 30 filters 5x5, pad 0, stride 1)
    hidden_size, output_size : widths of the two affine layers
    weight_init_std : the initial weights are ``weight_init_std * randn``; biases start at 0
    seed : None draws the weights from NumPy's global random state, as the book
        does; an int draws what ``np.random.seed(seed)`` and then the book's
        constructor would
    dtype : of the parameters and the computation (the book's float64 by default)

    ``params``: ``W1`` ``(filter_num, C, filter_size, filter_size)``, ``b1``,
    ``W2`` ``(filter_num * pool_h * pool_w, hidden_size)``, ``b2``, ``W3``
    ``(hidden_size, output_size)``, ``b3``, the very arrays the layers use.
    ``layers`` maps the book's names ``Conv1``, ``Relu1``, ``Pool1`` (2x2,
    stride 2), ``Affine1``, ``Relu2``, ``Affine2`` to the layers; ``last_layer``
    is the book's ``SoftmaxWithLoss``. The layers are built when first needed (a
    forward, ``layers``, ``network``...), on the arrays of ``params``: building the
    network, loading its parameters and plotting ``W1`` (``visualize_filter.py``)
    load none of colnn's layers. Where the convolution's output is odd the
    pooling drops the last row and column, and ``W2`` has the matching size
    (the book's formula would give a fractional count); ``H`` and ``W`` may differ.

    Raises
    ------
    ValueError
        For an ``input_dim``, ``conv_param`` or size that is not positive ints, or
        an input too small for the convolution and pooling.
    """

    _loss_from_any_layer = True

    def __init__(self, input_dim: Sequence[int] = (1, 28, 28), conv_param: Mapping[str, int] = DEFAULT_CONV_PARAM,
                 hidden_size: int = 100, output_size: int = 10, weight_init_std: float = 0.01, *,
                 seed: int | None = None, dtype: Any = np.float64) -> None:
        # The checks, shapes and draws of colnn.nn.simple_conv_net without its layers, which are built on first
        # use (_build_layers): building the network, loading and plotting its params stay NumPy work.
        from colnn.core.simple_conv_spec import simple_conv_spec

        conv = conv_param_values(conv_param, "conv_param")
        randn = draw_normal(seed)
        shape = (input_dim, conv["filter_num"], conv["filter_size"], conv["pad"], conv["stride"])
        # The book's draws in the book's order, so that a seed gives the book's weights: simple_conv_spec draws
        # std * standard_normal(W.shape) from the RandomState behind randn, which is randn(*W.shape), once.
        if isinstance(weight_init_std, numbers.Real) and 0 < weight_init_std < math.inf:
            spec = simple_conv_spec(*shape, 2, hidden_size, output_size, weight_init_std, randn.__self__, dtype)
        else:  # a std colnn refuses (0, negative, not a number): the book's product, whatever it gives
            spec = simple_conv_spec(*shape, 2, hidden_size, output_size, "he", 0, dtype)
            for weight in spec.params[::2]:
                weight[...] = weight_init_std * randn(*weight.shape)
        self.params = dict(zip(PARAM_NAMES, spec.params))
        self._layer_spec = spec

    def _build_layers(self, spec: SimpleConvSpec) -> None:
        from colnn.nn.network import simple_conv_network

        network = simple_conv_network(spec)
        self._assemble(network, LAYER_NAMES, numbered_sources(network.layers))

    def predict(self, x: Any) -> np.ndarray:  # type: ignore[override]
        """Scores ``(N, output_size)`` before softmax for images ``x`` ``(N, C, H, W)``."""
        self._warm_up(x)
        return self.network.predict(x)

    def numerical_gradient(self, x: Any, t: Any) -> dict[str, np.ndarray]:
        """Gradients by central differences of :meth:`loss` (``h = 1e-4``), keyed like :attr:`params`.

        Two forward passes per parameter element: for checking :meth:`gradient`
        on small inputs, as the book's ``gradient_check.py`` does.
        """
        return self._numerical_gradient(x, t)
