"""max_unpool1d/2d/3d against PyTorch on every backend: the inverse scatter of the max pools' indices, and its
errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import colnn

torch = pytest.importorskip("torch", reason="PyTorch is the oracle")
F = torch.nn.functional


def test_inverts_max_pool_as_torch(backend):
    @backend.settings(40, 8)
    @given(ndim=st.integers(1, 3), data=st.data(), unbatched=st.booleans(), with_size=st.booleans())
    def check(ndim, data, unbatched, with_size):
        size = tuple(data.draw(st.integers(2, 6)) for _ in range(ndim))
        kernel = tuple(data.draw(st.integers(1, 3)) for _ in range(ndim))
        stride = tuple(data.draw(st.integers(1, 3)) for _ in range(ndim))
        padding = tuple(data.draw(st.integers(0, k // 2)) for k in kernel)
        x = np.random.default_rng(0).standard_normal((2, 3, *size))
        try:
            pooled, indices = getattr(F, f"max_pool{ndim}d")(torch.from_numpy(x), kernel, stride, padding,
                                                            return_indices=True)
        except RuntimeError:
            return
        default = [(i - 1) * s + k - 2 * p for i, s, k, p in zip(pooled.shape[2:], stride, kernel, padding)]
        output_size = None
        if with_size:
            output_size = tuple(d + data.draw(st.integers(1 - s, s - 1)) for d, s in zip(default, stride))
            if min(output_size) < 1:
                return
        try:
            expected = getattr(F, f"max_unpool{ndim}d")(pooled, indices, kernel, stride, padding, output_size)
        except (RuntimeError, ValueError):
            return
        values, index = pooled.numpy(), indices.numpy()
        if expected.numel() == 0:  # an empty output is a ValueError, as for the pools
            with pytest.raises(ValueError, match="empty"):
                backend.call(getattr(colnn, f"max_unpool{ndim}d"), values, index, kernel, stride, padding,
                             output_size, strategy=False)
            return
        if unbatched:
            values, index, expected = values[0], index[0], expected[0]
        out = backend.call(getattr(colnn, f"max_unpool{ndim}d"), values, index, kernel, stride, padding, output_size,
                           strategy=False)
        np.testing.assert_array_equal(out, expected.numpy())
        layer = getattr(colnn, f"MaxUnpool{ndim}d")(kernel, stride, padding)
        unpooled = layer.forward(backend.to(values), backend.to(index), output_size)
        np.testing.assert_array_equal(backend.back(unpooled), out)
        full_grad = np.random.default_rng(1).standard_normal((2, 3, *out.shape[-ndim:]))
        pooled_t = pooled.clone().requires_grad_(True)
        getattr(F, f"max_unpool{ndim}d")(pooled_t, indices, kernel, stride, padding, output_size).backward(
            torch.from_numpy(full_grad))
        expected_grad = pooled_t.grad.numpy()
        grad = full_grad[0] if unbatched else full_grad
        np.testing.assert_array_equal(backend.back(layer.backward(backend.to(grad))),
                                      expected_grad[0] if unbatched else expected_grad)

    check()


def test_unpool_with_output_size(backend):
    pooled, indices = backend.call(colnn.max_pool2d, np.arange(25.0).reshape(1, 1, 5, 5), 2, return_indices=True)
    out = backend.call(colnn.max_unpool2d, pooled, indices, 2, output_size=(5, 5), strategy=False)
    assert out.shape == (1, 1, 5, 5) and out[0, 0, 3, 3] == 18


@pytest.mark.parametrize("indices, output_size, match", [
    ([[[0, 9]]], None, "indices"), ([[[0, -1]]], None, "indices"), ([[[0]]], None, "indices"),
    ([[[0, 1]]], (8,), "output_size"), ([[[0, 1]]], (2,), "output_size"),
])
def test_bad_indices_and_output_size_name_themselves(backend, indices, output_size, match):
    with pytest.raises(ValueError, match=match):
        backend.call(colnn.max_unpool1d, np.ones((1, 1, 2)), np.array(indices), 2, output_size=output_size,
                     strategy=False)
