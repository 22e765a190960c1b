"""Max and average pooling against PyTorch (the oracle), a naive loop, and named edge cases.

Every conformance test takes the ``backend`` fixture (``tests/backends.py``): it runs
once per NumPy reduction strategy and once on array_api_strict, PyTorch and JAX
arrays, so a new strategy and the Array API path are held to the same semantics
as the tutorial's im2col path.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import colnn
from reference import naive_avg_pool2d, naive_max_pool2d, out_size

STRATEGIES = colnn.available_strategies()
FLOATS = [np.float16, np.float32, np.float64]
INTEGERS = [np.int8, np.uint8, np.int16, np.int32, np.int64]
GRAD_TOL = {np.float16: 2e-2, np.float32: 1e-5, np.float64: 1e-12}
HYPOTHESIS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def window_args(draw, dilation: bool = True):
    """Kernel, stride, padding (<= kernel // 2) and dilation pairs, and ceil_mode."""
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    args = {
        "kernel_size": kernel,
        "stride": draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3)))),
        "padding": (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2))),
        "ceil_mode": draw(st.booleans()),
    }
    if dilation:
        args["dilation"] = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return args


@st.composite
def pool_input(draw, dtypes):
    """Small arrays with many ties (values from a narrow range), NaN and +-inf for floats."""
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    low = 0 if dtype.kind == "u" else -4
    x = rng.integers(low, 4, size=shape).astype(dtype)
    if dtype.kind == "f":
        if draw(st.booleans()):
            x = (x + rng.random(shape)).astype(dtype)  # also some inputs without ties
        special = rng.random(shape)
        x[special < draw(st.sampled_from([0.0, 0.05, 0.2]))] = np.nan
        x[special > 1 - draw(st.sampled_from([0.0, 0.1, 0.5]))] = -np.inf
        x[(special > 0.45) & (special < 0.47)] = np.inf
    if draw(st.booleans()):
        x = x[0]  # unbatched (C, H, W)
    return x


def every_window_touches_input(in_hw, out_hw, args) -> bool:
    stride = args["stride"] or args["kernel_size"]
    for axis in (0, 1):
        k, s, p, d = args["kernel_size"][axis], stride[axis], args["padding"][axis], args["dilation"][axis]
        for o in range(out_hw[axis]):
            if not any(0 <= o * s - p + j * d < in_hw[axis] for j in range(k)):
                return False
    return True


def torch_or_error(torch, fn, x, **kwargs):
    """Torch's result, or None if torch rejects the arguments."""
    try:
        return fn(torch.from_numpy(np.ascontiguousarray(x)), **kwargs)
    except RuntimeError:
        return None


# --- PyTorch as oracle ------------------------------------------------------


def test_max_pool2d_matches_torch_bit_exactly(torch, backend):
    @backend.settings(HYPOTHESIS.max_examples)
    @given(x=pool_input(FLOATS + INTEGERS), args=window_args())
    def check(x, args):
        assume(backend.supports(x.dtype))
        expected = torch_or_error(torch, torch.nn.functional.max_pool2d, x, return_indices=True, **args)
        if expected is None:
            with pytest.raises(ValueError):
                backend.call(colnn.max_pool2d, x, **args)
            return
        out, indices = backend.call(colnn.max_pool2d, x, **args, return_indices=True)
        assert out.dtype == x.dtype and indices.dtype == np.int64
        np.testing.assert_array_equal(out, expected[0].numpy())  # NaN == NaN here
        np.testing.assert_array_equal(indices, expected[1].numpy())

    check()


