"""Pooling layers in 1, 2 and 3 dimensions, as ``torch.nn``'s: max, average and adaptive.

As in ``torch.nn.modules.pooling``, a base class per family holds the
arguments (normalized once by :mod:`colnn.core.window`) and each dimension is
a few lines. ``forward``/``backward`` follow the book: forward keeps what
backward needs; ``backward(dout)`` returns ``dx`` of the input's shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.checks import check_rng
from ..core.window import IntTuple, as_tuple
from ..ops.adaptive import (adaptive_avg_backward, adaptive_avg_forward, adaptive_max_backward,
                            adaptive_max_forward, adaptive_output_size)
from ..ops.fractional import (fractional_max_backward, fractional_max_forward, fractional_output_size,
                              fractional_samples)
from ..ops.lp_pool import check_norm_type, lp_pool_backward, lp_pool_forward
from ..ops.pooling import check_divisor, pool_window
from ..ops.pooling_nd import avg_pool_nd_backward, avg_pool_nd_forward, max_pool_nd_backward, max_pool_nd_forward
from .layers import _Saved
from .spatial import SpatialLayer

__all__ = [
    "MaxPool1d", "MaxPool3d", "AvgPool1d", "AvgPool3d",
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d",
    "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d",
    "LPPool1d", "LPPool2d", "LPPool3d", "FractionalMaxPool2d", "FractionalMaxPool3d",
]


class _MaxPoolNd(SpatialLayer):
    """``kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False``; integer input allowed."""

    floating = False
    _config_names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")

    def __init__(self, kernel_size: IntTuple, stride: IntTuple | None = None, padding: IntTuple = 0,
                 dilation: IntTuple = 1, ceil_mode: bool = False, *, strategy: str | None = None) -> None:
        self.kernel_size = as_tuple(kernel_size, "kernel_size", self.ndim, minimum=1)
        self.stride = self.kernel_size if stride is None else as_tuple(stride, "stride", self.ndim, minimum=1)
        self.padding = as_tuple(padding, "padding", self.ndim, minimum=0)
        self.dilation = as_tuple(dilation, "dilation", self.ndim, minimum=1)
        self.ceil_mode = bool(ceil_mode)
        self.strategy = strategy

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any, Any]:
        window = pool_window(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)
        out, window_offset = max_pool_nd_forward(x, window, self.strategy)
        return out, window, window_offset

    def _backward(self, grad: np.ndarray, saved: _Saved) -> np.ndarray:
        return max_pool_nd_backward(grad, saved.state, saved.input_shape, saved.window, self.strategy)

    @property
    def indices(self) -> np.ndarray:
        """int64 flat indices of the maxima chosen by the last forward (``return_indices``)."""
        saved = self._saved()
        flat = saved.window.flat_indices(saved.state)
        return flat[0, ...] if saved.unbatched else flat


class _AvgPoolNd(SpatialLayer):
    """``kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True``."""

    _config_names = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")

    def __init__(self, kernel_size: IntTuple, stride: IntTuple | None = None, padding: IntTuple = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True, *, strategy: str | None = None) -> None:
        self.kernel_size = as_tuple(kernel_size, "kernel_size", self.ndim, minimum=1)
        self.stride = self.kernel_size if stride is None else as_tuple(stride, "stride", self.ndim, minimum=1)
        self.padding = as_tuple(padding, "padding", self.ndim, minimum=0)
        self.ceil_mode = bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        self.divisor_override: int | None = None
        self.strategy = strategy

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any, Any]:
        window = pool_window(x, self.kernel_size, self.stride, self.padding, 1, self.ceil_mode)
        divisor = window.avg_divisor(self.count_include_pad, self.divisor_override)
        return avg_pool_nd_forward(x, window, divisor, self.strategy), window, divisor

    def _backward(self, grad: np.ndarray, saved: _Saved) -> np.ndarray:
        return avg_pool_nd_backward(grad, saved.input_shape, saved.window, saved.state, self.strategy)


class MaxPool1d(_MaxPoolNd):
    """1-D max pooling layer, as ``torch.nn.MaxPool1d``; see :func:`colnn.max_pool1d`."""

    ndim = 1


class MaxPool3d(_MaxPoolNd):
    """3-D max pooling layer, as ``torch.nn.MaxPool3d``; see :func:`colnn.max_pool3d`."""

    ndim = 3


class AvgPool1d(_AvgPoolNd):
    """1-D average pooling layer, as ``torch.nn.AvgPool1d``; see :func:`colnn.avg_pool1d`."""

    ndim = 1


class AvgPool3d(_AvgPoolNd):
    """3-D average pooling layer, as ``torch.nn.AvgPool3d``; ``divisor_override`` as in :func:`colnn.avg_pool3d`."""

    ndim = 3
    _config_names = _AvgPoolNd._config_names + ("divisor_override",)

    def __init__(self, kernel_size: IntTuple, stride: IntTuple | None = None, padding: IntTuple = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True, divisor_override: int | None = None,
                 *, strategy: str | None = None) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad, strategy=strategy)
        self.divisor_override = check_divisor(divisor_override)


class _AdaptivePoolNd(SpatialLayer):
    """``output_size``: an int or a tuple of ints and None (None keeps that axis)."""

    _config_names = ("output_size",)

    def __init__(self, output_size: Any) -> None:
        adaptive_output_size(output_size, (1,) * self.ndim)  # checks now, not at the first forward
        self.output_size = tuple(output_size) if isinstance(output_size, (tuple, list)) else output_size

    def _sizes(self, x: np.ndarray) -> tuple[int, ...]:
        return adaptive_output_size(self.output_size, x.shape[2:])


class _AdaptiveAvgPoolNd(_AdaptivePoolNd):
    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any, Any]:
        return adaptive_avg_forward(x, self._sizes(x)), None, None

    def _backward(self, grad: np.ndarray, saved: _Saved) -> np.ndarray:
        return adaptive_avg_backward(grad, saved.input_shape)


class _AdaptiveMaxPoolNd(_AdaptivePoolNd):
    floating = False

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any, Any]:
        out, indices = adaptive_max_forward(x, self._sizes(x))
        return out, None, indices

    def _backward(self, grad: np.ndarray, saved: _Saved) -> np.ndarray:
        return adaptive_max_backward(grad, saved.state, saved.input_shape)

    @property
    def indices(self) -> np.ndarray:
        """int64 flat indices of the maxima chosen by the last forward."""
        saved = self._saved()
        return saved.state[0, ...] if saved.unbatched else saved.state


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """As ``torch.nn.AdaptiveAvgPool1d``; see :func:`colnn.adaptive_avg_pool1d`."""

    ndim = 1


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """As ``torch.nn.AdaptiveAvgPool2d``; see :func:`colnn.adaptive_avg_pool2d`."""

    ndim = 2


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    """As ``torch.nn.AdaptiveAvgPool3d``; see :func:`colnn.adaptive_avg_pool3d`."""

    ndim = 3


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    """As ``torch.nn.AdaptiveMaxPool1d``; see :func:`colnn.adaptive_max_pool1d`."""

    ndim = 1


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """As ``torch.nn.AdaptiveMaxPool2d``; see :func:`colnn.adaptive_max_pool2d`."""

    ndim = 2


class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    """As ``torch.nn.AdaptiveMaxPool3d``; see :func:`colnn.adaptive_max_pool3d`."""

    ndim = 3


class _LPPoolNd(SpatialLayer):
    """``norm_type, kernel_size, stride=None, ceil_mode=False``: PyTorch's power-average pooling."""

    _config_names = ("norm_type", "kernel_size", "stride", "ceil_mode")

    def __init__(self, norm_type: float, kernel_size: IntTuple, stride: IntTuple | None = None,
                 ceil_mode: bool = False, *, strategy: str | None = None) -> None:
        self.norm_type = check_norm_type(norm_type)
        self.kernel_size = as_tuple(kernel_size, "kernel_size", self.ndim, minimum=1)
        self.stride = self.kernel_size if stride is None else as_tuple(stride, "stride", self.ndim, minimum=1)
        self.ceil_mode = bool(ceil_mode)
        self.strategy = strategy

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any, Any]:
        window = pool_window(x, self.kernel_size, self.stride, 0, 1, self.ceil_mode)
        out, state = lp_pool_forward(x, self.norm_type, window, self.strategy)
        return out, window, state

    def _backward(self, grad: np.ndarray, saved: _Saved) -> np.ndarray:
        return lp_pool_backward(grad, self.norm_type, saved.window, saved.state, self.strategy)


