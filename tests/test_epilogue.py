"""Fused epilogue kernels: ``conv2d_relu_forward`` and the affine pass against the separate ReLU kernel."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from colnn.kernels.epilogue import affine_bias_relu, relu_in_place, relu_mask
from colnn.kernels.relu import NUMPY_BELOW, relu_backward, relu_backward_in_place, relu_forward
from colnn.ops import conv

SHAPES = {  # x, weight, padding: the direct kernel, im2col + GEMM, Winograd
    "direct": ((3, 2, 9, 8), (5, 2, 4, 3), 1),
    "chunked": ((3, 6, 9, 8), (5, 6, 2, 2), 0),
    "winograd": ((3, 2, 9, 8), (5, 2, 3, 3), 1),
}


@pytest.mark.parametrize("keep_mask", [True, False])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("strategy", [None, "im2col"])
@pytest.mark.parametrize("case", SHAPES)
def test_conv_relu_equals_conv_then_relu(case, strategy, dtype, with_bias, keep_mask):
    x_shape, weight_shape, padding = SHAPES[case]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(dtype)
    x[0, 0, :2] = -0.0  # with zero weights below, sums of -0.0 products: relu must give +0.0
    weight = rng.standard_normal(weight_shape).astype(dtype)
    weight[0] = 0
    bias = rng.standard_normal(weight_shape[0]).astype(dtype) if with_bias else None
    window = conv.conv_window(x.shape[2:], weight.shape[2:], 1, padding, 1)
    plain, saved = conv.conv2d_forward(x, weight, bias, window, strategy=strategy)
    expected, expected_mask = relu_forward(plain)
    out, fused_saved, mask = conv.conv2d_relu_forward(x, weight, bias, window, strategy=strategy,
                                                      keep_mask=keep_mask)
    np.testing.assert_array_equal(out, expected, strict=True)
    assert not np.signbit(out).any()
    assert (mask is None) if not keep_mask else np.array_equal(mask, expected_mask)
    assert type(fused_saved) is type(saved) and fused_saved.shape == saved.shape


def numpy_relu(values):
    """The oracle: NumPy's ``where(v <= 0, +0.0, v)`` (NaN passes, -0.0 becomes +0.0) and the mask ``v <= 0``."""
    return np.where(values <= 0, np.zeros((), values.dtype), values), values <= 0


# (6, 7) takes NumPy's formulas; (6, 7 * 500) is past relu.NUMPY_BELOW, so the compiled loops run.
@pytest.mark.parametrize("rows_per_block", [1, 500])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_in_place_the_affine_pass_and_the_mask_match_numpys_relu(rows_per_block, dtype):
    rng = np.random.default_rng(1)
    values = rng.standard_normal((6, 7)).astype(dtype)
    values[0, :6] = [np.nan, -np.inf, np.inf, -0.0, 0.0, np.finfo(dtype).tiny]
    bias = rng.standard_normal(7).astype(dtype)
    bias[:6] = 0
    values, bias = np.tile(values, (1, rows_per_block)), np.tile(bias, rows_per_block)
    assert (values.size >= NUMPY_BELOW) == (rows_per_block > 1)
    expected, expected_mask = numpy_relu(values + bias)
    product = values.copy()
    affine_bias_relu(product, bias)
    np.testing.assert_array_equal(product, expected, strict=True)
    assert not np.signbit(product[~np.isnan(product)]).any()  # -0.0 + 0 gives +0.0, never -0.0
    np.testing.assert_array_equal(relu_mask(product), expected_mask, strict=True)
    expected, expected_mask = numpy_relu(values)
    in_place = values.copy()
    relu_in_place(in_place)
    np.testing.assert_array_equal(in_place, expected, strict=True)
    np.testing.assert_array_equal(relu_mask(in_place), expected_mask, strict=True)
    for compiled in (True, False):
        out, mask = relu_forward(values, compiled=compiled)
        np.testing.assert_array_equal(out, expected, strict=True)
        np.testing.assert_array_equal(mask, expected_mask, strict=True)
    grad = rng.standard_normal(values.shape).astype(dtype)
    np.testing.assert_array_equal(relu_backward(grad, mask), np.where(mask, 0, grad).astype(dtype), strict=True)
    in_grad = grad.copy()
    assert relu_backward_in_place(in_grad, mask)
    np.testing.assert_array_equal(in_grad, np.where(mask, 0, grad).astype(dtype), strict=True)


def test_small_relu_and_affine_passes_leave_numba_unloaded():
    code = """
import sys
import numpy as np
from colnn.kernels.epilogue import affine_bias_relu
from colnn.kernels.relu import relu_backward, relu_backward_in_place, relu_forward
x = np.linspace(-1, 1, 60).reshape(6, 10)
out, mask = relu_forward(x)
relu_forward(np.ones((300, 300)), compiled=False)  # the reference path's: any size
relu_backward(x, mask), relu_backward_in_place(x.copy(), mask), affine_bias_relu(x.copy(), np.ones(10))
print("numba" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
