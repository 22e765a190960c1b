"""conv1d/2d/3d against PyTorch (outputs and all three gradients), a naive loop and finite differences.

The oracle tests take the ``backend`` fixture (``tests/backends.py``): once per NumPy
strategy (:func:`colnn.ops.conv.available_strategies`) and once on array_api_strict,
PyTorch and JAX arrays, so the compiled default, the tutorial's im2col path and the
Array API path meet the same bar.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import colnn
from cases import arrays, nd_conv_case
from colnn.core.window import Window
from colnn.ops.conv import conv_backward as conv_nd_backward
from colnn.ops.conv import conv_forward as conv_nd_forward
from colnn.ops.conv import set_column_budget
from colnn.ops.strategy import available_strategies
from reference import naive_conv2d, numerical_gradient

HYPOTHESIS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TOL = {np.float32: 2e-4, np.float64: 1e-10}
STRATEGIES = available_strategies()


@st.composite
def conv_case(draw):
    """Input, weight, bias and arguments with a non-empty output."""
    groups = draw(st.integers(1, 3))
    in_channels = groups * draw(st.integers(1, 2))
    out_channels = groups * draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    min_h = max(1, dilation[0] * (kernel[0] - 1) + 1 - 2 * padding[0])
    min_w = max(1, dilation[1] * (kernel[1] - 1) + 1 - 2 * padding[1])
    shape = (draw(st.integers(1, 2)), in_channels, draw(st.integers(min_h, min_h + 4)),
             draw(st.integers(min_w, min_w + 4)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal(shape).astype(dtype)
    weight = rng.standard_normal((out_channels, in_channels // groups, *kernel)).astype(dtype)
    bias = rng.standard_normal(out_channels).astype(dtype)
    return x, weight, bias, {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}


def test_conv2d_and_its_gradients_match_torch(torch, backend):
    @backend.settings(HYPOTHESIS.max_examples)
    @given(case=conv_case())
    def check(case):
        x, weight, bias, args = case
        tol = TOL[x.dtype.type]
        x_t, w_t, b_t = (torch.from_numpy(a.copy()).requires_grad_() for a in (x, weight, bias))
        out_t = torch.nn.functional.conv2d(x_t, w_t, b_t, **args)
        out = backend.call(colnn.conv2d, x, weight, bias, **args)
        assert out.dtype == x.dtype
        np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=tol, atol=tol)

        dout = np.random.default_rng(0).standard_normal(out.shape).astype(x.dtype)
        out_t.backward(torch.from_numpy(dout))
        layer = colnn.Convolution(backend.to(weight), backend.to(bias), args["stride"], args["padding"],
                                  dilation=args["dilation"], groups=args["groups"], strategy=backend.strategy)
        np.testing.assert_allclose(backend.back(layer.forward(backend.to(x))), out, rtol=tol, atol=tol)
        dx = backend.back(layer.backward(backend.to(dout)))
        np.testing.assert_allclose(dx, x_t.grad.numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(backend.back(layer.dW), w_t.grad.numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(backend.back(layer.db), b_t.grad.numpy(), rtol=tol, atol=tol)

    check()


def test_conv2d_matches_naive_loop(backend):
    @backend.settings(40)
    @given(case=conv_case())
    def check(case):
        x, weight, bias, args = case
        x, weight, bias = (a.astype(np.float64) for a in (x, weight, bias))
        expected = naive_conv2d(x, weight, bias, args["stride"], args["padding"], args["dilation"], args["groups"])
        out = backend.call(colnn.conv2d, x, weight, bias, **args)
        np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-10)

    check()


@pytest.mark.filterwarnings("ignore:Using padding=.same.:UserWarning")
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_string_padding_matches_torch(torch, backend, padding):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6))
    weight = rng.standard_normal((4, 3, 4, 3))  # even kernel: "same" pads one more at the bottom
    expected = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(weight), padding=padding,
                                          dilation=(1, 2) if padding == "same" else 1).numpy()
    out = backend.call(colnn.conv2d, x, weight, padding=padding, dilation=(1, 2) if padding == "same" else 1)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_convolution_gradient_matches_finite_differences(backend):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, 5, 5))
    weight = rng.standard_normal((4, 1, 3, 3))
    bias = rng.standard_normal(4)
    layer = colnn.Convolution(backend.to(weight), backend.to(bias), stride=2, pad=1, groups=2,
                              strategy=backend.strategy)
    weights = rng.standard_normal(tuple(layer.forward(backend.to(x)).shape))
    dx = backend.back(layer.backward(backend.to(weights)))

    def loss_of(x_=x, w_=weight, b_=bias) -> float:
        return float((backend.call(colnn.conv2d, x_, w_, b_, stride=2, padding=1, groups=2) * weights).sum())

    np.testing.assert_allclose(dx, numerical_gradient(lambda v: loss_of(x_=v), x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(backend.back(layer.dW), numerical_gradient(lambda v: loss_of(w_=v), weight),
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(backend.back(layer.db), numerical_gradient(lambda v: loss_of(b_=v), bias),
                               rtol=1e-6, atol=1e-8)


def test_float32_stays_float32_and_unbatched_works(backend):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 5)).astype(np.float32)
    weight = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    out = backend.call(colnn.conv2d, x, weight)
    assert out.dtype == np.float32 and out.shape == (2, 3, 3)
    np.testing.assert_allclose(out, backend.call(colnn.conv2d, x[None], weight)[0])


def test_convolution_shares_its_parameters_as_the_books_layers_do():
    # The book builds layers on self.params[...] and an optimizer updates those arrays in place:
    # the layer must see the update (a copy would never train).
    weight = np.ones((1, 1, 2, 2))
    bias = np.zeros(1)
    layer = colnn.Convolution(weight, bias)
    weight -= 1.0  # an optimizer's in-place update of the caller's params
    bias += 2.0
    out = layer.forward(np.ones((1, 1, 2, 2)))
    assert layer.W is weight and layer.b is bias
    np.testing.assert_array_equal(out, np.full((1, 1, 1, 1), 2.0))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda to: colnn.conv2d(to(np.zeros((1, 3, 4, 4))), to(np.zeros((2, 2, 2, 2)))), ValueError, "input channels"),
        (lambda to: colnn.conv2d(to(np.zeros((1, 3, 4, 4))), to(np.zeros((2, 1, 2, 2))), groups=2),
         ValueError, "groups"),
        (lambda to: colnn.conv2d(to(np.zeros((1, 4, 4, 4))), to(np.zeros((3, 2, 2, 2))), groups=2),
         ValueError, "out_channels"),
        (lambda to: colnn.conv2d(to(np.zeros((1, 1, 2, 2))), to(np.zeros((1, 1, 3, 3)))), ValueError, "empty"),
        (lambda to: colnn.conv2d(to(np.zeros((1, 1, 4, 4))), to(np.zeros((2, 1, 3, 3))), to(np.zeros(3))),
         ValueError, "bias"),
        (lambda to: colnn.conv2d(to(np.zeros((1, 1, 4, 4))), to(np.zeros((1, 1, 3, 3))), padding="full"),
         ValueError, "padding"),
        (lambda to: colnn.conv2d(to(np.zeros((1, 1, 4, 4))), to(np.zeros((1, 1, 3, 3))), stride=2, padding="same"),
         ValueError, "stride"),
        (lambda to: colnn.conv2d(to(np.zeros((1, 1, 4, 4), dtype=int)), to(np.zeros((1, 1, 3, 3)))),
         TypeError, "input"),
        (lambda to: colnn.conv2d(to(np.zeros((1, 1, 4, 4))), to(np.zeros((1, 3, 3)))), ValueError, "weight"),
        (lambda to: colnn.conv2d(to(np.zeros((1, 1, 4, 4))), to(np.zeros((1, 1, 3, 3))), groups=0),
         ValueError, "groups"),
        (lambda to: colnn.Convolution(to(np.zeros((1, 1, 3, 3))), None), TypeError, "b"),
    ],
)
def test_bad_input_raises_naming_the_argument(backend, call, error, match):
    with pytest.raises(error, match=match):
        call(backend.to)


# --- IEEE semantics of every path ------------------------------------------------

# (kernel, stride, dilation, groups): Winograd (3x3, stride 1; conftest lets it take any
# channel count), then the chunked im2col + GEMM with stride, dilation and groups.
FAST_PATHS = [((3, 3), 1, 1, 1), ((2, 3), 1, 1, 1), ((3, 3), 2, 1, 1), ((3, 3), 1, 2, 1), ((3, 3), 1, 1, 2)]


def _with_specials(rng, shape, dtype, huge):
    """Values on a 1/8 grid (exact sums) with NaN, +-inf and ``huge`` placed at random cells."""
    values = rng.integers(-8, 9, size=shape) / 8
    flat = values.reshape(-1)
    cells = rng.choice(flat.size, size=6, replace=False)
    flat[cells] = [np.nan, np.inf, -np.inf, huge, huge, huge]
    return values.astype(dtype)


@pytest.mark.parametrize("dtype, huge", [(np.float32, 1e38), (np.float64, 1e307)])
@pytest.mark.parametrize("kernel, stride, dilation, groups", FAST_PATHS)
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # NumPy's note on NaN in matmul
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # array_api_strict's matmul of huge values
def test_every_path_equals_a_direct_float64_sum_with_nan_inf_and_huge_values(
    backend, dtype, huge, kernel, stride, dilation, groups, seed
):
    rng = np.random.default_rng(seed)
    x = _with_specials(rng, (3, 4, 9, 10), dtype, huge)
    # Non-negative weights (zeros included, so inf * 0 arises): huge values then add up
    # monotonically, and whether a sum overflows does not depend on the order of the terms.
    weight = rng.integers(0, 3, size=(4, 4 // groups, *kernel)).astype(dtype)
    bias = rng.integers(-2, 3, size=4).astype(dtype)
    previous = set_column_budget(1)  # one image per chunk: a poisoned chunk must not spread
    try:
        out = backend.call(colnn.conv2d, x, weight, bias, stride, 1, dilation, groups)
    finally:
        set_column_budget(previous)
    pair = lambda v: (v, v)  # noqa: E731
    with np.errstate(over="ignore", invalid="ignore"):
        expected = naive_conv2d(x.astype(np.float64), weight.astype(np.float64), bias.astype(np.float64),
                                pair(stride), pair(1), pair(dilation), groups).astype(dtype)
    assert out.dtype == dtype
    for where in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(where(out), where(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(out[finite], expected[finite], rtol=1e-5, atol=1e-4)


def test_the_issue_examples_give_what_pytorch_gives(backend):
    inf_input = np.full((1, 16, 3, 3), np.inf, np.float32)
    assert backend.call(colnn.conv2d, inf_input, np.ones((1, 16, 3, 3), np.float32)).item() == np.inf
    x = np.zeros((1, 16, 5, 5), np.float32)
    x[0, 0, 1, 1] = np.nan
    out = backend.call(colnn.conv2d, x, np.ones((1, 16, 3, 3), np.float32))
    np.testing.assert_array_equal(np.isnan(out[0, 0]), [[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    x[0, 0, 1, 1] = 1e38
    out = backend.call(colnn.conv2d, x, np.full((1, 16, 3, 3), 0.01, np.float32))
    assert np.isfinite(out).all()


@pytest.mark.parametrize("kernel, stride, dilation, groups", FAST_PATHS)
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # dW of the large gradient
def test_float16_is_summed_in_float32_and_rounded_once(torch, backend, kernel, stride, dilation, groups):
    if not backend.supports(np.float16):
        pytest.skip(f"{backend.name} has no float16")
    rng = np.random.default_rng(3)
    # Sums of these reach 2**12, where float16 steps by 4: summed in float16 they would round.
    x = rng.integers(0, 64, size=(2, 4, 9, 10)).astype(np.float16)
    weight = rng.integers(0, 4, size=(4, 4 // groups, *kernel)).astype(np.float16)
    layer = colnn.Convolution(backend.to(weight), backend.to(np.zeros(4, np.float16)), stride, 1, dilation=dilation,
                              groups=groups, strategy=backend.strategy)
    out = backend.back(layer.forward(backend.to(x)))
    x64 = torch.tensor(x.astype(np.float64), requires_grad=True)
    w64 = torch.tensor(weight.astype(np.float64), requires_grad=True)
    expected = torch.nn.functional.conv2d(x64, w64, None, stride, 1, dilation, groups)
    # The oracle: PyTorch in float64 (exact for these integers), rounded to float16 once.
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, expected.detach().numpy().astype(np.float16))
    # Large output gradients make dx's sums round in float16; small ones keep dW (a sum over
    # every position) below float16's maximum while its sums still pass 2**11.
    for high in (256, 4):
        grad = rng.integers(0, high, size=out.shape).astype(np.float16)
        dx = backend.back(layer.backward(backend.to(grad)))
        dW = backend.back(layer.dW)
        x64.grad = w64.grad = None
        expected.backward(torch.tensor(grad.astype(np.float64)), retain_graph=True)
        assert dx.dtype == dW.dtype == np.float16
        np.testing.assert_array_equal(dx, x64.grad.numpy().astype(np.float16))
        if high == 4:
            np.testing.assert_array_equal(dW, w64.grad.numpy().astype(np.float16))


# --- 1, 2 and 3 dimensions: the N-d base ------------------------------------------------------------


def test_conv1d_2d_3d_match_torch(torch, backend):
    @backend.settings(40, 8)
    @given(case=nd_conv_case())
    def check(case):
        ndim, groups, size, kernel, stride, padding, dilation, dtype = case
        rng = np.random.default_rng(0)
        x, weight, bias = arrays(rng, dtype, (2, 2 * groups, *size), (3 * groups, 2, *kernel), 3 * groups)
        xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, weight, bias))
        function = getattr(colnn, f"conv{ndim}d")
        try:
            expected = getattr(torch.nn.functional, f"conv{ndim}d")(xt, wt, bt, stride, padding, dilation, groups)
        except RuntimeError:
            with pytest.raises(ValueError):
                backend.call(function, x, weight, bias, stride, padding, dilation, groups)
            return
        tol = dict(rtol=1e-4, atol=1e-4) if dtype == "float32" else dict(rtol=1e-10, atol=1e-10)
        if ndim != 2:
            out = backend.call(function, x, weight, bias, stride, padding, dilation, groups)
            assert out.dtype == x.dtype
            np.testing.assert_allclose(out, expected.detach().numpy(), **tol)
        grad = rng.standard_normal(expected.shape).astype(dtype)
        expected.backward(torch.from_numpy(grad))
        window = Window.build(size, kernel, stride, padding, dilation)
        given_weight = backend.to(weight)
        out, saved = conv_nd_forward(backend.to(x), given_weight, backend.to(bias), window, groups, backend.strategy)
        np.testing.assert_allclose(backend.back(out), expected.detach().numpy(), **tol)
        grads = conv_nd_backward(backend.to(grad), x.shape, saved, given_weight, window, groups, backend.strategy)
        for got, want in zip(backend.back(grads), (xt, wt, bt)):
            np.testing.assert_allclose(got, want.grad.numpy(), **tol)

    check()


def test_groups_that_do_not_divide_channels(backend):
    with pytest.raises(ValueError, match="groups"):
        backend.call(colnn.conv3d, np.ones((1, 3, 2, 2, 2)), np.ones((2, 1, 1, 1, 1)), groups=2)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths:UserWarning")  # torch, the oracle
def test_wrong_rank_and_same_padding(torch, backend):
    with pytest.raises(ValueError, match="input"):
        backend.call(colnn.conv1d, np.ones((1, 1, 2, 2)), np.ones((1, 1, 2)))
    x = np.random.default_rng(3).standard_normal((1, 2, 5, 4, 3))
    weight = np.random.default_rng(4).standard_normal((2, 2, 3, 2, 3))
    expected = torch.nn.functional.conv3d(torch.from_numpy(x), torch.from_numpy(weight), padding="same")
    np.testing.assert_allclose(backend.call(colnn.conv3d, x, weight, padding="same"), expected.numpy(), rtol=1e-12)


def test_float16_products_are_summed_in_float32(torch, backend):
    if not backend.supports(np.float16):
        pytest.skip(f"{backend.name} has no float16")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 16, 5, 5, 5)).astype(np.float16)
    weight = rng.standard_normal((3, 16, 3, 3, 3)).astype(np.float16)
    exact = torch.nn.functional.conv3d(torch.from_numpy(x.astype(np.float64)),
                                       torch.from_numpy(weight.astype(np.float64))).numpy()
    out = backend.call(colnn.conv3d, x, weight)
    assert out.dtype == np.float16
    # Within one float16 rounding of the exact sum (a float16 running sum of 432 products drifts further).
    np.testing.assert_allclose(out.astype(np.float64), exact, rtol=1e-3, atol=1e-3)


# --- strided columns through the stride's phases -------------------------------------------------------

# (kernel, stride, padding, dilation) where im2col splits each input row into its stride's phases
# (colnn.kernels.im2col_loops; test_kernels holds unfold on them to the reference bit for bit): the audio
# layer's 1 x 80 taps at stride 4 in small, the decoder's 4x4 at stride 2, dilation that puts kernel columns
# in every phase, and a row longer than the windows read.
PHASED = [((1, 8), (1, 4), (0, 3), 1), ((4, 4), 2, 1, 1), ((2, 5), (1, 3), (1, 2), (1, 2)), ((3, 3), 2, 0, 2),
          ((3, 4), (2, 3), 0, 1)]


@pytest.mark.parametrize("kernel, stride, padding, dilation", PHASED)
def test_strided_convolution_and_transpose_through_phases_match_torch(torch, kernel, stride, padding, dilation):
    rng = np.random.default_rng(6)
    x, weight, bias = arrays(rng, "float64", (3, 4, 9, 23), (5, 4, *kernel), 5)
    layer = colnn.nn.Conv2d(weight, bias, stride=stride, padding=padding, dilation=dilation)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, weight, bias))
    expected = torch.nn.functional.conv2d(xt, wt, bt, stride, padding, dilation)
    out = layer.forward(x)
    np.testing.assert_allclose(out, expected.detach().numpy(), rtol=1e-12, atol=1e-12)
    grad = rng.standard_normal(out.shape)
    expected.backward(torch.from_numpy(grad))
    np.testing.assert_allclose(layer.backward(grad), xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.dW, wt.grad.numpy(), rtol=1e-12, atol=1e-12)
    # The transposed convolution is the input gradient: GEMM, then col2im through the phases.
    window = Window.build(x.shape[2:], kernel, stride, padding, dilation)
    reach = [(o - 1) * s - 2 * p + d * (k - 1) + 1 for o, s, p, d, k in
             zip(out.shape[2:], window.stride, window.padding, window.dilation, window.kernel_size)]
    transposed = colnn.conv_transpose2d(grad, weight, None, stride, padding, dilation=dilation,
                                        output_padding=tuple(np.subtract(x.shape[2:], reach)))
    np.testing.assert_allclose(transposed, xt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_conv1d_of_audio_at_stride_4_matches_torch(torch):
    """One channel, 80 taps at stride 4 (``colnn bench``'s W1 in small): the per-image GEMM's phased columns."""
    rng = np.random.default_rng(7)
    x, weight, bias = arrays(rng, "float32", (3, 1, 1003), (16, 1, 80), 16)
    expected = torch.nn.functional.conv1d(*(torch.from_numpy(a) for a in (x, weight, bias)), stride=4)
    np.testing.assert_allclose(colnn.conv1d(x, weight, bias, stride=4), expected.numpy(), rtol=1e-5, atol=1e-5)