class LPPool1d(_LPPoolNd):
    """As ``torch.nn.LPPool1d``; see :func:`colnn.lp_pool1d`."""

    ndim = 1


class LPPool2d(_LPPoolNd):
    """As ``torch.nn.LPPool2d``; see :func:`colnn.lp_pool2d`."""

    ndim = 2


class LPPool3d(_LPPoolNd):
    """As ``torch.nn.LPPool3d``; see :func:`colnn.lp_pool3d`."""

    ndim = 3


class _FractionalMaxPoolNd(SpatialLayer):
    """``kernel_size, output_size=None, output_ratio=None, *, rng=None``; ``forward(x, random_samples=None)``.

    Without samples each forward draws fresh ones from ``rng`` (as in training).
    """

    floating = False
    _config_names = ("kernel_size", "output_size", "output_ratio")

    def __init__(self, kernel_size: IntTuple, output_size: Any = None, output_ratio: Any = None, *,
                 rng: np.random.Generator | None = None) -> None:
        self.kernel_size = as_tuple(kernel_size, "kernel_size", self.ndim, minimum=1)
        fractional_output_size((1 << 62,) * self.ndim, kernel_size, output_size, output_ratio)  # checks now
        self.output_size = output_size
        self.output_ratio = output_ratio
        self.rng = check_rng(rng)
        self._samples: Any = None

    def forward(self, x: Any, random_samples: Any = None) -> np.ndarray:
        self._samples = random_samples
        try:
            return super().forward(x)
        finally:
            self._samples = None

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any, Any]:
        kernel, out_size = fractional_output_size(x.shape[2:], self.kernel_size, self.output_size, self.output_ratio)
        samples = fractional_samples(self._samples, x, self.ndim, np.ndim(self._samples) == 2, self.rng)
        out, indices = fractional_max_forward(x, kernel, out_size, samples)
        return out, None, indices

    def _backward(self, grad: np.ndarray, saved: _Saved) -> np.ndarray:
        return fractional_max_backward(grad, saved.state, saved.input_shape)

    @property
    def indices(self) -> np.ndarray:
        """int64 flat indices of the maxima chosen by the last forward."""
        saved = self._saved()
        return saved.state[0, ...] if saved.unbatched else saved.state


class FractionalMaxPool2d(_FractionalMaxPoolNd):
    """As ``torch.nn.FractionalMaxPool2d``; see :func:`colnn.fractional_max_pool2d`."""

    ndim = 2


class FractionalMaxPool3d(_FractionalMaxPoolNd):
    """As ``torch.nn.FractionalMaxPool3d``; see :func:`colnn.fractional_max_pool3d`."""

    ndim = 3
