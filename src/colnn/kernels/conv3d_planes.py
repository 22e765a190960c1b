"""A 3-D convolution from 2-D columns shared by the output depths that read one input plane.

With depth dilation 1, output depth ``od`` reads the ``kd`` consecutive input
planes from ``od*stride_d - pad_d``. Their 2-D columns ``(C*kh*kw, L)`` (``L =
out_h*out_w``, built by :func:`colnn.kernels.im2col3d_loops.im2col_chunk3` with a
depth of one), stacked plane after plane, are that depth's whole column matrix
``(kd*C*kh*kw, L)``, rows ``(kd, c, ky, kx)``, with no copy. So each input
plane's columns are built once for the ``kd`` output depths that read it,
rather than ``kd`` times as in :class:`colnn.kernels.conv_chunked._Columns`
(whose rows are ``(c, kd, ky, kx)``), and one GEMM per output depth, with the
weight's axes in the same order, writes straight into the output.

Backward, ``dW`` is one GEMM per output depth on the same planes. At depth
stride 1, input plane ``q`` receives from output depths ``q + pad_d - kd``, which
are ``kd`` consecutive planes of the output gradient laid out ``(out_d, FN,
L)`` (zero planes beyond both ends): one GEMM by the depth-flipped weight gives
the plane's 2-D column gradient, and a 2-D col2im folds it into the plane.

Measured on a 2-core AMD EPYC (AVX-512, OpenBLAS SkylakeX kernel), conv3d
``(1, 16, 16, 32, 32)`` by ``(32, 16, 3, 3, 3)``, padding 1, one thread, load 3: the
columns of four output depths took 0.53 ms as ``(c, kd, ky, kx)`` slabs and 0.28 ms
as six shared planes, their GEMMs 1.74 ms either way.
"""

from __future__ import annotations

import numpy as np

from ..core.window import Window
from .geometry import window_args

__all__ = ["PLANES_BYTES", "applies", "applies_backward", "Planes"]

# At most this many bytes of input planes' columns are kept at once (a thread's buffer); a run of output
# depths reads them, and the next run builds its first ``kd - stride_d`` planes again.
PLANES_BYTES = 8 << 20
# Each GEMM is one output depth wide, ``out_h*out_w`` columns: below this OpenBLAS runs them slowly and
# the chunked path, several images per GEMM, is faster.
MIN_PLANE_CELLS = 256


def applies(window: Window, groups: int, relu: bool = False) -> bool:
    """Whether the forward takes shared planes: 3-D, ungrouped, depth dilation 1, wide planes, no fused ReLU."""
    return (window.ndim == 3 and groups == 1 and not relu and window.dilation[0] == 1
            and window.out_size[1] * window.out_size[2] >= MIN_PLANE_CELLS)


def applies_backward(window: Window, groups: int) -> bool:
    """Whether the backward takes shared planes: as :func:`applies`, at depth stride 1."""
    return applies(window, groups) and window.stride[0] == 1


