"""The arguments of every pooling op, checked once: one object per family, shared by function, layer and Dask path.

Each object holds an op's hyper-parameters normalized (tuples of ints, bools)
and is built by its ``check`` class method, which raises the family's one set
of errors: TypeError for a non-int size or a flag that is not a bool (``"no"``
is not False), ValueError naming the argument for a value out of range or a
tuple of the wrong length. A public function builds it from its arguments, a
layer in its constructor (so a layer refuses at construction what depends on
its hyper-parameters alone), and both hand it to the N-d computation and to the
Dask path; what depends on the input too (an empty output) is checked against
the input by ``window(in_size)`` or ``out_size(in_size)``.

The families: :class:`MaxPoolArgs`, :class:`AvgPoolArgs`, :class:`LPPoolArgs`
(window pools), :class:`AdaptiveArgs`, :class:`FractionalArgs` (pools by output
size) and :class:`UnpoolArgs`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...core.checks import check_flag, describe
from ...core.window import INDEX_MAX, WINDOW_NAMES, IntTuple, Window, WindowArgs, as_tuple

__all__ = [
    "MaxPoolArgs",
    "AvgPoolArgs",
    "LPPoolArgs",
    "AdaptiveArgs",
    "FractionalArgs",
    "UnpoolArgs",
    "check_divisor",
    "check_norm_type",
    "pool_window",
]


def check_divisor(divisor_override: Any) -> int | None:
    """``divisor_override`` as an int (None stays None); a non-int is a TypeError, 0 a ValueError."""
    if divisor_override is None:
        return None
    if isinstance(divisor_override, (bool, np.bool_)) or not isinstance(divisor_override, numbers.Integral):
        raise TypeError(f"divisor_override must be an int or None, got {describe(divisor_override)}")
    if divisor_override == 0:
        raise ValueError(f"divisor_override must be non-zero, got {describe(divisor_override)}")
    return int(divisor_override)


def check_norm_type(norm_type: Any) -> float:
    """``norm_type`` as a float; a non-number is a TypeError, 0 and NaN a ValueError (±inf are allowed)."""
    if isinstance(norm_type, (bool, np.bool_)) or not isinstance(norm_type, numbers.Real):
        raise TypeError(f"norm_type must be a number, got {describe(norm_type)}")
    if math.isnan(norm_type):
        raise ValueError(f"norm_type must be a number, got {describe(norm_type)}")
    if norm_type == 0:
        raise ValueError(f"norm_type must be non-zero, got {describe(norm_type)}")
    return float(norm_type)


@dataclass(frozen=True)
class _WindowPoolArgs:
    """A window pool: its :class:`~colnn.core.window.WindowArgs` and the names a reader knows them by."""

    geometry: WindowArgs

    @property
    def ndim(self) -> int:
        return self.geometry.ndim

    kernel_size = property(lambda self: self.geometry.kernel_size)
    stride = property(lambda self: self.geometry.stride)
    padding = property(lambda self: self.geometry.padding)
    dilation = property(lambda self: self.geometry.dilation)
    ceil_mode = property(lambda self: self.geometry.ceil_mode)

    def window(self, in_size: Sequence[int]) -> Window:
        """The window over an input of spatial size ``in_size``; ValueError if the output would be empty."""
        return self.geometry.over(in_size)


@dataclass(frozen=True)
class MaxPoolArgs(_WindowPoolArgs):
    """``max_pool1d/2d/3d`` and ``MaxPool1d/2d/3d``: the window, and whether indices are returned."""

    return_indices: bool = False

    @classmethod
    def check(cls, ndim: int, kernel_size: IntTuple, stride: IntTuple | None = None, padding: IntTuple = 0,
              dilation: IntTuple = 1, ceil_mode: Any = False, return_indices: Any = False, *,
              names: tuple[str, str, str, str] = WINDOW_NAMES) -> MaxPoolArgs:
        """PyTorch's rules: sizes >= 1 (padding >= 0, at most half the kernel); flags True or False.

        ``names``: what the messages call kernel, stride, padding and dilation (the book's
        ``Pooling`` says ``(pool_h, pool_w)`` and ``pad``).
        """
        geometry = WindowArgs.check(ndim, kernel_size, stride, padding, dilation, ceil_mode=ceil_mode, pooling=True,
                                    names=names)
        return cls(geometry, check_flag(return_indices, "return_indices"))


@dataclass(frozen=True)
class AvgPoolArgs(_WindowPoolArgs):
    """``avg_pool1d/2d/3d`` and ``AvgPool1d/2d/3d``: the window, whether padding counts, the divisor."""

    count_include_pad: bool = True
    divisor_override: int | None = None

    @classmethod
    def check(cls, ndim: int, kernel_size: IntTuple, stride: IntTuple | None = None, padding: IntTuple = 0,
              ceil_mode: Any = False, count_include_pad: Any = True, divisor_override: Any = None,
              dilation: IntTuple = 1) -> AvgPoolArgs:
        """PyTorch's rules, and ``dilation`` >= 1 (ONNX's; PyTorch has none); ``divisor_override`` non-zero."""
        geometry = WindowArgs.check(ndim, kernel_size, stride, padding, dilation, ceil_mode=ceil_mode, pooling=True)
        return cls(geometry, check_flag(count_include_pad, "count_include_pad"), check_divisor(divisor_override))

    def divisor(self, window: Window) -> np.ndarray:
        """Each window's divisor, ``window.out_size`` (:meth:`colnn.core.window.Window.avg_divisor`)."""
        return window.avg_divisor(self.count_include_pad, self.divisor_override)


