"""The NumPy-level operations: im2col/col2im, unfold/fold, pooling and convolution.

Each public function checks its arguments and builds the window geometry in
:mod:`colnn.core`, then hands the work to a strategy: the compiled kernels of
:mod:`colnn.kernels` (the default) or the tutorial's im2col path, kept here as
the reference. Forward and backward of each op live side by side.
"""

from .conv import conv2d
from .im2col import col2im, fold, im2col, unfold
from .pooling import avg_pool2d, max_pool2d

__all__ = ["im2col", "col2im", "unfold", "fold", "max_pool2d", "avg_pool2d", "conv2d"]
