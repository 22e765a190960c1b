"""The default convolution strategy: batch-chunked im2col + GEMM, the batch split over threads, in 2-D and 3-D.

Each image's column matrix is ``(C*K, L)`` with ``K`` the kernel's cells and
``L`` the output's (``out_h*out_w``, or ``out_d*out_h*out_w``): row ``(c, *k)``,
column ``(*o)``. A chunk of ``B`` images lays them side by side, ``(C*K, B*L)``,
so that ``weight (FN, C*K) @ col`` is the chunk's whole output in one BLAS
call. The buffer holds at most ``budget_bytes`` (and one image at least), so
memory stays bounded whatever the batch, and a chunk takes no more images than
give its GEMM :data:`GEMM_COLUMNS` columns, beyond which OpenBLAS slows down; a 3-D image whose columns exceed
:data:`SLAB_BYTES` is built a slab of output depths at a time instead, so that
its columns are still in cache when the GEMM reads them. 1-D convolutions come
here as 2-D with a unit height. Ungrouped 3-D convolutions with depth dilation 1
and wide planes share each input plane's 2-D columns between the output depths
that read it instead (:mod:`colnn.kernels.conv3d_planes`; backward at depth stride 1).

The same loops give the backward pass (``dW`` by one GEMM per chunk, ``dx`` by
one GEMM and col2im) and, since a transposed convolution is a convolution's
input gradient, ``conv_transpose``'s forward (:func:`conv_input_grad_chunked`)
and its backward (:func:`conv_transpose_backward_chunked`).

Threads. The batch is cut into one contiguous share of images per thread
(:func:`colnn.get_num_threads`); each thread runs im2col, the GEMM and the
layout change of its own share, with its own buffers, while BLAS runs on one
thread. Running every step in parallel beats multi-threaded BLAS between
single-threaded copies: OpenBLAS's idle workers spin between calls, and on
two cores they steal the core the copy runs on (C1 of ``colnn bench``: 58 ms
that way, 44 ms this way; C2: 3.8 ms against 1.9 ms). The BLAS limit is
process-wide while a call runs, so calls take a lock, one at a time.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..core.window import Window
from . import conv3d_planes, threads
from .geometry import window_args
from .threads import get_num_threads

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

__all__ = [
    "supports_dtype", "chunk_images", "SLAB_BYTES", "GEMM_COLUMNS", "in_parallel", "col_bytes",
    "conv2d_forward_chunked", "forward_images", "conv2d_backward_chunked", "conv_input_grad_chunked",
    "conv_transpose_backward_chunked",
]

_lock = threading.Lock()  # guards the pool below and the process-wide BLAS limit
_executor: ThreadPoolExecutor | None = None
_executor_workers = 0
_blas_controller = None


def _forget_threads_after_fork() -> None:
    """A forked child has none of the parent's pool threads: start afresh rather than wait on them."""
    global _lock, _executor, _executor_workers
    _lock, _executor, _executor_workers = threading.Lock(), None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_threads_after_fork)


def supports_dtype(dtype: np.dtype) -> bool:
    """Whether this strategy takes ``dtype`` (float32 and float64; others use the reference)."""
    return np.dtype(dtype) in (np.dtype(np.float32), np.dtype(np.float64))


