"""Per-image im2col + GEMM against the im2col reference, PyTorch, a naive sum, and the strategy's choice of it.

test_nn_fusion.py runs it inside a network (its ``image_gemm`` case), fused ReLU
against the separate layers bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colnn.kernels import conv_chunked, direct_conv, image_gemm
from colnn.ops import conv
from reference import naive_conv2d

TOL = {np.float32: 2e-5, np.float64: 1e-12}


@st.composite
def image_gemm_case(draw):
    kernel = (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, kernel[0] - 1)), draw(st.integers(0, kernel[1] - 1)))
    reach = [dilation[i] * (kernel[i] - 1) + 1 for i in range(2)]
    height = draw(st.integers(max(1, reach[0] - 2 * padding[0]), 14))
    width = draw(st.integers(max(1, reach[1] - 2 * padding[1]), 14))
    # The function itself takes any channel count; the strategy gives it one channel.
    shape = (draw(st.integers(1, 11)), draw(st.integers(1, 3)), height, width)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal(shape).astype(dtype)
    weight = rng.standard_normal((draw(st.integers(1, 20)), shape[1], *kernel)).astype(dtype)
    bias = rng.standard_normal(weight.shape[0]).astype(dtype) if draw(st.booleans()) else None
    return x, weight, bias, stride, padding, dilation, draw(st.booleans())


@settings(max_examples=150, deadline=None)
@given(case=image_gemm_case(), group_bytes=st.sampled_from([1, 4096, image_gemm.GROUP_BYTES]))
def test_image_gemm_equals_the_im2col_reference(case, group_bytes):
    x, weight, bias, stride, padding, dilation, relu = case
    window = conv.conv_window(x.shape[2:], weight.shape[2:], stride, padding, dilation)
    expected, _ = conv.conv2d_forward(x, weight, bias, window, strategy="im2col")
    if relu:
        expected = np.maximum(expected, 0)
    previous, image_gemm.GROUP_BYTES = image_gemm.GROUP_BYTES, group_bytes  # groups of one image, a few, all
    try:
        out = image_gemm.conv2d_forward_image_gemm(x, weight, bias, window, relu)
    finally:
        image_gemm.GROUP_BYTES = previous
    assert out.dtype == x.dtype and out.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(out, expected, rtol=0, atol=TOL[x.dtype.type] * scale)


@settings(max_examples=100, deadline=None)
@given(case=image_gemm_case(), group_bytes=st.sampled_from([1, 4096, image_gemm.GROUP_BYTES]))
def test_image_gemm_weight_and_bias_gradients_equal_the_im2col_reference(case, group_bytes):
    x, weight, _, stride, padding, dilation, _ = case
    window = conv.conv_window(x.shape[2:], weight.shape[2:], stride, padding, dilation)
    grad = np.random.default_rng(x.size).standard_normal((x.shape[0], weight.shape[0], window.out_h, window.out_w))
    grad = grad.astype(x.dtype)
    _, expected_weight, expected_bias = conv.conv2d_backward(grad, x.shape, *conv.conv2d_forward(
        x, weight, None, window, strategy="im2col")[1:], weight, window, strategy="im2col")
    previous, image_gemm.GROUP_BYTES = image_gemm.GROUP_BYTES, group_bytes
    try:
        grad_weight, grad_bias = image_gemm.conv2d_weight_grad_image_gemm(grad, x, weight, window)
    finally:
        image_gemm.GROUP_BYTES = previous
    assert grad_weight.dtype == grad_bias.dtype == x.dtype
    for got, expected in ((grad_weight, expected_weight), (grad_bias, expected_bias)):
        assert got.shape == expected.shape
        scale = max(1.0, float(np.abs(expected).max()))
        np.testing.assert_allclose(got, expected, rtol=0, atol=TOL[x.dtype.type] * scale * 10)


@pytest.mark.parametrize(("padding", "stride"), [(0, 1), (2, 1), (1, 2)])
def test_the_first_layers_gradients_match_torch_with_and_without_the_input_gradient(torch, rng, padding, stride):
    """SimpleConvNet's first layer (one channel, 30 filters) takes the per-image GEMM for dW and db."""
    x = rng.random((20, 1, 28, 28), dtype=np.float32)
    weight = (rng.standard_normal((30, 1, 5, 5)) / 5).astype(np.float32)
    bias = rng.standard_normal(30).astype(np.float32)
    tensors = [torch.from_numpy(a).requires_grad_() for a in (x, weight, bias)]
    out = torch.nn.functional.conv2d(*tensors, stride=stride, padding=padding)
    grad = rng.standard_normal(tuple(out.shape)).astype(np.float32)
    expected = torch.autograd.grad(out, tensors, torch.from_numpy(grad))
    window = conv.conv_window((28, 28), (5, 5), stride, padding, 1)
    assert image_gemm.applies(x.shape, weight.shape, window, 1)
    _, saved = conv.conv2d_forward(x, weight, bias, window)
    full = conv.conv2d_backward(grad, x.shape, saved, weight, window)
    partial = conv.conv2d_backward(grad, x.shape, saved, weight, window, input_grad=False)
    assert partial[0] is None
    for got, want in zip(full, expected):
        np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=2e-5 * np.abs(want.numpy()).max())
    for got, same in zip(partial[1:], full[1:]):
        np.testing.assert_array_equal(got, same)


