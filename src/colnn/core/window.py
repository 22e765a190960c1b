"""Window geometry: argument normalization and the sliding-window arithmetic, in N spatial dims.

This module is the single home of the sliding-window arithmetic used by
``im2col``, pooling and convolution in 1, 2 and 3 dimensions: how a
per-axis tuple is read from an int or a tuple, how big the output is, where
each window starts, and which sizes can be represented at all. Window
arguments are validated here, once, and errors name the argument and its value.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .checks import check_flag, describe
from .indices import index_dtype
from .namespace import array_namespace, device_of

IntPair = int | tuple[int, int] | Sequence[int]
IntTuple = int | Sequence[int]

#: The largest window argument or extent colnn can index (int64, as NumPy's and PyTorch's indices).
INDEX_MAX = np.iinfo(np.int64).max

__all__ = ["IntPair", "IntTuple", "INDEX_MAX", "Window", "WindowArgs", "as_pair", "as_tuple", "output_size"]


def _as_int(value: Any, name: str, form: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {form}, got {describe(value)}")
    return int(value)


def as_tuple(value: IntTuple, name: str, ndim: int, *, minimum: int = 0) -> tuple[int, ...]:
    """Read an int or a tuple of ``ndim`` ints (PyTorch's argument forms) as a tuple, each ``>= minimum``.

    A one-element tuple is repeated, as PyTorch does. A value beyond int64 is a
    ValueError naming the argument: no index could reach it.

    >>> as_tuple(2, "stride", 3, minimum=1)
    (2, 2, 2)
    >>> as_tuple((3, 1), "kernel_size", 2, minimum=1)
    (3, 1)
    """
    # The common forms first (a plain int, a tuple of plain ints): one call per op and layer forward.
    if type(value) is int and minimum <= value <= INDEX_MAX:
        return (value,) * ndim
    if (type(value) is tuple and len(value) == ndim
            and all(type(item) is int and minimum <= item <= INDEX_MAX for item in value)):
        return value
    form = "an int or a pair of ints" if ndim == 2 else f"an int or a tuple of {ndim} ints"
    flat = (value.ndim == 1 if isinstance(value, np.ndarray)
            else isinstance(value, (tuple, list)) and not any(isinstance(v, (tuple, list)) for v in value))
    items: list[Any]
    if flat:
        items = list(value)  # type: ignore[arg-type]  # an int was handled above
        if len(items) == 1:
            items = items * ndim
        if len(items) != ndim:
            raise ValueError(f"{name} must be {form}, got {describe(value)}")
    elif isinstance(value, (tuple, list, np.ndarray)):
        raise ValueError(f"{name} must be {form}, got {describe(value)}")
    else:
        items = [value] * ndim
    values = tuple(_as_int(item, name, form) for item in items)
    if min(values) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {describe(value)}")
    if max(values) > INDEX_MAX:
        raise ValueError(f"{name} must be at most 2**63 - 1 (int64), got {describe(value)}")
    return values


def as_pair(value: IntPair, name: str, *, minimum: int = 0) -> tuple[int, int]:
    """Read an int or an ``(h, w)`` pair as a pair of ints, each ``>= minimum``.

    >>> as_pair(2, "stride", minimum=1)
    (2, 2)
    >>> as_pair((3, 1), "kernel_size", minimum=1)
    (3, 1)
    """
    return as_tuple(value, name, 2, minimum=minimum)  # type: ignore[return-value]


def output_size(
    size: int, kernel: int, stride: int, pad: int, dilation: int = 1, ceil_mode: bool = False
) -> int:
    """Number of window positions along one axis (PyTorch's rule).

    ``floor((size + 2*pad - dilation*(kernel-1) - 1) / stride) + 1``; with
    ``ceil_mode`` the ceiling, minus one if the last window would start at or
    past ``size + pad`` (so that every window starts inside the input or its
    left padding). Python ints: exact for any argument size.

    >>> output_size(4, 2, 2, 0)
    2
    >>> output_size(5, 2, 2, 0, ceil_mode=True)
    3
    """
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    if ceil_mode:
        out = -(-span // stride) + 1
        if (out - 1) * stride >= size + pad:
            out -= 1
    else:
        out = span // stride + 1
    return out


def _fmt(values: tuple[int, ...]) -> Any:
    return values[0] if len(values) == 1 else values


# What the messages call the four sizes: PyTorch's names, unless a face passes its own.
WINDOW_NAMES = ("kernel_size", "stride", "padding", "dilation")


@dataclass(frozen=True)
class WindowArgs:
    """A window's hyper-parameters, normalized and checked once: what a layer keeps, what an op's arguments become.

    Everything that depends on the arguments alone is checked by :meth:`check`
    (types, ranges, PyTorch's pooling rule ``padding <= kernel_size // 2``);
    what depends on the input's size too (an empty output, an unindexable span)
    by :meth:`over`, which returns the :class:`Window` over an input. ``names``
    are the arguments' names in messages (a command's ``--kernel``, the book's ``pad``).
    """

    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    ceil_mode: bool = False
    names: tuple[str, str, str, str] = field(default=WINDOW_NAMES, compare=False, repr=False)

    @classmethod
    def check(
        cls,
        ndim: int,
        kernel_size: IntTuple,
        stride: IntTuple | None = None,
        padding: IntTuple = 0,
        dilation: IntTuple = 1,
        *,
        ceil_mode: Any = False,
        pooling: bool = False,
        names: tuple[str, str, str, str] = WINDOW_NAMES,
    ) -> WindowArgs:
        """PyTorch's argument forms (an int, or a tuple of ``ndim`` ints) as tuples, checked.

        ``stride=None`` means ``stride = kernel_size`` (pooling's default), and
        so does ``stride=()`` when ``pooling``, as in PyTorch's pools.
        Raises TypeError for a non-int size or a non-bool ``ceil_mode``, and
        ValueError for a tuple of the wrong length, a kernel, stride or dilation
        below 1, a negative padding, or (``pooling``) a padding above half the kernel.
        """
        kernel_name, stride_name, padding_name, dilation_name = names
        kernel = as_tuple(kernel_size, kernel_name, ndim, minimum=1)
        # PyTorch's pools read an empty stride (``stride=()``, the C++ default) as "the kernel".
        if stride is None or (pooling and isinstance(stride, (tuple, list)) and len(stride) == 0):
            strides = kernel
        else:
            strides = as_tuple(stride, stride_name, ndim, minimum=1)
        pads = as_tuple(padding, padding_name, ndim, minimum=0)
        dilations = as_tuple(dilation, dilation_name, ndim, minimum=1)
        if pooling and any(p > k // 2 for p, k in zip(pads, kernel)):
            raise ValueError(
                f"{padding_name} must be at most half of {kernel_name} {_fmt(kernel)}, i.e. at most "
                f"{_fmt(tuple(k // 2 for k in kernel))}, got {describe(padding)}"
            )
        if math.prod(kernel) > INDEX_MAX:
            raise ValueError(f"{kernel_name} has more than 2**63 - 1 cells, got {describe(kernel_size)}")
        return cls(kernel, strides, pads, dilations, check_flag(ceil_mode, "ceil_mode"),
                   (kernel_name, stride_name, padding_name, dilation_name))

    @property
    def ndim(self) -> int:
        return len(self.kernel_size)

    def over(self, in_size: Sequence[int], *, allow_empty: bool = False) -> Window:
        """The :class:`Window` of these arguments over an input of spatial size ``in_size``.

        ValueError if the output would be empty (unless ``allow_empty`` and it is
        exactly 0) or if the padded span cannot be indexed in int64.
        """
        kernel_name, stride_name, padding_name, dilation_name = self.names
        in_size = tuple(int(v) for v in in_size)
        for size, k, p, d in zip(in_size, self.kernel_size, self.padding, self.dilation):
            # Window starts and ends are int64 in the kernels: the whole padded span must be indexable.
            if size + 2 * p + d * (k - 1) > INDEX_MAX:
                raise ValueError(
                    f"{kernel_name}={_fmt(self.kernel_size)}, {padding_name}={_fmt(self.padding)} and "
                    f"{dilation_name}={_fmt(self.dilation)} span more than 2**63 - 1 cells"
                )
        out = tuple(
            output_size(size, k, s, p, d, self.ceil_mode)
            for size, k, s, p, d in zip(in_size, self.kernel_size, self.stride, self.padding, self.dilation)
        )
        if min(out) < 1 and not (allow_empty and min(out) == 0):
            # An undilated window's dilation says nothing (and a command may have no such flag).
            dilated = f", {dilation_name}={_fmt(self.dilation)}" if any(d != 1 for d in self.dilation) else ""
            raise ValueError(
                f"output would be empty: input size {_fmt(in_size)} with "
                f"{kernel_name}={_fmt(self.kernel_size)}, {stride_name}={_fmt(self.stride)}, "
                f"{padding_name}={_fmt(self.padding)}{dilated} "
                f"gives output {_fmt(tuple(max(size, 0) for size in out))}"
            )
        return Window(in_size, self.kernel_size, self.stride, self.padding, self.dilation, out)


@dataclass(frozen=True)
class Window:
    """Geometry of a sliding window over ``ndim`` spatial axes (1, 2 or 3).

    Window ``o`` covers, along axis ``d``, input cells
    ``o[d]*stride[d] - padding[d] + k*dilation[d]`` for ``k`` in ``range(kernel_size[d])``.
    ``padding`` is the leading padding; the trailing padding (:attr:`pad_end`)
    is whatever the last window needs, which differs with ``ceil_mode`` or
    ``padding="same"``. A kernel offset is flattened row-major over
    ``kernel_size`` (``ky*kernel_w + kx`` in 2-D). The 2-D names
    (``in_h``, ``kernel_w``, ``pad_bottom``...) read the last two axes.
    """

    in_size: tuple[int, ...]
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    out_size: tuple[int, ...]

    @classmethod
    def build(
        cls,
        in_size: Sequence[int],
        kernel_size: IntTuple,
        stride: IntTuple | None = None,
        padding: IntTuple = 0,
        dilation: IntTuple = 1,
        *,
        ceil_mode: bool = False,
        pooling: bool = False,
        allow_empty: bool = False,
        kernel_name: str = "kernel_size",
        stride_name: str = "stride",
        padding_name: str = "padding",
        dilation_name: str = "dilation",
    ) -> Window:
        """Validate window arguments and compute the output size: :meth:`WindowArgs.check`, then
        :meth:`WindowArgs.over`.

        ``in_size`` gives the number of spatial axes. ``stride=None`` means
        ``stride = kernel_size`` (pooling's default). With ``pooling=True`` the
        padding must be at most half the kernel, as in PyTorch. Raises
        ValueError if the output would be empty (unless ``allow_empty``) or if
        the padded extent cannot be indexed in int64.
        """
        names = (kernel_name, stride_name, padding_name, dilation_name)
        arguments = WindowArgs.check(len(in_size), kernel_size, stride, padding, dilation, ceil_mode=ceil_mode,
                                     pooling=pooling, names=names)
        return arguments.over(in_size, allow_empty=allow_empty)

    @classmethod
    def same_padding(cls, in_size: Sequence[int], kernel_size: IntTuple, dilation: IntTuple = 1) -> Window:
        """Stride-1 window whose output has the input's size (``padding="same"``).

        As in PyTorch, an odd total padding puts the extra cell at the end of the axis.
        """
        in_size = tuple(int(v) for v in in_size)
        kernel = as_tuple(kernel_size, "kernel_size", len(in_size), minimum=1)
        dilations = as_tuple(dilation, "dilation", len(in_size), minimum=1)
        pads = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilations))
        return cls(in_size, kernel, (1,) * len(in_size), pads, dilations, in_size)

    # --- the N-d view -----------------------------------------------------

    @property
    def ndim(self) -> int:
        return len(self.in_size)

    @property
    def kernel_volume(self) -> int:
        """Cells in one window: the product of ``kernel_size``."""
        return math.prod(self.kernel_size)

    @property
    def pad_end(self) -> tuple[int, ...]:
        """Trailing padding per axis: what the last window reaches past the input (never negative)."""
        return tuple(
            max(0, (o - 1) * s + d * (k - 1) + 1 - size - p)
            for size, k, s, p, d, o in zip(
                self.in_size, self.kernel_size, self.stride, self.padding, self.dilation, self.out_size)
        )

    def with_unit_axis(self) -> Window:
        """The same window with a leading axis of size 1 (kernel 1): how 1-d ops run 2-D kernels exactly."""
        return Window((1, *self.in_size), (1, *self.kernel_size), (1, *self.stride), (0, *self.padding),
                      (1, *self.dilation), (1, *self.out_size))

    def starts(self) -> tuple[np.ndarray, ...]:
        """Input coordinate where each window starts along each axis (may be negative): ``(out_d,)`` each."""
        return tuple(
            np.arange(o, dtype=np.int64) * s - p for o, s, p in zip(self.out_size, self.stride, self.padding)
        )

    def axis_bounds(self, axis: int, *, padded: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The in-bounds arithmetic of one axis: ``(start, first, end)``, each ``(out_size[axis],)`` int64.

        Window ``o`` starts at input cell ``start[o]`` (negative inside the
        leading padding), and its kernel offsets ``k`` in ``[first[o], end[o])``
        land inside the input, ``0 <= start + k*dilation < size``; with
        ``padded``, inside the padded input ``[-padding, size + padding)``.
        ``first`` may exceed ``end`` (a dilated window with no cell inside), and
        ``end <= kernel_size``. The one home of this arithmetic: the kernels'
        clipped loops, PyTorch's first in-bounds argmax, the average divisor and
        3-d pooling's depth slices all read it.
        """
        size, kernel, stride, pad, dilation = (self.in_size[axis], self.kernel_size[axis], self.stride[axis],
                                               self.padding[axis], self.dilation[axis])
        start = np.arange(self.out_size[axis], dtype=np.int64) * stride - pad
        low, high = (-pad, size + pad) if padded else (0, size)
        # ceil((low - start) / dilation) and ceil((high - start) / dilation), clipped to the kernel.
        first = np.maximum(-((start - low) // dilation), 0)
        end = np.clip(-((start - high) // dilation), 0, kernel)
        return start, first, end

    def first_inside(self) -> np.ndarray:
        """Flat offset inside each window of its first cell at coordinates >= 0: shape ``out_size``.

        PyTorch reports this cell as the argmax of a window whose in-bounds values
        are all the lowest value (e.g. all -inf).
        """
        flat = np.zeros(self.out_size, dtype=np.int64)
        for axis, k in enumerate(self.kernel_size):
            first = self.axis_bounds(axis)[1]
            flat = flat * k + first.reshape((-1,) + (1,) * (self.ndim - 1 - axis))
        return flat

    def cell_coordinates(self, window_offset: Any) -> tuple[Any, ...]:
        """Input coordinates, per axis, of the cell at flat offset ``window_offset`` ``(..., *out_size)`` of each
        window.

        ``window_offset`` may be an array of any Array API library (NumPy's, PyTorch's,
        JAX's...): the coordinates are arrays of the same library and device, in its index
        dtype (:func:`colnn.core.indices.index_dtype`).
        """
        xp, device = array_namespace(window_offset), device_of(window_offset)
        dtype = index_dtype(xp, math.prod(self.in_size))
        offset = xp.astype(window_offset, dtype)
        coordinates = []
        kernel_stride = self.kernel_volume
        for axis, (k, s, p, d, out) in enumerate(zip(self.kernel_size, self.stride, self.padding, self.dilation,
                                                     self.out_size)):
            kernel_stride //= k
            shape = [1] * self.ndim
            shape[axis] = out
            start = xp.reshape(xp.arange(out, dtype=dtype, device=device) * s - p, tuple(shape))
            coordinates.append(start + ((offset // kernel_stride) % k) * d)
        return tuple(coordinates)

    def flat_indices(self, window_offset: Any) -> Any:
        """Convert flat offsets inside windows to flat indices into the input's spatial volume (the index dtype).

        ``window_offset`` has shape ``(..., *out_size)`` (any Array API library); the
        result is PyTorch's ``return_indices`` (row-major over ``in_size``), of the same library.
        """
        coordinates = self.cell_coordinates(window_offset)
        flat = coordinates[0]
        for position, size in zip(coordinates[1:], self.in_size[1:]):
            flat = flat * size + position
        return flat

    def inner(self) -> Window:
        """The window over the axes after the first (3-d pooling runs its planes through the 2-D kernels)."""
        return Window(self.in_size[1:], self.kernel_size[1:], self.stride[1:], self.padding[1:],
                      self.dilation[1:], self.out_size[1:])

    def avg_divisor(self, count_include_pad: bool, divisor_override: int | None) -> np.ndarray:
        """Divisor of each average-pooling window: shape ``out_size``.

        The cells of the window that are counted: with ``count_include_pad``
        those inside the padded border (which matters with ``ceil_mode``),
        without it those inside the input (PyTorch's rule). A dilated window
        counts its dilated cells (ONNX AveragePool's rule, opset 19; PyTorch has
        no dilated average). A window with no cell inside gets divisor 1 (its
        sum, and output, is 0). Read-only, shared by the calls with one window (cached).
        """
        return _avg_divisor(self, bool(count_include_pad), divisor_override)

    # --- the 2-D names (the last two axes) ---------------------------------

    in_h = property(lambda self: self.in_size[-2])
    in_w = property(lambda self: self.in_size[-1])
    kernel_h = property(lambda self: self.kernel_size[-2])
    kernel_w = property(lambda self: self.kernel_size[-1])
    stride_h = property(lambda self: self.stride[-2])
    stride_w = property(lambda self: self.stride[-1])
    pad_h = property(lambda self: self.padding[-2])
    pad_w = property(lambda self: self.padding[-1])
    dilation_h = property(lambda self: self.dilation[-2])
    dilation_w = property(lambda self: self.dilation[-1])
    out_h = property(lambda self: self.out_size[-2])
    out_w = property(lambda self: self.out_size[-1])
    kernel_area = kernel_volume
    pad_bottom = property(lambda self: self.pad_end[-2])
    pad_right = property(lambda self: self.pad_end[-1])


@functools.lru_cache(maxsize=64)
def _avg_divisor(window: Window, count_include_pad: bool, divisor_override: int | None) -> np.ndarray:
    """:meth:`Window.avg_divisor`, once per window: a layer or a loop calls it with the same geometry."""
    if divisor_override is not None:
        divisor = np.full(window.out_size, divisor_override, dtype=np.int64)
    else:
        divisor = np.ones((), dtype=np.int64)
        for axis in range(window.ndim):
            _, first, end = window.axis_bounds(axis, padded=count_include_pad)
            divisor = np.multiply.outer(divisor, np.maximum(end - first, 0))
        divisor = np.where(divisor > 0, divisor, 1)
    divisor.flags.writeable = False
    return divisor
