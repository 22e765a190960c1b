"""The phase path of conv_transpose1d/2d/3d (:mod:`colnn.kernels.conv_transpose_phases`) against PyTorch."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import colnn
from colnn import nn
from colnn.kernels import conv_chunked, conv_transpose_phases
from colnn.ops.conv import ConvTransposeArgs, set_column_budget

torch = pytest.importorskip("torch", reason="PyTorch is the oracle")
F = torch.nn.functional


@pytest.fixture
def phases_only(monkeypatch):
    """Every dilation-1 transposed convolution takes the phases, however small; the col2im path raises."""
    monkeypatch.setattr(conv_transpose_phases, "pays", lambda *args: True)

    def col2im_path(*args, **kwargs):
        raise AssertionError("the col2im path ran where the phases apply")

    monkeypatch.setattr(conv_chunked, "conv_input_grad_chunked", col2im_path)


def _sizes(ndim: int) -> tuple[int, ...]:
    return (5, 4, 7)[-ndim:]


def _torch_forward(x, weight, bias, ndim, **kwargs):
    tensors = [None if a is None else torch.from_numpy(a) for a in (x, weight, bias)]
    return getattr(F, f"conv_transpose{ndim}d")(*tensors, **kwargs).numpy()


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("stride", [2, 3])
def test_phases_match_torch_over_geometries(phases_only, rng, ndim, stride):
    function = getattr(colnn, f"conv_transpose{ndim}d")
    checked = 0
    for kernel, padding, output_padding, groups, batch in itertools.product(
            range(1, 6), range(3), range(stride), (1, 2), (1, 3)):
        if ndim == 3 and (batch, groups) != (1, 1) and kernel % 2:
            continue  # fewer 3-d cases: each takes as long as many 2-d ones
        x = rng.standard_normal((batch, 2 * groups, *_sizes(ndim)))
        weight = rng.standard_normal((2 * groups, 3, *(kernel,) * ndim))
        bias = rng.standard_normal(3 * groups) if padding != 1 else None
        kwargs = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups)
        try:
            expected = _torch_forward(x, weight, bias, ndim, **kwargs)
        except RuntimeError:
            continue  # an empty output: refused by both (tested in test_conv_transpose)
        got = function(x, weight, bias, **kwargs)
        assert got.shape == expected.shape and got.dtype == np.float64
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
        checked += 1
    assert checked > 50


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_phases_float32_rounds_as_torch(phases_only, rng, ndim):
    x = rng.standard_normal((3, 4, *_sizes(ndim))).astype(np.float32)
    weight = rng.standard_normal((4, 6, *(4,) * ndim)).astype(np.float32)
    bias = rng.standard_normal(12).astype(np.float32)
    kwargs = dict(stride=2, padding=1, output_padding=1, groups=2)
    got = getattr(colnn, f"conv_transpose{ndim}d")(x, weight, bias, **kwargs)
    expected = _torch_forward(x, weight, bias, ndim, **kwargs)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("ndim, stride, kernel, padding, output_padding, groups", [
    (1, 3, 5, 2, 1, 1), (2, 2, 4, 1, 0, 2), (2, (3, 2), (5, 3), (1, 0), (2, 1), 1), (3, 2, 3, 1, 1, 1)])
def test_phase_layer_gradients_match_torch_autograd(phases_only, rng, ndim, stride, kernel, padding, output_padding,
                                                    groups):
    kernel_size = kernel if isinstance(kernel, tuple) else (kernel,) * ndim
    x = rng.standard_normal((2, 2 * groups, *_sizes(ndim)))
    weight = rng.standard_normal((2 * groups, 3, *kernel_size))
    bias = rng.standard_normal(3 * groups)
    kwargs = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups)
    layer = getattr(nn, f"ConvTranspose{ndim}d")(weight.copy(), bias.copy(), **kwargs)
    out = layer.forward(x)
    grad = rng.standard_normal(out.shape)
    grad_input = layer.backward(grad)
    leaves = [torch.tensor(a, requires_grad=True) for a in (x, weight, bias)]
    expected = getattr(F, f"conv_transpose{ndim}d")(*leaves, **kwargs)
    expected.backward(torch.from_numpy(grad))
    np.testing.assert_allclose(out, expected.detach().numpy(), rtol=1e-12, atol=1e-12)
    for got, leaf in zip((grad_input, layer.dW, layer.db), leaves):
        np.testing.assert_allclose(got, leaf.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_benchmark_geometry_takes_the_phases(monkeypatch, rng):
    """``colnn bench``'s T2 row, as it is (no size rule lifted), on two threads: the phases, right to rounding."""
    monkeypatch.setattr(conv_chunked, "conv_input_grad_chunked", lambda *args: pytest.fail("col2im path ran"))
    x = rng.random((16, 64, 32, 32), dtype=np.float32)
    weight = rng.random((64, 32, 4, 4), dtype=np.float32) - 0.5
    bias = rng.random(32, dtype=np.float32)
    before = colnn.get_num_threads()
    colnn.set_num_threads(2)
    try:
        got = colnn.conv_transpose2d(x, weight, bias, stride=2, padding=1)
    finally:
        colnn.set_num_threads(before)
    expected = _torch_forward(x, weight, bias, 2, stride=2, padding=1)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def test_float64_zero_input_region_gives_exact_zeros(phases_only, rng):
    """Output cells that only zero inputs reach are exactly 0: the padding columns add exact zeros too."""
    x = rng.standard_normal((2, 3, 9, 10))
    x[:, :, :, :5] = 0
    x[:, :, 6:] = 0
    weight = rng.standard_normal((3, 2, 4, 4))
    got = colnn.conv_transpose2d(x, weight, stride=2, padding=1)
    reached = _torch_forward(np.abs(x), np.abs(weight), None, 2, stride=2, padding=1) != 0
    assert (~reached).sum() > got[0, 0].size  # a large region, more than a plane's worth
    assert np.all(got[~reached] == 0)
    np.testing.assert_allclose(got, _torch_forward(x, weight, None, 2, stride=2, padding=1), rtol=1e-12,
                               atol=1e-12)


