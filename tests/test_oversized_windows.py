"""3-d average and LP pooling where an axis of the input is smaller than the window: what PyTorch refuses.

``torch.nn.functional.avg_pool3d`` and ``lp_pool3d`` refuse an input smaller than the
kernel ("input image smaller than kernel size") even when padding or ``ceil_mode`` gives
the window room, where the 2-d pools compute it; colnn computes it in 3-d as in 2-d
(README). The oracle is PyTorch on an input padded explicitly, to the room every window
needs: sums by ``avg_pool3d(divisor_override=1)`` of the zero-padded input and divisors
by the same sums of a mask (1 on the cells a divisor counts), which is PyTorch's own
definition of the 2-d divisor (the window clipped to the input and its padding with
``count_include_pad``, to the input without). LP pooling is PyTorch's formula on top:
``(avg_pool3d(x**p) * kernel volume) ** (1/p)`` with the average over the window
clipped to the input. Backward is torch autograd through the same expression.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import colnn
from peers import assert_matches

torch = pytest.importorskip("torch", reason="PyTorch is the oracle")
F = torch.nn.functional


def out_size(size: int, k: int, s: int, p: int, ceil: bool) -> int:
    span = size + 2 * p - k
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + p:  # a last window must start inside the input or its left padding
        out -= 1
    return out


@st.composite
def unpadded_oversized(draw):
    """The same without padding (LP pooling has none): ceil_mode's last window overhangs the input."""
    kernel = tuple(draw(st.integers(2, 4)) for _ in range(3))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(3))
    short = draw(st.integers(0, 2))
    assume(stride[short] > 1)
    # Smaller than the kernel, yet one window: kernel - size < stride.
    size = tuple(draw(st.integers(max(1, k - s + 1), k - 1)) if axis == short else draw(st.integers(1, k + 2))
                 for axis, (k, s) in enumerate(zip(kernel, stride)))
    assume(all(out_size(*args, True) >= 1 for args in zip(size, kernel, stride, (0, 0, 0))))
    return size, kernel, stride, (0, 0, 0), True


@st.composite
def oversized(draw):
    """A 3-d geometry with at least one axis smaller than the kernel and a non-empty output."""
    kernel = tuple(draw(st.integers(2, 4)) for _ in range(3))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(3))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    ceil = draw(st.booleans())
    size = tuple(draw(st.integers(1, k + 2)) for k in kernel)
    assume(any(s < k for s, k in zip(size, kernel)))
    assume(all(out_size(*args, ceil) >= 1 for args in zip(size, kernel, stride, padding)))
    return size, kernel, stride, padding, ceil


def _sums(z: torch.Tensor, kernel, stride) -> torch.Tensor:
    return F.avg_pool3d(z, kernel, stride, 0, False, True, divisor_override=1)


def _room(size, kernel, stride, padding, ceil) -> list[int]:
    """Cells past the padded input that ceil_mode's last window reaches, per axis."""
    outs = [out_size(*args, ceil) for args in zip(size, kernel, stride, padding)]
    return [max(0, (o - 1) * s + k - (n + 2 * p)) for o, s, k, n, p in zip(outs, stride, kernel, size, padding)]


def _pad(z: torch.Tensor, before, after, value: float = 0.0) -> torch.Tensor:
    widths = []
    for b, a in reversed(list(zip(before, after))):  # F.pad takes the last axis first
        widths += [b, a]
    return F.pad(z, widths, value=value)


def _padded(z: torch.Tensor, size, kernel, stride, padding, ceil) -> torch.Tensor:
    """``z`` zero-padded by ``padding`` on both sides and, at the end, by the room ceil_mode needs."""
    room = _room(size, kernel, stride, padding, ceil)
    return _pad(z, padding, [p + r for p, r in zip(padding, room)])


def _mask(x_shape, dtype, size, kernel, stride, padding, ceil, with_padding: bool) -> torch.Tensor:
    """1 on the cells a divisor counts: the input, and its padding with ``count_include_pad``."""
    ones = torch.ones(x_shape, dtype=dtype)
    if not with_padding:
        return _padded(ones, size, kernel, stride, padding, ceil)
    room = _room(size, kernel, stride, padding, ceil)
    return _pad(_pad(ones, padding, padding, 1.0), (0, 0, 0), room)


def torch_avg_pool3d(x: torch.Tensor, size, kernel, stride, padding, ceil, count_include_pad: bool,
                     divisor_override: int | None) -> torch.Tensor:
    sums = _sums(_padded(x, size, kernel, stride, padding, ceil), kernel, stride)
    if divisor_override is not None:
        return sums / divisor_override
    counts = _sums(_mask(x.shape, x.dtype, size, kernel, stride, padding, ceil, count_include_pad), kernel, stride)
    return sums / counts


