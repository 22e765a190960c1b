"""Convolution and transposed convolution, each one N-d computation with thin 1-, 2- and 3-d faces.

- :mod:`._base`: the checked arguments (:class:`ConvArgs`, :class:`ConvTransposeArgs`)
  and weights, shared by the functions, the layers of :mod:`colnn.nn.conv` and the Dask path;
- :mod:`.conv`: ``conv1d/2d/3d``; the compiled 2-D kernels are its specialised case;
- :mod:`.transpose`: ``conv_transpose1d/2d/3d``.
"""

from ._base import ConvArgs, ConvTransposeArgs, check_groups, check_weights, conv_window
from .conv import (
                   conv1d,
                   conv2d,
                   conv2d_backward,
                   conv2d_forward,
                   conv2d_relu_forward,
                   conv3d,
                   conv_backward,
                   conv_forward,
                   conv_relu_forward,
                   get_column_budget,
                   set_column_budget,
)
from .transpose import (
                   conv_transpose1d,
                   conv_transpose2d,
                   conv_transpose3d,
                   conv_transpose_backward,
                   conv_transpose_forward,
)

__all__ = [
    "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "conv_forward", "conv_backward", "conv_relu_forward", "conv2d_forward", "conv2d_backward",
    "conv2d_relu_forward", "conv_transpose_forward", "conv_transpose_backward",
    "ConvArgs", "ConvTransposeArgs", "check_groups", "check_weights", "conv_window",
    "set_column_budget", "get_column_budget",
]
