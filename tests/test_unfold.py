"""im2col/col2im against the tutorial and the book's code; unfold/fold against PyTorch; adjointness.

The oracle tests take the ``backend`` fixture (``tests/backends.py``): the compiled
default, the NumPy reference, and the Array API path on array_api_strict, PyTorch and
JAX arrays.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import colnn
from reference import (
    TUTORIAL_OUT,
    TUTORIAL_STEP1,
    TUTORIAL_STEP1_ROWS,
    TUTORIAL_STEP2,
    TUTORIAL_X,
    book_im2col,
)

HYPOTHESIS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def unfold_case(draw):
    """A batch and window arguments whose output is non-empty (any padding is allowed)."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    min_h = max(1, dilation[0] * (kernel[0] - 1) + 1 - 2 * padding[0])
    min_w = max(1, dilation[1] * (kernel[1] - 1) + 1 - 2 * padding[1])
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(min_h, min_h + 5)),
             draw(st.integers(min_w, min_w + 5)))
    x = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).standard_normal(shape)
    return x, {"kernel_size": kernel, "dilation": dilation, "padding": padding, "stride": stride}


# --- the tutorial's worked example -----------------------------------------


def test_tutorial_worked_example_step_by_step(backend):
    step1 = backend.call(colnn.im2col, TUTORIAL_X, 2, 2, 2, 0)
    np.testing.assert_array_equal(step1, TUTORIAL_STEP1)
    rows = step1.reshape(-1, 4)
    np.testing.assert_array_equal(rows, TUTORIAL_STEP1_ROWS)
    maxima = rows.max(axis=1)
    np.testing.assert_array_equal(maxima, TUTORIAL_STEP2)
    np.testing.assert_array_equal(maxima.reshape(1, 2, 2, -1).transpose(0, 3, 1, 2), TUTORIAL_OUT)
    np.testing.assert_array_equal(backend.back(colnn.Pooling(2, 2, 2).forward(backend.to(TUTORIAL_X))), TUTORIAL_OUT)


def test_im2col_keeps_dtype_unlike_the_tutorial(backend):
    for dtype in (np.int64, np.float16, np.float32):
        if backend.supports(dtype):
            assert backend.call(colnn.im2col, TUTORIAL_X.astype(dtype), 2, 2, 2, 0).dtype == dtype


def test_im2col_matches_the_books_code(backend):
    @backend.settings(HYPOTHESIS.max_examples)
    @given(case=unfold_case())
    def check(case):
        x, args = case
        stride, padding = args["stride"][0], args["padding"][0]
        kernel = args["kernel_size"]
        if ((x.shape[3] + 2 * padding - kernel[1]) // stride + 1 < 1
                or (x.shape[2] + 2 * padding - kernel[0]) // stride + 1 < 1):
            return
        expected = book_im2col(x, kernel[0], kernel[1], stride, padding)
        np.testing.assert_array_equal(backend.call(colnn.im2col, x, kernel[0], kernel[1], stride, padding), expected)

    check()


def test_im2col_pad_value_fills_padding(backend):
    col = backend.call(colnn.im2col, np.ones((1, 1, 1, 1)), 3, 3, 1, 1, pad_value=-np.inf)
    assert np.isneginf(col).sum() == 8 and (col == 1).sum() == 1


def test_im2col_integer_input_reads_minus_inf_as_the_minimum(backend):
    col = backend.call(colnn.im2col, np.ones((1, 1, 1, 1), dtype=np.int16), 3, 3, 1, 1, pad_value=-np.inf)
    assert col.dtype == np.int16 and (col == np.iinfo(np.int16).min).sum() == 8
    with pytest.raises(ValueError, match="pad_value"):
        backend.call(colnn.im2col, np.ones((1, 1, 1, 1), dtype=np.uint8), 3, 3, 1, 1, pad_value=-1)


# --- adjointness -------------------------------------------------------------


def test_col2im_is_the_adjoint_of_im2col(backend):
    @backend.settings(HYPOTHESIS.max_examples)
    @given(case=unfold_case())
    def check(case):
        x, args = case
        kh, kw = args["kernel_size"]
        col = backend.call(colnn.im2col, x, kh, kw, args["stride"], args["padding"], dilation=args["dilation"])
        y = np.random.default_rng(1).standard_normal(col.shape)
        back = backend.call(colnn.col2im, y, x.shape, kh, kw, args["stride"], args["padding"],
                            dilation=args["dilation"])
        assert back.shape == x.shape
        np.testing.assert_allclose(np.vdot(col, y), np.vdot(x, back), rtol=1e-10)

    check()


# --- PyTorch's unfold/fold ---------------------------------------------------


def test_unfold_and_fold_match_torch(torch, backend):
    @backend.settings(HYPOTHESIS.max_examples)
    @given(case=unfold_case(), unbatched=st.booleans())
    def check(case, unbatched):
        x, args = case
        x = x[0] if unbatched else x
        blocks = backend.call(colnn.unfold, x, **args)
        expected = torch.nn.functional.unfold(torch.from_numpy(x), **args).numpy()
        np.testing.assert_array_equal(blocks, expected)

        y = np.random.default_rng(2).standard_normal(blocks.shape)
        folded = backend.call(colnn.fold, y, x.shape[-2:], **args)
        expected_fold = torch.nn.functional.fold(torch.from_numpy(y), x.shape[-2:], **args).numpy()
        np.testing.assert_allclose(folded, expected_fold, rtol=1e-12, atol=1e-12)

    check()


def test_unfold_is_im2col_transposed(backend):
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 6))
    col = backend.call(colnn.im2col, x, 3, 2, 1, 1)
    blocks = backend.call(colnn.unfold, x, (3, 2), padding=1)
    np.testing.assert_array_equal(blocks, col.reshape(2, -1, col.shape[1]).transpose(0, 2, 1))


