"""conv1d/conv3d and the transposed convolutions against PyTorch, forward and backward, on every backend."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import colnn
from colnn.ops.conv_nd import conv_nd_backward, conv_nd_forward
from colnn.ops.conv_transpose import check_transpose_args, conv_transpose_backward
from colnn.core.window import Window

torch = pytest.importorskip("torch", reason="PyTorch is the oracle")
F = torch.nn.functional


@st.composite
def conv_case(draw):
    ndim = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 2))
    ints = lambda lo, hi: tuple(draw(st.integers(lo, hi)) for _ in range(ndim))  # noqa: E731
    return (ndim, groups, ints(2, 6), ints(1, 3), ints(1, 2), ints(0, 1), ints(1, 2),
            draw(st.sampled_from(["float32", "float64"])))


def _arrays(rng, dtype, *shapes):
    """Standard normal arrays of ``shapes`` in ``dtype``: input, weight, bias."""
    return tuple(rng.standard_normal(shape).astype(dtype) for shape in shapes)


def test_conv_matches_torch(backend):
    @backend.settings(40, 8)
    @given(case=conv_case())
    def check(case):
        ndim, groups, size, kernel, stride, padding, dilation, dtype = case
        rng = np.random.default_rng(0)
        x, weight, bias = _arrays(rng, dtype, (2, 2 * groups, *size), (3 * groups, 2, *kernel), 3 * groups)
        xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, weight, bias))
        function = getattr(colnn, f"conv{ndim}d")
        try:
            expected = getattr(F, f"conv{ndim}d")(xt, wt, bt, stride, padding, dilation, groups)
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


def test_conv_transpose_matches_torch(backend):
    @backend.settings(40, 8)
    @given(case=conv_case(), extra=st.data(), unbatched=st.booleans())
    def check(case, extra, unbatched):
        ndim, groups, size, kernel, stride, padding, dilation, dtype = case
        size = tuple(min(s, 4) for s in size)
        output_padding = tuple(extra.draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
        rng = np.random.default_rng(1)
        x, weight, bias = _arrays(rng, dtype, (2, 2 * groups, *size), (2 * groups, 3, *kernel), 3 * groups)
        xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, weight, bias))
        function = getattr(colnn, f"conv_transpose{ndim}d")
        arguments = (stride, padding, output_padding, groups, dilation)
        try:
            expected = getattr(F, f"conv_transpose{ndim}d")(xt, wt, bt, *arguments)
        except RuntimeError:
            with pytest.raises(ValueError):
                backend.call(function, x, weight, bias, *arguments)
            return
        if expected.numel() == 0:  # an empty output is a ValueError (README)
            with pytest.raises(ValueError, match="empty"):
                backend.call(function, x, weight, bias, *arguments)
            return
        tol = dict(rtol=1e-4, atol=1e-4) if dtype == "float32" else dict(rtol=1e-10, atol=1e-10)
        sample = x[0] if unbatched else x
        out = backend.call(function, sample, weight, bias, *arguments)
        assert out.dtype == x.dtype
        np.testing.assert_allclose(out, expected.detach().numpy()[0] if unbatched else expected.detach().numpy(),
                                   **tol)
        grad = rng.standard_normal(expected.shape).astype(dtype)
        expected.backward(torch.from_numpy(grad))
        given_x, given_weight, *_, window, _ = check_transpose_args(ndim, backend.to(x), backend.to(weight),
                                                                    backend.to(bias), *arguments)
        grads = conv_transpose_backward(backend.to(grad), given_x, given_weight, window, groups, backend.strategy)
        for got, want in zip(backend.back(grads), (xt, wt, bt)):
            np.testing.assert_allclose(got, want.grad.numpy(), **tol)

    check()


def test_transposed_conv_with_groups_and_dilation(backend):
    rng = np.random.default_rng(2)
    x, weight = rng.standard_normal((1, 4, 3, 3)), rng.standard_normal((4, 2, 3, 3))
    expected = F.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(weight), None, 2, 1, 1, 2, 2)
    np.testing.assert_allclose(backend.call(colnn.conv_transpose2d, x, weight, None, 2, 1, 1, 2, 2), expected.numpy(),
                               rtol=1e-12)


@pytest.mark.parametrize("kwargs, name", [({"output_padding": 2, "stride": 2}, "output_padding"),
                                          ({"groups": 3}, "groups"), ({"stride": 0}, "stride")])
def test_transpose_bad_arguments_name_themselves(backend, kwargs, name):
    with pytest.raises(ValueError, match=name):
        backend.call(colnn.conv_transpose1d, np.ones((1, 4, 3)), np.ones((4, 1, 2)), **kwargs)


def test_groups_that_do_not_divide_channels(backend):
    with pytest.raises(ValueError, match="groups"):
        backend.call(colnn.conv3d, np.ones((1, 3, 2, 2, 2)), np.ones((2, 1, 1, 1, 1)), groups=2)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths:UserWarning")  # torch, the oracle
def test_wrong_rank_and_same_padding(backend):
    with pytest.raises(ValueError, match="input"):
        backend.call(colnn.conv1d, np.ones((1, 1, 2, 2)), np.ones((1, 1, 2)))
    x = np.random.default_rng(3).standard_normal((1, 2, 5, 4, 3))
    weight = np.random.default_rng(4).standard_normal((2, 2, 3, 2, 3))
    expected = F.conv3d(torch.from_numpy(x), torch.from_numpy(weight), padding="same")
    np.testing.assert_allclose(backend.call(colnn.conv3d, x, weight, padding="same"), expected.numpy(), rtol=1e-12)


def test_float16_products_are_summed_in_float32(backend):
    if not backend.supports(np.float16):
        pytest.skip(f"{backend.name} has no float16")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 16, 5, 5, 5)).astype(np.float16)
    weight = rng.standard_normal((3, 16, 3, 3, 3)).astype(np.float16)
    exact = F.conv3d(torch.from_numpy(x.astype(np.float64)), torch.from_numpy(weight.astype(np.float64))).numpy()
    out = backend.call(colnn.conv3d, x, weight)
    assert out.dtype == np.float16
    # Within one float16 rounding of the exact sum (a float16 running sum of 432 products drifts further).
    np.testing.assert_allclose(out.astype(np.float64), exact, rtol=1e-3, atol=1e-3)
