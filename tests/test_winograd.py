"""Winograd F(4x4, 3x3) against the im2col reference, PyTorch and its own conditions.

The convolution tests of test_conv.py also run through it (conftest lowers
``MIN_CHANNELS`` to 1), for every 3x3, stride-1, ungrouped case they draw.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import colnn
from colnn.kernels import winograd
from colnn.ops import conv

# Relative to the largest output: the transforms add a few roundings per value.
TOL = {np.float32: 2e-5, np.float64: 1e-12}


@st.composite
def winograd_case(draw):
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    height = draw(st.integers(max(1, 3 - 2 * padding[0]), 14))
    width = draw(st.integers(max(1, 3 - 2 * padding[1]), 14))
    shape = (draw(st.integers(1, 5)), draw(st.integers(1, 6)), height, width)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal(shape).astype(dtype)
    weight = rng.standard_normal((draw(st.integers(1, 5)), shape[1], 3, 3)).astype(dtype)
    bias = rng.standard_normal(weight.shape[0]).astype(dtype) if draw(st.booleans()) else None
    budget = draw(st.sampled_from([1, 1 << 30]))  # one image per chunk, or all at once
    return x, weight, bias, padding, budget


@settings(max_examples=150, deadline=None)
@given(case=winograd_case())
def test_winograd_equals_the_im2col_reference(case):
    x, weight, bias, padding, budget = case
    window = conv.conv_window(x.shape[2:], weight.shape[2:], 1, padding, 1)
    expected, _ = conv.conv2d_forward(x, weight, bias, window, strategy="im2col")
    out = winograd.conv2d_forward_winograd(x, weight, bias, window, budget)
    assert out.dtype == x.dtype and out.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(out, expected, rtol=0, atol=TOL[x.dtype.type] * scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_winograd_matches_torch_on_a_layer_sized_input(torch, dtype, rng):
    x = rng.standard_normal((4, 32, 19, 23)).astype(dtype)
    weight = (rng.standard_normal((24, 32, 3, 3)) / 17).astype(dtype)
    bias = rng.standard_normal(24).astype(dtype)
    window = conv.conv_window(x.shape[2:], weight.shape[2:], 1, 1, 1)
    out = winograd.conv2d_forward_winograd(x, weight, bias, window, 1 << 20)
    expected = torch.nn.functional.conv2d(*map(torch.from_numpy, (x, weight, bias)), padding=1).numpy()
    np.testing.assert_allclose(out, expected, rtol=0, atol=TOL[dtype] * np.abs(expected).max())


def test_filter_transform_is_g_g_gt():
    weight = np.arange(18, dtype=np.float64).reshape(1, 2, 3, 3)
    g = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                  [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])
    transformed = winograd.filter_transform(weight)
    assert transformed.shape == (36, 1, 2)
    for channel in range(2):
        np.testing.assert_allclose(transformed[:, 0, channel].reshape(6, 6), g @ weight[0, channel] @ g.T)


@pytest.mark.parametrize(
    ("x_shape", "weight_shape", "stride", "dilation", "groups", "takes"),
    [
        ((2, 16, 8, 8), (4, 16, 3, 3), 1, 1, 1, True),
        ((2, 16, 8, 8), (4, 16, 3, 3), 2, 1, 1, False),
        ((2, 16, 8, 8), (4, 16, 3, 3), 1, 2, 1, False),
        ((2, 16, 8, 8), (4, 8, 3, 3), 1, 1, 2, False),
        ((2, 16, 8, 8), (4, 16, 5, 5), 1, 1, 1, False),
        ((2, 16, 8, 8), (4, 16, 3, 1), 1, 1, 1, False),
    ],
)
def test_applies_to_ungrouped_3x3_stride_1_only(x_shape, weight_shape, stride, dilation, groups, takes):
    window = conv.conv_window(x_shape[2:], weight_shape[2:], stride, 1, dilation)
    assert winograd.applies(x_shape, weight_shape, window, groups) is takes


def test_few_channels_keep_im2col(monkeypatch):
    monkeypatch.setattr(winograd, "MIN_CHANNELS", 16)
    window = conv.conv_window((8, 8), (3, 3), 1, 1, 1)
    assert not winograd.applies((2, 15, 8, 8), (4, 15, 3, 3), window, 1)
    assert winograd.applies((2, 16, 8, 8), (4, 16, 3, 3), window, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_input_limit_leaves_no_room_for_overflow(dtype):
    largest = float(np.finfo(dtype).max)
    weight = np.full((2, 5, 3, 3), -0.5, dtype)
    limit = float(winograd.input_limit(weight, None))
    # The largest intermediate Winograd can form (the growth of its transforms) stays finite with room for a bias.
    half = largest / 2 * (1 + 1e-9)  # up to the rounding of these products
    assert 100 * 361 * 5 * 0.5 * limit <= half
    assert 100 * limit <= half  # the input transform alone, whatever the weights
    tiny = np.full((2, 5, 3, 3), 1e-30, dtype)
    assert 100 * float(winograd.input_limit(tiny, None)) <= half


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_or_bias_rule_winograd_out(bad):
    weight = np.ones((2, 3, 3, 3), np.float32)
    assert winograd.input_limit(weight, np.zeros(2, np.float32)) is not None
    weight[1, 2, 0, 1] = bad
    assert winograd.input_limit(weight, None) is None
    assert winograd.input_limit(np.ones((2, 3, 3, 3), np.float32), np.array([0, bad], np.float32)) is None


def test_a_huge_value_with_tiny_weights_is_still_exact():
    x = np.zeros((1, 4, 6, 6), np.float32)
    x[0, 1, 2, 3] = 3e38
    weight = np.full((2, 4, 3, 3), 1e-30, np.float32)
    out = colnn.conv2d(x, weight, padding=1)
    expected = colnn.conv2d(x, weight, padding=1, strategy="im2col")
    np.testing.assert_array_equal(out, expected)
    assert np.isfinite(out).all()
