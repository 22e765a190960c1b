"""Fused epilogues at the network level: ``Convolution -> Relu`` and ``Affine -> Relu`` in one output pass.

Backward, :func:`relu_backward_owned` applies a ``Relu``'s mask to the
gradient the layer after it has just returned, in place: the network owns
that array (nobody else has seen it), so the pass needs no new memory.

:class:`~colnn.nn.network.Network` hands each such pair of neighbouring
layers to :func:`fused_forward`, which computes ``relu(layer(x))`` with the
bias and ReLU applied as the layer stores its output
(:mod:`colnn.kernels.epilogue`) instead of in a second pass over the
activation. Both layers are left exactly as after their own ``forward``: the
convolution or affine layer keeps its input for backward, and the ``Relu``
its mask ``x <= 0``, so ``backward`` runs layer by layer unchanged (a
network keeps the mask in evaluation too, as the separate layers do: the
book's ``loss`` followed by a hand-written backward loop must work). Outputs,
masks and hence gradients equal the separate layers' bit for bit.

Fusion is transparent: it applies only where it computes the same thing --
the exact classes (a subclass may compute something else), NumPy float32 or
float64 input of the parameters' dtype -- and otherwise returns None so that
the caller runs the layers one by one (which also raises their own errors).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.checks import library_token
from ..kernels.blas import blas_threads_for
from ..kernels.epilogue import LOOP_DTYPES, affine_bias_relu, relu_mask
from ..kernels.relu import relu_backward_in_place
from ..ops.conv import conv2d_relu_forward
from .layers import Affine, AvgPool2d, Convolution, Layer, MaxPool2d, Pooling, Relu, _Saved
from .workspace import Workspace

__all__ = ["fusable", "fused_forward", "FRESH_GRADIENT_LAYERS", "relu_backward_owned"]

# Layers whose backward returns a new array that no one else references (nor a view of their saved state):
# the gradient a network may overwrite in place before passing it on.
FRESH_GRADIENT_LAYERS = (Affine, Convolution, MaxPool2d, AvgPool2d, Pooling)


def fusable(layer: Layer, following: Layer) -> bool:
    """Whether ``layer`` followed by ``following`` is a pair :func:`fused_forward` takes."""
    return type(following) is Relu and type(layer) in (Convolution, Affine)


def _native(x: Any, layer: Convolution | Affine, ndims: tuple[int, ...]) -> bool:
    """Whether ``x`` and the layer's parameters are NumPy arrays of one float32/float64 dtype."""
    arrays = (x, layer.W, layer.b)
    return (all(type(array) is np.ndarray for array in arrays) and x.ndim in ndims
            and x.dtype in LOOP_DTYPES and x.dtype == layer.W.dtype == layer.b.dtype)


def fused_forward(layer: Layer, relu: Relu, x: Any, keep_mask: bool = True,
                  workspace: Workspace | None = None) -> np.ndarray | None:
    """``relu.forward(layer.forward(x))`` in one output pass, or None where the pair does not fuse.

    ``layer`` is a :class:`~colnn.nn.layers.Convolution` or
    :class:`~colnn.nn.layers.Affine` (see :func:`fusable`). Both layers are
    left ready for ``backward`` as after their own forward; without
    ``keep_mask`` (inference) the ``Relu`` keeps no mask (``relu.mask`` is None).
    ``workspace``: a convolution's output and mask are written into its buffers
    (keyed by the layer) instead of new memory; for a caller that does not hand
    the output on beyond its next layers.
    """
    if type(layer) is Convolution and _native(x, layer, (4,)):
        window = layer.window_for(x)
        out = mask = None
        if workspace is not None:
            shape = (x.shape[0], layer.W.shape[0], window.out_h, window.out_w)
            out = workspace.empty((id(layer), "out"), shape, x.dtype)
            mask = workspace.empty((id(layer), "mask"), shape, np.bool_) if keep_mask else None
        out, saved, mask = conv2d_relu_forward(x, layer.W, layer.b, window, layer.groups, layer.strategy, keep_mask,
                                               out, mask)
        layer._cache = _Saved(x.shape, out.shape, out.dtype, False, window, saved, library_token(x))
    elif type(layer) is Affine and _native(x, layer, tuple(range(2, 9))):
        features = int(np.prod(x.shape[1:]))
        if features != layer.W.shape[0]:
            return None  # the layer's own forward raises the error
        x2 = x.reshape(x.shape[0], features)
        with blas_threads_for(2.0 * x2.shape[0] * layer.W.size):
            out = x2 @ layer.W
        affine_bias_relu(out, layer.b)
        mask = relu_mask(out) if keep_mask else None
        layer._cache = (x2, x.shape)
    else:
        return None
    relu.mask = mask
    return out


def relu_backward_owned(relu: Relu, dout: Any) -> np.ndarray:
    """``relu.backward(dout)``, written over ``dout`` where it can be: the caller must own ``dout``.

    The same values as ``relu.backward`` (``0 where mask else dout``) without a
    new 6.9 MB array on SimpleConvNet's first layer, whose page faults cost
    about 2 ms of every training step. Any other case (another library, a dtype
    or layout the loop does not take, a ``dout`` whose shape does not fit)
    runs ``relu.backward`` itself, which also raises its errors.
    """
    mask = relu.mask
    if type(dout) is np.ndarray and type(mask) is np.ndarray and relu_backward_in_place(dout, mask):
        return dout
    return relu.backward(dout)