@dataclass(frozen=True)
class LPPoolArgs(_WindowPoolArgs):
    """``lp_pool1d/2d/3d`` and ``LPPool1d/2d/3d``: the power ``norm_type`` and the window (no padding)."""

    norm_type: float = 2.0

    @classmethod
    def check(cls, ndim: int, norm_type: Any, kernel_size: IntTuple, stride: IntTuple | None = None,
              ceil_mode: Any = False, dilation: IntTuple = 1) -> LPPoolArgs:
        """``norm_type`` a non-zero number (±inf allowed); window sizes >= 1; ``ceil_mode`` True or False."""
        norm = check_norm_type(norm_type)
        geometry = WindowArgs.check(ndim, kernel_size, stride, 0, dilation, ceil_mode=ceil_mode, pooling=True)
        return cls(geometry, norm)


@dataclass(frozen=True)
class AdaptiveArgs:
    """``adaptive_{avg,max}_pool1d/2d/3d`` and their layers: the output size (None keeps an axis), indices or not."""

    ndim: int
    output_size: tuple[int | None, ...]
    return_indices: bool = False

    @classmethod
    def check(cls, ndim: int, output_size: Any, return_indices: Any = False) -> AdaptiveArgs:
        """``output_size``: an int, or a tuple of ``ndim`` ints >= 1 and None (a 1-tuple is repeated)."""
        items = list(output_size) if isinstance(output_size, (tuple, list)) else [output_size] * ndim
        if len(items) == 1:
            items = items * ndim
        if len(items) != ndim:
            raise ValueError(f"output_size must be an int or a tuple of {ndim}, got {describe(output_size)}")
        for item in items:
            if item is None:
                continue
            if isinstance(item, (bool, np.bool_)) or not isinstance(item, numbers.Integral):
                raise TypeError(f"output_size must hold ints or None, got {describe(output_size)}")
            if not 1 <= int(item) <= INDEX_MAX:
                raise ValueError(f"output_size must be >= 1 (and fit in int64), got {describe(output_size)}")
        sizes = tuple(None if item is None else int(item) for item in items)
        return cls(ndim, sizes, check_flag(return_indices, "return_indices"))

    def out_size(self, in_size: Sequence[int]) -> tuple[int, ...]:
        """The output's spatial size for an input of ``in_size`` (None: that axis's size)."""
        return tuple(int(size) if out is None else out for out, size in zip(self.output_size, in_size))


