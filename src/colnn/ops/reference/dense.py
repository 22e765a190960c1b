"""The book's ReLU and Affine layers (chapter 5.6) on the Python Array API standard.

These are the paths of another library's arrays (PyTorch, JAX, CuPy,
array_api_strict, ...): written against the standard, they compute where the
array lives and answer in its library. NumPy arrays never come here; they take
the compiled kernels (:mod:`colnn.kernels.relu`, :mod:`colnn.kernels.blas`).
The formulas are the same, so the results agree with the NumPy path (bit for
bit for ReLU; to the rounding of the library's matrix product for Affine).
"""

from __future__ import annotations

import math
from typing import Any

from ..xp import namespace, namespace_of, zero_like

__all__ = ["affine_backward", "affine_forward", "relu_backward", "relu_forward"]


def relu_forward(x: Any) -> tuple[Any, Any]:
    """``(out, mask)``: ``mask = x <= 0`` and ``out = 0 where mask else x``, x's shape and dtype.

    NaN is not ``<= 0``, so it passes through, as in ``torch.relu``.
    """
    xp = namespace_of(x)
    mask = x <= 0
    return xp.where(mask, zero_like(x), x), mask


def relu_backward(grad_output: Any, mask: Any) -> Any:
    """``0 where mask else grad_output`` (``mask`` from :func:`relu_forward`)."""
    xp = namespace_of(grad_output)
    return xp.where(mask, zero_like(grad_output), grad_output)


def affine_forward(x: Any, weight: Any, bias: Any) -> tuple[Any, Any]:
    """``(out, x2)``: ``x`` ``(N, ...)`` (or one sample ``(D,)``) flattened to ``x2`` ``(N, D)``, ``out = x2 @ W + b``.

    dtypes promote as NumPy's ``@`` and ``+`` do (float32 ``x`` with float64 ``W``
    gives float64); the caller checks that ``D`` matches ``W``. Arrays of two
    libraries raise TypeError (``array_api_compat``'s "Multiple namespaces").
    """
    xp = namespace(x, weight, bias)
    x2 = xp.reshape(x, (x.shape[0], math.prod(x.shape[1:])) if x.ndim > 1 else (1, x.shape[0]))
    dtype = xp.result_type(x2, weight, bias)
    out = xp.matmul(xp.astype(x2, dtype), xp.astype(weight, dtype)) + xp.astype(bias, dtype)
    return out, x2


def affine_backward(grad_output: Any, x2: Any, weight: Any, bias_dtype: Any) -> tuple[Any, Any, Any]:
    """``(dx2, dW, db)``: ``dout @ W.T``, ``x2.T @ dout`` in ``W``'s dtype, ``sum(dout, axis=0)`` in ``bias_dtype``."""
    xp = namespace(grad_output, x2, weight)
    dtype = xp.result_type(grad_output, weight)
    grad = xp.astype(grad_output, dtype)
    grad_weight = xp.matmul(xp.matrix_transpose(xp.astype(x2, dtype)), grad)
    grad_input = xp.matmul(grad, xp.matrix_transpose(xp.astype(weight, dtype)))
    return grad_input, xp.astype(grad_weight, weight.dtype), xp.astype(xp.sum(grad, axis=0), bias_dtype)
