"""The compiled ReLU pass (colnn.kernels.relu) against PyTorch and the NumPy formula, specials included."""

from __future__ import annotations

import numpy as np
import pytest

from colnn.kernels.relu import relu_backward, relu_forward

BLOCK = 1 << 14

SPECIALS = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 3.0, -3.0]


def _input(rng, dtype, size):
    x = rng.standard_normal(size).astype(dtype)
    x[:len(SPECIALS)] = SPECIALS
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [1, 7, BLOCK + 3, 3 * BLOCK])  # one cell, odd lengths, vector tails
def test_relu_matches_torch_with_specials(torch, rng, dtype, size):
    x = _input(rng, dtype, max(size, len(SPECIALS)))
    grad = rng.standard_normal(x.shape).astype(dtype)
    out, mask = relu_forward(x)
    x_t = torch.from_numpy(x).requires_grad_()
    expected = torch.relu(x_t)
    expected.backward(torch.from_numpy(grad))
    assert out.dtype == x.dtype and mask.dtype == np.bool_
    np.testing.assert_array_equal(out, expected.detach().numpy())  # NaN in the same cells
    np.testing.assert_array_equal(mask, x <= 0)
    # PyTorch's gradient at 0 (and at NaN) is its threshold_backward's: 0 where x <= 0.
    np.testing.assert_array_equal(relu_backward(grad, mask), x_t.grad.numpy())


def test_relu_forward_bits_equal_numpy_formula(rng):
    x = _input(rng, np.float32, 1000).reshape(10, 100)
    out, _ = relu_forward(x)
    expected = np.where(x <= 0, np.float32(0), x)
    assert out.view(np.uint32).tolist() == expected.view(np.uint32).tolist()  # -0.0 becomes +0.0, as NumPy's


def test_relu_backward_passes_nan_and_inf_gradients_where_open(rng):
    mask = np.array([True, False, False, True])
    grad = np.array([np.nan, np.nan, -np.inf, np.inf], dtype=np.float32)
    np.testing.assert_array_equal(relu_backward(grad, mask), [0, np.nan, -np.inf, 0])


@pytest.mark.parametrize("dtype", [np.float16, np.int32])
def test_other_dtypes_take_the_numpy_formula(rng, dtype):
    x = (rng.standard_normal((3, 5)) * 4).astype(dtype)
    out, mask = relu_forward(x)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, np.maximum(x, 0))
    np.testing.assert_array_equal(relu_backward(np.ones_like(x), mask), (x > 0).astype(dtype))


def test_non_contiguous_input_is_not_modified(rng):
    base = rng.standard_normal((6, 8)).astype(np.float32)
    x = base[:, ::2]
    before = base.copy()
    out, mask = relu_forward(x)
    np.testing.assert_array_equal(out, np.maximum(x, 0))
    np.testing.assert_array_equal(base, before)
    assert relu_backward(np.ones((6, 4), np.float32)[:, :], mask).shape == (6, 4)
