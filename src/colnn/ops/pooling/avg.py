"""Average pooling in 1, 2 and 3 dimensions, forward and backward, as ``torch.nn.functional.avg_pool1d/2d/3d``.

One N-d computation on the checked :class:`~colnn.ops.pooling._base.AvgPoolArgs`,
with the paths of :mod:`colnn.ops.pooling.max`: the compiled 2-D kernels (1-d
with a unit height; 3-d by the box loops of :mod:`colnn.kernels.box_pool`,
float16 summed in float32), the Array API reference, or Dask.

``dilation`` is ONNX's (``AveragePool``, opset 19), which PyTorch lacks: a
dilated window averages its dilated cells, and its divisor counts those cells
inside the padded border (``count_include_pad``) or inside the input. Dilated
windows run the reference (the compiled loops take contiguous windows).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...core.checks import from_batched, stand_in
from ...core.ieee import quiet_ieee
from ...core.namespace import is_dask_array
from ...core.spatial import check_spatial_input
from ...core.window import IntTuple, Window
from ...kernels import box_pool
from ..strategy import check_strategy, numpy_for_cpu_arrays, pool_strategy, runs_kernels
from ._base import AvgPoolArgs

__all__ = ["avg_pool1d", "avg_pool2d", "avg_pool3d", "avg_pool", "avg_pool_forward", "avg_pool_backward"]


def _reference(strategy: str | None, x: Any, window: Window) -> bool:
    """Whether the reference runs: asked for, another library's array, a dtype or a dilation the kernels lack."""
    return not runs_kernels(strategy, x, "pool") or any(d != 1 for d in window.dilation)


@quiet_ieee
def avg_pool_forward(x: Any, window: Window, divisor: np.ndarray, strategy: str | None = None) -> Any:
    """Average pooling of a checked batched floating array, ``(N, C, *out_size)``, the input's dtype."""
    if _reference(strategy, x, window):
        return pool_strategy("im2col", x).avg_forward(x, window, divisor)
    pools = pool_strategy(strategy, x)
    if window.ndim == 1:
        return pools.avg_forward(x[:, :, np.newaxis], window.with_unit_axis(), divisor[np.newaxis])[:, :, 0]
    if window.ndim == 2:
        return pools.avg_forward(x, window, divisor)
    return box_pool.box_avg(x, box_pool.window_bounds(window)[0], divisor)


@quiet_ieee
def avg_pool_backward(grad_output: Any, input_shape: tuple[int, ...], window: Window, divisor: np.ndarray,
                      strategy: str | None = None) -> Any:
    """Gradient of average pooling w.r.t. its input: ``grad_output / divisor`` spread over each window's cells."""
    if _reference(strategy, grad_output, window):
        return pool_strategy("im2col", grad_output).avg_backward(grad_output, input_shape, window, divisor)
    pools = pool_strategy(strategy, grad_output)
    if window.ndim == 1:
        grad = pools.avg_backward(grad_output[:, :, np.newaxis], (*input_shape[:2], 1, *input_shape[2:]),
                                  window.with_unit_axis(), divisor[np.newaxis])
        return grad[:, :, 0]
    if window.ndim == 2:
        return pools.avg_backward(grad_output, input_shape, window, divisor)
    return box_pool.box_avg_backward(grad_output, input_shape, box_pool.window_bounds(window)[0], divisor)


@numpy_for_cpu_arrays
def avg_pool(input: Any, args: AvgPoolArgs, strategy: str | None = None) -> Any:
    """The N-d body of :func:`avg_pool1d`/:func:`avg_pool2d`/:func:`avg_pool3d` on checked ``args``."""
    check_strategy(strategy)
    if is_dask_array(input):
        check_spatial_input(stand_in(input), "input", args.ndim, floating=True)
        from ..dask import pooling as dask_pooling

        return dask_pooling.avg_pool(input, args, strategy, avg_pool_forward)
    x, unbatched = check_spatial_input(input, "input", args.ndim, floating=True)
    window = args.window(x.shape[2:])
    return from_batched(avg_pool_forward(x, window, args.divisor(window), strategy), unbatched)