class Planes:
    """One thread's planes buffer and the weight reordered for it (``weight`` ``(FN, C, kd, kh, kw)``).

    The buffer holds at most ``budget_bytes`` (the column budget's share of the
    thread) and :data:`PLANES_BYTES`, ``kd`` planes at least.
    """

    def __init__(self, weight: np.ndarray, window: Window, dtype: np.dtype, budget_bytes: int) -> None:
        out_channels, channels, kernel_d = weight.shape[:3]
        self.kernel_d, self.stride_d, self.pad_d = kernel_d, window.stride[0], window.padding[0]
        self.out_depth, self.slice_len = window.out_size[0], window.out_size[1] * window.out_size[2]
        self.plane_rows = channels * window.kernel_size[1] * window.kernel_size[2]
        self.weight_shape = weight.shape
        # (FN, kd*C*kh*kw), rows (kd, c, ky, kx) as the stacked planes
        self.weight_rows = np.ascontiguousarray(weight.transpose(0, 2, 1, 3, 4)).reshape(out_channels, -1)
        self._starts = window.starts()[0]
        self._geometry = window_args(window)
        plane_bytes = self.plane_rows * self.slice_len * np.dtype(dtype).itemsize
        max_planes = max(kernel_d, min(PLANES_BYTES, budget_bytes) // plane_bytes)
        self.depths = max(1, min(self.out_depth, (max_planes - kernel_d) // self.stride_d + 1))
        self._planes = np.empty(((self.depths - 1) * self.stride_d + kernel_d, self.plane_rows, self.slice_len),
                                dtype=dtype)

    def _runs(self, image: np.ndarray):
        """For each run of output depths of ``image`` ``(1, C, D, H, W)``: build its planes, yield ``(od, col)``."""
        from .im2col3d_loops import im2col_chunk3

        for lo in range(0, self.out_depth, self.depths):
            hi = min(lo + self.depths, self.out_depth)
            for i in range((hi - 1 - lo) * self.stride_d + self.kernel_d):  # a depth in the padding gives zeros
                im2col_chunk3(image, self._starts[lo:lo + 1] + i, 1, 1, *self._geometry, self._planes[i])
            for od in range(lo, hi):
                top = (od - lo) * self.stride_d
                yield od, self._planes[top:top + self.kernel_d].reshape(-1, self.slice_len)

    def forward(self, images: np.ndarray, bias: np.ndarray | None, out: np.ndarray) -> None:
        """``out`` ``(B, FN, *out)`` of ``images`` ``(B, C, D, H, W)``, plus ``bias`` ``(FN,)`` if given."""
        out_planes = out.reshape(out.shape[0], out.shape[1], self.out_depth, self.slice_len)
        bias_column = None if bias is None else bias.reshape(-1, 1)
        for b in range(len(images)):
            for od, col in self._runs(images[b:b + 1]):
                np.matmul(self.weight_rows, col, out=out_planes[b, :, od])
                if bias_column is not None:
                    out_planes[b, :, od] += bias_column

    def backward(self, images: np.ndarray, grad_output: np.ndarray, grad_input: np.ndarray | None,
                 weight_grad: bool) -> np.ndarray | None:
        """Fill ``grad_input`` (where not None) of ``images``; return their ``grad_weight`` if ``weight_grad``.

        Depth stride 1 (:func:`applies_backward`); ``grad_output`` ``(B, FN, *out)``.
        """
        from .im2col3d_loops import col2im_chunk3

        out_channels, kernel_d = self.weight_rows.shape[0], self.kernel_d
        grad_planes = grad_output.reshape(len(images), out_channels, self.out_depth, self.slice_len)
        dtype = self._planes.dtype
        if weight_grad:
            grad_rows = np.zeros((self.weight_rows.shape[1], out_channels), dtype)  # transposed: the faster GEMM
            grad_share = np.empty_like(grad_rows)
        if grad_input is not None:
            # flipped[r, j*FN + f] = weight[f, kd = kd-1-j, r]: depth j of a block of the padded gradient below
            flipped = np.ascontiguousarray(
                self.weight_rows.reshape(out_channels, kernel_d, -1)[:, ::-1].transpose(2, 1, 0)).reshape(
                self.plane_rows, -1)
            padded = np.zeros((self.out_depth + 2 * (kernel_d - 1), out_channels, self.slice_len), dtype)
            plane_grad = np.empty((self.plane_rows, self.slice_len), dtype)
            plane_ids = np.arange(grad_input.shape[2], dtype=self._starts.dtype)
        for b in range(len(images)):
            if weight_grad:
                for od, col in self._runs(images[b:b + 1]):
                    np.matmul(col, grad_planes[b, :, od].T, out=grad_share)
                    grad_rows += grad_share
            if grad_input is None:
                continue
            padded[kernel_d - 1:kernel_d - 1 + self.out_depth] = grad_planes[b].transpose(1, 0, 2)
            grad_input[b] = 0
            for q in range(grad_input.shape[2]):
                # Output depth q + pad - kd is padded plane q + pad + (kd-1 - kd).
                block = padded[q + self.pad_d:q + self.pad_d + kernel_d].reshape(-1, self.slice_len)
                np.matmul(flipped, block, out=plane_grad)
                col2im_chunk3(plane_grad, plane_ids[q:q + 1], 1, 1, *self._geometry, grad_input[b:b + 1])
        if not weight_grad:
            return None
        fn, channels, _, kh, kw = self.weight_shape
        return grad_rows.T.reshape(fn, kernel_d, channels, kh, kw).transpose(0, 2, 1, 3, 4)