def chunk_images(n_images: int, bytes_per_image: int, budget_bytes: int) -> int:
    """Images per chunk so that a chunk's column matrix fits ``budget_bytes`` (at least 1)."""
    return max(1, min(n_images, budget_bytes // max(1, bytes_per_image)))


# A 3-D convolution builds an image's columns a slab of output depths at a time, at most this many
# bytes, so that they are still in cache when the GEMM reads them: conv3d (4, 16, 16, 32, 32) by
# (32, 16, 3, 3, 3), padding 1, one thread, one image took 12 ms in slabs of one depth (1.7 MB), 15 ms
# in slabs of 4 and 25 ms at once (28 MB).
SLAB_BYTES = 2 << 20
# A chunk of images stops once its GEMMs have this many columns (``B*L``); the budget may allow more.
# Wider, they run at half speed on the 2-core AMD EPYC of ``colnn bench`` (OpenBLAS SkylakeX kernel, one
# thread): (512, 64) @ (64, N) at 59-73 GFLOP/s with N = 512-1024, 22-33 with N = 2048-4096, and
# (64, 192) @ (192, N) at 66 for N = 4000, 28 for 16000; the forward of conv_transpose2d (16, 64, 32,
# 32) by (64, 32, 4, 4), stride 2, took 44 ms with one image per chunk, 65 ms with four (single thread,
# interleaved). Narrow images still share a chunk: a GEMM of 196 columns (conv2d on 14x14) is slow.
GEMM_COLUMNS = 1024


class _Columns:
    """One thread's column loops and scratch for a 2-D or 3-D window: ``col`` ``(C*K, P)``, ``rows`` ``(FN, P)``.

    A piece of work is ``count`` images at output depths ``[lo, hi)`` (a 2-D
    window has the one depth ``[0, 1)``), its ``P`` columns ordered ``(b, od,
    oy, ox)``: several whole images while their columns fit ``budget_bytes``
    and :data:`GEMM_COLUMNS` (one at least); in 3-D, an image whose columns exceed :data:`SLAB_BYTES` is
    done a slab of depths at a time. 2-D runs :mod:`colnn.kernels.im2col_loops`,
    3-D :mod:`colnn.kernels.im2col3d_loops`; 1-D comes here with a unit height
    (:meth:`Window.with_unit_axis`).
    """

    def __init__(self, images_shape: tuple[int, ...], out_channels: int, window: Window, dtype: np.dtype,
                 budget_bytes: int) -> None:
        n_images, channels = images_shape[:2]
        self.ndim = window.ndim
        self._depth_args: tuple = ()
        if self.ndim == 2:
            from . import im2col_loops

            self._im2col, self._col2im = im2col_loops.im2col_chunk, im2col_loops.col2im_chunk
            self.out_depth = 1
        elif self.ndim == 3:
            from . import im2col3d_loops

            self._im2col, self._col2im = im2col3d_loops.im2col_chunk3, im2col3d_loops.col2im_chunk3
            self.out_depth = window.out_size[0]
            self._depth_start = window.starts()[0]
            self._depth_args = (window.kernel_size[0], window.dilation[0])
        else:
            raise ValueError(f"the chunked convolution takes 2-D or 3-D windows, got {window.ndim}-D")
        self._geometry = window_args(window)
        self.slice_len = window.out_size[-2] * window.out_size[-1]
        self.col_rows = channels * window.kernel_volume
        self.out_channels = out_channels
        slice_bytes = self.col_rows * self.slice_len * dtype.itemsize
        image_bytes = slice_bytes * self.out_depth
        if self.ndim == 3 and image_bytes > min(budget_bytes, SLAB_BYTES):
            self.images, self.depths = 1, max(1, min(self.out_depth, min(budget_bytes, SLAB_BYTES) // slice_bytes))
        else:
            columns_per_image = self.out_depth * self.slice_len
            self.images = min(chunk_images(n_images, image_bytes, budget_bytes),
                              max(1, -(-GEMM_COLUMNS // columns_per_image)))
            self.depths = self.out_depth
        size = self.images * self.depths * self.slice_len
        self._col = np.empty(self.col_rows * size, dtype=dtype)
        self._rows = np.empty(out_channels * size, dtype=dtype)

    def pieces(self, n_images: int):
        """``(first image, count, lo, hi, col, rows)`` for each piece of a share of ``n_images`` images."""
        for first in range(0, n_images, self.images):
            count = min(self.images, n_images - first)
            for lo in range(0, self.out_depth, self.depths):
                hi = min(lo + self.depths, self.out_depth)
                size = count * (hi - lo) * self.slice_len
                yield (first, count, lo, hi, self._col[:self.col_rows * size].reshape(self.col_rows, size),
                       self._rows[:self.out_channels * size].reshape(self.out_channels, size))

    def im2col(self, images: np.ndarray, lo: int, hi: int, col: np.ndarray) -> None:
        """Columns of ``images`` ``(B, C, *in)`` at output depths ``[lo, hi)`` into ``col``."""
        if self.ndim == 2:
            self._im2col(images, *self._geometry, col)
        else:
            self._im2col(images, self._depth_start[lo:hi], *self._depth_args, *self._geometry, col)

    def col2im(self, col: np.ndarray, lo: int, hi: int, images: np.ndarray) -> None:
        """Sum ``col`` (depths ``[lo, hi)``) into ``images``, which the first piece of an image overwrites."""
        if self.ndim == 2:
            self._col2im(col, *self._geometry, images)
            return
        if lo == 0:
            images[:] = 0
        self._col2im(col, self._depth_start[lo:hi], *self._depth_args, *self._geometry, images)

    def planes(self, planes: np.ndarray, first: int, count: int, lo: int, hi: int) -> np.ndarray:
        """The piece's part of ``planes`` ``(N, FN, L)``: ``(count, FN, (hi - lo) * out_h * out_w)``."""
        return planes[first:first + count, :, lo * self.slice_len:hi * self.slice_len]


def in_parallel(n_images: int, col_bytes: int, work: Callable[[slice, int], object], shared_queue: bool = False,
                ) -> list:
    """Call ``work(share, parts)`` on each of ``parts`` contiguous shares of the images, one per thread.

    Returns the results in share order. With one thread, one image or a column
    matrix of under :data:`~colnn.kernels.threads.SERIAL_BELOW_BYTES` in all, it runs
    in the calling thread and leaves BLAS as it is. ``shared_queue``: ``work``
    takes its images from a queue shared by all threads, not from its share;
    the calling thread then runs the first call itself, and a worker that has
    not started when it is done has nothing left to do, so it is cancelled
    rather than waited for (its result is None): on a machine busy with other
    work, waking a thread can take milliseconds.
    """
    global _executor, _executor_workers, _blas_controller
    parts = 1 if col_bytes < threads.SERIAL_BELOW_BYTES else max(1, min(get_num_threads(), n_images))
    bounds = np.linspace(0, n_images, parts + 1).astype(int)
    shares = [slice(int(bounds[i]), int(bounds[i + 1])) for i in range(parts)]
    if parts == 1:
        return [work(shares[0], 1)]
    # Imported with the first parallel call: concurrent.futures brings logging, which a book script that
    # builds one small network never needs.
    from concurrent.futures import ThreadPoolExecutor, wait

    from threadpoolctl import ThreadpoolController

    with _lock:
        if _executor_workers < parts:
            if _executor is not None:
                _executor.shutdown()
            _executor = ThreadPoolExecutor(max_workers=parts, thread_name_prefix="colnn-conv")
            _executor_workers = parts
        if _blas_controller is None:
            _blas_controller = ThreadpoolController()
        assert _executor is not None  # made above for `parts` workers
        with _blas_controller.limit(limits=1, user_api="blas"):
            if not shared_queue:
                futures = [_executor.submit(work, share, parts) for share in shares]
                return [future.result() for future in futures]
            # The calling thread works too: it starts on the queue at once, and a worker the machine is slow
            # to wake finds nothing left. (With fixed shares, the calling thread taking one made C1 of
            # ``colnn bench``, Winograd, 10-20% slower against ONNX Runtime on the loaded 2-core machine.)
            futures = [_executor.submit(work, share, parts) for share in shares[1:]]
            try:
                first = work(shares[0], parts)
            finally:  # never leave while a worker still writes, nor lift the BLAS limit under it
                for future in futures:
                    future.cancel()
                wait(futures)
            return [first, *(None if future.cancelled() else future.result() for future in futures)]


def col_bytes(x_shape: tuple[int, ...], window: Window, itemsize: int) -> int:
    """Bytes of the whole batch's column matrix: the measure of a call's work (for :func:`in_parallel` and
    :func:`~colnn.kernels.threads.threads_for`), whichever way the convolution is computed."""
    return x_shape[0] * x_shape[1] * window.kernel_volume * math.prod(window.out_size) * itemsize


def conv2d_forward_chunked(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, window: Window, groups: int, budget_bytes: int,
    relu: bool = False, out: np.ndarray | None = None,
) -> np.ndarray:
    """Convolution by chunked im2col and one GEMM per chunk and group; all buffers within ``budget_bytes``.

    ``x`` ``(N, C, *in)``, ``weight`` ``(FN, C/groups, *k)`` and ``bias``
    ``(FN,)`` share a dtype, float32 or float64; ``window`` has 2 axes, or 3
    (the 2-D core's name, kept for its callers).
    Returns ``(N, FN, *out)``, ``relu(conv + bias)`` with ``relu``
    (:mod:`colnn.kernels.epilogue`).
    """
    x = np.ascontiguousarray(x)
    n_images, out_channels = x.shape[0], weight.shape[0]
    if out is None:
        out = np.empty((n_images, out_channels, *window.out_size), dtype=x.dtype)

    def forward_share(share: slice, parts: int) -> None:
        forward_images(x[share], weight, bias, window, groups, budget_bytes // parts, out[share], relu)

    in_parallel(n_images, col_bytes(x.shape, window, x.itemsize), forward_share)
    return out


def forward_images(
    images_in: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, window: Window, groups: int,
    budget_bytes: int, out: np.ndarray, relu: bool = False,
) -> None:
    """One thread's share of :func:`conv2d_forward_chunked`: ``out`` ``(B, FN, *out)`` of ``images_in``.

    Its sums are the direct sums of products (one GEMM per chunk and group), so
    it is also the exact path that the Winograd kernel falls back to.
    """
    from . import im2col_loops

    if conv3d_planes.applies(window, groups, relu):
        conv3d_planes.Planes(weight, window, images_in.dtype, budget_bytes).forward(images_in, bias, out)
        return
    out_channels = weight.shape[0]
    weight_rows = weight.reshape(groups, out_channels // groups, -1)
    group_channels = out_channels // groups
    bias_or_empty = np.zeros(out_channels, images_in.dtype) if bias is None else np.ascontiguousarray(bias)
    out_planes = out.reshape(out.shape[0], out_channels, math.prod(window.out_size))  # not -1: a share may be empty
    columns = _Columns(images_in.shape, out_channels, window, images_in.dtype, budget_bytes)
    group_rows = columns.col_rows // groups
    for first, count, lo, hi, col, rows in columns.pieces(len(images_in)):
        columns.im2col(images_in[first:first + count], lo, hi, col)
        # One call for every group: NumPy runs the groups' GEMMs in C (a depthwise conv3d has
        # thousands of them, one per channel and slab).
        np.matmul(weight_rows, col.reshape(groups, group_rows, -1), out=rows.reshape(groups, group_channels, -1))
        im2col_loops.rows_to_nchw(rows, bias_or_empty, bias is not None, relu,
                                  columns.planes(out_planes, first, count, lo, hi))


def conv2d_backward_chunked(
    grad_output: np.ndarray, x: np.ndarray, weight: np.ndarray, window: Window, groups: int, budget_bytes: int,
    input_grad: bool = True, weight_grad: bool = True,
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Gradients ``(grad_input, grad_weight, grad_bias)`` of :func:`conv2d_forward_chunked`.

    With ``input_grad=False`` ``grad_input`` is None and its GEMM and col2im are
    skipped; with ``weight_grad=False`` ``grad_weight`` and ``grad_bias`` are None
    and the columns of ``x`` are not built.

    The column matrix is rebuilt chunk by chunk rather than kept from forward,
    so memory stays within the budget; per chunk and group, one GEMM gives the
    weight gradient's share and one the column gradient, which col2im folds
    into ``grad_input``. Each thread sums its own weight gradient, and its
    bias gradient as it lays out the output gradient
    (:mod:`colnn.kernels.conv_grad_loops`); the shares are added at the end.
    """
    x = np.ascontiguousarray(x)
    grad_input = np.empty(x.shape, dtype=x.dtype) if input_grad else None
    if conv3d_planes.applies_backward(window, groups):
        grad_weight = _backward_planes(grad_output, x, weight, window, budget_bytes, grad_input, weight_grad)
    else:
        grad_weight, grad_bias = _backward(grad_output, x, x.shape, weight, window, groups, budget_bytes, grad_input,
                                           weight_grad, bias_grad=weight_grad)
        return grad_input, grad_weight, grad_bias
    if not weight_grad:
        return grad_input, None, None
    grad_bias = grad_output.sum(axis=(0, *range(2, grad_output.ndim)))
    return grad_input, grad_weight, grad_bias


def _backward_planes(grad_output: np.ndarray, x: np.ndarray, weight: np.ndarray, window: Window, budget_bytes: int,
                     grad_input: np.ndarray | None, weight_grad: bool) -> np.ndarray | None:
    """:func:`_backward` by :class:`colnn.kernels.conv3d_planes.Planes`, a share of the images per thread."""
    grad_output = np.ascontiguousarray(grad_output)

    def backward_share(share: slice, parts: int) -> np.ndarray | None:
        planes = conv3d_planes.Planes(weight, window, x.dtype, budget_bytes // parts)
        return planes.backward(x[share], grad_output[share], None if grad_input is None else grad_input[share],
                               weight_grad)

    shares = in_parallel(len(x), col_bytes(x.shape, window, x.itemsize), backward_share)
    return np.ascontiguousarray(sum(shares)) if weight_grad else None


def conv_input_grad_chunked(
    grad_output: np.ndarray, input_shape: tuple[int, ...], weight: np.ndarray, window: Window, groups: int,
    budget_bytes: int, bias: np.ndarray | None = None,
) -> np.ndarray:
    """The input gradient ``(N, C, *in)`` of :func:`conv2d_forward_chunked` alone, plus ``bias`` ``(C,)`` if given.

    It is the transposed convolution of ``grad_output`` (``weight`` ``(FN, C/groups, *k)``
    read as ``torch.nn.functional.conv_transpose``'s ``(C_in, C_out/groups, *k)``):
    one GEMM per chunk and group, then col2im into the chunk's images, where
    the bias is added while they are in cache.
    """
    grad_input = np.empty(input_shape, dtype=grad_output.dtype)
    _backward(grad_output, None, input_shape, weight, window, groups, budget_bytes, grad_input, False, bias)
    return grad_input


def conv_transpose_backward_chunked(
    grad_output: np.ndarray, x: np.ndarray, weight: np.ndarray, window: Window, groups: int, budget_bytes: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``(grad_input, grad_weight)`` of the transposed convolution of :func:`conv_input_grad_chunked`.

    ``x`` ``(N, C_in, *in)`` is its input, ``grad_output`` ``(N, C_out, *out)``
    the gradient of its output and ``weight`` ``(C_in, C_out/groups, *k)``;
    ``window`` maps ``*out`` to ``*in``. ``grad_input`` is the convolution of
    ``grad_output`` by ``weight`` and ``grad_weight`` that convolution's weight
    gradient with ``x`` as its output gradient: both read the columns of
    ``grad_output``, which each chunk builds once for the two GEMMs. (Built once
    per pass, the backward of ``colnn bench``'s T2 row, (16, 64, 32, 32) by (64,
    32, 4, 4), stride 2, padding 1, took 1.29x as long, its forward + backward 1.15-1.17x, interleaved on
    a busy 2-core AMD EPYC.)
    """
    grad_input = np.empty(x.shape, dtype=grad_output.dtype)
    grad_weight, _ = _backward(x, grad_output, grad_output.shape, weight, window, groups, budget_bytes, None, True,
                               forward_out=grad_input)
    assert grad_weight is not None  # asked for: weight_grad is True
    return grad_input, grad_weight


def _backward(
    grad_output: np.ndarray, x: np.ndarray | None, input_shape: tuple[int, ...], weight: np.ndarray,
    window: Window, groups: int, budget_bytes: int, grad_input: np.ndarray | None, weight_grad: bool,
    bias: np.ndarray | None = None, forward_out: np.ndarray | None = None, bias_grad: bool = False,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Fill ``grad_input`` (where not None, plus ``bias``); return ``(grad_weight, grad_bias)``, None where not asked.

    ``grad_weight`` with ``weight_grad``, ``grad_bias`` ``(FN,)`` with ``bias_grad``.
    ``forward_out`` (with ``weight_grad``): also the convolution of ``x`` into it, from the same columns.
    Where the output gradient's rows serve the weight gradient alone, they are laid out
    ``(P, FN)`` (:func:`colnn.kernels.conv_grad_loops.planes_to_cells`) for its faster GEMM.
    """
    from . import conv_grad_loops, im2col_loops

    grad_output = np.ascontiguousarray(grad_output)
    n_images, out_channels = input_shape[0], weight.shape[0]
    weight_rows = weight.reshape(groups, out_channels // groups, -1)
    group_channels = out_channels // groups
    out_cells = math.prod(window.out_size)  # not -1: the batch may be empty
    grad_planes = grad_output.reshape(n_images, out_channels, out_cells)
    bias_planes = None if bias is None else bias.reshape(-1, *(1,) * window.ndim)
    if forward_out is not None:
        forward_planes = forward_out.reshape(n_images, out_channels, out_cells)
        no_bias = np.zeros(out_channels, grad_output.dtype)

    # Only the weight gradient reads the output gradient's rows: lay them out for its GEMM.
    cells_layout = weight_grad and grad_input is None and forward_out is None

    def backward_share(share: slice, parts: int) -> tuple[np.ndarray | None, np.ndarray]:
        images = range(n_images)[share]
        columns = _Columns((len(images), *input_shape[1:]), out_channels, window, grad_output.dtype,
                           budget_bytes // parts)
        group_rows = columns.col_rows // groups
        # Transposed, (C/groups*K, FN/groups): col @ rows.T runs faster than rows @ col.T, and the sum stays
        # in that layout until the end: adding each chunk's product through a transposed view took 2.5 ms
        # per chunk of C4 (conv2d 256 -> 256 channels 3x3 on 14x14, four images, one thread) against 0.16 ms
        # in the same layout, beside a 5.9 ms GEMM.
        grad_weight = np.zeros((groups, group_rows, group_channels), dtype=grad_output.dtype) if weight_grad else None
        weight_share = np.empty((groups, group_rows, group_channels), dtype=grad_output.dtype)
        sums = np.zeros(out_channels if bias_grad else 0, dtype=np.float64)
        for first, count, lo, hi, col, rows in columns.pieces(len(images)):
            chunk = slice(images.start + first, images.start + first + count)
            if weight_grad and x is not None:  # x is given whenever weight_grad is
                columns.im2col(x[chunk], lo, hi, col)
            grad_piece = columns.planes(grad_planes, chunk.start, count, lo, hi)
            group_cols = col.reshape(groups, group_rows, -1)
            if cells_layout:  # the same buffer as rows, (P, FN); each group's columns of it
                cells = rows.reshape(-1, out_channels)
                conv_grad_loops.planes_to_cells(grad_piece, cells, sums, bias_grad)
                np.matmul(group_cols, cells.reshape(len(cells), groups, group_channels).transpose(1, 0, 2),
                          out=weight_share)
                grad_weight += weight_share
                continue
            conv_grad_loops.planes_to_rows(grad_piece, rows, sums, bias_grad)
            group_grads = rows.reshape(groups, group_channels, -1)
            if weight_grad:
                np.matmul(group_cols, group_grads.transpose(0, 2, 1), out=weight_share)
                grad_weight += weight_share
            if forward_out is not None:  # the output gradient's rows are used: the forward GEMM overwrites them
                np.matmul(weight_rows, group_cols, out=group_grads)
                im2col_loops.rows_to_nchw(rows, no_bias, False, False,
                                          columns.planes(forward_planes, chunk.start, count, lo, hi))
            if grad_input is not None:
                # The column gradient overwrites the columns, which are no longer needed.
                if group_channels == 1:  # depthwise: an outer product, which matmul computes 4x slower
                    np.multiply(weight_rows.transpose(0, 2, 1), group_grads, out=group_cols)
                else:
                    np.matmul(weight_rows.transpose(0, 2, 1), group_grads, out=group_cols)
                columns.col2im(col, lo, hi, grad_input[chunk])
                if bias_planes is not None and hi == columns.out_depth:
                    grad_input[chunk] += bias_planes
        return grad_weight, sums

    shares = in_parallel(n_images, col_bytes(input_shape, window, grad_output.itemsize), backward_share)
    grad_weight = grad_bias = None
    if weight_grad:
        grad_weight = np.ascontiguousarray(sum(share[0] for share in shares).transpose(0, 2, 1)).reshape(weight.shape)
    if bias_grad:
        grad_bias = sum(share[1] for share in shares).astype(grad_output.dtype)
    return grad_weight, grad_bias