def test_outputs_do_not_alias_the_input(backend):
    if backend.name == "jax":
        pytest.skip("JAX arrays are immutable: nothing can be written through an alias")
    x = backend.to(np.random.default_rng(0).standard_normal((1, 2, 3, 3)))  # PyTorch shares NumPy's memory
    blocks = colnn.unfold(x, 1, strategy=backend.strategy)
    blocks[...] = 0  # must be writable and independent
    assert np.abs(backend.back(x)).sum() > 0
    col = colnn.im2col(x, 1, 1, strategy=backend.strategy)
    col[...] = 0
    assert np.abs(backend.back(x)).sum() > 0


# --- bad input ---------------------------------------------------------------


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda to: colnn.im2col(to(np.zeros((2, 4, 4))), 2, 2), ValueError, "input_data"),
        (lambda to: colnn.im2col(to(np.zeros((1, 1, 4, 4))), 0, 2), ValueError, "filter_h"),
        (lambda to: colnn.im2col(to(np.zeros((1, 1, 4, 4))), 2, 2, stride=0), ValueError, "stride"),
        (lambda to: colnn.im2col(to(np.zeros((1, 1, 4, 4))), 2, 2, pad=-1), ValueError, "pad"),
        (lambda to: colnn.im2col(to(np.zeros((1, 1, 2, 2))), 3, 3), ValueError, "empty"),
        (lambda to: colnn.im2col(to(np.zeros((1, 1, 2, 2), dtype=complex)), 1, 1), TypeError, "complex"),
        (lambda to: colnn.im2col(None, 1, 1), TypeError, "None"),
        (lambda to: colnn.col2im(to(np.zeros((3, 4))), (1, 1, 4, 4), 2, 2, 2), ValueError, "col must have shape"),
        (lambda to: colnn.col2im(to(np.zeros((4, 4))), (1, 4, 4), 2, 2, 2), ValueError, "input_shape"),
        (lambda to: colnn.unfold(to(np.zeros((1, 1, 4, 4))), 2, dilation=0), ValueError, "dilation"),
        (lambda to: colnn.fold(to(np.zeros((1, 5, 9))), (4, 4), 2), ValueError, "divisible"),
        (lambda to: colnn.fold(to(np.zeros((1, 4, 8))), (4, 4), 2), ValueError, "number of blocks"),
        (lambda to: colnn.unfold(to(np.zeros((1, 1, 4, 4))), 2.5), TypeError, "kernel_size"),
        (lambda to: colnn.unfold(to(np.zeros((1, 1, 4, 4))), (1, 2, 3)), ValueError, "kernel_size"),
        (lambda to: colnn.im2col(to(np.zeros((1, 1, 4, 4))), 2, 2, strategy="fft"), ValueError, "strategy"),
        (lambda to: colnn.fold(to(np.zeros((1, 4, 9))), (4, 4), 2, strategy="numpy"), ValueError, "strategy"),
    ],
)
def test_bad_input_raises_naming_the_argument(backend, call, error, match):
    with pytest.raises(error, match=match):
        call(backend.to)


# --- N-d unfold and fold: any number of spatial axes (ONNX's Col2Im) ----------------------------------------


