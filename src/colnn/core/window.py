"""Window geometry: argument normalization and the sliding-window arithmetic.

This module is the single home of the sliding-window arithmetic used by
``im2col``, pooling and convolution: how an ``(h, w)`` pair is read from an
int or a tuple, how big the output is, and where each window starts. Window
arguments are validated here, once, and errors name the argument and its value.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Sequence, Tuple, Union

import numpy as np

IntPair = Union[int, Tuple[int, int], Sequence[int]]

__all__ = ["IntPair", "Window", "as_pair", "output_size"]


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    return int(value)


def as_pair(value: IntPair, name: str, *, minimum: int = 0) -> tuple[int, int]:
    """Read an int or an ``(h, w)`` pair as a pair of ints, each ``>= minimum``.

    >>> as_pair(2, "stride", minimum=1)
    (2, 2)
    >>> as_pair((3, 1), "kernel_size", minimum=1)
    (3, 1)
    """
    if isinstance(value, (tuple, list, np.ndarray)):
        items = list(value)
        if len(items) == 1:
            items = items * 2
        if len(items) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        pair = (_as_int(items[0], name), _as_int(items[1], name))
    else:
        single = _as_int(value, name)
        pair = (single, single)
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return pair


def output_size(
    size: int, kernel: int, stride: int, pad: int, dilation: int = 1, ceil_mode: bool = False
) -> int:
    """Number of window positions along one axis (PyTorch's rule).

    ``floor((size + 2*pad - dilation*(kernel-1) - 1) / stride) + 1``; with
    ``ceil_mode`` the ceiling, minus one if the last window would start at or
    past ``size + pad`` (so that every window starts inside the input or its
    left padding).

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


@dataclass(frozen=True)
class Window:
    """Geometry of a 2-D sliding window over an ``(H, W)`` plane.

    Window ``(oy, ox)`` covers input rows ``oy*stride_h - pad_h + ky*dilation_h``
    for ``ky`` in ``range(kernel_h)`` (likewise for columns). ``pad_h`` and
    ``pad_w`` are the top/left padding; the bottom/right padding
    (:attr:`pad_bottom`, :attr:`pad_right`) is whatever the last window needs,
    which differs from the top with ``ceil_mode`` or ``padding="same"``.
    """

    in_h: int
    in_w: int
    kernel_h: int
    kernel_w: int
    stride_h: int
    stride_w: int
    pad_h: int
    pad_w: int
    dilation_h: int
    dilation_w: int
    out_h: int
    out_w: int

    @classmethod
    def build(
        cls,
        in_hw: tuple[int, int],
        kernel_size: IntPair,
        stride: IntPair | None = None,
        padding: IntPair = 0,
        dilation: IntPair = 1,
        *,
        ceil_mode: bool = False,
        pooling: bool = False,
        kernel_name: str = "kernel_size",
        stride_name: str = "stride",
        padding_name: str = "padding",
        dilation_name: str = "dilation",
    ) -> "Window":
        """Validate window arguments and compute the output size.

        ``stride=None`` means ``stride = kernel_size`` (pooling's default).
        With ``pooling=True`` the padding must be at most half the kernel, as
        in PyTorch. Raises ValueError if the output would be empty.
        """
        kernel_h, kernel_w = as_pair(kernel_size, kernel_name, minimum=1)
        stride_h, stride_w = (
            (kernel_h, kernel_w) if stride is None else as_pair(stride, stride_name, minimum=1)
        )
        pad_h, pad_w = as_pair(padding, padding_name, minimum=0)
        dilation_h, dilation_w = as_pair(dilation, dilation_name, minimum=1)
        if pooling and (pad_h > kernel_h // 2 or pad_w > kernel_w // 2):
            raise ValueError(
                f"{padding_name} must be at most half of {kernel_name} "
                f"({(kernel_h, kernel_w)}), got {padding!r}"
            )
        in_h, in_w = in_hw
        out_h = output_size(in_h, kernel_h, stride_h, pad_h, dilation_h, ceil_mode)
        out_w = output_size(in_w, kernel_w, stride_w, pad_w, dilation_w, ceil_mode)
        if out_h < 1 or out_w < 1:
            raise ValueError(
                f"output would be empty: input plane {(in_h, in_w)} with "
                f"{kernel_name}={(kernel_h, kernel_w)}, {stride_name}={(stride_h, stride_w)}, "
                f"{padding_name}={(pad_h, pad_w)}, {dilation_name}={(dilation_h, dilation_w)} "
                f"gives output {(out_h, out_w)}"
            )
        return cls(
            in_h, in_w, kernel_h, kernel_w, stride_h, stride_w,
            pad_h, pad_w, dilation_h, dilation_w, out_h, out_w,
        )

    @classmethod
    def same_padding(
        cls, in_hw: tuple[int, int], kernel_size: IntPair, dilation: IntPair = 1
    ) -> "Window":
        """Stride-1 window whose output has the input's size (``padding="same"``).

        As in PyTorch, an odd total padding puts the extra cell at the bottom/right.
        """
        kernel_h, kernel_w = as_pair(kernel_size, "kernel_size", minimum=1)
        dilation_h, dilation_w = as_pair(dilation, "dilation", minimum=1)
        in_h, in_w = in_hw
        return cls(
            in_h, in_w, kernel_h, kernel_w, 1, 1,
            dilation_h * (kernel_h - 1) // 2, dilation_w * (kernel_w - 1) // 2,
            dilation_h, dilation_w, in_h, in_w,
        )

    @property
    def kernel_area(self) -> int:
        return self.kernel_h * self.kernel_w

    @property
    def pad_bottom(self) -> int:
        """Rows of padding below the input that the last window row reaches."""
        last = (self.out_h - 1) * self.stride_h + self.dilation_h * (self.kernel_h - 1) + 1
        return max(0, last - self.in_h - self.pad_h)

    @property
    def pad_right(self) -> int:
        """Columns of padding right of the input that the last window column reaches."""
        last = (self.out_w - 1) * self.stride_w + self.dilation_w * (self.kernel_w - 1) + 1
        return max(0, last - self.in_w - self.pad_w)

    def starts(self) -> tuple[np.ndarray, np.ndarray]:
        """Input row and column where each window starts (may be negative): ``(out_h,), (out_w,)``."""
        rows = np.arange(self.out_h) * self.stride_h - self.pad_h
        cols = np.arange(self.out_w) * self.stride_w - self.pad_w
        return rows, cols

    def first_inside(self) -> np.ndarray:
        """Offset inside each window (``ky*kernel_w + kx``) of its first cell at a row and column >= 0.

        PyTorch reports this cell as the argmax of a window whose in-bounds values
        are all the lowest value (e.g. all -inf). Shape ``(out_h, out_w)``.
        """
        rows, cols = self.starts()
        first_ky = np.where(rows < 0, (-rows + self.dilation_h - 1) // self.dilation_h, 0)
        first_kx = np.where(cols < 0, (-cols + self.dilation_w - 1) // self.dilation_w, 0)
        return first_ky[:, None] * self.kernel_w + first_kx[None, :]

    def flat_indices(self, window_offset: np.ndarray) -> np.ndarray:
        """Convert offsets inside windows to flat int64 indices into the ``H*W`` plane.

        ``window_offset`` has shape ``(..., out_h, out_w)`` and holds ``ky*kernel_w + kx``.
        """
        rows, cols = self.starts()
        offset = window_offset.astype(np.int64, copy=False)
        ky, kx = np.divmod(offset, self.kernel_w)
        in_row = rows[:, None] + ky * self.dilation_h
        in_col = cols[None, :] + kx * self.dilation_w
        return in_row * self.in_w + in_col

    def avg_divisor(self, count_include_pad: bool, divisor_override: int | None) -> np.ndarray:
        """Divisor of each average-pooling window, PyTorch's rule: shape ``(out_h, out_w)``.

        With ``count_include_pad`` the window is clipped to the padded border
        (which matters with ``ceil_mode``); without it, to the input. A window with
        no cell inside the input gets divisor 1 (its sum, and output, is 0).
        """
        if divisor_override is not None:
            return np.full((self.out_h, self.out_w), divisor_override, dtype=np.int64)

        def axis_counts(starts: np.ndarray, kernel: int, size: int, pad: int) -> np.ndarray:
            ends = np.minimum(starts + kernel, size + pad)
            if count_include_pad:
                return ends - starts
            return np.maximum(np.minimum(ends, size) - np.maximum(starts, 0), 0)

        rows, cols = self.starts()
        count_h = axis_counts(rows, self.kernel_h, self.in_h, self.pad_h)
        count_w = axis_counts(cols, self.kernel_w, self.in_w, self.pad_w)
        divisor = count_h[:, None] * count_w[None, :]
        return np.where(divisor > 0, divisor, 1)
