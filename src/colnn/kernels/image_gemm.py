"""Per-image im2col + GEMM for few input channels: the first layer of a CNN, forward and weight gradient.

For ``C = 1`` and a 5x5 filter (SimpleConvNet's first layer, ``(100, 1, 28, 28)``
by ``(30, 1, 5, 5)``) one image's column block ``(C*kh*kw, out_h*out_w)`` is
``(25, 576)``, 57 KB. A group of images' blocks, ``(B, C*kh*kw + 1, L)`` within
:data:`GROUP_BYTES`, stays in L2 while one batched product
``[W | b] (FN, C*kh*kw + 1) @ [col; 1]`` writes each image's output straight
into ``out[n]`` ``(FN, L)``, already NCHW, bias included (the last row of each
block is ones); ReLU then runs over the group's output while it is still in
cache. NumPy's ``matmul`` calls BLAS once per image from C, so a group costs
three Python-level calls, not three per image (a Python loop of one
``matmul`` per image took 2.7 ms where this takes 2.2 ms).

BLAS's SGEMM kernel uses the processor's widest vectors (AVX-512 where there is
one), where Numba's loops stop at 256 bits (LLVM's preference on these
processors): on the 2-core AVX-512 machine of ``colnn bench``, one thread,
SimpleConvNet's layer on 100 images took 2.2-2.3 ms this way, 2.7 ms by the
direct kernel (:mod:`colnn.kernels.direct_conv`) and 2.4-2.7 ms in ONNX Runtime,
timed interleaved (``benchmarks/conv_first_layer.py``). The direct loops have
since been rebuilt (an unrolled 5x5, and two filters on two images per pass),
and on the AVX2 machine they beat this in float32 for every one-channel shape
tried (:func:`colnn.kernels.direct_conv.preferred`), so the forward here serves
float64; on an AVX-512 machine that choice has not been measured again.

The sums are BLAS's, like those of :mod:`colnn.kernels.conv_chunked`, with the
bias added inside the product rather than after it: within float32 rounding
of PyTorch, not bit for bit. The batch is split over colnn's threads as in
:func:`colnn.kernels.conv_chunked.in_parallel`, each thread with its own
column blocks and BLAS on one thread.

Backward, the weight and bias gradients come the same way:
``dout[n] (FN, L) @ [col; 1].T (L, C*kh*kw + 1)`` per image, summed over the
images, where :mod:`colnn.kernels.conv_chunked` first transposes ``dout`` into
rows and sums ``db`` in a pass of its own (SimpleConvNet's layer on 100 images:
2.0 ms against 3.6 ms, two threads). The input gradient, where asked for,
stays on the chunked path.
"""

from __future__ import annotations

import numpy as np

from ..core.window import Window
from .conv_chunked import col_bytes, in_parallel
from .geometry import window_args

__all__ = ["MAX_CHANNELS", "MIN_FILTERS", "MIN_DEPTH", "GROUP_BYTES", "applies", "conv2d_forward_image_gemm",
           "conv2d_weight_grad_image_gemm"]

# One input channel: SimpleConvNet's first layer. With 3 (a CIFAR-shaped 5x5 layer) the direct kernel
# and this one were within the noise of each other on the shared bench machine, so the direct kernel keeps it.
MAX_CHANNELS = 1
# At least this many filters (the GEMM's rows): with 6, SimpleConvNet's quick shape, the direct kernel
# took 0.27 ms on 8 images and this one 0.40 ms.
MIN_FILTERS = 16
# At least this many products per output (C*kh*kw): a shallower GEMM is mostly loads and stores.
MIN_DEPTH = 9
# Column blocks of a group of images: well inside an L2 cache, with the group's output beside them.
GROUP_BYTES = 512 << 10


def applies(x_shape: tuple[int, ...], weight_shape: tuple[int, ...], window: Window, groups: int) -> bool:
    """Whether the per-image GEMM takes this convolution: ungrouped, one channel, a product big enough."""
    return (groups == 1 and x_shape[1] <= MAX_CHANNELS and weight_shape[0] >= MIN_FILTERS
            and x_shape[1] * window.kernel_area >= MIN_DEPTH)


