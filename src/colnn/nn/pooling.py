"""Pooling layers in 1, 2 and 3 dimensions, as ``torch.nn``'s: max, average, LP, adaptive and fractional;
and the book's ``Pooling``.

As in ``torch.nn.modules.pooling``, a base class per family holds the checked
arguments (the family's object of :mod:`colnn.ops.pooling._base`, built once in
the constructor, which therefore refuses what PyTorch's constructor refuses,
with the functions' messages) and each dimension is a few lines.
``forward``/``backward`` follow the book: forward keeps what backward needs;
``backward(dout)`` returns ``dx`` of the input's shape. :meth:`infer` (a
network's predict) keeps nothing, and max pooling then skips its offsets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..core.checks import check_rng
from ..core.namespace import is_dask_array
from ..core.stand_ins import lazy_module
from ..core.window import IntTuple
from ..ops.pooling._base import AdaptiveArgs, AvgPoolArgs, FractionalArgs, LPPoolArgs, MaxPoolArgs
from ..ops.pooling.max import max_pool_backward, max_pool_forward
from ..ops.strategy import check_strategy
from .base import LAZY, Saved, WindowLayer
from .cpu_views import as_caller_array, forward_on_views

if TYPE_CHECKING:
    from ..ops.pooling import adaptive, avg, fractional, lp
else:
    # The other families' ops are imported when a layer of theirs first runs: the book's networks (max pooling
    # only) do without their modules and kernels' wrappers.
    adaptive, avg, fractional, lp = (lazy_module(f"colnn.ops.pooling.{name}", globals(), name)
                                     for name in ("adaptive", "avg", "fractional", "lp"))

__all__ = [
    "MaxPool1d", "MaxPool2d", "MaxPool3d", "Pooling", "AvgPool1d", "AvgPool2d", "AvgPool3d",
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d",
    "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d",
    "LPPool1d", "LPPool2d", "LPPool3d", "FractionalMaxPool2d", "FractionalMaxPool3d",
]


class _WindowPoolNd(WindowLayer):
    """The window pools' arguments, read from their checked object."""

    args: Any
    kernel_size = property(lambda self: self.args.kernel_size)
    stride = property(lambda self: self.args.stride)
    padding = property(lambda self: self.args.padding)
    dilation = property(lambda self: self.args.dilation)
    ceil_mode = property(lambda self: self.args.ceil_mode)


class _MaxPoolNd(_WindowPoolNd):
    """``kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False``; integer input allowed."""

    floating = False
    _config_names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")

    def __init__(self, kernel_size: IntTuple, stride: IntTuple | None = None, padding: IntTuple = 0,
                 dilation: IntTuple = 1, ceil_mode: bool = False, *, strategy: str | None = None) -> None:
        self.args = MaxPoolArgs.check(self.ndim, kernel_size, stride, padding, dilation, ceil_mode)
        self.strategy = check_strategy(strategy)

    def _forward(self, x: Any) -> tuple[Any, Any, Any]:
        window = self.args.window(x.shape[2:])
        out, window_offset = max_pool_forward(x, window, self.strategy)
        return out, window, window_offset

    def _infer(self, x: Any) -> Any:
        return max_pool_forward(x, self.args.window(x.shape[2:]), self.strategy, keep_offset=False)[0]

    def _backward(self, grad: Any, saved: Saved) -> Any:
        return max_pool_backward(grad, saved.state, saved.input_shape, saved.window, self.strategy)

    @property
    def indices(self) -> np.ndarray:
        """int64 flat indices of the maxima chosen by the last forward (``return_indices``)."""
        saved = self._saved()
        flat = saved.window.flat_indices(saved.state)
        return as_caller_array(self, flat[0, ...] if saved.unbatched else flat)


class MaxPool1d(_MaxPoolNd):
    """1-D max pooling layer, as ``torch.nn.MaxPool1d``; see :func:`colnn.max_pool1d`."""

    ndim = 1


class MaxPool2d(_MaxPoolNd):
    """2-D max pooling layer, as ``torch.nn.MaxPool2d``; see :func:`colnn.max_pool2d`.

    ``forward``: ``(N, C, H, W)`` or ``(C, H, W)`` -> ``(N, C, out_h, out_w)``;
    ``backward``: ``dout`` of the output's shape -> ``dx`` of the input's shape.
    """

    ndim = 2


class MaxPool3d(_MaxPoolNd):
    """3-D max pooling layer, as ``torch.nn.MaxPool3d``; see :func:`colnn.max_pool3d`."""

    ndim = 3


# The book's names for the window's sizes, in its messages (chapter 7.4: Pooling(pool_h, pool_w, stride, pad)).
BOOK_POOL_NAMES = ("(pool_h, pool_w)", "stride", "pad", "dilation")


