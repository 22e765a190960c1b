"""colnn: im2col-based CNN layers for NumPy, bit-exact against PyTorch.

The public API: ``im2col``/``col2im`` (the book's layout), ``unfold``/``fold``
(PyTorch's), ``max_pool2d``/``avg_pool2d``/``conv2d`` (as in
``torch.nn.functional``) and layer objects with ``forward``/``backward``.
Pooling and convolution run compiled kernels by default (``strategy="numba"``;
``"im2col"`` is the tutorial's reference path); :func:`set_num_threads` limits
their threads. Importing colnn neither loads Numba nor compiles anything.
"""

from .kernels.threads import get_num_threads, set_num_threads
from .nn.activation import Sigmoid
from .nn.dropout import Dropout
from .nn.normalization import BatchNorm2d, BatchNormalization
from .nn.layers import Affine, AvgPool2d, Convolution, Layer, MaxPool2d, Pooling, Relu, SoftmaxWithLoss
from .ops.conv import conv2d
from .ops.im2col import col2im, fold, im2col, unfold
from .ops.pooling import available_strategies, avg_pool2d, max_pool2d

__version__ = "0.1.0"

__all__ = [
    "im2col",
    "col2im",
    "unfold",
    "fold",
    "max_pool2d",
    "avg_pool2d",
    "conv2d",
    "available_strategies",
    "set_num_threads",
    "get_num_threads",
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
]
