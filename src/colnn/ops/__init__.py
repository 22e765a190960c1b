"""The operations: im2col/col2im, unfold/fold, pooling and convolution, forward and backward.

Each public function checks its arguments once, through its family's arguments
object, and the input's shape and dtype (:mod:`colnn.core`), then runs where
:mod:`.strategy` says: the compiled kernels of :mod:`colnn.kernels` (the
default), the tutorial's im2col path on the Array API standard
(:mod:`.reference`; also every other library's arrays), or, for a Dask array,
the lazy path of :mod:`.dask`. Forward and backward of each op live side by side.

- :mod:`.strategy`: the one place that picks the path;
- :mod:`.unfold`: im2col/col2im (the book's layout), unfold/fold (PyTorch's, N-d);
- :mod:`.pooling`: max, average, LP, adaptive, fractional pooling and unpooling;
- :mod:`.conv`: convolution and transposed convolution;
- :mod:`.reference`, :mod:`.xp`, :mod:`.flat_index`: the Array API path and its plumbing;
- :mod:`.dask`: the lazy path.
"""

from typing import TYPE_CHECKING

from ..core.lazy import lazy_names

if TYPE_CHECKING:  # the names as a type checker and a reader see them; at run time __getattr__ imports them
    from .conv import conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d, conv_transpose3d
    from .pooling import (
        adaptive_avg_pool1d,
        adaptive_avg_pool2d,
        adaptive_avg_pool3d,
        adaptive_max_pool1d,
        adaptive_max_pool2d,
        adaptive_max_pool3d,
        avg_pool1d,
        avg_pool2d,
        avg_pool3d,
        fractional_max_pool2d,
        fractional_max_pool3d,
        lp_pool1d,
        lp_pool2d,
        lp_pool3d,
        max_pool1d,
        max_pool2d,
        max_pool3d,
        max_unpool1d,
        max_unpool2d,
        max_unpool3d,
    )
    from .strategy import available_strategies
    from .unfold import col2im, fold, im2col, unfold

__all__ = [
    "im2col", "col2im", "unfold", "fold",
    "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "lp_pool1d", "lp_pool2d", "lp_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "fractional_max_pool2d", "fractional_max_pool3d", "max_unpool1d", "max_unpool2d", "max_unpool3d",
    "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "available_strategies",
]

# Where each public name lives, imported on its first use (PEP 562): a layer that needs the convolution loads
# ``.conv`` and what it stands on, not the pooling family, ``.unfold`` or the other's kernels.
_HOMES = {name: f".{module}" for module, names in {
    "conv": ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"],
    "pooling": ["max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
                "lp_pool1d", "lp_pool2d", "lp_pool3d",
                "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
                "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
                "fractional_max_pool2d", "fractional_max_pool3d", "max_unpool1d", "max_unpool2d", "max_unpool3d"],
    "strategy": ["available_strategies"],
    "unfold": ["im2col", "col2im", "unfold", "fold"],
}.items() for name in names}
# The subpackages and modules, reachable as attributes after ``import colnn.ops`` (``colnn.ops.strategy``), as
# when this package imported them; ``dask`` imports Dask, so only on first access, as ever. (``unfold`` is the
# function, as before: see lazy_names.)
_SUBMODULES = ("conv", "dask", "flat_index", "pooling", "reference", "strategy", "xp")

__getattr__, __dir__ = lazy_names(__name__, _HOMES, _SUBMODULES)