def _images_per_group(n_images: int, rows: int, plane_len: int, itemsize: int) -> int:
    """Images whose column blocks ``(rows, plane_len)`` fit in :data:`GROUP_BYTES` together (at least one)."""
    return max(1, min(n_images, GROUP_BYTES // (rows * plane_len * itemsize)))


def _column_blocks(group: int, rows: int, depth: int, plane_len: int, dtype: np.dtype) -> np.ndarray:
    """``(group, rows, plane_len)`` column blocks whose rows past ``depth`` (the bias row) are ones."""
    cols = np.empty((group, rows, plane_len), dtype=dtype)
    cols[:, depth:] = 1
    return cols


def conv2d_forward_image_gemm(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, window: Window, relu: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Convolution by one im2col block and one GEMM per image: ``(N, FN, out_h, out_w)``.

    ``x`` ``(N, C, H, W)``, ``weight`` ``(FN, C, kh, kw)``, ``bias`` ``(FN,)`` or
    None share a dtype (float32 or float64); any stride, padding and dilation
    of ``window``. With ``relu`` the output is ``relu(conv + bias)`` by
    :func:`colnn.kernels.epilogue_loops.store_row`'s rule (NaN passes,
    ``-0.0`` becomes ``0.0``).
    """
    from . import epilogue_loops, im2col_loops

    x = np.ascontiguousarray(x)
    n_images, out_channels = x.shape[0], weight.shape[0]
    depth = x.shape[1] * window.kernel_area
    plane_len = window.out_h * window.out_w
    # [W | b]: the bias is the product's last column, against a row of ones in each column block.
    rows = depth + (bias is not None)
    weight_rows = np.empty((out_channels, rows), dtype=x.dtype)
    weight_rows[:, :depth] = weight.reshape(out_channels, depth)
    if bias is not None:
        weight_rows[:, depth] = bias
    if out is None:
        out = np.empty((n_images, out_channels, window.out_h, window.out_w), dtype=x.dtype)
    out_planes = out.reshape(n_images, out_channels, plane_len)
    geometry = window_args(window)
    group = _images_per_group(n_images, rows, plane_len, x.itemsize)

    # Each thread takes the next group when it is done with one, rather than a fixed share: on a machine
    # shared with other work, a thread that gets less of a core does fewer images, and one that has not
    # started by the time the calling thread has done them all is not waited for.
    firsts = iter(range(0, n_images, group))

    def forward_groups(share: slice, parts: int) -> None:
        cols = _column_blocks(group, rows, depth, plane_len, x.dtype)
        for first in firsts:
            last = min(first + group, n_images)
            im2col_loops.im2col_images(x[first:last], *geometry, cols)
            np.matmul(weight_rows, cols[:last - first], out=out_planes[first:last])
            if relu:
                epilogue_loops.relu_in_place(out_planes[first:last].reshape(-1))

    in_parallel(n_images, col_bytes(x.shape, window, x.itemsize), forward_groups, shared_queue=True)
    return out


def conv2d_weight_grad_image_gemm(
    grad_output: np.ndarray, x: np.ndarray, weight: np.ndarray, window: Window,
) -> tuple[np.ndarray, np.ndarray]:
    """``(grad_weight, grad_bias)`` of the convolution by one GEMM per image, bias row included.

    ``grad_output`` ``(N, FN, out_h, out_w)``, ``x`` ``(N, C, H, W)`` and
    ``weight`` ``(FN, C, kh, kw)`` share a dtype (float32 or float64); the
    gradients are ``weight``'s shape and ``(FN,)``. Each thread sums its images'
    products in its own ``(FN, C*kh*kw + 1)`` buffer; the shares are added at the end.
    """
    from . import im2col_loops

    x = np.ascontiguousarray(x)
    n_images, out_channels = x.shape[0], weight.shape[0]
    depth = x.shape[1] * window.kernel_area
    plane_len = window.out_h * window.out_w
    grad_planes = np.ascontiguousarray(grad_output).reshape(n_images, out_channels, plane_len)
    geometry = window_args(window)
    group = _images_per_group(n_images, depth + 1, plane_len, x.itemsize)

    def weight_grad_share(share: slice, parts: int) -> np.ndarray:
        images_in, grads_in = x[share], grad_planes[share]
        cols = _column_blocks(group, depth + 1, depth, plane_len, x.dtype)
        products = np.empty((group, out_channels, depth + 1), dtype=x.dtype)
        total = np.zeros((out_channels, depth + 1), dtype=x.dtype)
        for first in range(0, len(images_in), group):
            count = min(group, len(images_in) - first)
            im2col_loops.im2col_images(images_in[first:first + count], *geometry, cols)
            np.matmul(grads_in[first:first + count], cols[:count].transpose(0, 2, 1), out=products[:count])
            total += products[:count].sum(axis=0)
        return total

    total = sum(in_parallel(n_images, n_images * (depth + 1) * plane_len * x.itemsize, weight_grad_share))
    return total[:, :depth].reshape(weight.shape).copy(), total[:, depth].copy()