def avg_pool1d(
    input: Any,
    kernel_size: IntTuple,
    stride: IntTuple | None = None,
    padding: IntTuple = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    *,
    dilation: IntTuple = 1,
    strategy: str | None = None,
) -> np.ndarray:
    """1-D average pooling, as ``torch.nn.functional.avg_pool1d``.

    Parameters
    ----------
    input : floating array ``(N, C, L)`` or unbatched ``(C, L)`` (a Dask array: lazily)
    kernel_size, stride, padding : int or ``(k,)``; ``stride=None`` means
        ``kernel_size``; ``padding <= kernel_size // 2``
    ceil_mode, count_include_pad : as in PyTorch (clipped windows divide by their clipped size)
    dilation : int or ``(d,)``, keyword only: ONNX ``AveragePool``'s ``dilations`` (opset 19;
        PyTorch has none): the window's cells ``dilation`` apart, its divisor counting those cells
    strategy : ``None`` (default kernels) or ``"im2col"`` (the reference)

    Returns
    -------
    array ``(N, C, out_l)`` (or ``(C, out_l)``) of the input's dtype, ``out_l`` as for
    :func:`max_pool1d`; float16 summed in float32.

    Raises
    ------
    TypeError for non-floating input, non-int arguments or flags that are not bools;
    ValueError for a wrong rank, bad arguments (named) or an empty output.

    Examples
    --------
    >>> avg_pool1d(np.array([[1., 3., 2., 0.]]), 2)
    array([[2., 1.]])
    >>> avg_pool1d(np.array([[1., 3., 2., 0.]]), 2, 1, dilation=2)
    array([[1.5, 1.5]])
    """
    return avg_pool(input, AvgPoolArgs.check(1, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                             dilation=dilation), strategy)


def avg_pool2d(
    input: Any,
    kernel_size: IntTuple,
    stride: IntTuple | None = None,
    padding: IntTuple = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
    *,
    dilation: IntTuple = 1,
    strategy: str | None = None,
) -> np.ndarray:
    """2-D average pooling, as ``torch.nn.functional.avg_pool2d``.

    Parameters
    ----------
    input : floating array ``(N, C, H, W)`` or unbatched ``(C, H, W)`` (a Dask array: lazily)
    kernel_size, stride, padding : int or ``(h, w)`` pair; ``stride=None`` means
        ``kernel_size``; ``padding <= kernel_size // 2``
    ceil_mode : use the ceiling in the output size; a window that then runs past
        the padded border is clipped to it for the divisor
    count_include_pad : count padded cells in the divisor
    divisor_override : divide every window's sum by this instead (0 is a ValueError)
    dilation : int or ``(h, w)``, keyword only: ONNX ``AveragePool``'s ``dilations`` (opset 19;
        PyTorch has none): the window's cells ``dilation`` apart, its divisor counting those cells
    strategy : ``None`` (default kernels) or ``"im2col"`` (the reference)

    Returns
    -------
    array ``(N, C, out_h, out_w)`` (or ``(C, out_h, out_w)``) of the input's dtype

    Raises
    ------
    As :func:`avg_pool1d`.

    Examples
    --------
    >>> avg_pool2d(np.array([[[1., 2.], [4., 3.]]]), 2)
    array([[[2.5]]])
    """
    return avg_pool(input, AvgPoolArgs.check(2, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                             divisor_override, dilation), strategy)


def avg_pool3d(
    input: Any,
    kernel_size: IntTuple,
    stride: IntTuple | None = None,
    padding: IntTuple = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
    *,
    dilation: IntTuple = 1,
    strategy: str | None = None,
) -> np.ndarray:
    """3-D average pooling, as ``torch.nn.functional.avg_pool3d``.

    ``input`` is floating ``(N, C, D, H, W)`` or ``(C, D, H, W)``; arguments as for
    :func:`avg_pool2d` with ``(d, h, w)`` triples (``dilation``: ONNX's, keyword
    only); ``divisor_override`` divides every window's sum by that int instead.

    Examples
    --------
    >>> avg_pool3d(np.arange(8.).reshape(1, 2, 2, 2), 2)
    array([[[[3.5]]]])
    """
    return avg_pool(input, AvgPoolArgs.check(3, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                             divisor_override, dilation), strategy)