def test_max_pool2d_backward_matches_torch(torch, backend):
    @backend.settings(HYPOTHESIS.max_examples)
    @given(x=pool_input(FLOATS), args=window_args())
    def check(x, args):
        assume(backend.supports(x.dtype))
        x_torch = torch.from_numpy(x.copy()).requires_grad_()
        try:
            out_torch = torch.nn.functional.max_pool2d(x_torch, **args)
        except RuntimeError:
            return
        # A dilated window can miss the input entirely; torch then reports an index outside
        # the window's row or plane and its backward writes there. colnn drops that gradient.
        assume(every_window_touches_input(x.shape[-2:], out_torch.shape[-2:], args))
        dout = np.random.default_rng(0).standard_normal(out_torch.shape).astype(x.dtype)
        out_torch.backward(torch.from_numpy(dout))
        layer = colnn.MaxPool2d(**args, strategy=backend.strategy)
        layer.forward(backend.to(x))
        dx = backend.back(layer.backward(backend.to(dout)))
        assert dx.dtype == x.dtype and dx.shape == x.shape
        tol = GRAD_TOL[x.dtype.type]
        np.testing.assert_allclose(dx, x_torch.grad.numpy(), rtol=tol, atol=tol)

    check()


@st.composite
def avg_args(draw):
    args = draw(window_args(dilation=False))
    args["count_include_pad"] = draw(st.booleans())
    args["divisor_override"] = draw(st.one_of(st.none(), st.integers(-3, 7).filter(bool)))
    return args


def test_avg_pool2d_forward_and_backward_match_torch(torch, backend):
    @backend.settings(HYPOTHESIS.max_examples)
    @given(x=pool_input(FLOATS), args=avg_args())
    def check(x, args):
        assume(backend.supports(x.dtype))
        x = np.nan_to_num(x, nan=0.5, posinf=3.0, neginf=-3.0)  # inf - inf would make NaN gradients
        x_torch = torch.from_numpy(x.copy()).requires_grad_()
        try:
            out_torch = torch.nn.functional.avg_pool2d(x_torch, **args)
        except RuntimeError:
            with pytest.raises(ValueError):
                backend.call(colnn.avg_pool2d, x, **args)
            return
        tol = GRAD_TOL[x.dtype.type]
        out = backend.call(colnn.avg_pool2d, x, **args)
        assert out.dtype == x.dtype
        np.testing.assert_allclose(out, out_torch.detach().numpy(), rtol=tol, atol=tol)

        dout = np.random.default_rng(1).standard_normal(out_torch.shape).astype(x.dtype)
        out_torch.backward(torch.from_numpy(dout))
        layer = colnn.AvgPool2d(**args, strategy=backend.strategy)
        layer.forward(backend.to(x))
        np.testing.assert_allclose(backend.back(layer.backward(backend.to(dout))), x_torch.grad.numpy(),
                                   rtol=tol, atol=tol)

    check()


# --- a naive loop as oracle (runs without torch) ----------------------------


def output_is_nonempty(x, args, raises, pool) -> bool:
    """True if the output is non-empty; else check that ``pool`` raises and return False."""
    stride = args["stride"] or args["kernel_size"]
    sizes = [
        out_size(x.shape[2 + a], args["kernel_size"][a], stride[a], args["padding"][a],
                 args.get("dilation", (1, 1))[a], args["ceil_mode"])
        for a in (0, 1)
    ]
    if min(sizes) >= 1:
        return True
    with raises:
        pool(x, **args)
    return False


NAIVE = settings(max_examples=60, deadline=None)


def test_max_pool2d_matches_naive_loop(backend):
    @backend.settings(NAIVE.max_examples)
    @given(x=pool_input([np.float32, np.int16]), args=window_args())
    def check(x, args):
        def pool(values, **kwargs):
            return backend.call(colnn.max_pool2d, values, **kwargs)

        x4 = x if x.ndim == 4 else x[None]
        if not output_is_nonempty(x4, args, pytest.raises(ValueError), pool):
            return
        stride = args["stride"] or args["kernel_size"]
        expected, expected_idx = naive_max_pool2d(
            x4, args["kernel_size"], stride, args["padding"], args["dilation"], args["ceil_mode"]
        )
        out, indices = backend.call(colnn.max_pool2d, x4, **args, return_indices=True)
        np.testing.assert_array_equal(out, expected)
        np.testing.assert_array_equal(indices, expected_idx)

    check()


