"""The box loops (:mod:`colnn.kernels.box_pool`) held against the reference strategy and PyTorch.

3-d max and average pooling, adaptive pooling in 1/2/3 dimensions, fractional
max pooling and max_unpool run compiled loops by default; the reference (``strategy="im2col"``)
is the Array API path. Max-type outputs and indices must agree exactly, sums
to rounding, on odd shapes, padding, dilation, ceil_mode, every float dtype the
kernels take and integer dtypes for max.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import colnn
from colnn.kernels import box_pool
from colnn.ops.pooling import AvgPoolArgs, MaxPoolArgs
from colnn.ops.pooling.adaptive import (
    adaptive_avg_backward,
    adaptive_avg_forward,
    adaptive_max_backward,
    adaptive_max_forward,
)
from colnn.ops.pooling.avg import avg_pool_backward, avg_pool_forward
from colnn.ops.pooling.fractional import fractional_max_backward, fractional_max_forward
from colnn.ops.pooling.max import max_pool_backward, max_pool_forward
from colnn.ops.pooling.unpool import max_unpool_backward, max_unpool_forward

FLOATS = (np.float16, np.float32, np.float64)
INTEGERS = (np.uint8, np.int64)  # the extremes of the lowest value; each dtype is a compiled specialisation


def _values(rng, shape, dtype):
    """Small integers (many ties), and for floats a NaN, an inf and a -inf somewhere."""
    x = rng.integers(-3, 4, shape).astype(dtype) if np.dtype(dtype).kind != "u" else \
        rng.integers(0, 4, shape).astype(dtype)
    if np.dtype(dtype).kind == "f" and x.size >= 3:
        flat = x.reshape(-1)
        for value in (np.nan, np.inf, -np.inf):
            flat[rng.integers(flat.size)] = value
    return x


def _close(actual, expected, dtype):
    tolerance = {np.dtype(np.float16): 2e-3, np.dtype(np.float32): 1e-5}.get(np.dtype(dtype), 1e-12)
    np.testing.assert_allclose(actual, expected, rtol=tolerance, atol=tolerance, equal_nan=True)
    assert actual.dtype == expected.dtype


@st.composite
def window3d(draw):
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(3))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(3))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    dilation = tuple(draw(st.integers(1, 3)) for _ in range(3))
    size = tuple(draw(st.integers(1, 8)) for _ in range(3))
    return size, kernel, stride, padding, dilation, draw(st.booleans())


@settings(max_examples=60, deadline=None)
@given(window3d(), st.sampled_from(FLOATS + INTEGERS), st.integers(0, 2**32 - 1))
def test_max_pool3d_forward_and_backward_equal_the_reference(geometry, dtype, seed):
    size, kernel, stride, padding, dilation, ceil_mode = geometry
    rng = np.random.default_rng(seed)
    try:
        window = MaxPoolArgs.check(3, kernel, stride, padding, dilation, ceil_mode).window(size)
    except ValueError:
        return  # an empty output: refused before any kernel runs
    x = _values(rng, (2, 3, *size), dtype)
    out, offset = max_pool_forward(x, window)
    ref_out, ref_offset = max_pool_forward(x, window, "im2col")
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(window.flat_indices(offset), window.flat_indices(ref_offset))
    np.testing.assert_array_equal(box_pool.window_cells(offset, window), window.flat_indices(ref_offset))
    np.testing.assert_array_equal(max_pool_forward(x, window, keep_offset=False)[0], ref_out)
    grad = rng.standard_normal(out.shape).astype(np.float32)
    np.testing.assert_array_equal(max_pool_backward(grad, offset, x.shape, window),
                                  max_pool_backward(grad, ref_offset, x.shape, window, "im2col"))


@settings(max_examples=60, deadline=None)
@given(window3d(), st.booleans(), st.sampled_from(FLOATS), st.integers(0, 2**32 - 1))
def test_avg_pool3d_forward_and_backward_equal_the_reference(geometry, count_include_pad, dtype, seed):
    size, kernel, stride, padding, _, ceil_mode = geometry
    rng = np.random.default_rng(seed)
    args = AvgPoolArgs.check(3, kernel, stride, padding, ceil_mode, count_include_pad)
    try:
        window = args.window(size)
    except ValueError:
        return
    x = rng.standard_normal((2, 3, *size)).astype(dtype)
    divisor = args.divisor(window)
    _close(avg_pool_forward(x, window, divisor), avg_pool_forward(x, window, divisor, "im2col"), dtype)
    grad = rng.standard_normal((2, 3, *window.out_size)).astype(dtype)
    _close(avg_pool_backward(grad, x.shape, window, divisor),
           avg_pool_backward(grad, x.shape, window, divisor, "im2col"), dtype)


@st.composite
def bins(draw):
    ndim = draw(st.integers(1, 3))
    size = tuple(draw(st.integers(1, 9)) for _ in range(ndim))
    out = tuple(draw(st.integers(1, 10)) for _ in range(ndim))  # may exceed the input: overlapping bins
    return size, out


@settings(max_examples=60, deadline=None)
@given(bins(), st.sampled_from(FLOATS + INTEGERS), st.integers(0, 2**32 - 1))
def test_adaptive_max_equals_the_reference(geometry, dtype, seed):
    size, out_size = geometry
    rng = np.random.default_rng(seed)
    x = _values(rng, (2, 3, *size), dtype)
    out, indices = adaptive_max_forward(x, out_size)
    ref_out, ref_indices = adaptive_max_forward(x, out_size, "im2col")
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(indices, ref_indices)
    grad = rng.standard_normal(out.shape).astype(np.float64)
    np.testing.assert_array_equal(adaptive_max_backward(grad, indices, x.shape),
                                  adaptive_max_backward(grad, ref_indices, x.shape, "im2col"))


@settings(max_examples=60, deadline=None)
@given(bins(), st.sampled_from(FLOATS), st.integers(0, 2**32 - 1))
def test_adaptive_avg_equals_the_reference(geometry, dtype, seed):
    size, out_size = geometry
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, *size)).astype(dtype)
    _close(adaptive_avg_forward(x, out_size), adaptive_avg_forward(x, out_size, "im2col"), dtype)
    grad = rng.standard_normal((2, 3, *out_size)).astype(dtype)
    _close(adaptive_avg_backward(grad, x.shape), adaptive_avg_backward(grad, x.shape, "im2col"), dtype)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 3), st.sampled_from(FLOATS + INTEGERS), st.integers(0, 2**32 - 1))
def test_fractional_max_equals_the_reference(ndim, dtype, seed):
    rng = np.random.default_rng(seed)
    kernel = tuple(int(k) for k in rng.integers(1, 4, ndim))
    size = tuple(int(k + rng.integers(0, 6)) for k in kernel)
    out_size = tuple(int(rng.integers(1, s - k + 2)) for s, k in zip(size, kernel))
    x = _values(rng, (2, 3, *size), dtype)
    samples = rng.random((2, 3, ndim))
    out, indices = fractional_max_forward(x, kernel, out_size, samples)
    ref_out, ref_indices = fractional_max_forward(x, kernel, out_size, samples, "im2col")
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(indices, ref_indices)
    grad = rng.standard_normal(out.shape)
    np.testing.assert_array_equal(fractional_max_backward(grad, indices, x.shape),
                                  fractional_max_backward(grad, ref_indices, x.shape, "im2col"))


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("dtype", FLOATS + INTEGERS)
def test_max_unpool_equals_the_reference_and_keeps_the_last_repeat(ndim, dtype, rng):
    x = _values(rng, (2, 3, *(3,) * ndim), dtype)
    volume = 5**ndim
    indices = rng.integers(0, volume, x.shape)
    indices.reshape(-1)[:2] = 4  # a repeated index: the later value stays
    out_size = (5,) * ndim
    out = max_unpool_forward(x, indices, out_size)
    np.testing.assert_array_equal(out, max_unpool_forward(x, indices, out_size, "im2col"))
    grad = rng.standard_normal(out.shape)
    np.testing.assert_array_equal(max_unpool_backward(grad, indices),
                                  max_unpool_backward(grad, indices, "im2col"))


@pytest.mark.parametrize("ndim", [1, 2])
def test_long_bins_match_torch(ndim, rng):
    # Bins of hundreds of cells: the sums' partial accumulators and the scans over long rows.
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle")
    x = rng.standard_normal((2, 3, *(401,) * ndim)).astype(np.float32)
    pools = {1: (colnn.adaptive_avg_pool1d, colnn.adaptive_max_pool1d, torch.nn.functional.adaptive_avg_pool1d,
                 torch.nn.functional.adaptive_max_pool1d),
             2: (colnn.adaptive_avg_pool2d, colnn.adaptive_max_pool2d, torch.nn.functional.adaptive_avg_pool2d,
                 torch.nn.functional.adaptive_max_pool2d)}[ndim]
    avg, maximum, torch_avg, torch_max = pools
    for out in (1, 3):
        np.testing.assert_allclose(avg(x, out), torch_avg(torch.from_numpy(x), out).numpy(), rtol=1e-5, atol=1e-6)
        values, indices = maximum(x, out, return_indices=True)
        expected, expected_indices = torch_max(torch.from_numpy(x), out, return_indices=True)
        np.testing.assert_array_equal(values, expected.numpy())
        np.testing.assert_array_equal(indices, expected_indices.numpy())


def test_first_maximum_over_rows_wins_a_tie_in_adaptive_max():
    # Row-major scan: (0, 1) comes before (1, 0); a column-first scan would pick (1, 0).
    x = np.array([[[[0., 5.], [5., 0.]]]])
    _, indices = colnn.adaptive_max_pool2d(x, 1, return_indices=True)
    assert indices.item() == 1


def test_last_nan_wins_in_adaptive_max():
    x = np.array([[[[np.nan, 0.], [9., np.nan], [1., 2.]]]])
    out, indices = colnn.adaptive_max_pool2d(x, 1, return_indices=True)
    assert np.isnan(out.item()) and indices.item() == 3


def test_max_pool1d_k3s2_equals_the_reference_with_nan(rng):
    x = _values(rng, (3, 4, 101), np.float32)
    for return_indices in (False, True):
        np.testing.assert_array_equal(colnn.max_pool1d(x, 3, 2, return_indices=return_indices),
                                      colnn.max_pool1d(x, 3, 2, return_indices=return_indices, strategy="im2col"))


def test_the_layers_match_torch(rng):
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle")
    F = torch.nn.functional
    x = rng.standard_normal((2, 3, 5, 13, 11)).astype(np.float32)
    layer = colnn.nn.MaxPool3d(2, 2, 1)
    out = layer.forward(x)
    grad = rng.standard_normal(out.shape).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_()
    F.max_pool3d(xt, 2, 2, 1).backward(torch.from_numpy(grad))
    np.testing.assert_array_equal(out, F.max_pool3d(torch.from_numpy(x), 2, 2, 1).numpy())
    np.testing.assert_array_equal(layer.backward(grad), xt.grad.numpy())
    x2 = x[:, :, 0]
    for layer, function in ((colnn.nn.AdaptiveAvgPool2d((4, 3)), F.adaptive_avg_pool2d),
                            (colnn.nn.AdaptiveMaxPool2d((4, 3)), F.adaptive_max_pool2d)):
        out = layer.forward(x2)
        grad = rng.standard_normal(out.shape).astype(np.float32)
        xt = torch.from_numpy(x2).requires_grad_()
        function(xt, (4, 3)).backward(torch.from_numpy(grad))
        np.testing.assert_allclose(out, function(torch.from_numpy(x2), (4, 3)).numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(layer.backward(grad), xt.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kernel, stride, padding", [((2, 2, 2), 2, 0), ((2, 3, 3), (1, 2, 1), 1),
                                                     ((1, 2, 4), (2, 1, 2), (0, 1, 2)), ((3, 2, 5), 2, (1, 0, 2))])
def test_max_pool3d_values_take_the_first_signed_zero_and_the_nan_as_torch(kernel, stride, padding, rng):
    # Maxima only run separably (rows, then the rows in order): any other order shows in a tie of -0.0 and 0.0.
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle")
    x = rng.choice(np.array([-0.0, 0.0, -1.0, np.nan], dtype=np.float32), size=(2, 3, 6, 9, 23), p=[.45, .45, .05, .05])
    out = colnn.max_pool3d(x, kernel, stride, padding)
    expected = torch.nn.functional.max_pool3d(torch.from_numpy(x), kernel, stride, padding).numpy()
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(np.signbit(out), np.signbit(expected))


@pytest.mark.parametrize("shape, kernel, stride, padding, dilation", [
    ((2, 3, 17), 4, 3, 2, 1), ((2, 3, 9, 11), 3, 2, 1, 2),
    ((2, 3, 5, 6, 7), (2, 3, 1), (1, 2, 3), (1, 1, 0), (2, 1, 3))])
def test_return_indices_match_torch(shape, kernel, stride, padding, dilation, rng):
    # The compiled pools' offsets become flat input indices in a compiled pass of their own (window_cells).
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle")
    ndim = len(shape) - 2
    x = rng.standard_normal(shape).astype(np.float32)
    out, indices = getattr(colnn, f"max_pool{ndim}d")(x, kernel, stride, padding, dilation, return_indices=True)
    expected, expected_indices = getattr(torch.nn.functional, f"max_pool{ndim}d")(
        torch.from_numpy(x), kernel, stride, padding, dilation, return_indices=True)
    np.testing.assert_array_equal(out, expected.numpy())
    np.testing.assert_array_equal(indices, expected_indices.numpy())
    assert indices.dtype == np.int64
