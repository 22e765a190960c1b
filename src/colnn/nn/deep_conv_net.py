"""The book's ``DeepConvNet`` (chapter 8.1) as a :class:`~colnn.nn.network.Network`.

Three blocks of two 3x3 convolutions with ReLU and a 2x2 max pooling (16, 32
and 64 filters; the fourth convolution pads by 2, the others by 1), then
affine -> relu -> dropout -> affine -> dropout: eight layers with weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.checks import check_seed, describe
from ..core.simple_conv_spec import initial_std, positive_int
from .activation import Relu
from .base import Layer
from .conv import Convolution
from .dense import Affine
from .dropout import Dropout
from .network import Network
from .pooling import MaxPool2d

__all__ = ["deep_conv_net", "DEEP_CONV_PARAMS"]

# The book's conv_param_1 ... conv_param_6.
DEEP_CONV_PARAMS: tuple[dict[str, int], ...] = (
    {"filter_num": 16, "filter_size": 3, "pad": 1, "stride": 1},
    {"filter_num": 16, "filter_size": 3, "pad": 1, "stride": 1},
    {"filter_num": 32, "filter_size": 3, "pad": 1, "stride": 1},
    {"filter_num": 32, "filter_size": 3, "pad": 2, "stride": 1},
    {"filter_num": 64, "filter_size": 3, "pad": 1, "stride": 1},
    {"filter_num": 64, "filter_size": 3, "pad": 1, "stride": 1},
)


def deep_conv_net(
    input_dim: Sequence[int] = (1, 28, 28),
    conv_params: Sequence[dict[str, int]] = DEEP_CONV_PARAMS,
    hidden_size: int = 50,
    output_size: int = 10,
    dropout_ratio: float = 0.5,
    weight_init_std: float | str = "he",
    seed: int | None = 0,
    dtype: Any = np.float32,
) -> Network:
    """The book's ``DeepConvNet``: 6 convolutions (max pooling after every second), 2 affine layers, dropout.

    Parameters
    ----------
    input_dim : ``(C, H, W)`` of one sample; each pooling halves ``H`` and ``W`` (rounding down)
    conv_params : six dicts ``{'filter_num', 'filter_size', 'pad', 'stride'}`` (the book's
        ``conv_param_1`` ... ``conv_param_6``)
    hidden_size, output_size : widths of the two affine layers
    dropout_ratio : of the two :class:`~colnn.nn.dropout.Dropout` layers
    weight_init_std : ``"he"`` (``sqrt(2 / fan_in)``, the book's choice) or a fixed std
    seed : seeds the weights and the dropout masks (None: fresh randomness)
    dtype : floating dtype of the parameters and of the computation

    Returns
    -------
    Network of 20 layers; the weights sit at layers 0, 2, 5, 7, 10, 12 (convolutions),
    15 and 18 (affine), in the book's order ``W1`` ... ``W8``.

    Examples
    --------
    >>> net = deep_conv_net((1, 28, 28))
    >>> net.params["15.W"].shape, net.predict(np.zeros((2, 1, 28, 28))).shape
    ((1024, 50), (2, 10))
    """
    if len(input_dim) != 3:
        raise ValueError(f"input_dim must be (C, H, W), got {describe(input_dim)}")
    channels, height, width = (positive_int(size, "input_dim") for size in input_dim)
    if len(conv_params) != 6:
        raise ValueError(f"conv_params must hold 6 dicts, got {len(conv_params)}")
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating dtype, got {dtype}")
    rng = np.random.default_rng(check_seed(seed))

    def weight(shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        return (initial_std(weight_init_std, fan_in, "weight_init_std") * rng.standard_normal(shape)).astype(dtype)

    layers: list[Layer] = []
    for index, conv in enumerate(conv_params):
        filter_num, size = conv["filter_num"], conv["filter_size"]
        stride, pad = conv.get("stride", 1), conv.get("pad", 0)
        layers += [Convolution(weight((filter_num, channels, size, size), channels * size * size),
                               np.zeros(filter_num, dtype), stride, pad), Relu()]
        height, width = (height + 2 * pad - size) // stride + 1, (width + 2 * pad - size) // stride + 1
        if index % 2 == 1:
            layers.append(MaxPool2d(2))
            height, width = height // 2, width // 2
        if min(height, width) < 1:
            raise ValueError(f"input_dim {tuple(input_dim)} is too small for DeepConvNet: "
                             f"nothing is left after convolution {index + 1}")
        channels = filter_num
    flat = channels * height * width
    dropout_seeds = rng.integers(2**63, size=2) if seed is not None else (None, None)
    layers += [
        Affine(weight((flat, hidden_size), flat), np.zeros(hidden_size, dtype)),
        Relu(),
        Dropout(dropout_ratio, seed=dropout_seeds[0]),
        Affine(weight((hidden_size, output_size), hidden_size), np.zeros(output_size, dtype)),
        Dropout(dropout_ratio, seed=dropout_seeds[1]),
    ]
    return Network(layers, input_shape=tuple(int(s) for s in input_dim))