@dataclass(frozen=True)
class FractionalArgs:
    """``fractional_max_pool2d/3d`` and their layers: the kernel, the output's size or ratio, indices or not."""

    kernel_size: tuple[int, ...]
    output_size: tuple[int, ...] | None
    output_ratio: tuple[float, ...] | None
    return_indices: bool = False

    @property
    def ndim(self) -> int:
        return len(self.kernel_size)

    @classmethod
    def check(cls, ndim: int, kernel_size: IntTuple, output_size: Any = None, output_ratio: Any = None,
              return_indices: Any = False) -> FractionalArgs:
        """Exactly one of ``output_size`` (ints >= 1) and ``output_ratio`` (numbers in (0, 1))."""
        kernel = as_tuple(kernel_size, "kernel_size", ndim, minimum=1)
        if (output_size is None) == (output_ratio is None):
            raise ValueError(f"exactly one of output_size and output_ratio must be given, got output_size="
                             f"{describe(output_size)}, output_ratio={describe(output_ratio)}")
        sizes = ratios = None
        if output_size is not None:
            sizes = as_tuple(output_size, "output_size", ndim, minimum=1)
        else:
            items = tuple(output_ratio) if isinstance(output_ratio, (tuple, list)) else (output_ratio,) * ndim
            if len(items) == 1:
                items = items * ndim
            if len(items) != ndim or not all(isinstance(r, numbers.Real) and not isinstance(r, (bool, np.bool_))
                                             and 0 < float(r) < 1 for r in items):
                raise ValueError(f"output_ratio must be a number or {ndim} numbers in (0, 1), "
                                 f"got {describe(output_ratio)}")
            ratios = tuple(float(r) for r in items)
        return cls(kernel, sizes, ratios, check_flag(return_indices, "return_indices"))

    def out_size(self, in_size: Sequence[int]) -> tuple[int, ...]:
        """The output's spatial size; ValueError if it is empty or its windows do not fit ``in_size``."""
        in_size = tuple(int(size) for size in in_size)
        if self.output_size is not None:
            out = self.output_size
        else:
            assert self.output_ratio is not None  # check() sets one of output_size and output_ratio
            out = tuple(int(size * ratio) for size, ratio in zip(in_size, self.output_ratio))
            if min(out) < 1:
                raise ValueError(f"output_ratio={_one(self.output_ratio)} gives an empty output {out} "
                                 f"for input {in_size}")
        for size, k, o in zip(in_size, self.kernel_size, out):
            if o + k - 1 > size:
                raise ValueError(f"kernel_size={_one(self.kernel_size)} with output {out} does not fit the input "
                                 f"{in_size}: output + kernel_size - 1 must be <= the input along each axis")
        return out


def _one(values: tuple[Any, ...]) -> Any:
    """A tuple of equal values as the one value a user most likely gave."""
    return values[0] if len(set(values)) == 1 else values


@dataclass(frozen=True)
class UnpoolArgs:
    """``max_unpool1d/2d/3d`` and ``MaxUnpool1d/2d/3d``: the window of the max pool being undone."""

    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]

    @property
    def ndim(self) -> int:
        return len(self.kernel_size)

    @classmethod
    def check(cls, ndim: int, kernel_size: IntTuple, stride: IntTuple | None = None,
              padding: IntTuple = 0) -> UnpoolArgs:
        """Sizes >= 1 (``stride=None``: the kernel), padding >= 0."""
        kernel = as_tuple(kernel_size, "kernel_size", ndim, minimum=1)
        strides = kernel if stride is None else as_tuple(stride, "stride", ndim, minimum=1)
        return cls(kernel, strides, as_tuple(padding, "padding", ndim, minimum=0))

    def out_size(self, in_size: Sequence[int], output_size: Any = None) -> tuple[int, ...]:
        """The spatial output size: ``(in-1)*stride - 2*padding + kernel_size``.

        Or ``output_size``, within a stride of that.

        ``output_size`` may be the spatial sizes or the whole shape. ValueError
        naming it outside ``(default - stride, default + stride)``, or for an empty output.
        """
        default = tuple((i - 1) * s + k - 2 * p
                        for i, s, k, p in zip(in_size, self.stride, self.kernel_size, self.padding))
        if output_size is None:
            sizes = default
        else:
            if not isinstance(output_size, (tuple, list)):
                raise TypeError(f"output_size must be a tuple of ints or None, got {describe(output_size)}")
            sizes = tuple(output_size)
            if len(sizes) == self.ndim + 2:
                sizes = sizes[2:]
            sizes = as_tuple(sizes, "output_size", self.ndim, minimum=1)
            for size, base, s in zip(sizes, default, self.stride):
                if not base - s < size < base + s:
                    low = tuple(d - s for d, s in zip(default, self.stride))
                    raise ValueError(f"output_size must lie between {low}"
                                     f" and {tuple(d + s for d, s in zip(default, self.stride))} (exclusive), "
                                     f"got {describe(output_size)}")
        if min(sizes) < 1:
            raise ValueError(f"output would be empty: kernel_size={_one(self.kernel_size)}, "
                             f"stride={_one(self.stride)}, "
                             f"padding={_one(self.padding)} give {sizes}")
        return sizes


def pool_window(x: Any, kernel_size: IntTuple, stride: IntTuple | None = None, padding: IntTuple = 0,
                dilation: IntTuple = 1, ceil_mode: bool = False) -> Window:
    """The checked window of pooling a batched ``(N, C, *spatial)`` array (a shortcut for :class:`MaxPoolArgs`)."""
    return MaxPoolArgs.check(len(x.shape) - 2, kernel_size, stride, padding, dilation, ceil_mode).window(x.shape[2:])
