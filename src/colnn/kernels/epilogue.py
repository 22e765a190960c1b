"""Fused epilogues: a layer's bias and the ReLU after it, applied in the pass that stores its output.

The book's SimpleConvNet runs ``Convolution -> Relu`` and ``Affine -> Relu``;
separately, ReLU is one more full pass over the activation (read it, write
the output and a mask). Fused, the convolution kernels apply it as they store
their output (:func:`colnn.kernels.epilogue_loops.store_row`, in the direct
kernel and in the im2col path's layout copy), and an affine product gets bias
and ReLU in one pass over its GEMM result. Results equal the separate layers'
bit for bit: the bias is added, rounded, then ReLU applied.

The kernels write no mask. ReLU's backward needs ``pre-activation <= 0``, and
that is exactly ``out == 0``: a value ``<= 0`` (``-0.0`` included) gives
``+0.0``, a positive one stays positive and NaN stays NaN. :func:`relu_mask`
derives it from the output when backward will run: a vectorized NumPy compare
(0.4 ms for a (100, 30, 24, 24) float32 activation), where writing it inside
the kernels' loops cost 3.5 ms.
"""

from __future__ import annotations

import numpy as np

from .relu import NUMPY_BELOW

__all__ = ["LOOP_DTYPES", "relu_mask", "relu_in_place", "affine_bias_relu"]

LOOP_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def relu_mask(out: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """The mask :func:`colnn.kernels.relu.relu_forward` gives with ``out``: ``out == 0`` (bool), for ReLU outputs.

    Written into ``mask`` (bool, ``out``'s shape) where given.
    """
    return np.equal(out, 0, out=mask)


def relu_in_place(out: np.ndarray) -> None:
    """``out = relu(out)`` in place (C-contiguous float32/float64).

    The epilogue of kernels that do not fuse it (Winograd's output transform):
    one pass, without the new memory of :func:`colnn.kernels.relu.relu_forward`.
    """
    from . import epilogue_loops

    epilogue_loops.relu_in_place(out.reshape(-1))


def affine_bias_relu(product: np.ndarray, bias: np.ndarray) -> None:
    """``product = relu(product + bias)`` in place, ``product`` ``(M, K)`` C-contiguous, ``bias`` ``(K,)``.

    Under :data:`colnn.kernels.relu.NUMPY_BELOW` cells, NumPy's add and a masked
    zero (the same values: one rounding of the sum, ``+0.0`` where it is ``<= 0``)
    rather than the loops, whose first call loads Numba.
    """
    if product.size < NUMPY_BELOW:
        np.add(product, bias, out=product)
        np.copyto(product, 0, where=product <= 0)
        return
    from . import epilogue_loops

    epilogue_loops.bias_relu_rows(product, np.ascontiguousarray(bias))
