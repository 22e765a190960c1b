"""The public boundary (colnn.core.checks), and that every op reads its arrays through it.

Oracles: NumPy on the same data in native order, PyTorch for the shapes of empty
batches, and the rules of the checks themselves (a message names the argument).
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import colnn
from colnn.core.checks import cast_pad_value, check_array, check_choice
from colnn.core.dtypes import gradient_dtype

im2col_ops = importlib.import_module("colnn.ops.unfold")
pooling_ops = importlib.import_module("colnn.ops.pooling")
conv_ops = importlib.import_module("colnn.ops.conv")
STRATEGIES = ("numba", "im2col")


# --- the checks themselves ---------------------------------------------------


@pytest.mark.parametrize("dtype", ["<f4", ">f4", ">f8", ">i2", ">u4", ">i8", "<i4"])
def test_any_byte_order_becomes_native_with_the_same_values(dtype):
    x = np.arange(24).reshape(1, 2, 3, 4).astype(dtype)
    checked = check_array(x, "x")
    assert checked.dtype.isnative
    assert checked.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(checked, x)


def test_a_ragged_sequence_is_a_value_error_naming_the_argument():
    with pytest.raises(ValueError, match=r"x must be a rectangular array, got a ragged sequence \(list of length 2\)"):
        check_array([[1, 2], [3]], "x", ndims=None)


@pytest.mark.parametrize("value", [np.array(["a"]), ["a", "b"], np.array([1 + 2j]), np.array([True]), None, object()])
def test_non_numeric_values_are_type_errors_naming_the_argument(value):
    with pytest.raises(TypeError, match=r"^x must be a"):
        check_array(value, "x", ndims=None)


def test_a_scalar_where_an_array_is_due_says_so():
    with pytest.raises(ValueError, match=r"x must be 1-D to 8-D, got a scalar 1.0"):
        check_array(1.0, "x", ndims=tuple(range(1, 9)))


def test_only_the_batch_axis_may_be_empty():
    assert check_array(np.zeros((0, 1, 2, 2)), "x").shape == (0, 1, 2, 2)
    with pytest.raises(ValueError, match=r"x must have non-empty axes after the batch axis, got shape \(1, 0, 2, 2\)"):
        check_array(np.zeros((1, 0, 2, 2)), "x")
    with pytest.raises(ValueError, match=r"weight must have non-empty axes, got shape \(0, 1, 1, 1\)"):
        check_array(np.zeros((0, 1, 1, 1)), "weight", ndims=(4,), batch_ndims=())


@pytest.mark.parametrize(
    "forward, dout, expected",
    [("float32", "float64", "float32"), ("int32", "float32", "float32"), ("uint8", "int64", "float64"),
     ("int64", "float16", "float16"), ("float16", "int8", "float16")],
)
def test_a_gradient_is_never_an_integer(forward, dout, expected):
    assert gradient_dtype(np.dtype(forward), np.dtype(dout)) == np.dtype(expected)


def test_check_choice_names_the_argument_and_the_choices():
    assert check_choice(None, "strategy", (None, "numba")) is None
    with pytest.raises(ValueError, match=r"strategy must be one of \[None, 'numba'\], got 'bogus'"):
        check_choice("bogus", "strategy", (None, "numba"))


@pytest.mark.parametrize(
    "value, dtype, expected",
    [(0.1, "float32", np.float32(0.1)), (-np.inf, "int16", -32768), (np.inf, "uint8", 255), (np.nan, "float16", None),
     (7, "int8", 7), (1e6, "float32", 1e6)],
)
def test_pad_values_that_fit_are_cast(value, dtype, expected):
    cast = cast_pad_value(value, np.dtype(dtype))
    assert cast.dtype == np.dtype(dtype)
    assert np.isnan(cast) if expected is None else cast == expected


@pytest.mark.parametrize(
    "value, dtype, error",
    [("a", "float32", TypeError), (None, "float64", TypeError), (True, "int32", TypeError),
     (1e6, "float16", ValueError), (1e39, "float32", ValueError), (300, "uint8", ValueError),
     (1.5, "int32", ValueError), (np.nan, "int32", ValueError), (2**70, "int64", ValueError)],
)
def test_pad_values_that_do_not_fit_raise_naming_the_argument(value, dtype, error):
    with pytest.raises(error, match="pad_value"):
        cast_pad_value(value, np.dtype(dtype))


# --- every op through the boundary -------------------------------------------

# name -> (call(x, strategy), input shape); each takes a float batch x.
OPS = {
    "im2col": (lambda x, s: im2col_ops.im2col(x, 3, 2, 2, 1, strategy=s), (2, 3, 7, 6)),
    "col2im": (lambda x, s: im2col_ops.col2im(x, (2, 3, 5, 5), 2, 2, 1, strategy=s), (2 * 16, 3 * 4)),
    "unfold": (lambda x, s: im2col_ops.unfold(x, (2, 3), padding=1, strategy=s), (2, 3, 7, 6)),
    "fold": (lambda x, s: im2col_ops.fold(x, (5, 5), 2, strategy=s), (2, 3 * 4, 16)),
    "max_pool2d": (lambda x, s: pooling_ops.max_pool2d(x, 3, 2, 1, strategy=s), (2, 3, 7, 6)),
    "max_pool2d indices": (lambda x, s: pooling_ops.max_pool2d(x, 3, 1, 1, return_indices=True, strategy=s),
                           (2, 3, 7, 6)),
    "avg_pool2d": (lambda x, s: pooling_ops.avg_pool2d(x, 3, 2, 1, strategy=s), (2, 3, 7, 6)),
    "conv2d 3x3": (lambda x, s: conv_ops.conv2d(x, np.ones((4, 3, 3, 3), x.dtype), padding=1, strategy=s),
                   (2, 3, 7, 6)),
    "conv2d 2x2 stride 2": (lambda x, s: conv_ops.conv2d(x, np.ones((4, 3, 2, 2), x.dtype), stride=2, strategy=s),
                            (2, 3, 7, 6)),
}


def _as_tuple(result):
    return result if isinstance(result, tuple) else (result,)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("order", [">", "<"])
def test_every_op_takes_any_byte_order_and_answers_in_native_order(name, strategy, order):
    call, shape = OPS[name]
    x = np.random.default_rng(0).integers(-9, 9, size=shape).astype(np.float32)
    swapped = x.astype(np.dtype(np.float32).newbyteorder(order))
    for got, expected in zip(_as_tuple(call(swapped, strategy)), _as_tuple(call(x, strategy))):
        assert got.dtype.isnative
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


# The same ops in PyTorch, for the shapes of an empty batch (N = 0).
TORCH_OPS = {
    "unfold": lambda F, x: F.unfold(x, (2, 3), padding=1),
    "fold": lambda F, x: F.fold(x, (5, 5), 2),
    "max_pool2d": lambda F, x: F.max_pool2d(x, 3, 2, 1),
    "max_pool2d indices": lambda F, x: F.max_pool2d(x, 3, 1, 1, return_indices=True),
    "avg_pool2d": lambda F, x: F.avg_pool2d(x, 3, 2, 1),
    "conv2d 3x3": lambda F, x: F.conv2d(x, x.new_ones((4, 3, 3, 3)), padding=1),
    "conv2d 2x2 stride 2": lambda F, x: F.conv2d(x, x.new_ones((4, 3, 2, 2)), stride=2),
}


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("name", OPS)
def test_every_op_takes_an_empty_batch(torch, name, strategy):
    call, shape = OPS[name]
    empty = np.zeros((0, *shape[1:]), np.float32)
    if name == "col2im":  # rows are (n, out_y, out_x): none for N = 0, and the image has N = 0
        empty = np.zeros((0, shape[1]), np.float32)
        results = _as_tuple(im2col_ops.col2im(empty, (0, 3, 5, 5), 2, 2, 1, strategy=strategy))
        expected_shapes = [(0, 3, 5, 5)]
    elif name == "im2col":  # the book's layout: the rows of unfold's blocks, transposed
        results = _as_tuple(call(empty, strategy))
        blocks = torch.nn.functional.unfold(torch.zeros((0, 3, 7, 6)), (3, 2), padding=1, stride=2)
        expected_shapes = [(0, blocks.shape[1])]
    else:
        results = _as_tuple(call(empty, strategy))
        expected = _as_tuple(TORCH_OPS[name](torch.nn.functional, torch.zeros(empty.shape)))
        expected_shapes = [tuple(t.shape) for t in expected]
    assert [r.shape for r in results] == expected_shapes
    assert results[0].dtype == np.float32


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_fold_of_an_empty_batch_is_not_mistaken_for_empty_channels(strategy):
    assert im2col_ops.fold(np.zeros((0, 4, 1)), (2, 2), 2, strategy=strategy).shape == (0, 1, 2, 2)


def test_messages_fit_on_one_line():
    with pytest.raises(TypeError) as error:
        check_array(np.full((40, 40), "a"), "x", ndims=None)
    assert "\n" not in str(error.value) and len(str(error.value)) < 200


FAMILY_CALLS = {
    "max_pool1d": lambda x: colnn.max_pool1d(x[:, :, 0, 0], 2),
    "avg_pool1d": lambda x: colnn.avg_pool1d(x[:, :, 0, 0], 2),
    "max_pool3d": lambda x: colnn.max_pool3d(x, 2),
    "avg_pool3d": lambda x: colnn.avg_pool3d(x, 2),
    "adaptive_avg_pool1d": lambda x: colnn.adaptive_avg_pool1d(x[:, :, 0, 0], 3),
    "adaptive_avg_pool2d": lambda x: colnn.adaptive_avg_pool2d(x[:, :, 0], 3),
    "adaptive_avg_pool3d": lambda x: colnn.adaptive_avg_pool3d(x, 3),
    "adaptive_max_pool2d": lambda x: colnn.adaptive_max_pool2d(x[:, :, 0], 3),
    "lp_pool2d": lambda x: colnn.lp_pool2d(x[:, :, 0], 2, 2),
    "fractional_max_pool2d": lambda x: colnn.fractional_max_pool2d(
        x[:, :, 0], 2, output_size=2, random_samples=np.full((*x.shape[:2], 2), 0.5)),
    "conv1d": lambda x: colnn.conv1d(x[:, :, 0, 0], np.ones((2, x.shape[1], 2))),
    "conv3d": lambda x: colnn.conv3d(x, np.ones((2, x.shape[1], 2, 2, 2))),
    "conv_transpose2d": lambda x: colnn.conv_transpose2d(x[:, :, 0], np.ones((x.shape[1], 2, 2, 2))),
}


@pytest.mark.parametrize("name", sorted(FAMILY_CALLS))
def test_the_1_2_3d_family_answers_big_endian_input_in_native_order(name):
    x = np.random.default_rng(0).normal(size=(1, 2, 4, 4, 4))
    native = FAMILY_CALLS[name](x)
    swapped = FAMILY_CALLS[name](x.astype(">f8"))
    assert swapped.dtype == np.dtype("=f8") and swapped.dtype.isnative
    np.testing.assert_array_equal(swapped, native)


def _as_float32(x):
    import array_api_compat

    xp = array_api_compat.array_namespace(x)
    return xp.astype(x, xp.float32)


BFLOAT16_OPS = {
    "avg_pool2d": lambda x: colnn.avg_pool2d(x, 2),
    "lp_pool2d": lambda x: colnn.lp_pool2d(x, 2, 2),
    "adaptive_avg_pool2d": lambda x: colnn.adaptive_avg_pool2d(x, 2),
    "conv2d": lambda x: colnn.conv2d(x, x[:1, :, :2, :2]),
    "conv2d weight": lambda x: colnn.conv2d(_as_float32(x), x[:1, :, :2, :2]),
    "Dropout": lambda x: colnn.Dropout(0.5).forward(x),
}


@pytest.mark.parametrize("library", ["torch", "jax"])
@pytest.mark.parametrize("op", sorted(BFLOAT16_OPS))
def test_bfloat16_is_refused_by_every_float_op_naming_the_supported_dtypes(library, op):
    """One rule in check_float_dtype: float16/32/64 only (NumPy has no bfloat16), max pooling aside."""
    if library == "torch":
        torch = pytest.importorskip("torch", reason="PyTorch's bfloat16")
        x = torch.ones((1, 1, 4, 4), dtype=torch.bfloat16)
        assert colnn.max_pool2d(x, 2).dtype == torch.bfloat16  # compares only: kept
    else:
        jnp = pytest.importorskip("jax.numpy", reason="JAX's bfloat16")
        x = jnp.ones((1, 1, 4, 4), dtype=jnp.bfloat16)
    with pytest.raises(TypeError, match=r"(input|x|weight) has dtype (torch\.)?bfloat16; colnn's floating-point "
                                        r"ops take float16, float32 or float64 only"):
        BFLOAT16_OPS[op](x)


def test_integers_are_refused_by_float_ops_naming_the_supported_dtypes():
    with pytest.raises(TypeError, match=r"^input must be a floating array, got dtype int64 "
                                        r"\(use float16, float32 or float64\)"):
        colnn.avg_pool2d(np.ones((1, 1, 2, 2), np.int64), 2)
