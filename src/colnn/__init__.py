"""colnn: im2col-based CNN layers for NumPy, exact against PyTorch (pooling bit for bit, sums to rounding).

The public API: ``im2col``/``col2im`` (the book's layout), ``unfold``/``fold``
(PyTorch's), the pooling and convolution functions of ``torch.nn.functional``
in 1, 2 and 3 dimensions (:mod:`colnn.ops`) and layer objects with
``forward``/``backward`` (:mod:`colnn.nn`). Pooling and convolution run compiled
kernels by default (``strategy="numba"``; ``"im2col"`` is the tutorial's
reference path); :func:`set_num_threads` limits their threads. Importing colnn
neither loads Numba nor compiles anything.
"""

from typing import TYPE_CHECKING

from .core.lazy import lazy_names

if TYPE_CHECKING:  # the names as a type checker and a reader see them; at run time __getattr__ imports them
    from .apps.explain import explain as explain  # not in __all__: an application, not an op
    from .kernels.threads import get_num_threads, set_num_threads
    from .nn import (
        AdaptiveAvgPool1d,
        AdaptiveAvgPool2d,
        AdaptiveAvgPool3d,
        AdaptiveMaxPool1d,
        AdaptiveMaxPool2d,
        AdaptiveMaxPool3d,
        Affine,
        AvgPool1d,
        AvgPool2d,
        AvgPool3d,
        BatchNorm2d,
        BatchNormalization,
        Conv1d,
        Conv2d,
        Conv3d,
        Convolution,
        ConvTranspose1d,
        ConvTranspose2d,
        ConvTranspose3d,
        Dropout,
        FractionalMaxPool2d,
        FractionalMaxPool3d,
        Layer,
        LPPool1d,
        LPPool2d,
        LPPool3d,
        MaxPool1d,
        MaxPool2d,
        MaxPool3d,
        MaxUnpool1d,
        MaxUnpool2d,
        MaxUnpool3d,
        Pooling,
        Relu,
        Sigmoid,
        SoftmaxWithLoss,
    )
    from .ops import (
        adaptive_avg_pool1d,
        adaptive_avg_pool2d,
        adaptive_avg_pool3d,
        adaptive_max_pool1d,
        adaptive_max_pool2d,
        adaptive_max_pool3d,
        available_strategies,
        avg_pool1d,
        avg_pool2d,
        avg_pool3d,
        col2im,
        conv1d,
        conv2d,
        conv3d,
        conv_transpose1d,
        conv_transpose2d,
        conv_transpose3d,
        fold,
        fractional_max_pool2d,
        fractional_max_pool3d,
        im2col,
        lp_pool1d,
        lp_pool2d,
        lp_pool3d,
        max_pool1d,
        max_pool2d,
        max_pool3d,
        max_unpool1d,
        max_unpool2d,
        max_unpool3d,
        unfold,
    )

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
    # the 1/2/3-d families
    "max_pool1d", "max_pool3d", "avg_pool1d", "avg_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "conv1d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "MaxPool1d", "MaxPool3d", "AvgPool1d", "AvgPool3d",
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d",
    "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d",
    "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
    "lp_pool1d", "lp_pool2d", "lp_pool3d", "max_unpool1d", "max_unpool2d", "max_unpool3d",
    "LPPool1d", "LPPool2d", "LPPool3d", "MaxUnpool1d", "MaxUnpool2d", "MaxUnpool3d",
    "fractional_max_pool2d", "fractional_max_pool3d", "FractionalMaxPool2d", "FractionalMaxPool3d",
]


# Where each public name lives: imported on its first use (PEP 562), so that ``import colnn.book.functions``
# or ``import colnn.core.checks`` loads neither the layers nor the ops (nor, ever, Numba: see colnn.kernels).
_THREADS = ("get_num_threads", "set_num_threads")
# The layers (capitalised names) are colnn.nn's, the functions colnn.ops's.
_HOMES = {name: ".nn" if name[0].isupper() else ".kernels.threads" if name in _THREADS else ".ops" for name in __all__}
# ``colnn.explain(...)`` is the walk of ``colnn explain`` (rendered as the page in Jupyter), from the apps layer.
_HOMES["explain"] = ".apps.explain"

__getattr__, __dir__ = lazy_names(__name__, _HOMES, submodules=("core", "kernels", "ops", "nn", "book", "apps"))
