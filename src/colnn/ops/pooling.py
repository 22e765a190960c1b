"""Max and average pooling, forward and backward, with PyTorch's semantics.

The public functions (:func:`max_pool2d`, :func:`avg_pool2d`) validate their
arguments and work out the window geometry once (:mod:`colnn.core.window`); the
reduction itself is delegated to a *strategy*, so that a faster kernel can
replace the tutorial's im2col path without touching the semantics here.

A strategy's max-pooling forward returns, besides the output, the offset of
the chosen cell inside its window (``ky*kernel_w + kx``); flat PyTorch-style
indices are built from those offsets only when they are asked for.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ..core.checks import (
    from_batched,
    cast_array, check_array, check_flag, check_float_array, foreign_namespace, gradient_dtype,
    to_batched,
)
from ..core.ieee import quiet_ieee
from ..core.window import IntPair, Window
from ..kernels.pool import NumbaStrategy
from .array_api import ArrayAPIPoolStrategy, check_strategy
from .dispatch import dask_dispatch

__all__ = [
    "max_pool2d",
    "avg_pool2d",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "PoolStrategy",
    "register_strategy",
    "get_strategy",
    "available_strategies",
    "pool_window",
    "check_divisor",
]


class PoolStrategy(Protocol):
    """How pooling windows are reduced. All arrays are batched ``(N, C, ., .)``."""

    def max_forward(self, x: np.ndarray, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Return the maxima ``(N, C, out_h, out_w)`` and the offset of each inside its window.

        PyTorch's CPU rule: a cell replaces the running maximum when it is greater
        or NaN, scanning the window row-major; padded cells never count.
        """

    def max_values(self, x: np.ndarray, window: Window) -> np.ndarray:
        """The maxima of :meth:`max_forward` alone (inference: no offsets to keep)."""

    def max_backward(
        self, grad_output: np.ndarray, window_offset: np.ndarray, input_shape: tuple[int, ...], window: Window
    ) -> np.ndarray:
        """Route each output gradient to its chosen cell; overlaps sum. Returns ``input_shape``."""

    def avg_forward(self, x: np.ndarray, window: Window, divisor: np.ndarray) -> np.ndarray:
        """Window sums (padding counts as 0) divided by ``divisor`` ``(out_h, out_w)``."""

    def avg_backward(
        self, grad_output: np.ndarray, input_shape: tuple[int, ...], window: Window, divisor: np.ndarray
    ) -> np.ndarray:
        """Spread ``grad_output / divisor`` over each window's cells; overlaps sum."""


# The reference: the tutorial's im2col path, written once on the Array API standard,
# for NumPy and for every other library's arrays (computed on their device).
_STRATEGIES: dict[str, PoolStrategy] = {"im2col": ArrayAPIPoolStrategy()}
_DEFAULT_STRATEGY = "im2col"


def register_strategy(name: str, strategy: PoolStrategy, *, default: bool = False) -> None:
    """Make ``strategy`` selectable as ``strategy=name`` (and the default if asked)."""
    global _DEFAULT_STRATEGY
    _STRATEGIES[name] = strategy
    if default:
        _DEFAULT_STRATEGY = name


def available_strategies() -> tuple[str, ...]:
    """Names accepted by the ``strategy`` argument, the default first."""
    return (_DEFAULT_STRATEGY, *sorted(set(_STRATEGIES) - {_DEFAULT_STRATEGY}))


def get_strategy(name: str | None = None, x: Any = None) -> PoolStrategy:
    """The strategy called ``name`` (None: the default)."""
    if x is not None and foreign_namespace(x) is not None:
        # Another library's array (PyTorch, JAX, CuPy...) runs the Array API reference on its device.
        check_strategy(name, x, tuple(sorted(_STRATEGIES)))
        return _STRATEGIES["im2col"]
    key = _DEFAULT_STRATEGY if name is None else name
    if key not in _STRATEGIES:
        raise ValueError(f"strategy must be one of {sorted(_STRATEGIES)}, got {name!r}")
    return _STRATEGIES[key]


# The compiled kernels are the default; colnn.kernels.pool imports Numba only on first
# use, so `import colnn` neither loads Numba nor compiles anything.
register_strategy("numba", NumbaStrategy(fallback=_STRATEGIES["im2col"]), default=True)


def pool_window(
    x: np.ndarray, kernel_size: IntPair, stride: IntPair | None, padding: IntPair, dilation: IntPair, ceil_mode: bool
) -> Window:
    """Validated window geometry of pooling a batched ``(N, C, H, W)`` array."""
    return Window.build(x.shape[2:], kernel_size, stride, padding, dilation, ceil_mode=check_flag(ceil_mode, "ceil_mode"), pooling=True)


def check_divisor(divisor_override: Any) -> int | None:
    """``divisor_override`` as an int (None stays None); 0 is a ValueError."""
    if divisor_override is None:
        return None
    if isinstance(divisor_override, bool) or not isinstance(divisor_override, (int, np.integer)):
        raise TypeError(f"divisor_override must be an int or None, got {divisor_override!r}")
    if divisor_override == 0:
        raise ValueError(f"divisor_override must be non-zero, got {divisor_override!r}")
    return int(divisor_override)


