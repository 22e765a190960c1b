"""The book's activation layers (chapter 5.5): :class:`Relu` and :class:`Sigmoid`."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.checks import check_array, check_float_array, check_grad_shape
from ..core.namespace import is_dask_array, same_library
from ..kernels.relu import relu_backward, relu_backward_in_place, relu_forward
from ..ops.reference import dense
from ..ops.xp import namespace_of
from .base import Layer
from .cpu_views import backward_on_views, forward_on_views, infer_on_views

__all__ = ["Relu", "Sigmoid"]

# Ranks at which an elementwise layer reads axis 0 as the batch, which may be empty.
_ANY_RANK = tuple(range(1, 33))


class Relu(Layer):
    """``max(x, 0)`` elementwise, as ``torch.relu``; any shape, dtype preserved (the gradient is floating).

    The book's ReLU (chapter 5.5): ``forward`` keeps ``mask = x <= 0`` for
    ``backward``. NumPy input takes the compiled kernels, and so do PyTorch and
    JAX arrays in CPU memory, on NumPy views of them (:mod:`colnn.nn.cpu_views`);
    another Array API library's array (CuPy, a CUDA tensor, ...) is computed in its
    library, on its device. ``mask`` and ``backward``'s result are of the input's
    library. A Dask array is mapped lazily (``backward`` then refuses).
    """

    infers_statelessly = True

    def __init__(self) -> None:
        self.mask: np.ndarray | None = None

    def __repr__(self) -> str:
        return "Relu()"

    def _relu(self, x: Any) -> tuple[Any, Any]:
        x = check_array(x, "x", ndims=None, batch_ndims=_ANY_RANK, array_api=True)
        # NumPy takes the compiled pass; another library's array the Array API formula where it lives.
        return relu_forward(x) if isinstance(x, np.ndarray) else dense.relu_forward(x)

    @forward_on_views
    def forward(self, x: Any) -> np.ndarray:
        if is_dask_array(x):
            self.mask = None
            return self._lazy(x, batched=x.ndim > 0)
        out, mask = self._relu(x)
        self.keep_mask(mask)
        return out

    @infer_on_views
    def infer(self, x: Any) -> Any:
        if is_dask_array(x):
            from ..ops.dask import map_batches

            return map_batches(x, self.infer) if x.ndim else map_batches(x[np.newaxis], self.infer)[0]
        return self._relu(x)[0]

    def keep_mask(self, mask: Any) -> None:
        """Keep ``mask`` (``x <= 0`` of a forward done elsewhere, e.g. fused into the layer before) for backward."""
        self.mask = mask
        self._keep(mask)

    @backward_on_views
    def backward(self, dout: Any) -> np.ndarray:
        mask = self._saved()
        dout = check_grad_shape(dout, tuple(mask.shape), np.dtype(np.int8), mask)
        grad = relu_backward(dout, mask) if isinstance(mask, np.ndarray) else dense.relu_backward(dout, mask)
        self._check_thread()
        return grad

    def backward_owned(self, dout: Any) -> np.ndarray:
        """:meth:`backward`, written over ``dout`` where it can be: the caller must own ``dout``.

        The same values as ``backward`` (``0 where mask else dout``) without a
        new 6.9 MB array on SimpleConvNet's first layer, whose page faults cost
        about 2 ms of every training step. Any other case (another library, a
        dtype or layout the loop does not take, a ``dout`` whose shape does not
        fit) runs ``backward`` itself, which also raises its errors.
        """
        mask = self._saved()
        if type(dout) is np.ndarray and type(mask) is np.ndarray and relu_backward_in_place(dout, mask):
            self._check_thread()
            return dout
        return self.backward(dout)




class Sigmoid(Layer):
    """``1 / (1 + exp(-x))`` elementwise, as ``torch.sigmoid``; any shape, floating dtype preserved.

    ``backward(dout)`` returns ``dout * y * (1 - y)`` with ``y`` the forward output
    (the book's ``Sigmoid``, chapter 5.5). Large ``|x|`` neither overflows nor warns.
    Written on the Array API: another library's array (CuPy, a CUDA tensor, ...)
    is computed in its library, on its device, and so is the gradient; PyTorch and
    JAX arrays in CPU memory on NumPy views of them (:mod:`colnn.nn.cpu_views`), their
    results of their library.

    Examples
    --------
    >>> Sigmoid().forward(np.array([0.0, 1000.0, -1000.0]))
    array([0.5, 1. , 0. ])
    """

    infers_statelessly = True

    def __init__(self) -> None:
        self.out: np.ndarray | None = None

    def __repr__(self) -> str:
        return "Sigmoid()"

    @infer_on_views
    def infer(self, x: Any) -> Any:
        if is_dask_array(x):
            from ..ops.dask import map_batches

            return map_batches(x, self.infer) if x.ndim else map_batches(x[np.newaxis], self.infer)[0]
        x = check_float_array(x, "x", ndims=tuple(range(9)), array_api=True)
        xp = namespace_of(x)
        # exp(-|x|) never overflows; the two branches are the same function rearranged.
        decay = xp.exp(-xp.abs(x))
        return xp.astype(xp.where(x >= 0, 1.0 / (1.0 + decay), decay / (1.0 + decay)), x.dtype)

    @forward_on_views
    def forward(self, x: Any) -> np.ndarray:
        if is_dask_array(x):
            self.out = None
            return self._lazy(x, batched=x.ndim > 0)
        out = self.infer(x)
        self.out = out
        self._keep(out)
        return out

    @backward_on_views
    def backward(self, dout: Any) -> np.ndarray:
        out = self._saved()
        dout = same_library(dout, "dout", out, "the forward's input", moves=True)
        if tuple(dout.shape) != tuple(out.shape):
            raise ValueError(
                f"dout must have the forward output's shape {tuple(out.shape)}, got {tuple(dout.shape)}"
            )
        return dout * (1.0 - out) * out