def test_avg_pool2d_matches_naive_loop(backend):
    @backend.settings(NAIVE.max_examples)
    @given(x=pool_input([np.float64]), args=avg_args())
    def check(x, args):
        def pool(values, **kwargs):
            return backend.call(colnn.avg_pool2d, values, **kwargs)

        x4 = np.nan_to_num(x if x.ndim == 4 else x[None], nan=1.0, posinf=2.0, neginf=-2.0)
        if not output_is_nonempty(x4, args, pytest.raises(ValueError), pool):
            return
        stride = args["stride"] or args["kernel_size"]
        expected = naive_avg_pool2d(
            x4, args["kernel_size"], stride, args["padding"], args["ceil_mode"],
            args["count_include_pad"], args["divisor_override"],
        )
        np.testing.assert_allclose(backend.call(colnn.avg_pool2d, x4, **args), expected, rtol=1e-12, atol=1e-12)

    check()


# --- finite differences -----------------------------------------------------


@pytest.mark.parametrize(
    "layer_args",
    [
        {"kind": "max", "kernel_size": 3, "stride": 2, "padding": 1},
        {"kind": "max", "kernel_size": (2, 3), "stride": 1, "dilation": (2, 1), "ceil_mode": True},
        {"kind": "avg", "kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False},
        {"kind": "avg", "kernel_size": 2, "stride": 1, "divisor_override": 3},
    ],
)
def test_pooling_gradient_matches_finite_differences(backend, layer_args):
    from reference import numerical_gradient

    args = dict(layer_args)
    layer_cls = colnn.MaxPool2d if args.pop("kind") == "max" else colnn.AvgPool2d
    rng = np.random.default_rng(7)
    # A permutation of well-separated values: no ties, so max pooling is differentiable.
    x = rng.permutation(2 * 2 * 6 * 7).reshape(2, 2, 6, 7).astype(np.float64) * 0.1
    out = layer_cls(**args, strategy=backend.strategy).forward(backend.to(x))
    weights = rng.standard_normal(tuple(out.shape))

    def loss(values: np.ndarray) -> float:
        return float((backend.back(layer_cls(**args, strategy=backend.strategy).forward(backend.to(values)))
                      * weights).sum())

    layer = layer_cls(**args, strategy=backend.strategy)
    layer.forward(backend.to(x))
    np.testing.assert_allclose(backend.back(layer.backward(backend.to(weights))),
                               numerical_gradient(loss, x, eps=1e-4), rtol=1e-6, atol=1e-8)


# --- named edge cases -------------------------------------------------------


def test_padding_is_never_selected_for_negative_inputs(backend):
    # The tutorial pads max pooling with zeros, which would report 0 here.
    x = -np.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    out = backend.call(colnn.max_pool2d, x, 2, stride=2, padding=1)
    assert (out < 0).all()
    assert out[0, 0, 0, 0] == -1.0


def test_ties_take_first_index_and_whole_gradient(backend):
    x = np.full((1, 1, 2, 2), 5.0, dtype=np.float32)
    layer = colnn.MaxPool2d(2, strategy=backend.strategy)
    layer.forward(backend.to(x))
    np.testing.assert_array_equal(backend.back(layer.indices), [[[[0]]]])
    np.testing.assert_array_equal(backend.back(layer.backward(backend.to(np.ones((1, 1, 1, 1), np.float32)))),
                                  [[[[1, 0], [0, 0]]]])


def test_nan_wins_with_index_of_last_nan(backend):
    x = np.array([[[[1.0, np.nan], [np.nan, 9.0]]]])
    out, indices = backend.call(colnn.max_pool2d, x, 2, return_indices=True)
    assert np.isnan(out).all()
    assert indices.item() == 2


def test_all_minus_inf_window_reports_first_in_bounds_cell(backend):
    x = np.full((1, 1, 3, 3), -np.inf)
    out, indices = backend.call(colnn.max_pool2d, x, 3, stride=2, padding=1, return_indices=True)
    assert np.isneginf(out).all()
    # Window (0, 0) starts at (-1, -1): its first in-bounds cell is (0, 0); window (1, 1) starts at (1, 1).
    np.testing.assert_array_equal(indices, [[[[0, 1], [3, 4]]]])


def test_ceil_mode_drops_window_starting_in_padding(backend):
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    # ceil((5 + 2 - 2) / 2) + 1 = 4, but the 4th window would start at 6 >= 5 + 1: 3 remain.
    assert backend.call(colnn.max_pool2d, x, 2, stride=2, padding=1, ceil_mode=True).shape == (1, 1, 3, 3)
    assert backend.call(colnn.max_pool2d, x, 2, stride=2, ceil_mode=True).shape == (1, 1, 3, 3)
    assert backend.call(colnn.max_pool2d, x, 2, stride=2).shape == (1, 1, 2, 2)


def test_ceil_mode_avg_divisor_clipped_to_padded_border(backend):
    x = np.ones((1, 1, 5, 5))
    out = backend.call(colnn.avg_pool2d, x, 2, stride=2, ceil_mode=True)
    # The last window holds one row/column of real cells and runs past the border (no padding): divisor shrinks.
    np.testing.assert_array_equal(out, np.ones((1, 1, 3, 3)))


@pytest.mark.parametrize("dtype", INTEGERS)
def test_max_pool_keeps_integer_dtype_and_minimum(backend, dtype):
    info = np.iinfo(dtype)
    x = np.full((1, 1, 2, 2), info.min, dtype=dtype)
    out = backend.call(colnn.max_pool2d, x, 2, stride=1, padding=1)
    assert out.dtype == dtype
    assert (out == info.min).all()


@pytest.mark.parametrize("dtype", FLOATS)
def test_dtype_preserved(backend, dtype):
    if not backend.supports(dtype):
        pytest.skip(f"{backend.name} has no {np.dtype(dtype)}")
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(dtype)
    assert backend.call(colnn.max_pool2d, x, 2).dtype == dtype
    assert backend.call(colnn.avg_pool2d, x, 2).dtype == dtype


def test_unbatched_input_gives_unbatched_output(backend):
    x = np.random.default_rng(0).standard_normal((3, 6, 6))
    out, indices = backend.call(colnn.max_pool2d, x, 2, return_indices=True)
    assert out.shape == indices.shape == (3, 3, 3)
    np.testing.assert_array_equal(out, backend.call(colnn.max_pool2d, x[None], 2)[0])
    assert backend.call(colnn.avg_pool2d, x, 3, stride=1).shape == (3, 4, 4)


def test_strategies_agree_and_unknown_strategy_is_rejected():
    x = np.random.default_rng(3).standard_normal((2, 2, 7, 7)).astype(np.float32)
    results = [colnn.max_pool2d(x, 3, 2, 1, return_indices=True, strategy=name) for name in STRATEGIES]
    for out, indices in results[1:]:
        np.testing.assert_array_equal(out, results[0][0])
        np.testing.assert_array_equal(indices, results[0][1])
    with pytest.raises(ValueError, match="strategy"):
        colnn.max_pool2d(x, 2, strategy="no-such-strategy")


# --- gradients are floating; float16 sums in float32 ----------------------------


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int32", "int64", "uint16"])
@pytest.mark.parametrize("dout_dtype, grad_dtype", [("float32", "float32"), ("float64", "float64"),
                                                    ("int64", "float64"), ("uint8", "float64")])
def test_integer_max_pooling_has_floating_gradients(backend, dtype, dout_dtype, grad_dtype):
    if not backend.supports(dtype):
        pytest.skip(f"{backend.name} has no {dtype}")
    x = np.arange(2 * 3 * 5 * 4).reshape(2, 3, 5, 4).astype(dtype)[:, :, ::-1]
    dout_value = np.array(0.5 if dout_dtype.startswith("float") else 3).astype(dout_dtype)
    layers = [colnn.MaxPool2d(2, 1, strategy=backend.strategy), colnn.MaxPool2d(3, 2, 1, strategy=backend.strategy)]
    if backend.name != "im2col":
        layers.append(colnn.Pooling(2, 2, stride=2))  # the book's layer takes the default strategy
    for layer in layers:
        out = layer.forward(backend.to(x))
        dx = backend.back(layer.backward(backend.to(np.full(out.shape, dout_value))))
        assert dx.dtype == np.dtype(grad_dtype)
        indices = backend.back(layer.indices)
        # Each output's gradient lands on its chosen cell: the same as routing by the indices.
        expected = np.zeros(x.shape, np.float64).reshape(2, 3, -1)
        for (n, c, flat) in zip(*np.indices(indices.shape)[:2].reshape(2, -1), indices.reshape(-1)):
            expected[n, c, flat] += float(dout_value)
        np.testing.assert_array_equal(dx, expected.reshape(x.shape))


def test_max_pool2d_backward_function_gives_floating_gradients(backend):
    pooling = __import__("importlib").import_module("colnn.ops.pooling")
    x = backend.to(np.array([[[[1, 9], [3, 4]]]], np.int32))
    window = pooling.pool_window(x, 2, None, 0, 1, False)
    out, offset = pooling.max_pool_forward(x, window, backend.strategy)
    grad = backend.back(pooling.max_pool_backward(backend.to(np.full(tuple(out.shape), 10**10)), offset,
                                                    tuple(x.shape), window, backend.strategy))
    assert grad.dtype == np.float64
    np.testing.assert_array_equal(grad, [[[[0, 1e10], [0, 0]]]])


def test_float16_max_pooling_gradient_sums_in_float32(backend):
    if not backend.supports(np.float16):
        pytest.skip(f"{backend.name} has no float16")
    # The case: 46*46 = 2116 windows pick the centre; summed in float16, 2048 + 1 == 2048.
    x = np.zeros((1, 1, 91, 91), np.float16)
    x[0, 0, 45, 45] = 1
    layer = colnn.MaxPool2d(46, stride=1, strategy=backend.strategy)
    out = backend.back(layer.forward(backend.to(x)))
    dx = backend.back(layer.backward(backend.to(np.ones_like(out))))
    assert dx.dtype == np.float16
    assert dx[0, 0, 45, 45] == 2116


@pytest.mark.parametrize("kernel, stride, padding, count_include_pad",
                         [(5, 1, 2, True), (6, 2, 3, False), (4, 3, 0, True)])
def test_float16_pooling_agrees_with_a_float64_sum_rounded_once(backend, kernel, stride, padding, count_include_pad):
    if not backend.supports(np.float16):
        pytest.skip(f"{backend.name} has no float16")
    rng = np.random.default_rng(kernel)
    # Window sums reach 2**15, where float16 steps by 32; divisor 1 keeps the float64 oracle exact.
    x = rng.integers(0, 1024, size=(2, 2, 17, 15)).astype(np.float16)
    avg = colnn.AvgPool2d(kernel, stride, padding, count_include_pad=count_include_pad, divisor_override=1,
                          strategy=backend.strategy)
    out = backend.back(avg.forward(backend.to(x)))
    expected = naive_avg_pool2d(x.astype(np.float64), (kernel, kernel), (stride, stride), (padding, padding),
                                False, count_include_pad, 1)
    np.testing.assert_array_equal(out, expected.astype(np.float16))
    dout = rng.integers(0, 1024, size=out.shape).astype(np.float16)
    # The gradient of a sum of averages: <dx, v> = <dout, avg(v)> for each basis image v.
    expected_dx = np.zeros(x.shape)
    for index in np.ndindex(*x.shape[2:]):
        basis = np.zeros((1, 1, *x.shape[2:]))
        basis[(0, 0, *index)] = 1
        pooled = naive_avg_pool2d(basis, (kernel, kernel), (stride, stride), (padding, padding), False,
                                  count_include_pad, 1)[0, 0]
        expected_dx[(..., *index)] = (dout.astype(np.float64) * pooled).sum(axis=(2, 3))
    np.testing.assert_array_equal(backend.back(avg.backward(backend.to(dout))), expected_dx.astype(np.float16))
    maxpool = colnn.MaxPool2d(kernel, stride, padding, strategy=backend.strategy)
    maxpool.forward(backend.to(x))
    dx = backend.back(maxpool.backward(backend.to(dout)))
    routed = np.zeros(x.shape).reshape(2, 2, -1)
    for (n, c), flat in zip(np.ndindex(2, 2), backend.back(maxpool.indices).reshape(2 * 2, -1)):
        np.add.at(routed[n, c], flat, dout[n, c].reshape(-1).astype(np.float64))
    np.testing.assert_array_equal(dx, routed.reshape(x.shape).astype(np.float16))
