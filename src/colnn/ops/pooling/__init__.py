"""Pooling, one module per family, each an N-d computation with thin 1-, 2- and 3-d faces.

- :mod:`._base`: the checked arguments of every family (one object each), shared
  by the functions, the layers of :mod:`colnn.nn.pooling` and the Dask path;
- :mod:`.max`, :mod:`.avg`, :mod:`.lp`: window pools (the compiled 2-D kernels,
  the Array API reference, Dask);
- :mod:`.adaptive`, :mod:`.fractional`: pools by output size;
- :mod:`.unpool`: max unpooling, the scatter of max pooling's indices.
"""

from typing import TYPE_CHECKING

from ...core.lazy import lazy_names
from ._base import (
    AdaptiveArgs,
    AvgPoolArgs,
    FractionalArgs,
    LPPoolArgs,
    MaxPoolArgs,
    UnpoolArgs,
    check_divisor,
    check_norm_type,
    pool_window,
)

if TYPE_CHECKING:  # the names as a type checker and a reader see them; at run time __getattr__ imports them
    from .adaptive import (
        adaptive_avg_pool1d,
        adaptive_avg_pool2d,
        adaptive_avg_pool3d,
        adaptive_max_pool1d,
        adaptive_max_pool2d,
        adaptive_max_pool3d,
    )
    from .avg import avg_pool1d, avg_pool2d, avg_pool3d, avg_pool_backward, avg_pool_forward
    from .fractional import fractional_max_pool2d, fractional_max_pool3d
    from .lp import lp_pool1d, lp_pool2d, lp_pool3d
    from .max import max_pool1d, max_pool2d, max_pool3d, max_pool_backward, max_pool_forward
    from .unpool import max_unpool1d, max_unpool2d, max_unpool3d

__all__ = [
    "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "lp_pool1d", "lp_pool2d", "lp_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "fractional_max_pool2d", "fractional_max_pool3d", "max_unpool1d", "max_unpool2d", "max_unpool3d",
    "max_pool_forward", "max_pool_backward", "avg_pool_forward", "avg_pool_backward",
    "MaxPoolArgs", "AvgPoolArgs", "LPPoolArgs", "AdaptiveArgs", "FractionalArgs", "UnpoolArgs",
    "check_divisor", "check_norm_type", "pool_window",
]

# The families' functions, imported on first use (PEP 562): the checked arguments of :mod:`._base` are
# everyone's, but max pooling (the book's networks) needs neither the adaptive, fractional and LP families nor
# unpooling.
_HOMES = {name: f".{module}" for module, names in {
    "adaptive": ["adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
                 "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d"],
    "avg": ["avg_pool1d", "avg_pool2d", "avg_pool3d", "avg_pool_backward", "avg_pool_forward"],
    "fractional": ["fractional_max_pool2d", "fractional_max_pool3d"],
    "lp": ["lp_pool1d", "lp_pool2d", "lp_pool3d"],
    "max": ["max_pool1d", "max_pool2d", "max_pool3d", "max_pool_backward", "max_pool_forward"],
    "unpool": ["max_unpool1d", "max_unpool2d", "max_unpool3d"],
}.items() for name in names}
_SUBMODULES = ("adaptive", "avg", "fractional", "lp", "max", "unpool")

__getattr__, __dir__ = lazy_names(__name__, _HOMES, _SUBMODULES)
