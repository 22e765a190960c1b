"""Max unpooling layers, as ``torch.nn.MaxUnpool1d/2d/3d``: ``forward(x, indices, output_size=None)``.

They take the indices of a max pool, so they do not fit :class:`colnn.nn.network.Network`'s
chain of one-input layers (nor its files); use them in code of your own, e.g. a SegNet decoder.
The constructor checks the window (:class:`~colnn.ops.pooling.UnpoolArgs`); a
Dask input goes to the function's lazy path, and ``backward`` then refuses.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..core.checks import check_grad_shape, from_batched
from ..core.namespace import is_dask_array
from ..core.spatial import check_spatial_input
from ..core.window import IntTuple
from ..ops.pooling import UnpoolArgs
from ..ops.pooling.unpool import check_unpool_indices, max_unpool, max_unpool_backward, max_unpool_forward
from .base import LAZY, Layer
from .cpu_views import backward_on_views, forward_on_views

__all__ = ["MaxUnpool1d", "MaxUnpool2d", "MaxUnpool3d"]


class _MaxUnpoolNd(Layer):
    ndim = 2
    fresh_gradient = True

    def __init__(self, kernel_size: IntTuple, stride: IntTuple | None = None, padding: IntTuple = 0) -> None:
        self.args = UnpoolArgs.check(self.ndim, kernel_size, stride, padding)

    kernel_size = property(lambda self: self.args.kernel_size)
    stride = property(lambda self: self.args.stride)
    padding = property(lambda self: self.args.padding)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding})"

    @forward_on_views
    def forward(self, x: Any, indices: Any = None, output_size: Any = None) -> np.ndarray:
        if indices is None:
            raise TypeError(f"{type(self).__name__}.forward needs the max pool's indices, got None")
        if is_dask_array(x) or is_dask_array(indices):
            self._keep(LAZY)
            return max_unpool(x, indices, self.args, output_size)
        batched, unbatched = check_spatial_input(x, "x", self.ndim)
        out_size = self.args.out_size(batched.shape[2:], output_size)
        # The range is checked by the scatter (max_unpool_forward), not by a pass of its own.
        index = check_unpool_indices(indices, batched, math.prod(out_size), unbatched, check_range=False, cast=True)
        out = max_unpool_forward(batched, index, out_size)
        self._keep((index, tuple(out.shape), unbatched))
        return from_batched(out, unbatched)

    @backward_on_views
    def backward(self, dout: Any) -> np.ndarray:
        index, out_shape, unbatched = self._saved()
        # A gradient is never an integer, even after unpooling an integer array: check_grad_shape
        # gives dout's dtype if floating, else float64.
        grad = check_grad_shape(dout, out_shape[1:] if unbatched else out_shape, np.dtype(np.int64), index)
        grad_input = max_unpool_backward(grad[None, ...] if unbatched else grad, index)
        return from_batched(grad_input, unbatched)


class MaxUnpool1d(_MaxUnpoolNd):
    """As ``torch.nn.MaxUnpool1d``; see :func:`colnn.max_unpool1d`."""

    ndim = 1


class MaxUnpool2d(_MaxUnpoolNd):
    """As ``torch.nn.MaxUnpool2d``; see :func:`colnn.max_unpool2d`."""

    ndim = 2


class MaxUnpool3d(_MaxUnpoolNd):
    """As ``torch.nn.MaxUnpool3d``; see :func:`colnn.max_unpool3d`."""

    ndim = 3
