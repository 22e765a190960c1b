"""lp_pool1d/2d/3d against PyTorch (its definition, ceil_mode quirk included), forward and backward, on every
backend."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import colnn
from colnn.ops.pooling import pool_window
from colnn.ops.pooling.lp import lp_pool_backward, lp_pool_forward

torch = pytest.importorskip("torch", reason="PyTorch is the oracle")
F = torch.nn.functional


def test_matches_torch(backend):
    @backend.settings(40, 8)
    @given(ndim=st.integers(1, 3), data=st.data(), norm_type=st.sampled_from([1, 2, 3, 1.5]),
           ceil_mode=st.booleans(), dtype=st.sampled_from(["float32", "float64"]))
    def check(ndim, data, norm_type, ceil_mode, dtype):
        size = tuple(data.draw(st.integers(2, 6)) for _ in range(ndim))
        kernel = tuple(data.draw(st.integers(1, 3)) for _ in range(ndim))
        stride = tuple(data.draw(st.integers(1, 3)) for _ in range(ndim))
        if ndim == 1:  # PyTorch's lp_pool1d takes plain ints only
            kernel, stride = kernel[0], stride[0]
        x = (np.random.default_rng(0).random((2, 2, *size)) + 0.1).astype(dtype)
        xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        pool = getattr(colnn, f"lp_pool{ndim}d")
        try:
            expected = getattr(F, f"lp_pool{ndim}d")(xt, norm_type, kernel, stride, ceil_mode)
        except RuntimeError as error:
            if "smaller than kernel size" in str(error):
                return  # the 3-d pools' unpadded-size check: a deliberate difference (README)
            with pytest.raises(ValueError):
                backend.call(pool, x, norm_type, kernel, stride, ceil_mode)
            return
        out = backend.call(pool, x, norm_type, kernel, stride, ceil_mode)
        assert out.dtype == x.dtype
        np.testing.assert_allclose(out, expected.detach().numpy(), rtol=1e-4 if dtype == "float32" else 1e-10)
        grad = np.random.default_rng(1).standard_normal(expected.shape)
        expected.backward(torch.from_numpy(grad))
        window = pool_window(x, kernel, stride, 0, 1, ceil_mode)
        x64 = backend.to(x.astype(np.float64))
        _, saved = lp_pool_forward(x64, float(norm_type), window, backend.strategy)
        got = lp_pool_backward(backend.to(grad), float(norm_type), window, saved, backend.strategy)
        np.testing.assert_allclose(backend.back(got), xt.grad.numpy(), rtol=1e-8, atol=1e-10)

    check()


@pytest.mark.parametrize("norm_type, error", [(0, ValueError), ("2", TypeError), (float("nan"), ValueError)])
def test_bad_norm_type_names_it(backend, norm_type, error):
    with pytest.raises(error, match="norm_type"):
        backend.call(colnn.lp_pool2d, np.ones((1, 2, 2)), norm_type, 2)


@pytest.mark.parametrize("norm_type", [float("inf"), float("-inf")])
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_infinite_norm_is_the_max_or_min_of_magnitudes_as_torch(torch, backend, norm_type, ndim):
    """PyTorch's limit for p = ±inf: the largest (smallest) |x| of each window; gradient sign(x) at that cell."""
    rng = np.random.default_rng(ndim)
    x = rng.normal(size=(2, 3, *([6] * ndim)))
    ours = backend.call(getattr(colnn, f"lp_pool{ndim}d"), x, norm_type, 2, ceil_mode=True)
    x_t = torch.tensor(x, requires_grad=True)
    theirs = getattr(torch.nn.functional, f"lp_pool{ndim}d")(x_t, norm_type, 2, ceil_mode=True)
    np.testing.assert_allclose(ours, theirs.detach().numpy())
    theirs.sum().backward()
    layer = getattr(colnn, f"LPPool{ndim}d")(norm_type, 2, ceil_mode=True, strategy=backend.strategy)
    out = layer.forward(backend.to(x))
    np.testing.assert_allclose(backend.back(layer.backward(backend.to(np.ones(out.shape)))), x_t.grad.numpy())


def test_nan_norm_is_named(backend):
    with pytest.raises(ValueError, match="norm_type must be a number, got nan"):
        backend.call(colnn.lp_pool2d, np.ones((1, 1, 2, 2)), float("nan"), 2)
