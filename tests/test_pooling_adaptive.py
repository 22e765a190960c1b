"""Adaptive average and max pooling against PyTorch on every backend, with the named edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import colnn
from colnn.ops.pooling.adaptive import adaptive_avg_backward, adaptive_bins, adaptive_max_backward
from oracle import assert_close

torch = pytest.importorskip("torch", reason="PyTorch is the oracle")
F = torch.nn.functional


def test_matches_torch_forward_and_backward(backend):
    @backend.settings(40, 8)
    @given(ndim=st.integers(1, 3), data=st.data(), dtype=st.sampled_from(["float32", "float64"]),
           special=st.booleans(), unbatched=st.booleans())
    def check(ndim, data, dtype, special, unbatched):
        size = tuple(data.draw(st.integers(1, 7)) for _ in range(ndim))
        out_size = tuple(data.draw(st.integers(1, 9)) for _ in range(ndim))  # larger than the input too
        rng = np.random.default_rng(sum(size))
        x = rng.integers(-2, 3, (2, 3, *size)).astype(dtype)  # ties
        if special:
            for value in (np.nan, np.inf):
                x.reshape(-1)[rng.integers(x.size)] = value
        if unbatched:
            x = x[0]
        xt = torch.tensor(x, requires_grad=True)
        expected, expected_indices = getattr(F, f"adaptive_max_pool{ndim}d")(xt, out_size, True)
        out, indices = backend.call(getattr(colnn, f"adaptive_max_pool{ndim}d"), x, out_size, True, strategy=False)
        assert out.dtype == x.dtype and indices.dtype == np.int64
        np.testing.assert_array_equal(out, expected.detach().numpy())
        np.testing.assert_array_equal(indices, expected_indices.numpy())
        average = backend.call(getattr(colnn, f"adaptive_avg_pool{ndim}d"), x, out_size, strategy=False)
        expected_average = getattr(F, f"adaptive_avg_pool{ndim}d")(xt, out_size)
        assert_close(average, expected_average.detach().numpy())
        if not special:
            batched = x if not unbatched else x[np.newaxis]
            grad = rng.standard_normal(expected.shape)
            expected.backward(torch.from_numpy(grad))
            grad_b = grad if not unbatched else grad[np.newaxis]
            idx_b = indices if not unbatched else indices[np.newaxis]
            got = backend.call(adaptive_max_backward, grad_b, idx_b, batched.shape, strategy=False)
            assert_close(got.reshape(x.shape).astype(xt.grad.numpy().dtype), xt.grad.numpy())
            xt.grad = None
            expected_average.backward(torch.from_numpy(grad))
            got = backend.call(adaptive_avg_backward, grad_b, batched.shape, strategy=False)
            assert_close(got.reshape(x.shape).astype(xt.grad.numpy().dtype), xt.grad.numpy())

    check()


def test_bins_are_pytorchs_and_overlap():
    start, end = adaptive_bins(5, 3)
    assert list(zip(start, end)) == [(0, 2), (1, 4), (3, 5)]  # overlapping bins


def test_output_larger_than_input_repeats_cells(backend):
    x = np.array([[1.0, 2.0]])
    np.testing.assert_array_equal(backend.call(colnn.adaptive_avg_pool1d, x, 4, strategy=False), [[1.0, 1.0, 2.0, 2.0]])


def test_none_keeps_an_axis(backend):
    x = np.ones((2, 5, 6))
    assert backend.call(colnn.adaptive_max_pool2d, x, (None, 2), strategy=False).shape == (2, 5, 2)


def test_nan_stays_in_its_bins(backend):
    x = np.array([[np.nan, 1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(backend.call(colnn.adaptive_avg_pool1d, x, 2, strategy=False), [[np.nan, 2.5]])


@pytest.mark.parametrize("output_size, error", [(0, ValueError), ((2, 0), ValueError), ((1, 2, 3), ValueError),
                                                (1.5, TypeError)])
def test_bad_output_size_names_it(backend, output_size, error):
    with pytest.raises(error, match="output_size"):
        backend.call(colnn.adaptive_avg_pool2d, np.ones((1, 3, 3)), output_size, strategy=False)