class Pooling(MaxPool2d):
    """Drop-in replacement for the book's max-pooling layer ``Pooling(pool_h, pool_w, stride=1, pad=0)``.

    Same constructor and results where the book is right; unlike the book, padded
    cells are ``-inf`` (never chosen) and ``pad`` enters the output size.
    Saved in a network file as the :class:`MaxPool2d` it is.
    """

    def __init__(self, pool_h: int, pool_w: int, stride: IntTuple = 1, pad: IntTuple = 0) -> None:
        # The messages name the book's arguments: "(pool_h, pool_w) must be >= 1, got (2, 0)".
        self.args = MaxPoolArgs.check(2, (pool_h, pool_w), stride, pad, names=BOOK_POOL_NAMES)
        self.strategy = None
        self.pool_h, self.pool_w = self.kernel_size

    pad = property(lambda self: self.padding)

    def __repr__(self) -> str:
        return f"Pooling(pool_h={self.pool_h}, pool_w={self.pool_w}, stride={self.stride}, pad={self.pad})"


class _AvgPoolNd(_WindowPoolNd):
    """``kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True[, divisor_override]``.

    ``dilation`` (keyword only) is ONNX ``AveragePool``'s (opset 19); PyTorch's layers have none.
    """

    _config_names: tuple[str, ...] = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "dilation")
    _config_defaults: ClassVar[dict[str, Any]] = {"dilation": 1, "divisor_override": None}

    def __init__(self, kernel_size: IntTuple, stride: IntTuple | None = None, padding: IntTuple = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True, divisor_override: int | None = None,
                 *, dilation: IntTuple = 1, strategy: str | None = None) -> None:
        self.args = AvgPoolArgs.check(self.ndim, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                      divisor_override, dilation)
        self.strategy = check_strategy(strategy)

    count_include_pad = property(lambda self: self.args.count_include_pad)
    divisor_override = property(lambda self: self.args.divisor_override)

    def _forward(self, x: Any) -> tuple[Any, Any, Any]:
        window = self.args.window(x.shape[2:])
        divisor = self.args.divisor(window)
        return avg.avg_pool_forward(x, window, divisor, self.strategy), window, divisor

    def _backward(self, grad: Any, saved: Saved) -> Any:
        return avg.avg_pool_backward(grad, saved.input_shape, saved.window, saved.state, self.strategy)


class AvgPool1d(_AvgPoolNd):
    """1-D average pooling layer, as ``torch.nn.AvgPool1d``; see :func:`colnn.avg_pool1d`."""

    ndim = 1

    def __init__(self, kernel_size: IntTuple, stride: IntTuple | None = None, padding: IntTuple = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True, *, dilation: IntTuple = 1,
                 strategy: str | None = None) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad, dilation=dilation,
                         strategy=strategy)


class AvgPool2d(_AvgPoolNd):
    """2-D average pooling layer, as ``torch.nn.AvgPool2d``; see :func:`colnn.avg_pool2d`."""

    ndim = 2
    _config_names = (*_AvgPoolNd._config_names, "divisor_override")


class AvgPool3d(_AvgPoolNd):
    """3-D average pooling layer, as ``torch.nn.AvgPool3d``; ``divisor_override`` as in :func:`colnn.avg_pool3d`."""

    ndim = 3
    _config_names = (*_AvgPoolNd._config_names, "divisor_override")


class _LPPoolNd(_WindowPoolNd):
    """``norm_type, kernel_size, stride=None, ceil_mode=False``: PyTorch's power-average pooling.

    ``dilation`` (keyword only) is ONNX ``LpPool``'s (opset 18); PyTorch's layers have none.
    """

    _config_names = ("norm_type", "kernel_size", "stride", "ceil_mode", "dilation")
    _config_defaults: ClassVar[dict[str, Any]] = {"dilation": 1}

    def __init__(self, norm_type: float, kernel_size: IntTuple, stride: IntTuple | None = None,
                 ceil_mode: bool = False, *, dilation: IntTuple = 1, strategy: str | None = None) -> None:
        self.args = LPPoolArgs.check(self.ndim, norm_type, kernel_size, stride, ceil_mode, dilation)
        self.strategy = check_strategy(strategy)

    norm_type = property(lambda self: self.args.norm_type)

    def _forward(self, x: Any) -> tuple[Any, Any, Any]:
        window = self.args.window(x.shape[2:])
        out, state = lp.lp_pool_forward(x, self.norm_type, window, self.strategy)
        return out, window, state

    def _backward(self, grad: Any, saved: Saved) -> Any:
        return lp.lp_pool_backward(grad, self.norm_type, saved.window, saved.state, self.strategy)


