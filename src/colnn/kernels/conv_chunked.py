"""The default convolution strategy: batch-chunked im2col + GEMM, the batch split over threads.

Each image's column matrix is ``(C*kh*kw, L)`` with ``L = out_h*out_w`` (row
``(c, ky, kx)``, column ``(oy, ox)``); a chunk of ``B`` images lays them side
by side, ``(C*kh*kw, B*L)``, so that ``weight (FN, C*kh*kw) @ col`` is the
chunk's whole output in one BLAS call. The buffer holds at most
``budget_bytes`` (and one image at least), so memory stays bounded whatever
the batch.

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

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Callable

import numpy as np

from ..core.window import Window
from .geometry import window_args
from . import threads
from .threads import get_num_threads

__all__ = [
    "supports_dtype", "chunk_images", "in_parallel", "conv2d_forward_chunked", "forward_images",
    "conv2d_backward_chunked",
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


class _Buffers:
    """One thread's scratch: ``col`` ``(C*kh*kw, B*L)`` and ``rows`` ``(FN, B*L)`` for chunks of ``B`` images."""

    def __init__(self, x_shape: tuple[int, ...], out_channels: int, window: Window, dtype: np.dtype,
                 budget_bytes: int) -> None:
        n_images, channels = x_shape[:2]
        self.plane_len = window.out_h * window.out_w
        self.col_rows = channels * window.kernel_area
        self.out_channels = out_channels
        self.chunk = chunk_images(n_images, self.col_rows * self.plane_len * dtype.itemsize, budget_bytes)
        self._col = np.empty(self.col_rows * self.chunk * self.plane_len, dtype=dtype)
        self._rows = np.empty(out_channels * self.chunk * self.plane_len, dtype=dtype)

    def chunks(self, n_images: int):
        """``(first image, images, col, rows)`` for each chunk of a share of ``n_images`` images."""
        for first in range(0, n_images, self.chunk):
            images = min(self.chunk, n_images - first)
            size = images * self.plane_len
            yield (first, images, self._col[:self.col_rows * size].reshape(self.col_rows, size),
                   self._rows[:self.out_channels * size].reshape(self.out_channels, size))


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
    from threadpoolctl import ThreadpoolController

    with _lock:
        if _executor_workers < parts:
            if _executor is not None:
                _executor.shutdown()
            _executor = ThreadPoolExecutor(max_workers=parts, thread_name_prefix="colnn-conv")
            _executor_workers = parts
        if _blas_controller is None:
            _blas_controller = ThreadpoolController()
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


def _col_bytes(x: np.ndarray, window: Window) -> int:
    """Bytes of the whole batch's column matrix: the measure of a call's work."""
    return x.shape[0] * x.shape[1] * window.kernel_area * window.out_h * window.out_w * x.itemsize


def conv2d_forward_chunked(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, window: Window, groups: int, budget_bytes: int,
    relu: bool = False, out: np.ndarray | None = None,
) -> np.ndarray:
    """Convolution by chunked im2col and one GEMM per chunk and group; all buffers within ``budget_bytes``.

    ``x`` ``(N, C, H, W)``, ``weight`` ``(FN, C/groups, kh, kw)`` and ``bias``
    ``(FN,)`` share a dtype, float32 or float64. Returns ``(N, FN, out_h, out_w)``,
    ``relu(conv + bias)`` with ``relu`` (:mod:`colnn.kernels.epilogue`).
    """
    x = np.ascontiguousarray(x)
    n_images, out_channels = x.shape[0], weight.shape[0]
    if out is None:
        out = np.empty((n_images, out_channels, window.out_h, window.out_w), dtype=x.dtype)

    def forward_share(share: slice, parts: int) -> None:
        forward_images(x[share], weight, bias, window, groups, budget_bytes // parts, out[share], relu)

    in_parallel(n_images, _col_bytes(x, window), forward_share)
    return out


def forward_images(
    images_in: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, window: Window, groups: int,
    budget_bytes: int, out: np.ndarray, relu: bool = False,
) -> None:
    """One thread's share of :func:`conv2d_forward_chunked`: ``out`` ``(B, FN, out_h, out_w)`` of ``images_in``.

    Its sums are the direct sums of products (one GEMM per chunk and group), so
    it is also the exact path that the Winograd kernel falls back to.
    """
    from . import im2col_loops

    out_channels = weight.shape[0]
    weight_rows = weight.reshape(groups, out_channels // groups, -1)
    group_channels = out_channels // groups
    bias_or_empty = np.zeros(out_channels, images_in.dtype) if bias is None else np.ascontiguousarray(bias)
    out_planes = out.reshape(out.shape[0], out_channels, window.out_h * window.out_w)
    geometry = window_args(window)
    buffers = _Buffers(images_in.shape, out_channels, window, images_in.dtype, budget_bytes)
    group_rows = buffers.col_rows // groups
    for first, images, col, rows in buffers.chunks(len(images_in)):
        im2col_loops.im2col_chunk(images_in[first:first + images], *geometry, col)
        for g in range(groups):
            np.matmul(weight_rows[g], col[g * group_rows:(g + 1) * group_rows],
                      out=rows[g * group_channels:(g + 1) * group_channels])
        im2col_loops.rows_to_nchw(rows, bias_or_empty, bias is not None, relu, out_planes[first:first + images])


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
    into ``grad_input``. Each thread sums its own weight gradient; the shares
    are added at the end.
    """
    from . import im2col_loops

    x = np.ascontiguousarray(x)
    grad_output = np.ascontiguousarray(grad_output)
    n_images, out_channels = x.shape[0], weight.shape[0]
    weight_rows = weight.reshape(groups, out_channels // groups, -1)
    group_channels = out_channels // groups
    grad_input = np.empty(x.shape, dtype=x.dtype) if input_grad else None
    grad_planes = grad_output.reshape(n_images, out_channels, window.out_h * window.out_w)
    geometry = window_args(window)

    def backward_share(share: slice, parts: int) -> np.ndarray:
        images_in = x[share]
        buffers = _Buffers(images_in.shape, out_channels, window, x.dtype, budget_bytes // parts)
        group_rows = buffers.col_rows // groups
        grad_weight = np.zeros_like(weight_rows)
        # Transposed, (C/groups*kh*kw, FN/groups): col @ rows.T runs faster than rows @ col.T.
        weight_share = np.empty((group_rows, group_channels), dtype=x.dtype)
        for first, images, col, rows in buffers.chunks(len(images_in)):
            if weight_grad:
                im2col_loops.im2col_chunk(images_in[first:first + images], *geometry, col)
            im2col_loops.nchw_to_rows(grad_planes[share][first:first + images], rows)
            for g in range(groups):
                group_col = col[g * group_rows:(g + 1) * group_rows]
                group_grad = rows[g * group_channels:(g + 1) * group_channels]
                if weight_grad:
                    np.matmul(group_col, group_grad.T, out=weight_share)
                    grad_weight[g] += weight_share.T
                if input_grad:
                    # The column gradient overwrites the columns, which are no longer needed.
                    np.matmul(weight_rows[g].T, group_grad, out=group_col)
            if input_grad:
                im2col_loops.col2im_chunk(col, *geometry, grad_input[share][first:first + images])
        return grad_weight

    grad_weight = sum(in_parallel(n_images, _col_bytes(x, window), backward_share))
    if not weight_grad:
        return grad_input, None, None
    grad_bias = grad_output.sum(axis=(0, 2, 3))
    return grad_input, grad_weight.reshape(weight.shape), grad_bias