# --- max pooling -----------------------------------------------------------


def max_pool2d_forward(
    x: np.ndarray, window: Window, strategy: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Max pooling of a validated batched array: ``(out, window_offset)``, both ``(N, C, out_h, out_w)``."""
    return get_strategy(strategy, x).max_forward(x, window)


def max_pool2d_backward(
    grad_output: np.ndarray,
    window_offset: np.ndarray,
    input_shape: tuple[int, ...],
    window: Window,
    strategy: str | None = None,
) -> np.ndarray:
    """Gradient of max pooling w.r.t. its input, ``input_shape``; tied maxima: all to the first.

    The gradient is floating: ``grad_output``'s dtype if floating, else float64.
    """
    grad_output = cast_array(grad_output, gradient_dtype(grad_output.dtype, grad_output.dtype))
    return get_strategy(strategy, grad_output).max_backward(grad_output, window_offset, input_shape, window)


@dask_dispatch
def max_pool2d(
    input: Any,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
    *,
    strategy: str | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """2-D max pooling, as ``torch.nn.functional.max_pool2d``.

    Parameters
    ----------
    input : array ``(N, C, H, W)`` or unbatched ``(C, H, W)``, integer or floating
    kernel_size, stride, padding, dilation : int or ``(h, w)`` pair;
        ``stride=None`` means ``kernel_size``; ``padding <= kernel_size // 2``
    ceil_mode : use the ceiling in the output size
        ``(H + 2*padding - dilation*(kernel_size-1) - 1) / stride + 1``
    return_indices : also return int64 flat indices into each ``H*W`` plane
    strategy : name of the reduction strategy (see :func:`available_strategies`)

    Returns
    -------
    out : array ``(N, C, out_h, out_w)`` (or ``(C, out_h, out_w)``), input's dtype
    indices : int64 array of the same shape, if ``return_indices``

    Padded cells never win. NaN propagates (index of the last NaN in the window);
    among tied maxima the first wins.

    Examples
    --------
    >>> x = np.array([[[1., 2.], [4., 3.]]])
    >>> max_pool2d(x, 2, return_indices=True)
    (array([[[4.]]]), array([[[2]]]))
    """
    x, unbatched = to_batched(check_array(input, "input", array_api=True))
    window = pool_window(x, kernel_size, stride, padding, dilation, ceil_mode)
    if not check_flag(return_indices, "return_indices"):
        out = get_strategy(strategy, x).max_values(x, window)
        return from_batched(out, unbatched)
    out, window_offset = max_pool2d_forward(x, window, strategy)
    indices = window.flat_indices(window_offset)
    return from_batched(out, unbatched), from_batched(indices, unbatched)


# --- average pooling -------------------------------------------------------


@quiet_ieee
def avg_pool2d_forward(
    x: np.ndarray, window: Window, divisor: np.ndarray, strategy: str | None = None
) -> np.ndarray:
    """Average pooling of a validated batched floating array, ``(N, C, out_h, out_w)``."""
    return get_strategy(strategy, x).avg_forward(x, window, divisor)


@quiet_ieee
def avg_pool2d_backward(
    grad_output: np.ndarray,
    input_shape: tuple[int, ...],
    window: Window,
    divisor: np.ndarray,
    strategy: str | None = None,
) -> np.ndarray:
    """Gradient of average pooling w.r.t. its input, ``input_shape``."""
    return get_strategy(strategy, grad_output).avg_backward(grad_output, input_shape, window, divisor)


@dask_dispatch
def avg_pool2d(
    input: Any,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
    *,
    strategy: str | None = None,
) -> np.ndarray:
    """2-D average pooling, as ``torch.nn.functional.avg_pool2d``.

    Parameters
    ----------
    input : floating array ``(N, C, H, W)`` or unbatched ``(C, H, W)``
    kernel_size, stride, padding : int or ``(h, w)`` pair; ``stride=None`` means
        ``kernel_size``; ``padding <= kernel_size // 2``
    ceil_mode : use the ceiling in the output size; a window that then runs past
        the padded border is clipped to it for the divisor
    count_include_pad : count padded cells in the divisor
    divisor_override : divide every window's sum by this instead

    Returns
    -------
    array ``(N, C, out_h, out_w)`` (or ``(C, out_h, out_w)``) of the input's dtype

    Examples
    --------
    >>> avg_pool2d(np.array([[[1., 2.], [4., 3.]]]), 2)
    array([[[2.5]]])
    """
    x, unbatched = to_batched(check_float_array(input, "input", array_api=True))
    window = pool_window(x, kernel_size, stride, padding, 1, ceil_mode)
    divisor = window.avg_divisor(check_flag(count_include_pad, "count_include_pad"), check_divisor(divisor_override))
    out = avg_pool2d_forward(x, window, divisor, strategy)
    return from_batched(out, unbatched)
