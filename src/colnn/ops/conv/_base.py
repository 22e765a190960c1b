"""The arguments of the convolutions, checked once: one object per family, shared by function, layer and Dask path.

:class:`ConvArgs` (``conv1d/2d/3d``, ``Conv1d/2d/3d``, the book's
``Convolution``) and :class:`ConvTransposeArgs` (``conv_transpose1d/2d/3d`` and
their layers) hold the hyper-parameters normalized, with PyTorch's rules checked
at construction: sizes are ints (TypeError otherwise), stride and dilation >= 1,
padding >= 0 or ``"same"``/``"valid"`` (``"same"`` only at stride 1),
``groups >= 1``, and a transposed convolution's ``output_padding`` smaller than
its stride or its dilation. What depends on the weights (:func:`check_weights`:
channels divisible by ``groups``, the bias's shape) and on the input (an empty
output: ``window``) is checked where those arrive.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from ...core.checks import check_float_array, describe
from ...core.window import IntTuple, Window, WindowArgs, as_tuple

__all__ = ["ConvArgs", "ConvTransposeArgs", "check_groups", "check_weights", "conv_window"]

# How a convolution's window arguments are named in messages: its kernel comes from the weight.
_KERNEL_NAME = "weight's (FH, FW)"


def check_groups(groups: Any) -> int:
    """``groups`` as an int >= 1: TypeError for a non-int, ValueError below 1."""
    if isinstance(groups, (bool, np.bool_)) or not isinstance(groups, numbers.Integral):
        raise TypeError(f"groups must be an int, got {describe(groups)}")
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {int(groups)}")
    return int(groups)


@dataclass(frozen=True)
class ConvArgs:
    """A convolution's hyper-parameters: ``stride``, ``padding`` (a tuple, or ``"same"``), ``dilation``, ``groups``.

    ``padding_name`` is how messages call the padding (the book's ``pad``).
    """

    ndim: int
    stride: tuple[int, ...]
    padding: tuple[int, ...] | str
    dilation: tuple[int, ...]
    groups: int = 1
    padding_name: str = "padding"

    @classmethod
    def check(cls, ndim: int, stride: IntTuple = 1, padding: IntTuple | str = 0, dilation: IntTuple = 1,
              groups: Any = 1, *, padding_name: str = "padding") -> ConvArgs:
        """PyTorch's rules for ``torch.nn.Conv{1,2,3}d``'s arguments; ``"valid"`` is padding 0."""
        strides = as_tuple(stride, "stride", ndim, minimum=1)
        dilations = as_tuple(dilation, "dilation", ndim, minimum=1)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{padding_name} must be an int, a tuple of {ndim}, 'valid' or 'same', "
                                 f"got {describe(padding)}")
            if padding == "same" and set(strides) != {1}:
                raise ValueError(f"{padding_name}='same' requires stride 1, got stride={_one(strides)}")
            pads: tuple[int, ...] | str = padding if padding == "same" else (0,) * ndim
        else:
            pads = as_tuple(padding, padding_name, ndim, minimum=0)
        return cls(ndim, strides, pads, dilations, check_groups(groups), padding_name)

    def window(self, in_size: Sequence[int], kernel_size: Sequence[int]) -> Window:
        """The window of a ``kernel_size`` weight over an input of ``in_size``; ValueError for an empty output."""
        if self.padding == "same":
            return Window.same_padding(in_size, tuple(kernel_size), self.dilation)
        # The arguments are checked already, and a weight's sizes are positive ints: no second check.
        names = (_KERNEL_NAME, "stride", self.padding_name, "dilation")
        padding = cast(tuple[int, ...], self.padding)  # "same" returned above; "valid" was read as 0
        geometry = WindowArgs(tuple(int(k) for k in kernel_size), self.stride, padding, self.dilation,
                              names=names)
        return geometry.over(in_size)


def _one(values: tuple[int, ...]) -> Any:
    return values[0] if len(set(values)) == 1 else values


@dataclass(frozen=True)
class ConvTransposeArgs:
    """A transposed convolution's hyper-parameters.

    ``stride``, ``padding``, ``output_padding``, ``dilation`` and ``groups``.
    """

    ndim: int
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    output_padding: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int = 1

    @classmethod
    def check(cls, ndim: int, stride: IntTuple = 1, padding: IntTuple = 0, output_padding: IntTuple = 0,
              groups: Any = 1, dilation: IntTuple = 1) -> ConvTransposeArgs:
        """PyTorch's rules for ``torch.nn.ConvTranspose{1,2,3}d``: ``output_padding < max(stride, dilation)``."""
        strides = as_tuple(stride, "stride", ndim, minimum=1)
        pads = as_tuple(padding, "padding", ndim, minimum=0)
        extra = as_tuple(output_padding, "output_padding", ndim, minimum=0)
        dilations = as_tuple(dilation, "dilation", ndim, minimum=1)
        if any(e >= max(s, d) for e, s, d in zip(extra, strides, dilations)):
            raise ValueError(f"output_padding must be smaller than stride or dilation, got output_padding="
                             f"{_one(extra)} with stride={_one(strides)}, dilation={_one(dilations)}")
        return cls(ndim, strides, pads, extra, dilations, check_groups(groups))

    def out_size(self, in_size: Sequence[int], kernel_size: Sequence[int]) -> tuple[int, ...]:
        """``(in-1)*stride - 2*padding + dilation*(k-1) + output_padding + 1`` per axis (may be < 1)."""
        return tuple((i - 1) * s - 2 * p + d * (k - 1) + e + 1 for i, s, p, d, k, e in zip(
            in_size, self.stride, self.padding, self.dilation, kernel_size, self.output_padding))

    def window(self, in_size: Sequence[int], kernel_size: Sequence[int]) -> Window:
        """The convolution window over the output whose windows are the input's cells.

        ValueError if the output would be empty (it depends on the input's size:
        a layer checks it at each forward, not at construction).
        """
        in_size, kernel = tuple(int(v) for v in in_size), tuple(int(k) for k in kernel_size)
        out_size = self.out_size(in_size, kernel)
        if min(out_size) < 1:
            raise ValueError(f"output would be empty: input size {_one(in_size)} with kernel {_one(kernel)}, "
                             f"stride={_one(self.stride)}, padding={_one(self.padding)}, "
                             f"dilation={_one(self.dilation)} gives {out_size}")
        geometry = WindowArgs(kernel, self.stride, self.padding, self.dilation,
                              names=("weight's kernel size", "stride", "padding", "dilation"))
        window = geometry.over(out_size)
        # With output_padding >= stride (allowed when < dilation) the output fits extra windows: keep the input's.
        return Window(window.in_size, window.kernel_size, window.stride, window.padding, window.dilation, in_size)


def check_weights(weight: Any, bias: Any, groups: int, ndim: int, in_channels: int | None = None, *,
                  transposed: bool = False, like: Any = None, names: tuple[str, str] = ("weight", "bias"),
                  input_name: str = "input") -> tuple[Any, Any]:
    """A checked weight and bias (or None) of an ``ndim``-d convolution with ``groups`` (checked already).

    The weight is ``(FN, C/groups, *k)``, or transposed ``(C, FN/groups, *k)``;
    the bias ``(FN,)``. Every axis must be non-empty; channels must be divisible
    by ``groups``; with ``in_channels`` (the input's), the weight must take that
    many. ``like`` (the input): the weight must be of its library and device, the
    bias of the weight's. Messages name them ``names`` (the layers' ``W`` and ``b``)
    and the input ``input_name`` (the layers' ``x``).
    """
    weight_name, bias_name = names
    weight = check_float_array(weight, weight_name, ndims=(ndim + 2,), batch_ndims=(), array_api=True, like=like)
    shape = tuple(weight.shape)
    if transposed:
        # (C, FN/groups, *k): the input's channels come first, each group's outputs second.
        if shape[0] % groups != 0:
            raise ValueError(f"{weight_name}'s in_channels ({shape[0]}) must be divisible by groups ({groups})")
        if in_channels is not None and shape[0] != in_channels:
            raise ValueError(f"{weight_name} of shape {shape} expects {shape[0]} input channels, "
                             f"but {input_name} has {in_channels}")
        out_channels = shape[1] * groups
    else:
        out_channels = shape[0]
        if out_channels % groups != 0:
            raise ValueError(f"{weight_name}'s out_channels ({out_channels}) must be divisible by groups ({groups})")
        if in_channels is not None:
            if in_channels % groups != 0:
                raise ValueError(f"{input_name}'s channels ({in_channels}) must be divisible by groups ({groups})")
            if shape[1] * groups != in_channels:
                raise ValueError(f"{weight_name} of shape {shape} expects {shape[1] * groups} input channels "
                                 f"with groups={groups}, but {input_name} has {in_channels}")
    if bias is not None:
        bias = check_float_array(bias, bias_name, ndims=(1,), batch_ndims=(), array_api=True, like=weight,
                                 like_name=weight_name)
        if tuple(bias.shape) != (out_channels,):
            raise ValueError(f"{bias_name} must have shape ({out_channels},), got {tuple(bias.shape)}")
    return weight, bias


def conv_window(in_size: Sequence[int], kernel_size: Sequence[int], stride: IntTuple = 1,
                padding: IntTuple | str = 0, dilation: IntTuple = 1) -> Window:
    """The checked window of a convolution (a shortcut for :class:`ConvArgs`); ``padding`` may be ``"same"``."""
    return ConvArgs.check(len(in_size), stride, padding, dilation).window(in_size, kernel_size)
