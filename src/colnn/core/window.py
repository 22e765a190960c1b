"""Window geometry: argument normalization and the sliding-window arithmetic, in N spatial dims.

This module is the single home of the sliding-window arithmetic used by
``im2col``, pooling and convolution in 1, 2 and 3 dimensions: how a
per-axis tuple is read from an int or a tuple, how big the output is, where
each window starts, and which sizes can be represented at all. Window
arguments are validated here, once, and errors name the argument and its value.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Sequence, Tuple, Union

import numpy as np

from .indices import index_dtype

IntPair = Union[int, Tuple[int, int], Sequence[int]]
IntTuple = Union[int, Sequence[int]]

#: The largest window argument or extent colnn can index (int64, as NumPy's and PyTorch's indices).
INDEX_MAX = np.iinfo(np.int64).max

__all__ = ["IntPair", "IntTuple", "INDEX_MAX", "Window", "as_pair", "as_tuple", "output_size"]


def _as_int(value: Any, name: str, form: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {form}, got {value!r}")
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
    form = "an int or a pair of ints" if ndim == 2 else f"an int or a tuple of {ndim} ints"
    if isinstance(value, (tuple, list, np.ndarray)) and np.ndim(value) == 1:
        items = list(value)
        if len(items) == 1:
            items = items * ndim
        if len(items) != ndim:
            raise ValueError(f"{name} must be {form}, got {value!r}")
    elif isinstance(value, (tuple, list, np.ndarray)):
        raise ValueError(f"{name} must be {form}, got {value!r}")
    else:
        items = [value] * ndim
    values = tuple(_as_int(item, name, form) for item in items)
    if min(values) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    if max(values) > INDEX_MAX:
        raise ValueError(f"{name} must be at most 2**63 - 1 (int64), got {value!r}")
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
    ) -> "Window":
        """Validate window arguments and compute the output size.

        ``in_size`` gives the number of spatial axes. ``stride=None`` means
        ``stride = kernel_size`` (pooling's default). With ``pooling=True`` the
        padding must be at most half the kernel, as in PyTorch. Raises
        ValueError if the output would be empty (unless ``allow_empty``) or if
        the padded extent cannot be indexed in int64.
        """
        in_size = tuple(int(v) for v in in_size)
        ndim = len(in_size)
        kernel = as_tuple(kernel_size, kernel_name, ndim, minimum=1)
        strides = kernel if stride is None else as_tuple(stride, stride_name, ndim, minimum=1)
        pads = as_tuple(padding, padding_name, ndim, minimum=0)
        dilations = as_tuple(dilation, dilation_name, ndim, minimum=1)
        if pooling and any(p > k // 2 for p, k in zip(pads, kernel)):
            raise ValueError(
                f"{padding_name} must be at most half of {kernel_name} ({_fmt(kernel)}), got {padding!r}"
            )
        for size, k, p, d in zip(in_size, kernel, pads, dilations):
            # Window starts and ends are int64 in the kernels: the whole padded span must be indexable.
            if size + 2 * p + d * (k - 1) > INDEX_MAX:
                raise ValueError(
                    f"{kernel_name}={kernel_size!r}, {padding_name}={padding!r} and "
                    f"{dilation_name}={dilation!r} span more than 2**63 - 1 cells"
                )
        if math.prod(kernel) > INDEX_MAX:
            raise ValueError(f"{kernel_name} has more than 2**63 - 1 cells, got {kernel_size!r}")
        out = tuple(
            output_size(size, k, s, p, d, bool(ceil_mode))
            for size, k, s, p, d in zip(in_size, kernel, strides, pads, dilations)
        )
        if min(out) < 1 and not (allow_empty and min(out) == 0):
            # An undilated window's dilation says nothing (and a command may have no such flag).
            dilated = f", {dilation_name}={_fmt(dilations)}" if any(d != 1 for d in dilations) else ""
            raise ValueError(
                f"output would be empty: input size {_fmt(in_size)} with "
                f"{kernel_name}={_fmt(kernel)}, {stride_name}={_fmt(strides)}, "
                f"{padding_name}={_fmt(pads)}{dilated} "
                f"gives output {_fmt(tuple(max(size, 0) for size in out))}"
            )
        return cls(in_size, kernel, strides, pads, dilations, out)

    @classmethod
    def same_padding(cls, in_size: Sequence[int], kernel_size: IntTuple, dilation: IntTuple = 1) -> "Window":
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

    def with_unit_axis(self) -> "Window":
        """The same window with a leading axis of size 1 (kernel 1): how 1-d ops run 2-D kernels exactly."""
        return Window((1, *self.in_size), (1, *self.kernel_size), (1, *self.stride), (0, *self.padding),
                      (1, *self.dilation), (1, *self.out_size))

    def starts(self) -> tuple[np.ndarray, ...]:
        """Input coordinate where each window starts along each axis (may be negative): ``(out_d,)`` each."""
        return tuple(
            np.arange(o, dtype=np.int64) * s - p for o, s, p in zip(self.out_size, self.stride, self.padding)
        )

    def _first_offsets(self) -> tuple[np.ndarray, ...]:
        """Per axis, the first kernel offset of each window at a coordinate >= 0."""
        return tuple(
            np.where(start < 0, (-start + d - 1) // d, 0) for start, d in zip(self.starts(), self.dilation)
        )

    def first_inside(self) -> np.ndarray:
        """Flat offset inside each window of its first cell at coordinates >= 0: shape ``out_size``.

        PyTorch reports this cell as the argmax of a window whose in-bounds values
        are all the lowest value (e.g. all -inf).
        """
        flat = np.zeros(self.out_size, dtype=np.int64)
        for axis, (first, k) in enumerate(zip(self._first_offsets(), self.kernel_size)):
            flat = flat * k + first.reshape((-1,) + (1,) * (self.ndim - 1 - axis))
        return flat

    def cell_coordinates(self, window_offset: Any) -> tuple[Any, ...]:
        """Input coordinates, per axis, of the cell at flat offset ``window_offset`` ``(..., *out_size)`` of each window.

        ``window_offset`` may be an array of any Array API library (NumPy's, PyTorch's,
        JAX's...): the coordinates are arrays of the same library and device, in its index
        dtype (:func:`colnn.core.indices.index_dtype`).
        """
        import array_api_compat

        xp = array_api_compat.array_namespace(window_offset)
        device = array_api_compat.device(window_offset)
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

    def inner(self) -> "Window":
        """The window over the axes after the first (3-d pooling runs its planes through the 2-D kernels)."""
        return Window(self.in_size[1:], self.kernel_size[1:], self.stride[1:], self.padding[1:],
                      self.dilation[1:], self.out_size[1:])

    def avg_divisor(self, count_include_pad: bool, divisor_override: int | None) -> np.ndarray:
        """Divisor of each average-pooling window, PyTorch's rule: shape ``out_size``.

        With ``count_include_pad`` the window is clipped to the padded border
        (which matters with ``ceil_mode``); without it, to the input. A window with
        no cell inside the input gets divisor 1 (its sum, and output, is 0).
        """
        if divisor_override is not None:
            return np.full(self.out_size, divisor_override, dtype=np.int64)
        divisor = np.ones((), dtype=np.int64)
        for start, k, size, p in zip(self.starts(), self.kernel_size, self.in_size, self.padding):
            ends = np.minimum(start + k, size + p)
            if count_include_pad:
                counts = ends - start
            else:
                counts = np.maximum(np.minimum(ends, size) - np.maximum(start, 0), 0)
            divisor = np.multiply.outer(divisor, counts)
        return np.where(divisor > 0, divisor, 1)

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