def naive_unfold(x, kernel, dilation, padding, stride):
    """``(N, C*K, L)`` by loops over windows and kernel offsets of an explicitly zero-padded copy."""
    ndim = x.ndim - 2
    padded = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in padding])
    out = [(size + 2 * p - d * (k - 1) - 1) // s + 1 for size, k, d, p, s in
           zip(x.shape[2:], kernel, dilation, padding, stride)]
    columns = []
    for window in np.ndindex(*out):
        cells = []
        for c in range(x.shape[1]):
            for offset in np.ndindex(*kernel):
                index = tuple(o * s + k * d for o, s, k, d in zip(window, stride, offset, dilation))
                cells.append(padded[(slice(None), c, *index)])
        columns.append(np.stack(cells, axis=1))
    assert len(kernel) == ndim
    return np.stack(columns, axis=2)


@pytest.mark.parametrize("strategy", [None, "im2col"])
@pytest.mark.parametrize(("shape", "kernel", "dilation", "padding", "stride"), [
    ((2, 3, 9), (3,), (2,), (1,), (2,)),
    ((2, 2, 5, 6, 4), (2, 3, 2), (1, 1, 2), (1, 0, 1), (2, 1, 1)),
    ((1, 2, 3, 4, 3, 3), (2, 2, 1, 2), (1, 1, 1, 1), (0, 1, 0, 0), (1, 2, 1, 1)),
])
def test_nd_unfold_matches_a_loop_and_fold_is_its_adjoint(shape, kernel, dilation, padding, stride, strategy):
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape)
    blocks = colnn.unfold(x, kernel, dilation, padding, stride, strategy=strategy)
    np.testing.assert_array_equal(blocks, naive_unfold(x, kernel, dilation, padding, stride))
    y = rng.standard_normal(blocks.shape)
    image = colnn.fold(y, shape[2:], kernel, dilation, padding, stride, strategy=strategy)
    assert image.shape == shape
    np.testing.assert_allclose(np.vdot(blocks, y), np.vdot(x, image), rtol=1e-12)
    da = pytest.importorskip("dask.array")
    lazy = colnn.fold(da.from_array(y, chunks=(1, y.shape[1] // 2 or 1, 3)), shape[2:], kernel, dilation, padding,
                      stride, strategy=strategy)
    np.testing.assert_allclose(lazy.compute(scheduler="sync"), image, rtol=1e-12, atol=1e-12)


def test_a_one_tuple_unfolds_a_batch_along_one_axis_and_pytorchs_forms_stay_two_d():
    x = np.arange(2 * 3 * 8.0).reshape(2, 3, 8)
    assert colnn.unfold(x, (3,)).shape == (2, 9, 6)  # batched (N, C, L): PyTorch refuses 1-tuples
    assert colnn.unfold(x[0], (3,)).shape == (9, 6)  # unbatched (C, L)
    assert colnn.unfold(x, 2).shape == (8, 14)  # PyTorch's unbatched (C, H, W)
    assert colnn.fold(np.ones((1, 2, 3)), (4,), (2,)).shape == (1, 1, 4)
    with pytest.raises(ValueError, match="kernel_size must be an int or a pair of ints"):
        colnn.unfold(np.ones((1, 1, 4, 4)), (1, 2, 3))


def test_nd_fold_is_onnxs_col2im():
    pytest.importorskip("onnx", reason="needs onnx (pip install colnn[bench])")
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(6)
    for image, block, dilation, pads, stride in [((3, 4, 5), (1, 1, 5), (1, 1, 1), (0, 0, 0), (1, 1, 1)),
                                                 ((5, 6), (2, 3), (2, 1), (1, 0), (1, 2)),
                                                 ((9,), (3,), (2,), (1,), (2,))]:
        windows = [(size + 2 * p - d * (k - 1) - 1) // s + 1 for size, k, d, p, s in
                   zip(image, block, dilation, pads, stride)]
        blocks = rng.standard_normal((2, 3 * int(np.prod(block)), int(np.prod(windows))))
        node = helper.make_node("Col2Im", ["input", "image_shape", "block_shape"], ["output"],
                                dilations=list(dilation), pads=list(pads) * 2, strides=list(stride))
        graph = helper.make_graph(
            [node], "col2im", [helper.make_tensor_value_info("input", TensorProto.DOUBLE, list(blocks.shape)),
                               helper.make_tensor_value_info("image_shape", TensorProto.INT64, [len(image)]),
                               helper.make_tensor_value_info("block_shape", TensorProto.INT64, [len(block)])],
            [helper.make_tensor_value_info("output", TensorProto.DOUBLE, None)])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
        expected = ReferenceEvaluator(model).run(None, {"input": blocks, "image_shape": np.array(image),
                                                         "block_shape": np.array(block)})[0]
        for strategy in (None, "im2col"):
            got = colnn.fold(blocks, image, block, dilation, pads, stride, strategy=strategy)
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
