"""Layers in the book's style, the :class:`Network` that chains them, and optimizers.

Layers wrap the ops of :mod:`colnn.ops` as objects whose ``forward`` keeps
what ``backward`` needs; :mod:`.network` chains them and saves them without
pickle; :mod:`.optim` updates their parameters in place. A network fuses neighbouring
layers where that computes the same thing (:mod:`.fusion`) and writes its
largest intermediate results into buffers it reuses (:mod:`.workspace`).
"""

from .activation import Sigmoid
from .dropout import Dropout
from .layers import Affine, AvgPool2d, Convolution, Layer, MaxPool2d, Pooling, Relu, SoftmaxWithLoss
from .normalization import BatchNorm2d, BatchNormalization
from .deep_conv_net import deep_conv_net
from .network import ModelFileError, Network, simple_conv_net

__all__ = [
    "Layer",
    "MaxPool2d",
    "AvgPool2d",
    "Pooling",
    "Convolution",
    "Relu",
    "Affine",
    "SoftmaxWithLoss",
    "Sigmoid",
    "Dropout",
    "BatchNormalization",
    "BatchNorm2d",
    "Network",
    "ModelFileError",
    "simple_conv_net",
    "deep_conv_net",
]
