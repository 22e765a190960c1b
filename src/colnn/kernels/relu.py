"""ReLU as one compiled pass each way (the kernels behind :class:`colnn.nn.activation.Relu`).

Forward writes the output and the mask ``x <= 0`` (one byte a cell) in the
same pass; backward reads the mask and the incoming gradient once. That is
the least memory traffic a layer that returns new memory can move: forward
1.125x a copy of ``x`` (float32), backward 1.125x; NumPy's ``x <= 0`` then
``np.where`` makes three passes and a temporary. float32 and float64 arrays
take the loops; other dtypes, empty arrays and arrays of fewer than
:data:`NUMPY_BELOW` cells take the same formulas in NumPy: there a call of
the loops costs more than NumPy's passes, and the first one in a process
loads Numba (about half a second), which a gradient check on a few samples
never earns back.
"""

from __future__ import annotations

import numpy as np

__all__ = ["NUMPY_BELOW", "relu_forward", "relu_backward", "relu_backward_in_place"]

_LOOP_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

#: Arrays of fewer cells than this take NumPy's formulas (measured: the loops' call overhead passes NumPy's
#: passes at about this size, float32 and float64 alike).
NUMPY_BELOW = 1 << 14


def _loops_take(x: np.ndarray) -> bool:
    return x.dtype in _LOOP_DTYPES and x.size >= NUMPY_BELOW


def relu_forward(x: np.ndarray, *, compiled: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(out, mask)``: ``mask = x <= 0`` (bool) and ``out = 0 where mask else x``, x's shape and dtype.

    NaN is not ``<= 0``, so it passes through, as in ``torch.relu``.
    ``compiled=False`` takes NumPy's formulas whatever the size (the same
    values): for a caller on the reference path, which must not load Numba.
    """
    if not (compiled and _loops_take(x)):
        mask = x <= 0
        return np.where(mask, np.zeros((), dtype=x.dtype), x), mask
    from . import relu_loops

    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty(x.shape, dtype=x.dtype)
    mask = np.empty(x.shape, dtype=np.bool_)
    relu_loops.relu_forward_into(flat, out.reshape(-1), mask.reshape(-1))
    return out, mask


def relu_backward(grad_output: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``0 where mask else grad_output``, of grad_output's shape and dtype (``mask`` from :func:`relu_forward`)."""
    if not _loops_take(grad_output):
        return np.where(mask, np.zeros((), dtype=grad_output.dtype), grad_output)
    from . import relu_loops

    grad_input = np.empty(grad_output.shape, dtype=grad_output.dtype)
    relu_loops.relu_backward_into(np.ascontiguousarray(grad_output).reshape(-1),
                                  np.ascontiguousarray(mask).reshape(-1), grad_input.reshape(-1))
    return grad_input


def relu_backward_in_place(grad_output: np.ndarray, mask: np.ndarray) -> bool:
    """:func:`relu_backward` written over ``grad_output`` itself; ``True`` if done.

    For a caller that owns ``grad_output`` (a network passing one layer's fresh
    gradient to the next): the pass then touches no new memory, where a fresh
    6.9 MB result costs page faults on every training step. Only a writeable
    C-contiguous float32/float64 ``grad_output`` of ``mask``'s shape is taken;
    otherwise nothing is written and the result is ``False``.
    """
    if (grad_output.dtype not in _LOOP_DTYPES or grad_output.size == 0 or grad_output.shape != mask.shape
            or not grad_output.flags.c_contiguous or not grad_output.flags.writeable or mask.dtype != np.bool_):
        return False
    if grad_output.size < NUMPY_BELOW:
        np.copyto(grad_output, 0, where=mask)
        return True
    from . import relu_loops

    relu_loops.relu_backward_in_place(grad_output.reshape(-1), np.ascontiguousarray(mask).reshape(-1))
    return True