def torch_lp_pool3d(x: torch.Tensor, norm_type: float, size, kernel, stride, ceil) -> torch.Tensor:
    mean = torch_avg_pool3d(x ** norm_type, size, kernel, stride, (0, 0, 0), ceil, True, None)
    return (torch.sign(mean) * F.relu(torch.abs(mean)) * math.prod(kernel)) ** (1.0 / norm_type)


def _check(layer, x: np.ndarray, expected_fn, dtype) -> None:
    x = x.astype(dtype)
    leaf = torch.from_numpy(x.copy()).requires_grad_()
    expected = expected_fn(leaf)
    dout = np.random.default_rng(1).standard_normal(tuple(expected.shape)).astype(dtype)
    expected.backward(torch.from_numpy(dout))
    assert_matches(layer.forward(x), expected.detach().numpy(), False, "forward")
    assert_matches(layer.backward(dout), leaf.grad.numpy(), False, "backward")


HYPOTHESIS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avg_pool3d_of_an_input_smaller_than_the_window(dtype):
    @HYPOTHESIS
    @given(case=oversized(), count_include_pad=st.booleans(), divisor=st.sampled_from([None, 3]),
           seed=st.integers(0, 2**32 - 1))
    def check(case, count_include_pad, divisor, seed):
        size, kernel, stride, padding, ceil = case
        x = np.random.default_rng(seed).standard_normal((2, 3, *size))
        with pytest.raises(RuntimeError, match="smaller than kernel"):  # PyTorch still refuses it
            F.avg_pool3d(torch.from_numpy(x), kernel, stride, padding, ceil, count_include_pad, divisor)
        layer = colnn.AvgPool3d(kernel, stride, padding, ceil, count_include_pad, divisor)
        _check(layer, x, lambda leaf: torch_avg_pool3d(leaf, size, kernel, stride, padding, ceil, count_include_pad,
                                                       divisor), dtype)
        assert_matches(colnn.avg_pool3d(x.astype(dtype), kernel, stride, padding, ceil, count_include_pad, divisor),
                       layer.forward(x.astype(dtype)), True, "function and layer")

    check()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lp_pool3d_of_an_input_smaller_than_the_window(dtype):
    @HYPOTHESIS
    @given(case=unpadded_oversized(), norm_type=st.sampled_from([1.0, 2.0, 3.0]), seed=st.integers(0, 2**32 - 1))
    def check(case, norm_type, seed):
        size, kernel, stride, _, ceil = case
        # Positive input: PyTorch's formula takes the (1/p)-th power of sums of x**p.
        x = np.random.default_rng(seed).uniform(0.1, 2.0, (2, 3, *size))
        with pytest.raises(RuntimeError, match="smaller than kernel"):
            F.lp_pool3d(torch.from_numpy(x), norm_type, kernel, stride, ceil)
        layer = colnn.LPPool3d(norm_type, kernel, stride, ceil)
        _check(layer, x, lambda leaf: torch_lp_pool3d(leaf, norm_type, size, kernel, stride, ceil), dtype)

    check()


def test_the_oracle_is_pytorchs_average_where_pytorch_computes_it():
    # Where every axis fits the window, PyTorch answers itself: the padded-sums oracle must agree.
    rng = np.random.default_rng(3)
    for size, kernel, stride, padding, ceil, include, divisor in [
            ((5, 4, 6), (3, 2, 4), (2, 1, 3), (1, 1, 2), True, True, None),
            ((5, 4, 6), (3, 2, 4), (2, 3, 3), (1, 0, 2), True, False, None),
            ((4, 4, 7), (2, 3, 3), (3, 2, 2), (0, 1, 1), False, True, 2)]:
        x = torch.from_numpy(rng.standard_normal((1, 2, *size)))
        expected = F.avg_pool3d(x, kernel, stride, padding, ceil, include, divisor)
        actual = torch_avg_pool3d(x, size, kernel, stride, padding, ceil, include, divisor)
        assert_matches(actual.numpy(), expected.numpy(), False, f"{size} {kernel} {stride} {padding} {ceil}")
        lp_expected = F.lp_pool3d(x.abs(), 2.0, kernel, stride, ceil)
        lp_actual = torch_lp_pool3d(x.abs(), 2.0, size, kernel, stride, ceil)
        assert_matches(lp_actual.numpy(), lp_expected.numpy(), False, f"lp {size} {kernel} {stride} {ceil}")
