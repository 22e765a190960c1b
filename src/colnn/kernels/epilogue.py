"""Fused epilogues: a layer's bias and the ReLU after it, applied in the pass that stores its output.

The book's SimpleConvNet runs ``Convolution -> Relu`` and ``Affine -> Relu``;
separately, ReLU is one more full pass over the activation (read ``x``, write
the output and its mask). Fused, the convolution kernels apply it as they
store each output row (:func:`colnn.kernels.epilogue_loops.store_row`, inlined
in the direct kernel and in the im2col path's layout copy), and an affine
product gets bias and ReLU in one pass over its GEMM result. Results and the
mask (``value <= 0``, kept for backward) equal the separate layers' bit for
bit: the bias is added, rounded, then ReLU applied.

``mask`` arguments are a bool array of the output's shape to fill, or None
when nothing will run backward (inference).
"""

from __future__ import annotations

import numpy as np

__all__ = ["LOOP_DTYPES", "mask_args", "relu_in_place", "affine_bias_relu"]

LOOP_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def mask_args(mask: np.ndarray | None, ndim: int) -> tuple[np.ndarray, bool]:
    """``(mask, keep_mask)`` for a loop: a stand-in of ``ndim`` axes when no mask is kept."""
    if mask is None:
        return np.zeros((1,) * ndim, dtype=np.bool_), False
    return mask, True


def relu_in_place(out: np.ndarray, mask: np.ndarray | None) -> None:
    """``out = relu(out)`` in place (contiguous float32/float64), ``mask = out <= 0`` if given.

    The epilogue of kernels that do not fuse it (Winograd, the reference): one
    pass, as :func:`colnn.kernels.relu.relu_forward`, but into ``out`` itself.
    """
    from . import epilogue_loops

    flat_mask, keep_mask = mask_args(None if mask is None else mask.reshape(-1), 1)
    epilogue_loops.relu_in_place(out.reshape(-1), flat_mask, keep_mask)


def affine_bias_relu(product: np.ndarray, bias: np.ndarray, mask: np.ndarray | None) -> None:
    """``product = relu(product + bias)`` in place, ``product`` ``(M, K)`` contiguous, ``bias`` ``(K,)``.

    ``mask`` ``(M, K)`` bool receives ``product + bias <= 0`` when given.
    """
    from . import epilogue_loops

    mask, keep_mask = mask_args(mask, 2)
    epilogue_loops.bias_relu_rows(product, np.ascontiguousarray(bias), mask, keep_mask)
