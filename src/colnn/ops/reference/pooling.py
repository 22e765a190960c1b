"""Pooling on the Array API standard: the tutorial's im2col cells, one reduction per window (the reference).

Max pooling reduces each window's cells (:func:`colnn.ops.reference.windows.window_cells`)
with PyTorch's rule (:func:`colnn.ops.flat_index.torch_max`: first maximum, last
NaN); average pooling sums them (float16 in float32) and divides by the
window's divisor. Backward scatters back through the adjoint of the cells.
Any number of spatial axes, any dilation, any library's arrays where they live.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...core.window import Window
from ..flat_index import scatter_add_flat, torch_max
from ..xp import accumulator, device_of, lowest, namespace, on_device
from .windows import scatter_cells, window_cells

__all__ = ["ReferencePool"]


class ReferencePool:
    """Pooling on any Array API namespace; implements :class:`colnn.ops.strategy.PoolStrategy`.

    ``window_offset`` is an array of the input's namespace, in its index dtype,
    holding the flat offset of the chosen cell inside its window (row-major over
    ``kernel_size``).
    """

    name = "im2col"

    def max_forward(self, x: Any, window: Window) -> tuple[Any, Any]:
        xp = namespace(x)
        low = lowest(xp, x.dtype)
        maxima, offset = torch_max(window_cells(x, window, low), axis=2)  # cells (N, C, K, *out)
        # A window whose in-bounds cells all hold the lowest value may have matched a
        # padded cell first: PyTorch reports the first in-bounds one.
        first_inside = on_device(xp, window.first_inside(), x, offset.dtype)
        return maxima, xp.where(maxima == low, first_inside, offset)

    def max_values(self, x: Any, window: Window) -> Any:
        return self.max_forward(x, window)[0]

    def max_backward(self, grad_output: Any, window_offset: Any, input_shape: tuple[int, ...], window: Window) -> Any:
        # Each window's gradient to its chosen cell, added window by window (PyTorch's order: a cell
        # that several windows chose sums their gradients in output order, bit for bit).
        xp = namespace(grad_output)
        acc = accumulator(xp, grad_output.dtype)
        coordinates = window.cell_coordinates(window_offset)
        inside = xp.ones(tuple(window_offset.shape), dtype=xp.bool, device=device_of(grad_output))
        flat = xp.zeros_like(coordinates[0])
        for position, size in zip(coordinates, window.in_size):
            # An empty window's reported cell lies outside the input: it gets nothing.
            inside = inside & (position >= 0) & (position < size)
            flat = flat * size + position
        flat = xp.where(inside, flat, xp.zeros_like(flat))
        grad = scatter_add_flat(xp.astype(grad_output, acc), flat, input_shape, inside)
        return xp.astype(grad, grad_output.dtype)

    def avg_forward(self, x: Any, window: Window, divisor: np.ndarray) -> Any:
        xp = namespace(x)
        acc = accumulator(xp, x.dtype)
        sums = xp.sum(xp.astype(window_cells(x, window, 0), acc), axis=2)
        return xp.astype(sums / on_device(xp, divisor, x, acc), x.dtype)

    def avg_backward(self, grad_output: Any, input_shape: tuple[int, ...], window: Window, divisor: np.ndarray) -> Any:
        xp = namespace(grad_output)
        acc = accumulator(xp, grad_output.dtype)
        share = xp.astype(grad_output, acc) / on_device(xp, divisor, grad_output, acc)
        cells = xp.stack([share] * window.kernel_volume, axis=2)
        return xp.astype(scatter_cells(cells, input_shape, window), grad_output.dtype)
