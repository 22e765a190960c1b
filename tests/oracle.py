"""The one PyTorch oracle the op tests go through: the same inputs through colnn and torch, everything compared.

:func:`check_op` runs a colnn function and its ``torch.nn.functional``
namesake on the same NumPy inputs and compares shape, dtype, values and (for a
``(values, indices)`` pair) indices; given the colnn layer of the op, it also
holds the layer's forward to the function's bit for bit and the layer's
backward (``dx``, ``dW``, ``db``) to torch's autograd. Tolerances
(:func:`tolerance`): exact where colnn copies or picks values (max pooling,
indices, unfold), and for sums what the dtype gives -- a relative 1e-12 in
float64, so that a float32 accumulation of float64 input fails.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def tolerance(dtype: Any, expected: np.ndarray) -> dict[str, float]:
    """``rtol``/``atol`` for a sum computed in ``dtype``: a few units in the last place, scaled by the largest value.

    A sum of ``n`` terms rounds at each step, so its error is relative to the
    terms, not to the result (which may cancel to near zero): the absolute
    tolerance is the relative one times the largest magnitude of the output.
    """
    relative = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5, np.dtype(np.float16): 2e-3}[np.dtype(dtype)]
    finite = np.abs(expected[np.isfinite(expected)]) if np.size(expected) else np.zeros(1)
    scale = max(float(finite.max()) if finite.size else 0.0, 1.0)
    return {"rtol": relative, "atol": relative * scale}


def assert_close(got: Any, expected: Any, *, exact: bool = False, what: str = "output") -> None:
    """Same shape and dtype, and equal values (NaN where NaN): bit for bit if ``exact``, else to :func:`tolerance`."""
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape, f"{what}: shape {got.shape}, expected {expected.shape}"
    assert got.dtype == expected.dtype, f"{what}: dtype {got.dtype}, expected {expected.dtype}"
    if exact or got.dtype.kind not in "fc":
        np.testing.assert_array_equal(got, expected, err_msg=what)
    else:
        np.testing.assert_allclose(got, expected, err_msg=what, **tolerance(got.dtype, expected))


def _numpy(tensor: Any) -> np.ndarray:
    return tensor.detach().numpy()


def check_op(colnn_call: Callable[..., Any], torch_call: Callable[..., Any], inputs: Sequence[np.ndarray], *,
             exact: bool = False, layer: Any = None, seed: int = 0) -> Any:
    """Hold ``colnn_call(*inputs)`` to ``torch_call(*tensors)``, and ``layer`` (if any) to both and to autograd.

    ``inputs`` are NumPy arrays: the input first, then (for a convolution) the
    weight and bias, which ``layer`` holds already. ``exact``: values compared
    bit for bit. A ``(values, indices)`` result compares indices exactly. The
    layer's ``forward(inputs[0])`` must equal the function's output bit for bit,
    and its ``backward`` (and ``dW``/``db``) the gradients torch's autograd
    gives for a random ``dout``. Returns colnn's result.
    """
    import torch

    tensors = [torch.tensor(array, requires_grad=array.dtype.kind == "f") for array in inputs]
    got = colnn_call(*inputs)
    expected = torch_call(*tensors)
    pairs = zip(got, expected) if isinstance(got, tuple) else [(got, expected)]
    for position, (value, wanted) in enumerate(pairs):
        indices = position == 1
        assert_close(value, _numpy(wanted), exact=exact or indices, what="indices" if indices else "output")
    if layer is None:
        return got
    out = layer.forward(inputs[0])
    values = got[0] if isinstance(got, tuple) else got
    assert_close(out, values, exact=True, what="the layer's forward against the function")
    if inputs[0].dtype.kind != "f":
        return got  # torch has no gradient of an integer input
    expected_out = expected[0] if isinstance(expected, tuple) else expected
    dout = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
    expected_out.backward(torch.from_numpy(dout))
    grads = [layer.backward(dout)]
    if len(inputs) > 1:
        grads += [layer.dW, layer.db][:len(inputs) - 1]
    for name, grad, tensor in zip(("dx", "dW", "db"), grads, tensors):
        # Sums of gradients (overlapping windows, a weight's every position): to the dtype's rounding.
        assert_close(grad, _numpy(tensor.grad), what=f"the layer's {name}")
    return got
