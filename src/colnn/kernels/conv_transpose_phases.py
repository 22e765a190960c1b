"""Transposed convolution (dilation 1) by one GEMM and a col2im that sums each output cell once, phase by phase.

A transposed convolution sends input cell ``i`` through kernel cell ``k`` to
output cell ``o = stride*i - padding + k`` along each axis. The output cells
``o = r + stride*q`` of one phase ``r`` receive only the kernel cells ``k = (r
+ padding) mod stride + stride*t``, from the input cells ``q + (r + padding)
// stride - t``: along the last axis, each tap's products for a whole phase
plane are one run of a GEMM row, shifted. So per chunk of images one GEMM per
group, ``(FN/g * K, C_in/g) @ (C_in/g, B*D*H*Wp)``, gives the products of each
input cell with each kernel column, on input rows padded with zeros to ``Wp``
cells (:func:`row_padding`: the shifts never leave a row), and
:func:`colnn.kernels.conv_transpose_loops.gather_phases` sums each phase
plane from its taps' runs in a small accumulator and stores it once into
every ``stride``-th output cell, with the bias. The col2im path
(:func:`colnn.kernels.conv_chunked.conv_input_grad_chunked`) runs the same
GEMM without padding and adds every tap into the output with strides.

Measured (one thread, CPU time, the shared 2-core Intel Xeon VM, interleaved):
``colnn bench``'s T2 forward, (16, 64, 32, 32) by (64, 32, 4, 4), stride 2,
padding 1, float32: 12.1 ms against 14.4 by col2im (of which 0.48-0.50 ms
per image is the GEMM either way, col2im 0.22-0.25, this gather 0.13);
float64 24.4 against 27.3; 3x3 stride 2 0.84x, 2x2 stride 2 0.89x, 3x3
stride 1 0.89x, 3-d 4x4x4 stride 2 0.68x the col2im path's time. A deeper
GEMM, one per phase on the phase's own columns (``(FN, C_in*4) @ (C_in*4,
H*W)`` for T2), was slower: 19-20 ms, its four im2col copies 0.3 ms per image
and its GEMMs no faster than the one above. Small planes and rows that the
shifts pad by more than half run faster through col2im (:func:`pays`).

Each cell's value is a sum of its products (float64 keeps exact zeros; the
padding adds exact zeros). 1-D and 2-D run as 3-D with unit leading axes.
Threads (:func:`colnn.kernels.conv_chunked.in_parallel`, single-threaded BLAS) take
the next chunk of images from a queue when done with one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from ..core.window import Window
from .conv_chunked import GEMM_COLUMNS, chunk_images, in_parallel
from .threads import get_num_threads

__all__ = ["MIN_PLANE", "applies", "pays", "row_padding", "conv_transpose_phased"]

# Input cells per image plane below which the col2im path is faster (one thread, 64 -> 32 channels, 4x4
# kernel at stride 2: a 4x4 plane 1.24x slower this way, 8x8 1.27x faster; conv_transpose1d on 8 cells 1.7x
# slower).
MIN_PLANE = 64


def applies(x_shape: tuple[int, ...], weight: np.ndarray, window: Window) -> bool:
    """Whether the phases take this transposed convolution of ``x_shape`` by ``weight``: it can and it pays.

    ``window`` is the convolution that maps its output back to its input
    (:meth:`colnn.ops.conv._base.ConvTransposeArgs.window`). It can without
    dilation and with a finite weight (an inf or NaN times a padding cell's
    zero would give NaN where the output has no such product); it pays on
    planes of :data:`MIN_PLANE` cells at least whose rows the shifts pad by at
    most half (:func:`row_padding`): smaller ones run faster through the
    col2im path, whose GEMM has no padding columns and whose loops no per-row start-up.
    """
    return set(window.dilation) == {1} and pays(x_shape, window) and bool(np.isfinite(weight).all())


def pays(x_shape: tuple[int, ...], window: Window) -> bool:
    """The speed half of :func:`applies`: planes of :data:`MIN_PLANE` cells, rows padded by at most half."""
    width = x_shape[-1]
    _, padded_width = row_padding(width, window.in_size[-1], window.kernel_size[-1], window.stride[-1],
                                  window.padding[-1])
    return math.prod(x_shape[2:]) >= MIN_PLANE and 2 * padded_width <= 3 * width


def _lift(values: tuple[int, ...], fill: int) -> tuple[int, ...]:
    """``values`` of a 1-d or 2-d window as 3-d, ``fill`` on the leading axes."""
    return (fill,) * (3 - len(values)) + tuple(values)


def row_padding(width: int, out_width: int, kernel: int, stride: int, padding: int) -> tuple[int, int]:
    """``(left, padded_width)``: the zero cells around an input row that make every tap of every phase a run.

    Output cell ``r + stride*q`` of the last axis reads, through its phase's
    ``t``-th tap, input cell ``q + (r + padding) // stride - t``; the row must
    hold that cell for every ``q`` of the phase, zero where it is outside the input.
    """
    shifts = [((r + padding) // stride - t, len(range(r, out_width, stride)))
              for r in range(min(stride, out_width)) for t in range(len(range((r + padding) % stride, kernel, stride)))]
    left = max([0] + [-shift for shift, _ in shifts])
    right = max([0] + [shift + count - width for shift, count in shifts])
    return left, left + width + right


def conv_transpose_phased(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, window: Window,
                          groups: int, budget_bytes: int) -> np.ndarray:
    """The transposed convolution ``(N, FN, *out)`` of ``x`` ``(N, C_in, *in)``: GEMM, then col2im by phases.

    ``weight`` ``(C_in, FN/groups, *k)`` and ``bias`` ``(FN,)`` (or None) share
    ``x``'s dtype, float32 or float64; ``window`` (1 to 3 axes, :func:`applies`)
    maps ``*out`` to ``*in``. A thread's buffers stay within ``budget_bytes``
    (one image's at least).
    """
    x = np.ascontiguousarray(x)
    n_images, in_channels = x.shape[:2]
    out_channels = weight.shape[1] * groups
    out = np.empty((n_images, out_channels, *window.in_size), dtype=x.dtype)
    in_size = _lift(x.shape[2:], 1)
    kernel, stride, padding = _lift(window.kernel_size, 1), _lift(window.stride, 1), _lift(window.padding, 0)
    left, padded_width = row_padding(in_size[2], window.in_size[-1], kernel[2], stride[2], padding[2])
    # (g, FN/g * K, C_in/g): the GEMM's left factor, a transposed view that BLAS reads as it is.
    weight_columns = weight.reshape(groups, in_channels // groups, -1).transpose(0, 2, 1)
    has_bias = bias is not None
    bias_or_zero = np.ascontiguousarray(bias) if has_bias else np.zeros(out_channels, x.dtype)
    images = x.reshape(n_images, in_channels, *in_size)
    out_cells = out.reshape(n_images, out_channels, *_lift(window.in_size, 1))
    geometry = (in_size, left, kernel, stride, padding)
    in_cells = math.prod(in_size[:2]) * padded_width
    product_rows = out_channels * window.kernel_volume
    # As the convolution's chunks: within a thread's budget, and no wider than GEMM_COLUMNS, past which BLAS
    # slows down.
    per_chunk = min(chunk_images(n_images, (product_rows + in_channels) * in_cells * x.itemsize,
                                 budget_bytes // get_num_threads()),
                    max(1, -(-GEMM_COLUMNS // in_cells)))
    # Each thread takes the next chunk when done with one, rather than a fixed share: on a machine shared with
    # other work, a thread that gets less of a core does fewer images (as in colnn.kernels.image_gemm).
    firsts = iter(range(0, n_images, per_chunk))

    def phase_chunks(share: slice, parts: int) -> None:
        _chunks(images, firsts, per_chunk, in_cells, weight_columns, geometry, bias_or_zero, has_bias, out_cells)

    in_parallel(n_images, x.nbytes // in_channels * product_rows, phase_chunks, shared_queue=True)  # the products
    return out


def _chunks(images: np.ndarray, firsts: Iterator[int], per_chunk: int, in_cells: int, weight_columns: np.ndarray,
            geometry: tuple, bias: np.ndarray, has_bias: bool, out: np.ndarray) -> None:
    """One thread's work: ``out`` ``(N, FN, OD, OH, OW)`` of ``images`` ``(N, C_in, D, H, W)``, chunk by chunk.

    Each chunk is ``per_chunk`` images from the next of ``firsts``, shared with the other threads; an
    image's GEMM columns are its ``in_cells`` padded input cells.
    """
    from .conv_transpose_loops import gather_phases, pad_rows

    n_images, in_channels = images.shape[:2]
    groups, product_rows = weight_columns.shape[:2]
    products_buffer = np.empty(groups * product_rows * per_chunk * in_cells, dtype=images.dtype)
    rows_buffer = np.zeros(in_channels * per_chunk * in_cells, dtype=images.dtype)
    for first in firsts:
        count = min(per_chunk, n_images - first)
        size = count * in_cells
        # Each row keeps its place in the buffer, so that its padding cells stay the zeros they were made.
        rows = rows_buffer.reshape(in_channels, per_chunk * in_cells)[:, :size]
        pad_rows(images[first:first + count], geometry[1], rows)
        products = products_buffer[:groups * product_rows * size].reshape(groups * product_rows, size)
        np.matmul(weight_columns, rows.reshape(groups, in_channels // groups, size),
                  out=products.reshape(groups, product_rows, size))
        gather_phases(products, *geometry, bias, has_bias, out[first:first + count])
