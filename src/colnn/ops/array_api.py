"""The tutorial's im2col path on the Python Array API standard: any array library, any device.

Everything here is written against the standard (``xp`` is the caller's
namespace, from :func:`array_api_compat.array_namespace`), so a CuPy, PyTorch
or JAX array is computed where it lives and comes back as the same kind of
array on the same device. The algorithm is the book's (*Deep Learning from
Scratch*, section 7.4): one strided slice per kernel offset gathers that
offset's cell of every window, the slices are stacked into the column matrix,
and pooling or convolution is then one reduction or one matrix product.

What the standard lacks, and what stands in for it:

- no strided *view* (``as_strided``): the ``kh*kw`` strided slices are stacked
  with ``xp.stack`` (a copy, as the tutorial's loop makes), or, when there are
  fewer windows than kernel offsets, one slice per window;
- no ``pad``: :func:`array_api_extra.pad`;
- no scatter-add (col2im, the backward passes): :func:`array_api_extra.at`
  adds one strided slice per kernel offset (in place where the library allows
  it, functionally for JAX);
- ``argmax`` does not say which of tied maxima it returns, and ``max`` does
  not say what NaN does: PyTorch's rule (first maximum; a NaN wins, the last
  NaN) is built from comparisons, ``where`` and ``min``/``max`` of indices
  (:func:`torch_max`, also for adaptive and fractional max pooling);
- no scatter by flat index (``np.add.at``): :mod:`colnn.ops.flat_index`.

The geometry (window starts, divisors, first in-bounds cells) is plain
arithmetic on the :class:`~colnn.core.window.Window` and is moved to the
array's device once per call.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from ..core.checks import accumulation_dtype, as_numpy_dtype, foreign_namespace, move_numpy, same_library, type_name
from ..core.indices import index_dtype
from ..core.window import Window

__all__ = [
    "namespace",
    "pad_input",
    "window_cells",
    "scatter_cells",
    "im2col_window",
    "col2im_window",
    "unfold_window",
    "fold_window",
    "ArrayAPIPoolStrategy",
    "conv_forward",
    "conv_backward",
    "check_strategy",
    "as_common_dtype",
    "copy_as",
    "device_of",
    "accumulator",
    "as_namespace_of",
    "torch_max",
    "grouped",
    "grouped_matmul",
    "expand_axis",
]



def namespace(*arrays: Any) -> Any:
    """The Array API namespace of ``arrays`` (NumPy's for NumPy arrays), via ``array_api_compat``."""
    import array_api_compat

    return array_api_compat.array_namespace(*arrays)


def check_strategy(strategy: str | None, x: Any, choices: tuple[str, ...]) -> None:
    """``strategy`` None or one of ``choices``; for another library's array ``x``, None or ``"im2col"`` only.

    The value is checked first, so that a misspelt name is called that, whatever ``x`` is.
    """
    if strategy is not None and not (isinstance(strategy, str) and strategy in choices):
        raise ValueError(f"strategy must be one of {[None, *choices]}, got {strategy!r}")
    if strategy not in (None, "im2col") and foreign_namespace(x) is not None:
        raise ValueError(
            f"strategy {strategy!r} runs NumPy arrays only; {type_name(x)} runs strategy None or 'im2col' "
            "(the Array API path)"
        )


def as_common_dtype(*arrays: Any) -> tuple[Any, ...]:
    """``arrays`` (None kept as None) in their common dtype, as ``np.result_type`` would choose it."""
    present = [array for array in arrays if array is not None]
    xp = namespace(*present)
    dtype = xp.result_type(*present)
    return tuple(None if array is None else (array if array.dtype == dtype else xp.astype(array, dtype))
                 for array in arrays)


def copy_as(array: Any, dtype: Any = None, *, copy: bool = True) -> Any:
    """``array`` in ``dtype`` (default: its own), in its own namespace and on its device; a copy unless ``copy=False``."""
    if getattr(array, "requires_grad", False):
        array = array.detach()  # a copy of a Parameter that still tracked autograd would warn and build a graph
    xp = namespace(array)
    dtype = array.dtype if dtype is None else dtype
    if array.dtype == dtype and not copy:
        return array
    return xp.astype(array, dtype, copy=True) if array.dtype != dtype else xp.asarray(array, copy=True)


def as_namespace_of(value: Any, like: Any, name: str = "value", like_name: str = "input") -> Any:
    """``value`` (an array of ``like``'s library, a NumPy array or a sequence) as an array of ``like``'s, on its device.

    No copy when it is one already. An array of a third library, or of
    ``like``'s on another device, is a TypeError or ValueError naming ``name``
    and ``like_name`` (:func:`colnn.core.checks.same_library`).
    """
    return same_library(value, name, like, like_name, moves=True)


def expand_axis(x: Any, axis: int) -> Any:
    """``x`` with a unit axis inserted at ``axis`` (1-d ops run as 2-d with a unit height)."""
    return namespace(x).expand_dims(x, axis=axis)


def device_of(x: Any) -> Any:
    """The device ``x`` lives on (``"cpu"`` for NumPy)."""
    import array_api_compat

    return array_api_compat.device(x)


# --- geometry per spatial axis ------------------------------------------------------


def _axes(window: Window) -> list[tuple[int, int, int, int, int, int]]:
    """``(size, kernel, stride, dilation, pad_before, out)`` of each spatial axis."""
    return list(zip(window.in_size, window.kernel_size, window.stride, window.dilation, window.padding,
                    window.out_size))


def _pad_after(window: Window) -> list[int]:
    return list(window.pad_end)


def _offset_slices(window: Window) -> list[tuple[slice, ...]]:
    """For each kernel offset, row-major, the strided slice of the padded input it reads."""
    per_axis = [
        [slice(k * dilation, k * dilation + stride * (out - 1) + 1, stride) for k in range(kernel)]
        for _, kernel, stride, dilation, _, out in _axes(window)
    ]
    return [(slice(None), slice(None), *combo) for combo in itertools.product(*per_axis)]


# --- im2col / col2im --------------------------------------------------------------------


def pad_input(x: Any, window: Window, pad_value: Any = 0) -> Any:
    """Pad ``(N, C, *spatial)`` so that every window lies inside; dtype and device kept."""
    widths = [(0, 0), (0, 0), *[(axis[4], after) for axis, after in zip(_axes(window), _pad_after(window))]]
    if not any(before or after for before, after in widths):
        return x
    import array_api_extra as xpx

    return xpx.pad(x, widths, constant_values=pad_value, xp=namespace(x))


def _window_slices(window: Window) -> list[tuple[slice, ...]]:
    """For each window, row-major, the slice of the padded input it covers (its cells, strided by the dilation)."""
    per_axis = [
        [slice(o * stride, o * stride + dilation * (kernel - 1) + 1, dilation) for o in range(out)]
        for _, kernel, stride, dilation, _, out in _axes(window)
    ]
    return [(slice(None), slice(None), *combo) for combo in itertools.product(*per_axis)]


def _per_window(window: Window) -> bool:
    """Whether there are fewer windows than kernel offsets (a kernel nearly as large as the input).

    Then one slice per window is the shorter loop: eager JAX compiles every distinct slice.
    """
    return window_size(window) < window.kernel_volume


def window_cells(x: Any, window: Window, pad_value: Any = 0) -> Any:
    """``(N, C, K, *out)``: cell ``k`` (row-major kernel offset) of every window, ``K = kernel_area``."""
    xp = namespace(x)
    padded = pad_input(x, window, pad_value)
    if not _per_window(window):
        return xp.stack([padded[index] for index in _offset_slices(window)], axis=2)
    n, c, area = x.shape[0], x.shape[1], window.kernel_volume
    blocks = [xp.reshape(padded[index], (n, c, area)) for index in _window_slices(window)]
    return xp.reshape(xp.stack(blocks, axis=3), (n, c, area, *_spatial_out(window)))


def scatter_cells(cells: Any, input_shape: tuple[int, ...], window: Window) -> Any:
    """Adjoint of :func:`window_cells`: sum ``(N, C, K, *out)`` cells back into ``input_shape``.

    One strided add per kernel offset (or per window, when there are fewer), so
    that each cell sums its terms in kernel-offset order, as the NumPy loops do,
    and the sums agree bit for bit with them.
    """
    import array_api_extra as xpx

    xp = namespace(cells)
    padded_shape = (*input_shape[:2], *[
        before + size + after for (size, _, _, _, before, _), after in zip(_axes(window), _pad_after(window))
    ])
    padded = xp.zeros(padded_shape, dtype=cells.dtype, device=device_of(cells))
    if _per_window(window):
        # Windows last to first: every cell then receives its terms in kernel-offset order, as below.
        n, c, area = cells.shape[:3]
        rows = xp.reshape(cells, (n, c, area, window_size(window)))
        for w, index in reversed(list(enumerate(_window_slices(window)))):
            padded = xpx.at(padded, index).add(xp.reshape(rows[:, :, :, w], (n, c, *window.kernel_size)))
    else:
        for k, index in enumerate(_offset_slices(window)):
            padded = xpx.at(padded, index).add(cells[:, :, k, ...])
    inside = tuple(slice(before, before + size) for size, _, _, _, before, _ in _axes(window))
    return padded[(slice(None), slice(None), *inside)]


def _spatial_out(window: Window) -> tuple[int, ...]:
    return tuple(axis[5] for axis in _axes(window))


def im2col_window(x: Any, window: Window, pad_value: Any = 0) -> Any:
    """The book's layout: ``(N, C, H, W)`` -> ``(N*out_h*out_w, C*kh*kw)``, rows (n, oy, ox), columns (c, ky, kx)."""
    xp = namespace(x)
    cells = window_cells(x, window, pad_value)  # (N, C, K, oh, ow)
    n, c, k = cells.shape[:3]
    spatial = len(_axes(window))
    rows = xp.permute_dims(cells, (0, *range(3, 3 + spatial), 1, 2))
    return xp.reshape(rows, (n * window_size(window), c * k))


def window_size(window: Window) -> int:
    """Number of windows per plane (``out_h*out_w``)."""
    return int(np.prod(_spatial_out(window)))


def col2im_window(col: Any, input_shape: tuple[int, ...], window: Window) -> Any:
    """Adjoint of :func:`im2col_window`: ``(N*out_h*out_w, C*kh*kw)`` -> ``input_shape``, overlaps summed."""
    xp = namespace(col)
    n, c = input_shape[:2]
    out = _spatial_out(window)
    spatial = len(out)
    rows = xp.reshape(col, (n, *out, c, window.kernel_volume))
    cells = xp.permute_dims(rows, (0, spatial + 1, spatial + 2, *range(1, spatial + 1)))
    return scatter_cells(cells, input_shape, window)


def unfold_window(x: Any, window: Window) -> Any:
    """PyTorch's layout: ``(N, C, H, W)`` -> ``(N, C*kh*kw, L)``, zero padding."""
    xp = namespace(x)
    cells = window_cells(x, window, 0)
    return xp.reshape(cells, (x.shape[0], x.shape[1] * window.kernel_volume, window_size(window)))


def fold_window(blocks: Any, input_shape: tuple[int, ...], window: Window) -> Any:
    """Adjoint of :func:`unfold_window`: ``(N, C*kh*kw, L)`` -> ``input_shape``, overlaps summed."""
    xp = namespace(blocks)
    cells = xp.reshape(blocks, (input_shape[0], input_shape[1], window.kernel_volume, *_spatial_out(window)))
    return scatter_cells(cells, input_shape, window)


def torch_max(cells: Any, axis: int) -> tuple[Any, Any]:
    """Maxima along ``axis`` and the offset PyTorch chooses (the index dtype): the first maximum, or the last NaN.

    ``cells`` is integer or floating, of any namespace; both results drop ``axis``.
    """
    xp = namespace(cells)
    device = device_of(cells)
    count = cells.shape[axis]
    shape = [1] * cells.ndim
    shape[axis] = count
    offsets = xp.reshape(xp.arange(count, dtype=index_dtype(xp, count), device=device), tuple(shape))
    if not xp.isdtype(cells.dtype, "real floating"):
        maxima = xp.max(cells, axis=axis, keepdims=True)
        first = xp.min(xp.where(cells == maxima, offsets, count), axis=axis)
        return xp.squeeze(maxima, axis=axis), first
    is_nan = xp.isnan(cells)
    # ``max`` may propagate NaN or not: take it over the non-NaN cells, then apply the rule.
    lowest = xp.asarray(-math.inf, dtype=cells.dtype, device=device)
    maxima = xp.max(xp.where(is_nan, lowest, cells), axis=axis, keepdims=True)
    first = xp.min(xp.where(cells == maxima, offsets, count), axis=axis)
    last_nan = xp.max(xp.where(is_nan, offsets, -1), axis=axis)
    has_nan = last_nan >= 0
    nan = xp.asarray(math.nan, dtype=cells.dtype, device=device)
    return xp.where(has_nan, nan, xp.squeeze(maxima, axis=axis)), xp.where(has_nan, last_nan, first)


# --- pooling ------------------------------------------------------------------------------


def accumulator(xp: Any, dtype: Any) -> Any:
    """The dtype of ``xp`` that sums of ``dtype`` are taken in: float32 for float16 (PyTorch's CPU kernels), else ``dtype``."""
    return getattr(xp, accumulation_dtype(dtype).name)


def _lowest(xp: Any, dtype: Any) -> Any:
    """What a padded cell holds for max pooling: -inf, or the integer minimum."""
    if xp.isdtype(dtype, "real floating"):
        return -float("inf")
    return int(xp.iinfo(dtype).min)


def _on_device(xp: Any, array: np.ndarray, like: Any, dtype: Any = None) -> Any:
    """A small NumPy geometry array as an array of ``like``'s namespace and device, in ``dtype`` (one of ``xp``'s).

    Cast on the NumPy side, so that ``xp`` is never asked for a dtype it may lack;
    an array of ``xp`` already (a divisor the caller built there) is only moved.
    """
    if not isinstance(array, np.ndarray):
        return xp.asarray(array, dtype=dtype, device=device_of(like))
    if dtype is not None:
        array = array.astype(as_numpy_dtype(dtype), copy=False)
    return move_numpy(np.ascontiguousarray(array), xp, device_of(like), "geometry")


class ArrayAPIPoolStrategy:
    """Pooling on any Array API namespace: the tutorial's im2col rows, one reduction per window.

    Implements :class:`colnn.ops.pooling.PoolStrategy`; ``window_offset`` is an
    array of the input's namespace, in its index dtype, holding ``ky*kernel_w + kx``.
    """

    name = "im2col"

    def max_forward(self, x: Any, window: Window) -> tuple[Any, Any]:
        xp = namespace(x)
        lowest = _lowest(xp, x.dtype)
        maxima, offset = torch_max(window_cells(x, window, lowest), axis=2)  # cells (N, C, K, *out)
        # A window whose in-bounds cells all hold the lowest value may have matched a
        # padded cell first: PyTorch reports the first in-bounds one.
        first_inside = _on_device(xp, window.first_inside(), x, offset.dtype)
        return maxima, xp.where(maxima == lowest, first_inside, offset)

    def max_values(self, x: Any, window: Window) -> Any:
        return self.max_forward(x, window)[0]

    def max_backward(self, grad_output: Any, window_offset: Any, input_shape: tuple[int, ...], window: Window) -> Any:
        xp = namespace(grad_output)
        acc = accumulator(xp, grad_output.dtype)
        grad = xp.astype(grad_output, acc)
        zero = xp.zeros((), dtype=acc, device=device_of(grad_output))
        cells = xp.stack([xp.where(window_offset == k, grad, zero) for k in range(window.kernel_volume)], axis=2)
        return xp.astype(scatter_cells(cells, input_shape, window), grad_output.dtype)

    def avg_forward(self, x: Any, window: Window, divisor: np.ndarray) -> Any:
        xp = namespace(x)
        acc = accumulator(xp, x.dtype)
        sums = xp.sum(xp.astype(window_cells(x, window, 0), acc), axis=2)
        return xp.astype(sums / _on_device(xp, divisor, x, acc), x.dtype)

    def avg_backward(self, grad_output: Any, input_shape: tuple[int, ...], window: Window, divisor: np.ndarray) -> Any:
        xp = namespace(grad_output)
        acc = accumulator(xp, grad_output.dtype)
        share = xp.astype(grad_output, acc) / _on_device(xp, divisor, grad_output, acc)
        cells = xp.stack([share] * window.kernel_volume, axis=2)
        return xp.astype(scatter_cells(cells, input_shape, window), grad_output.dtype)


# --- convolution ----------------------------------------------------------------------------


def conv_forward(x: Any, weight: Any, bias: Any | None, window: Window, groups: int) -> tuple[Any, Any]:
    """``out = col_g @ W_g.T`` per group: ``(N, FN, *out)``, and ``col`` for the backward pass."""
    xp = namespace(x, weight)
    n = x.shape[0]
    filters = weight.shape[0]
    col = im2col_window(x, window, 0)  # (N*L, C*K)
    per_group = col.shape[1] // groups
    weight_rows = xp.reshape(weight, (filters, math.prod(weight.shape[1:])))
    out_per_group = filters // groups
    parts = [
        xp.matmul(col[:, g * per_group:(g + 1) * per_group],
                  xp.matrix_transpose(weight_rows[g * out_per_group:(g + 1) * out_per_group, :]))
        for g in range(groups)
    ]
    rows = parts[0] if groups == 1 else xp.concat(parts, axis=1)  # (N*L, FN)
    if bias is not None:
        rows = rows + bias
    out = _spatial_out(window)
    spatial = len(out)
    result = xp.permute_dims(xp.reshape(rows, (n, *out, filters)), (0, spatial + 1, *range(1, spatial + 1)))
    return result, col


def conv_backward(
    grad_output: Any, input_shape: tuple[int, ...], col: Any, weight: Any, window: Window, groups: int
) -> tuple[Any, Any, Any]:
    """``(grad_input, grad_weight, grad_bias)`` from the saved ``col``: ``dW_g = dout_g.T @ col_g``, ``dcol_g = dout_g @ W_g``."""
    xp = namespace(grad_output, weight)
    filters = weight.shape[0]
    spatial = grad_output.ndim - 2
    grad_rows = xp.reshape(xp.permute_dims(grad_output, (0, *range(2, 2 + spatial), 1)),
                           (math.prod(grad_output.shape) // filters, filters))
    weight_rows = xp.reshape(weight, (filters, math.prod(weight.shape[1:])))
    per_group = col.shape[1] // groups
    out_per_group = filters // groups
    grad_weight_parts, grad_col_parts = [], []
    for g in range(groups):
        dout_g = grad_rows[:, g * out_per_group:(g + 1) * out_per_group]
        grad_weight_parts.append(xp.matmul(xp.matrix_transpose(dout_g), col[:, g * per_group:(g + 1) * per_group]))
        grad_col_parts.append(xp.matmul(dout_g, weight_rows[g * out_per_group:(g + 1) * out_per_group, :]))
    concat = (lambda parts, axis: parts[0]) if groups == 1 else xp.concat
    grad_weight = xp.reshape(concat(grad_weight_parts, axis=0), weight.shape)
    grad_col = concat(grad_col_parts, axis=1)
    grad_bias = xp.sum(grad_rows, axis=0)
    return col2im_window(grad_col, input_shape, window), grad_weight, grad_bias


def grouped(matrix: Any, groups: int) -> Any:
    """``(R, groups*K)`` -> ``(groups, R, K)``: each group's columns as one matrix of a batch."""
    xp = namespace(matrix)
    return xp.permute_dims(xp.reshape(matrix, (matrix.shape[0], groups, matrix.shape[1] // groups)), (1, 0, 2))


def grouped_matmul(left: Any, right: Any, groups: int) -> Any:
    """``(R, groups*K) x (groups, K, M)`` -> ``(R, groups*M)``: one GEMM per group; float16 summed in float32."""
    xp = namespace(left, right)
    acc = accumulator(xp, left.dtype)
    product = xp.matmul(grouped(xp.astype(left, acc), groups), xp.astype(right, acc))  # (groups, R, M)
    rows = xp.reshape(xp.permute_dims(product, (1, 0, 2)), (left.shape[0], groups * right.shape[2]))
    return xp.astype(rows, left.dtype)
