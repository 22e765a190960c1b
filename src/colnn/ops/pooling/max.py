"""Max pooling in 1, 2 and 3 dimensions, forward and backward, as ``torch.nn.functional.max_pool1d/2d/3d``.

One N-d computation (:func:`max_pool_forward`, :func:`max_pool_backward`) on
the checked arguments of :class:`~colnn.ops.pooling._base.MaxPoolArgs`; the
public functions are thin faces on it. Where it runs (:mod:`colnn.ops.strategy`):

- the compiled 2-D kernels (:class:`colnn.kernels.pool.NumbaStrategy`), the
  specialised fast case: 2-d as it is, 1-d as 2-d with a unit height
  (``Window.with_unit_axis``: exact; maxima alone, windows inside, stride 1 or 2:
  row by row, :func:`colnn.kernels.box_pool.row_max_values`); 3-d by the N-d box loops of
  :mod:`colnn.kernels.box_pool` (forward and the scatter of backward), which
  scan each window row-major as PyTorch does (first maximum; NaN wins with the last NaN);
- the Array API reference (``strategy="im2col"``, and every other library's
  arrays), whose window cells are N-d;
- a Dask array: :mod:`colnn.ops.dask.pooling`, lazily.

A forward returns, besides the output, each maximum's flat offset in its window
(row-major over ``kernel_size``); indices are built from it only when asked for.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...core.checks import from_batched, stand_in
from ...core.dtypes import gradient_dtype
from ...core.namespace import cast_array, is_dask_array
from ...core.spatial import check_spatial_input
from ...core.window import IntTuple, Window
from ...kernels import box_pool
from ..strategy import check_strategy, numpy_for_cpu_arrays, pool_strategy, runs_kernels
from ._base import MaxPoolArgs

__all__ = [
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "max_pool",
    "max_pool_forward",
    "max_pool_backward",
]


def max_pool_forward(x: Any, window: Window, strategy: str | None = None,
                     keep_offset: bool = True) -> tuple[Any, Any]:
    """Max pooling of a checked batched ``(N, C, *in_size)``: ``(out, window_offset)``, both ``(N, C, *out_size)``.

    Without ``keep_offset`` (inference) ``window_offset`` is None and the kernels skip it.
    """
    if not runs_kernels(strategy, x, "pool"):
        pools = pool_strategy("im2col", x)
        return pools.max_forward(x, window) if keep_offset else (pools.max_values(x, window), None)
    if window.ndim == 3:
        return box_pool.window_max(x, window, keep_offset=keep_offset)
    if not keep_offset and box_pool.fits_row_max(window):  # 1-d inference: rows straight into the output
        return box_pool.row_max_values(x, window), None
    pools = pool_strategy(strategy, x)
    planar = x if window.ndim == 2 else x[:, :, np.newaxis]
    flat = window if window.ndim == 2 else window.with_unit_axis()
    if keep_offset:
        out, offset = pools.max_forward(planar, flat)
    else:
        out, offset = pools.max_values(planar, flat), None
    if window.ndim == 1:
        out, offset = out[:, :, 0], (None if offset is None else offset[:, :, 0])
    return out, offset


def max_pool_backward(grad_output: Any, window_offset: Any, input_shape: tuple[int, ...], window: Window,
                      strategy: str | None = None) -> Any:
    """Gradient of max pooling w.r.t. its input, ``input_shape``: each output's gradient to its chosen cell.

    Overlapping windows sum; tied maxima gave all to the first. The gradient is
    floating: ``grad_output``'s dtype if floating, else float64.
    """
    grad_output = cast_array(grad_output, gradient_dtype(grad_output.dtype, grad_output.dtype))
    if not runs_kernels(strategy, grad_output, "pool"):
        return pool_strategy("im2col", grad_output).max_backward(grad_output, window_offset, input_shape, window)
    if window.ndim == 3:  # an empty window's reported cell lies outside the input: it gets nothing
        return box_pool.box_max_backward(grad_output, window_offset, input_shape, *box_pool.window_bounds(window))
    pools = pool_strategy(strategy, grad_output)
    if window.ndim == 2:
        return pools.max_backward(grad_output, window_offset, input_shape, window)
    grad = pools.max_backward(grad_output[:, :, np.newaxis], window_offset[:, :, np.newaxis],
                              (*input_shape[:2], 1, *input_shape[2:]), window.with_unit_axis())
    return grad[:, :, 0]


@numpy_for_cpu_arrays
def max_pool(input: Any, args: MaxPoolArgs, strategy: str | None = None) -> Any:
    """The N-d body of :func:`max_pool1d`/:func:`max_pool2d`/:func:`max_pool3d` on checked ``args``."""
    check_strategy(strategy)
    if is_dask_array(input):
        check_spatial_input(stand_in(input), "input", args.ndim)
        from ..dask import pooling as dask_pooling

        return dask_pooling.max_pool(input, args, strategy, max_pool_forward)
    x, unbatched = check_spatial_input(input, "input", args.ndim)
    window = args.window(x.shape[2:])
    out, offset = max_pool_forward(x, window, strategy, keep_offset=args.return_indices)
    if not args.return_indices:
        return from_batched(out, unbatched)
    # The compiled pools' offsets become indices in one compiled pass (the Array API form took 2x the pooling).
    indices = box_pool.window_cells(offset, window) if runs_kernels(strategy, x, "pool") else \
        window.flat_indices(offset)
    return from_batched(out, unbatched), from_batched(indices, unbatched)


def max_pool1d(
    input: Any,
    kernel_size: IntTuple,
    stride: IntTuple | None = None,
    padding: IntTuple = 0,
    dilation: IntTuple = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
    *,
    strategy: str | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """1-D max pooling, as ``torch.nn.functional.max_pool1d``.

    Parameters
    ----------
    input : array ``(N, C, L)`` or unbatched ``(C, L)``, integer or floating (a Dask array: lazily)
    kernel_size, stride, padding, dilation : int or ``(k,)``; ``stride=None``
        means ``kernel_size``; ``padding <= kernel_size // 2``
    ceil_mode : ceiling in ``out_l = (L + 2*padding - dilation*(kernel_size-1) - 1) / stride + 1``
    return_indices : also return int64 indices into each ``L`` row
    strategy : ``None`` (the default 2-D kernels with a unit height) or ``"im2col"`` (the reference)

    Returns
    -------
    out ``(N, C, out_l)`` (or ``(C, out_l)``), input's dtype; indices int64 of the same shape if asked.

    Raises
    ------
    TypeError for non-numeric input, non-int arguments or flags that are not bools;
    ValueError for a wrong rank, bad argument values (named) or an empty output.

    Examples
    --------
    >>> max_pool1d(np.array([[1., 3., 2., 0.]]), 2)
    array([[3., 2.]])
    """
    return max_pool(input, MaxPoolArgs.check(1, kernel_size, stride, padding, dilation, ceil_mode, return_indices),
                    strategy)


def max_pool2d(
    input: Any,
    kernel_size: IntTuple,
    stride: IntTuple | None = None,
    padding: IntTuple = 0,
    dilation: IntTuple = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
    *,
    strategy: str | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """2-D max pooling, as ``torch.nn.functional.max_pool2d``.

    Parameters
    ----------
    input : array ``(N, C, H, W)`` or unbatched ``(C, H, W)``, integer or floating (a Dask array: lazily)
    kernel_size, stride, padding, dilation : int or ``(h, w)`` pair;
        ``stride=None`` means ``kernel_size``; ``padding <= kernel_size // 2``
    ceil_mode : use the ceiling in the output size
        ``(H + 2*padding - dilation*(kernel_size-1) - 1) / stride + 1``
    return_indices : also return int64 flat indices into each ``H*W`` plane
    strategy : name of the strategy (see :func:`colnn.available_strategies`)

    Returns
    -------
    out : array ``(N, C, out_h, out_w)`` (or ``(C, out_h, out_w)``), input's dtype
    indices : int64 array of the same shape, if ``return_indices``

    Raises
    ------
    As :func:`max_pool1d`.

    Padded cells never win. NaN propagates (index of the last NaN in the window);
    among tied maxima the first wins.

    Examples
    --------
    >>> x = np.array([[[1., 2.], [4., 3.]]])
    >>> max_pool2d(x, 2, return_indices=True)
    (array([[[4.]]]), array([[[2]]]))
    """
    return max_pool(input, MaxPoolArgs.check(2, kernel_size, stride, padding, dilation, ceil_mode, return_indices),
                    strategy)


def max_pool3d(
    input: Any,
    kernel_size: IntTuple,
    stride: IntTuple | None = None,
    padding: IntTuple = 0,
    dilation: IntTuple = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
    *,
    strategy: str | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """3-D max pooling, as ``torch.nn.functional.max_pool3d``.

    ``input`` is ``(N, C, D, H, W)`` or unbatched ``(C, D, H, W)``; arguments are
    ints or ``(d, h, w)`` triples, as for :func:`max_pool1d`. Indices are flat
    into each ``D*H*W`` volume. Same errors as :func:`max_pool1d`.

    Examples
    --------
    >>> max_pool3d(np.arange(8.).reshape(1, 2, 2, 2), 2)
    array([[[[7.]]]])
    """
    return max_pool(input, MaxPoolArgs.check(3, kernel_size, stride, padding, dilation, ceil_mode, return_indices),
                    strategy)
