"""Layers in the book's style, the :class:`Network` that chains them, optimizers and training.

- :mod:`.base`: the layer protocol (``forward`` keeps what ``backward`` needs;
  what a network asks of a layer: stateless ``infer``, a fused ``Relu``, a
  skipped input gradient) and the base of the windowed layers;
- :mod:`.activation`, :mod:`.dense`, :mod:`.loss`, :mod:`.dropout`,
  :mod:`.normalization`: the book's layers (``Relu``, ``Sigmoid``, ``Affine``,
  ``SoftmaxWithLoss``, ``Dropout``, batch normalisation);
- :mod:`.conv`, :mod:`.pooling`, :mod:`.unpool`: the 1/2/3-d layers over the ops of
  :mod:`colnn.ops` (and the book's ``Convolution`` and ``Pooling``);
- :mod:`.network`, :mod:`.model_file`: the sequential network and its file;
  :mod:`.workspace`: the buffers it reuses; :mod:`.optim`: optimizers;
  :mod:`.training`: the :func:`fit` loop;
- :mod:`.cpu_views`: every layer on PyTorch and JAX arrays in CPU memory, run on
  NumPy views of them (the compiled kernels), its results of the caller's library.
"""

from typing import TYPE_CHECKING

from ..core.lazy import lazy_names

if TYPE_CHECKING:  # the names as a type checker and a reader see them; at run time __getattr__ imports them
    from .activation import Relu, Sigmoid
    from .base import Layer
    from .conv import Conv1d, Conv2d, Conv3d, Convolution, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
    from .deep_conv_net import deep_conv_net
    from .dense import Affine
    from .dropout import Dropout
    from .loss import SoftmaxWithLoss
    from .model_file import ModelFileError
    from .network import Network, simple_conv_net
    from .normalization import BatchNorm2d, BatchNormalization
    from .pooling import (
        AdaptiveAvgPool1d,
        AdaptiveAvgPool2d,
        AdaptiveAvgPool3d,
        AdaptiveMaxPool1d,
        AdaptiveMaxPool2d,
        AdaptiveMaxPool3d,
        AvgPool1d,
        AvgPool2d,
        AvgPool3d,
        FractionalMaxPool2d,
        FractionalMaxPool3d,
        LPPool1d,
        LPPool2d,
        LPPool3d,
        MaxPool1d,
        MaxPool2d,
        MaxPool3d,
        Pooling,
    )
    from .training import Callback, History, fit
    from .unpool import MaxUnpool1d, MaxUnpool2d, MaxUnpool3d

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
    # the 1/2/3-d layers
    "MaxPool1d", "MaxPool3d", "AvgPool1d", "AvgPool3d",
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d",
    "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d",
    "LPPool1d", "LPPool2d", "LPPool3d", "FractionalMaxPool2d", "FractionalMaxPool3d",
    "MaxUnpool1d", "MaxUnpool2d", "MaxUnpool3d",
    "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
    # training
    "fit", "History", "Callback",
]

# Where each public name lives, imported on its first use (PEP 562): ``colnn.Affine`` (or the first layer a
# book script builds) loads the dense layer and what it stands on, not the network, its file format (zipfile,
# json), the training loop or the layers of other kinds.
_HOMES = {name: f".{module}" for module, names in {
    "activation": ["Relu", "Sigmoid"],
    "base": ["Layer"],
    "conv": ["Conv1d", "Conv2d", "Conv3d", "Convolution", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"],
    "deep_conv_net": ["deep_conv_net"],
    "dense": ["Affine"],
    "dropout": ["Dropout"],
    "loss": ["SoftmaxWithLoss"],
    "model_file": ["ModelFileError"],
    "network": ["Network", "simple_conv_net"],
    "normalization": ["BatchNorm2d", "BatchNormalization"],
    "pooling": ["AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool1d",
                "AdaptiveMaxPool2d", "AdaptiveMaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d", "FractionalMaxPool2d",
                "FractionalMaxPool3d", "LPPool1d", "LPPool2d", "LPPool3d", "MaxPool1d", "MaxPool2d", "MaxPool3d",
                "Pooling"],
    "training": ["Callback", "History", "fit"],
    "unpool": ["MaxUnpool1d", "MaxUnpool2d", "MaxUnpool3d"],
}.items() for name in names}
# The modules, reachable as attributes after ``import colnn.nn`` (``colnn.nn.network``), as when this package
# imported them all; each is imported on first access.
# (``deep_conv_net`` is the function, as before: see lazy_names.)
_SUBMODULES = ("activation", "base", "conv", "cpu_views", "dense", "dropout", "loss", "model_file", "network",
               "normalization", "optim", "parameters", "pooling", "training", "unpool", "workspace")

__getattr__, __dir__ = lazy_names(__name__, _HOMES, _SUBMODULES)