class LPPool1d(_LPPoolNd):
    """As ``torch.nn.LPPool1d``; see :func:`colnn.lp_pool1d`."""

    ndim = 1


class LPPool2d(_LPPoolNd):
    """As ``torch.nn.LPPool2d``; see :func:`colnn.lp_pool2d`."""

    ndim = 2


class LPPool3d(_LPPoolNd):
    """As ``torch.nn.LPPool3d``; see :func:`colnn.lp_pool3d`."""

    ndim = 3


class _AdaptivePoolNd(WindowLayer):
    """``output_size``: an int or a tuple of ints and None (None keeps that axis)."""

    _config_names = ("output_size",)

    def __init__(self, output_size: Any) -> None:
        self.args = AdaptiveArgs.check(self.ndim, output_size)
        # As given (an int stays an int), for repr and the saved configuration.
        self.output_size = tuple(output_size) if isinstance(output_size, (tuple, list)) else output_size


class _AdaptiveAvgPoolNd(_AdaptivePoolNd):
    def _forward(self, x: Any) -> tuple[Any, Any, Any]:
        return adaptive.adaptive_avg_forward(x, self.args.out_size(x.shape[2:])), None, None

    def _backward(self, grad: Any, saved: Saved) -> Any:
        return adaptive.adaptive_avg_backward(grad, saved.input_shape)


class _AdaptiveMaxPoolNd(_AdaptivePoolNd):
    floating = False

    def _forward(self, x: Any) -> tuple[Any, Any, Any]:
        out, indices = adaptive.adaptive_max_forward(x, self.args.out_size(x.shape[2:]))
        return out, None, indices

    def _backward(self, grad: Any, saved: Saved) -> Any:
        return adaptive.adaptive_max_backward(grad, saved.state, saved.input_shape)

    @property
    def indices(self) -> np.ndarray:
        """int64 flat indices of the maxima chosen by the last forward."""
        saved = self._saved()
        return as_caller_array(self, saved.state[0, ...] if saved.unbatched else saved.state)


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


class _FractionalMaxPoolNd(WindowLayer):
    """``kernel_size, output_size=None, output_ratio=None, *, rng=None``; ``forward(x, random_samples=None)``.

    Without samples each forward draws fresh ones from ``rng`` (as in training).
    A Dask batch goes to the function's lazy path (:func:`colnn.fractional_max_pool2d`):
    its samples are drawn first, and ``backward`` then refuses.
    """

    floating = False
    infers_statelessly = False  # each forward draws from the layer's generator
    _config_names = ("kernel_size", "output_size", "output_ratio")

    def __init__(self, kernel_size: IntTuple, output_size: Any = None, output_ratio: Any = None, *,
                 rng: np.random.Generator | None = None) -> None:
        self.args = FractionalArgs.check(self.ndim, kernel_size, output_size, output_ratio)
        self.output_size = output_size
        self.output_ratio = output_ratio
        self.rng = check_rng(rng)
        self._samples: Any = None

    kernel_size = property(lambda self: self.args.kernel_size)

    @forward_on_views
    def forward(self, x: Any, random_samples: Any = None) -> np.ndarray:
        if is_dask_array(x):
            self._keep(LAZY)
            return fractional.fractional_max_pool(x, self.args, random_samples, self.rng)
        self._samples = random_samples
        try:
            return super().forward(x)
        finally:
            self._samples = None

    def infer(self, x: Any) -> Any:
        return self.forward(x)

    def _forward(self, x: Any) -> tuple[Any, Any, Any]:
        out_size = self.args.out_size(x.shape[2:])
        samples = fractional.fractional_samples(self._samples, x, self.ndim, np.ndim(self._samples) == 2, self.rng)
        out, indices = fractional.fractional_max_forward(x, self.args.kernel_size, out_size, samples)
        return out, None, indices

    def _backward(self, grad: Any, saved: Saved) -> Any:
        return fractional.fractional_max_backward(grad, saved.state, saved.input_shape)

    @property
    def indices(self) -> np.ndarray:
        """int64 flat indices of the maxima chosen by the last forward."""
        saved = self._saved()
        return as_caller_array(self, saved.state[0, ...] if saved.unbatched else saved.state)


class FractionalMaxPool2d(_FractionalMaxPoolNd):
    """As ``torch.nn.FractionalMaxPool2d``; see :func:`colnn.fractional_max_pool2d`."""

    ndim = 2


class FractionalMaxPool3d(_FractionalMaxPoolNd):
    """As ``torch.nn.FractionalMaxPool3d``; see :func:`colnn.fractional_max_pool3d`."""

    ndim = 3
