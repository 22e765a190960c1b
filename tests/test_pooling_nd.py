"""max_pool1d/3d and avg_pool1d/3d against PyTorch, on every backend (NumPy strategies and other libraries), plus
named edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import colnn
from colnn.core.window import Window
from colnn.ops.pooling import avg_pool_backward as avg_pool_nd_backward
from colnn.ops.pooling import avg_pool_forward as avg_pool_nd_forward
from colnn.ops.pooling import max_pool_backward as max_pool_nd_backward
from colnn.ops.pooling import max_pool_forward as max_pool_nd_forward
from oracle import assert_close

torch = pytest.importorskip("torch", reason="PyTorch is the oracle")
F = torch.nn.functional


@st.composite
def geometry(draw, ndim):
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(ndim))
    size = tuple(draw(st.integers(1, 7)) for _ in range(ndim))
    return size, kernel, stride, padding, dilation, draw(st.booleans())


def _values(rng, shape, dtype, special):
    x = rng.integers(-3, 4, shape).astype(dtype)  # small integers: many ties
    if special and np.dtype(dtype).kind == "f":
        flat = x.reshape(-1)
        for value in (np.nan, np.inf, -np.inf):
            flat[rng.integers(flat.size)] = value
    return x


def test_max_pool_matches_torch(backend):
    @backend.settings(40, 10)
    @given(ndim=st.sampled_from([1, 3]), data=st.data(),
           dtype=st.sampled_from(["float32", "float64", "int32", "int64"]), special=st.booleans(),
           unbatched=st.booleans())
    def check(ndim, data, dtype, special, unbatched):
        size, kernel, stride, padding, dilation, ceil = data.draw(geometry(ndim))
        x = _values(np.random.default_rng(len(size)), (2, 3, *size), dtype, special)
        if unbatched:
            x = x[0]
        pool = getattr(colnn, f"max_pool{ndim}d")
        try:
            expected, expected_indices = getattr(F, f"max_pool{ndim}d")(
                torch.from_numpy(x), kernel, stride, padding, dilation, ceil, True)
        except RuntimeError as error:
            if "smaller than kernel size" in str(error):
                return  # the 3-d ops' unpadded-size check: a deliberate difference (README)
            with pytest.raises(ValueError):
                backend.call(pool, x, kernel, stride, padding, dilation, ceil, True)
            return
        out, indices = backend.call(pool, x, kernel, stride, padding, dilation, ceil, True)
        assert out.dtype == x.dtype and indices.dtype == np.int64
        np.testing.assert_array_equal(out, expected.numpy())
        np.testing.assert_array_equal(indices, expected_indices.numpy())
        np.testing.assert_array_equal(backend.call(pool, x, kernel, stride, padding, dilation, ceil), out)

    check()


def test_avg_pool_matches_torch(backend):
    @backend.settings(40, 10)
    @given(ndim=st.sampled_from([1, 3]), data=st.data(), dtype=st.sampled_from(["float32", "float64"]),
           count_include_pad=st.booleans())
    def check(ndim, data, dtype, count_include_pad):
        size, kernel, stride, padding, _, ceil = data.draw(geometry(ndim))
        x = np.random.default_rng(1).standard_normal((2, 3, *size)).astype(dtype)
        pool = getattr(colnn, f"avg_pool{ndim}d")
        try:
            expected = getattr(F, f"avg_pool{ndim}d")(torch.from_numpy(x), kernel, stride, padding, ceil,
                                                      count_include_pad)
        except RuntimeError as error:
            if "smaller than kernel size" in str(error):
                return  # avg_pool3d's unpadded-size check: a deliberate difference (README)
            with pytest.raises(ValueError):
                backend.call(pool, x, kernel, stride, padding, ceil, count_include_pad)
            return
        out = backend.call(pool, x, kernel, stride, padding, ceil, count_include_pad)
        assert out.dtype == x.dtype
        assert_close(out, expected.numpy())  # a float64 input summed in float32 would fail

    check()


def test_gradients_match_torch(backend):
    @backend.settings(30, 6)
    @given(ndim=st.sampled_from([1, 3]), data=st.data())
    def check(ndim, data):
        size, kernel, stride, padding, dilation, ceil = data.draw(geometry(ndim))
        rng = np.random.default_rng(2)
        x = rng.integers(-2, 3, (2, 2, *size)).astype(np.float64)
        try:
            window = Window.build(size, kernel, stride, padding, dilation, ceil_mode=ceil, pooling=True)
            avg_window = Window.build(size, kernel, stride, padding, 1, ceil_mode=ceil, pooling=True)
        except ValueError:
            return
        xt = torch.tensor(x, requires_grad=True)
        try:
            out_t = getattr(F, f"max_pool{ndim}d")(xt, kernel, stride, padding, dilation, ceil)
            getattr(F, f"avg_pool{ndim}d")(xt, kernel, stride, padding, ceil, False)
        except RuntimeError:
            return  # the 3-d ops' unpadded-size check (README)
        grad = rng.standard_normal(out_t.shape)
        out_t.backward(torch.from_numpy(grad))
        _, offset = backend.call(max_pool_nd_forward, x, window)
        if np.isfinite(out_t.detach().numpy()).all():
            # A window with no cell inside: PyTorch's backward writes into the next plane (its bug); colnn drops it.
            np.testing.assert_allclose(backend.call(max_pool_nd_backward, grad, offset, x.shape, window),
                                       xt.grad.numpy())
        xt.grad = None
        out_t = getattr(F, f"avg_pool{ndim}d")(xt, kernel, stride, padding, ceil, False)
        grad = rng.standard_normal(out_t.shape)
        out_t.backward(torch.from_numpy(grad))
        divisor = avg_window.avg_divisor(False, None)
        assert np.allclose(backend.call(avg_pool_nd_forward, x, avg_window, divisor), out_t.detach().numpy())
        np.testing.assert_allclose(backend.call(avg_pool_nd_backward, grad, x.shape, avg_window, divisor),
                                   xt.grad.numpy())

    check()


def test_float16_sums_in_float32(backend):
    if not backend.supports(np.float16):
        pytest.skip(f"{backend.name} has no float16")
    x = np.zeros((1, 1, 3, 46, 46), np.float16)
    x[0, 0, 1, 23, 23] = 1
    x[0, 0, 0] = 0.001
    expected = F.avg_pool3d(torch.from_numpy(x.astype(np.float32)), (3, 46, 46)).numpy().astype(np.float16)
    out = backend.call(colnn.avg_pool3d, x, (3, 46, 46))
    assert out.dtype == np.float16
    np.testing.assert_allclose(out, expected, rtol=1e-3)


def test_padded_cells_never_win_and_empty_windows_report_first_inside(backend):
    x = np.full((1, 1, 3, 3, 3), -np.inf)
    expected = F.max_pool3d(torch.from_numpy(x), 3, 2, 1, 2, True, True)
    out, indices = backend.call(colnn.max_pool3d, x, 3, 2, 1, 2, True, True)
    np.testing.assert_array_equal(out, expected[0].numpy())
    np.testing.assert_array_equal(indices, expected[1].numpy())


@pytest.mark.parametrize("pool, shape", [(colnn.max_pool1d, (1, 2, 3, 4)), (colnn.max_pool3d, (2, 3, 4)),
                                         (colnn.avg_pool3d, (4, 4)), (colnn.avg_pool1d, (4,))])
def test_wrong_rank_is_a_value_error(backend, pool, shape):
    with pytest.raises(ValueError, match="input"):
        backend.call(pool, np.ones(shape), 1)


def test_a_4d_array_to_a_3d_op_is_one_unbatched_sample(backend):
    x = np.arange(16.0).reshape(2, 2, 2, 2)
    np.testing.assert_array_equal(backend.call(colnn.max_pool3d, x, 2), F.max_pool3d(torch.from_numpy(x), 2).numpy())


@pytest.mark.parametrize("kwargs, name", [({"kernel_size": (2, 2)}, "kernel_size"), ({"kernel_size": 0}, "kernel_size"),
                                          ({"kernel_size": 2, "padding": 2}, "padding"),
                                          ({"kernel_size": 2, "stride": 2**64}, "stride"),
                                          ({"kernel_size": 9}, "empty")])
def test_bad_arguments_name_themselves(backend, kwargs, name):
    with pytest.raises(ValueError, match=name):
        backend.call(colnn.max_pool1d, np.ones((1, 1, 4)), **kwargs)


def test_integer_avg_pool_is_a_type_error(backend):
    with pytest.raises(TypeError, match="input"):
        backend.call(colnn.avg_pool3d, np.ones((1, 1, 2, 2, 2), int), 2)


def test_an_empty_windows_gradient_stays_in_its_plane(backend):
    x = np.array([[[3.0]], [[5.0]]])
    window = Window.build((1,), 2, 1, 1, 2, pooling=True)
    _, offset = backend.call(max_pool_nd_forward, x, window)
    grad = backend.call(max_pool_nd_backward, np.array([[[10.0]], [[20.0]]]), offset, x.shape, window)
    np.testing.assert_array_equal(grad, np.zeros_like(x))


def test_caller_arrays_are_not_modified(backend):
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 4, 4))
    given_x = backend.to(x)
    colnn.max_pool3d(given_x, 2, 1, 1, return_indices=True, strategy=backend.strategy)
    colnn.avg_pool3d(given_x, 3, 1, 1, strategy=backend.strategy)
    np.testing.assert_array_equal(backend.back(given_x), x)