def test_weight_with_inf_keeps_the_col2im_path(rng):
    """A padding cell times inf would be NaN where no product is: such a weight runs the col2im path."""
    x = rng.standard_normal((1, 2, 16, 16))
    weight = rng.standard_normal((2, 3, 4, 4))
    weight[0, 1, 0, 0] = np.inf
    window = ConvTransposeArgs.check(2, 2, 1).window(x.shape[2:], weight.shape[2:])
    assert not conv_transpose_phases.applies(x.shape, weight, window)
    got = colnn.conv_transpose2d(x, weight, stride=2, padding=1)
    expected = _torch_forward(x, weight, None, 2, stride=2, padding=1)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_small_budget_and_a_partial_last_chunk(phases_only, rng):
    """One image per chunk, and chunks of several images with a shorter last one: each image right."""
    weight = rng.standard_normal((4, 3, 4, 4))
    for batch, size, budget in ((5, (7, 6), 1), (37, (3, 5), None)):
        x = rng.standard_normal((batch, 4, *size))
        previous = set_column_budget(budget) if budget else None
        try:
            got = colnn.conv_transpose2d(x, weight, stride=2, padding=1)
        finally:
            if previous is not None:
                set_column_budget(previous)
        np.testing.assert_allclose(got, _torch_forward(x, weight, None, 2, stride=2, padding=1), rtol=1e-12,
                                   atol=1e-12)


@pytest.mark.parametrize("x_shape, kernel, stride, dilation, takes", [
    ((16, 64, 32, 32), 4, 2, 1, True),  # colnn bench's T2
    ((2, 8, 64), 4, 2, 1, True),
    ((2, 8, 8, 8), 7, 3, 1, True),
    ((16, 64, 32, 32), 4, 2, 2, False),  # dilation: the phases do not apply
    ((64, 64, 4, 4), 4, 2, 1, False),  # planes of 16 cells: col2im is faster
    ((64, 64, 8), 4, 2, 1, False),
])
def test_path_choice(x_shape, kernel, stride, dilation, takes):
    ndim = len(x_shape) - 2
    weight = np.ones((x_shape[1], 2, *(kernel,) * ndim))
    window = ConvTransposeArgs.check(ndim, stride, 1, 0, 1, dilation).window(x_shape[2:], weight.shape[2:])
    assert conv_transpose_phases.applies(x_shape, weight, window) is takes


@pytest.mark.parametrize("width, out_width, kernel, stride, padding", [
    (32, 64, 4, 2, 1), (5, 12, 5, 3, 1), (7, 14, 1, 2, 0), (8, 28, 7, 3, 0), (4, 11, 5, 2, 0)])
def test_row_padding_holds_every_tap_of_every_phase(width, out_width, kernel, stride, padding):
    left, padded_width = conv_transpose_phases.row_padding(width, out_width, kernel, stride, padding)
    for out_cell in range(out_width):
        for tap in range(kernel):
            if (out_cell + padding - tap) % stride == 0:
                in_cell = (out_cell + padding - tap) // stride
                assert 0 <= left + in_cell < padded_width
    assert padded_width - width <= 2 * (kernel // stride + 1)