@pytest.mark.parametrize("padding", [0, 2, "same"])
@pytest.mark.parametrize("relu", [False, True])
def test_image_gemm_matches_torch_on_the_first_layer_of_simple_conv_net(torch, rng, padding, relu):
    x = rng.random((100, 1, 28, 28), dtype=np.float32)
    weight = (rng.standard_normal((30, 1, 5, 5)) / 5).astype(np.float32)
    bias = rng.standard_normal(30).astype(np.float32)
    expected = torch.nn.functional.conv2d(*map(torch.from_numpy, (x, weight, bias)), padding=padding)
    if relu:
        expected = torch.relu(expected)
    expected = expected.numpy()
    if relu:
        out, _, mask = conv.conv2d_relu_forward(x, weight, bias, conv.conv_window((28, 28), (5, 5), 1, padding, 1))
        np.testing.assert_array_equal(mask, out == 0)
    else:
        out = conv.conv2d(x, weight, bias, padding=padding)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the reference's 0 * inf
@pytest.mark.parametrize("relu", [False, True])
def test_nan_and_inf_reach_exactly_the_windows_that_hold_them(rng, relu):
    x = rng.standard_normal((3, 1, 9, 9))
    x[0, 0, 4, 4], x[1, 0, 0, 0], x[2, 0, 8, 8] = np.nan, np.inf, -np.inf
    weight = rng.standard_normal((16, 1, 3, 3))
    weight[2, 0, 0, 0] = 0.0  # 0 * inf is NaN: BLAS must not skip a zero weight
    bias = rng.standard_normal(16)
    window = conv.conv_window(x.shape[2:], weight.shape[2:], 1, 1, 1)
    out = image_gemm.conv2d_forward_image_gemm(x, weight, bias, window, relu)
    expected = naive_conv2d(x, weight, bias, (1, 1), (1, 1), (1, 1), 1)
    if relu:
        expected = np.where(expected <= 0, 0.0, expected)  # NaN stays NaN, as in torch.relu
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(out), np.isinf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(out[np.isinf(expected)], expected[np.isinf(expected)])
    np.testing.assert_allclose(out[finite], expected[finite], rtol=1e-12, atol=1e-12)


def test_the_strategy_picks_the_direct_loops_in_float32_and_image_gemm_for_one_channel_in_float64(monkeypatch, rng):
    calls = []
    for module, name in [(image_gemm, "conv2d_forward_image_gemm"), (direct_conv, "conv2d_forward_direct"),
                         (conv_chunked, "conv2d_forward_chunked")]:
        original = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *args, original=original, name=name:
                            calls.append(name) or original(*args))
    # float32: the direct loops (unrolled 5x5, or two filters on two images tap by tap) beat the per-image
    # GEMM (3x3 goes to Winograd); float64 with one channel and enough filters takes the GEMM unless unrolled.
    cases = [((2, 1, 12, 12), (30, 1, 5, 5), 1, np.float32, "conv2d_forward_direct"),
             ((2, 1, 12, 12), (30, 1, 4, 4), 1, np.float32, "conv2d_forward_direct"),
             ((2, 1, 12, 12), (30, 1, 5, 5), 2, np.float32, "conv2d_forward_image_gemm"),  # direct: stride_h 1
             ((2, 1, 12, 12), (6, 1, 5, 5), 1, np.float32, "conv2d_forward_direct"),
             ((2, 3, 12, 12), (30, 3, 5, 5), 1, np.float32, "conv2d_forward_direct"),
             ((2, 1, 12, 12), (30, 1, 2, 2), 1, np.float32, "conv2d_forward_direct"),
             ((2, 1, 12, 12), (30, 1, 4, 4), 1, np.float64, "conv2d_forward_image_gemm"),
             ((2, 1, 12, 12), (30, 1, 5, 5), 1, np.float64, "conv2d_forward_direct"),
             ((2, 1, 12, 12), (30, 1, 4, 4), (1, 2), np.float64, "conv2d_forward_direct"),
             ((2, 1, 12, 12), (6, 1, 4, 4), 1, np.float64, "conv2d_forward_direct")]
    for x_shape, w_shape, stride, dtype, expected in cases:
        conv.conv2d(rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype),
                    stride=stride)
        assert calls == [expected], (x_shape, w_shape, stride, dtype)
        calls.clear()


def test_caller_arrays_are_not_modified(rng):
    x = rng.standard_normal((5, 1, 9, 9)).astype(np.float32)
    weight = rng.standard_normal((16, 1, 4, 4)).astype(np.float32)
    bias = rng.standard_normal(16).astype(np.float32)
    before = x.copy(), weight.copy(), bias.copy()
    conv.conv2d(x, weight, bias, padding=2)
    for array, copy in zip((x, weight, bias), before):
        np.testing.assert_array_equal(array, copy)
