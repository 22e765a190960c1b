"""Sigmoid against torch.sigmoid and finite differences, on every backend (``tests/backends.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from colnn.nn import Sigmoid
from reference import numerical_gradient


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_matches_torch_forward_and_backward(torch, backend, rng, dtype):
    x = (rng.normal(size=(3, 4, 5)) * 10).astype(dtype)
    x[0, 0, :2] = [800.0, -800.0]  # exp overflows here unless the form is chosen by sign
    dout = rng.normal(size=x.shape).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    torch.sigmoid(xt).backward(torch.from_numpy(dout))
    layer = Sigmoid()
    with np.errstate(over="raise", invalid="raise"):
        out = backend.back(layer.forward(backend.to(x)))
    dx = backend.back(layer.backward(backend.to(dout)))
    assert out.dtype == dx.dtype == dtype
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(out, torch.sigmoid(xt).detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=tol * 10, atol=tol)


def test_sigmoid_gradient_matches_finite_differences(backend, rng):
    x, weights = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    layer = Sigmoid()
    layer.forward(backend.to(x))
    expected = numerical_gradient(lambda v: float((backend.back(Sigmoid().forward(backend.to(v))) * weights).sum()), x)
    np.testing.assert_allclose(backend.back(layer.backward(backend.to(weights))), expected, rtol=1e-7, atol=1e-10)


def test_sigmoid_rejects_integers_and_backward_before_forward(backend):
    with pytest.raises(TypeError, match="x must be a floating array"):
        Sigmoid().forward(backend.to(np.arange(3)))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        Sigmoid().backward(backend.to(np.ones(2)))
    layer = Sigmoid()
    layer.forward(backend.to(np.ones((2, 3))))
    with pytest.raises(ValueError, match=r"dout must have the forward output's shape \(2, 3\)"):
        layer.backward(backend.to(np.ones(3)))
