"""The chunked convolution's weight and bias gradients (:func:`colnn.kernels.conv_chunked.conv2d_backward_chunked`).

Where the input gradient is not asked for (a network's first layer) or comes
from elsewhere (Winograd), the output gradient is laid out ``(P, FN)`` for the
weight gradient's GEMM (:func:`colnn.kernels.conv_grad_loops.planes_to_cells`);
otherwise ``(FN, P)`` (:func:`~colnn.kernels.conv_grad_loops.planes_to_rows`);
both sum the bias gradient on the way. Each case is held against PyTorch's
autograd, with the column budget at its default and at one image per chunk.
"""

from __future__ import annotations

import numpy as np
import pytest

import colnn
from colnn.kernels import conv_chunked, conv_grad_loops
from colnn.ops.conv import set_column_budget
from colnn.ops.conv._base import ConvArgs
from oracle import assert_close

torch = pytest.importorskip("torch", reason="PyTorch is the oracle")
F = torch.nn.functional

CASES = [
    # (input, weight, keyword arguments): 1-D, 2-D and 3-D, odd sizes, stride, padding, dilation, groups, batch 1
    ((3, 4, 11), (5, 4, 3), {"stride": 2, "padding": 1}),
    ((1, 3, 9), (6, 1, 4), {"dilation": 2, "groups": 3}),
    ((5, 3, 13, 11), (7, 3, 5, 5), {}),  # a CIFAR-like first layer: few channels, the direct kernel's forward
    ((1, 4, 9, 7), (6, 2, 3, 2), {"stride": (2, 1), "padding": (1, 2), "dilation": (1, 2), "groups": 2}),
    ((2, 6, 8, 8), (6, 1, 3, 3), {"padding": 1, "groups": 6}),  # depthwise
    ((3, 5, 7, 9), (4, 5, 3, 3), {"padding": 1}),  # float32: Winograd's input gradient, this weight gradient
    ((2, 3, 5, 6, 7), (4, 3, 3, 3, 2), {"stride": (2, 1, 1), "padding": 1}),  # 3-D off the shared planes
    ((1, 4, 5, 4, 4), (4, 2, 2, 3, 3), {"dilation": (2, 1, 1), "groups": 2, "padding": (0, 1, 1)}),
]


@pytest.fixture(params=[16 << 20, 1])
def budget(request):
    """The default column budget, and one so small that every chunk holds one image (many GEMMs summed)."""
    previous = set_column_budget(request.param)
    yield request.param
    set_column_budget(previous)


def _layer_and_torch(x_shape, w_shape, kwargs, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x, weight = (rng.standard_normal(shape).astype(dtype) for shape in (x_shape, w_shape))
    bias = rng.standard_normal(w_shape[0]).astype(dtype)
    ndim = len(x_shape) - 2
    function = getattr(F, f"conv{ndim}d")
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, weight, bias))
    out = function(xt, wt, bt, **kwargs)
    grad = rng.standard_normal(tuple(out.shape)).astype(dtype)
    out.backward(torch.tensor(grad))
    layer = getattr(colnn.nn, f"Conv{ndim}d")(weight, bias, **kwargs)
    layer.forward(x)
    return layer, grad, xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, w_shape, kwargs", CASES)
@pytest.mark.parametrize("input_grad", [False, True])
def test_weight_and_bias_gradients_match_torch(x_shape, w_shape, kwargs, dtype, input_grad, budget):
    layer, grad, grad_x, grad_w, grad_b = _layer_and_torch(x_shape, w_shape, kwargs, dtype)
    dx = layer.backward(grad, input_grad=input_grad)
    if input_grad:
        assert_close(dx, grad_x, what="dx")
    else:
        assert dx is None
    assert_close(layer.dW, grad_w, what="dW")
    assert_close(layer.db, grad_b, what="db")


@pytest.mark.parametrize("x_shape, w_shape, kwargs", [CASES[0], CASES[2], CASES[3], CASES[6]])
def test_the_weight_gradient_alone_takes_the_cells_layout(x_shape, w_shape, kwargs, monkeypatch):
    """Without an input gradient the output gradient goes through ``planes_to_cells``; with one, ``planes_to_rows``."""
    layer, grad, *_ = _layer_and_torch(x_shape, w_shape, kwargs, np.float64)

    def broken(*args):
        raise RuntimeError("taken")

    monkeypatch.setattr(conv_grad_loops, "planes_to_rows", broken)
    assert layer.backward(grad, input_grad=False) is None
    monkeypatch.undo()
    with monkeypatch.context() as patched:
        patched.setattr(conv_grad_loops, "planes_to_cells", broken)
        with pytest.raises(RuntimeError, match="taken"):
            layer.backward(grad, input_grad=False)
    with monkeypatch.context() as patched:
        patched.setattr(conv_grad_loops, "planes_to_rows", broken)
        with pytest.raises(RuntimeError, match="taken"):
            layer.backward(grad, input_grad=True)


def test_float64_exact_zeros_stay_zero():
    """A channel of zeros gets an exactly zero weight gradient, a filter whose gradient is zero zero dW and db."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 3, 10, 9))
    x[:, 1] = 0
    weight = rng.standard_normal((4, 3, 5, 5))
    grad = rng.standard_normal((3, 4, 6, 5))
    grad[:, 2] = 0
    window = ConvArgs.check(2, 1, 0, 1, 1).window(x.shape[2:], weight.shape[2:])
    for input_grad in (False, True):
        _, grad_w, grad_b = conv_chunked.conv2d_backward_chunked(grad, x, weight, window, 1, 16 << 20,
                                                                 input_grad=input_grad)
        assert np.all(grad_w[:, 1] == 0) and np.all(grad_w[2] == 0) and grad_b[2] == 0
        assert np.all(grad_w[:2, 0] != 0) and grad_b[0] != 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layout_loops_match_numpy(dtype):
    """Both layouts of a slab of output depths (a strided view), and the sums of each filter's gradient."""
    planes = np.random.default_rng(2).standard_normal((3, 5, 4 * 6)).astype(dtype)[:, :, 6:18]
    cells = np.empty((3 * 12, 5), dtype)
    rows = np.empty((5, 3 * 12), dtype)
    for layout, out in ((conv_grad_loops.planes_to_cells, cells), (conv_grad_loops.planes_to_rows, rows)):
        sums = np.ones(5)
        layout(planes, out, sums, True)
        expected = planes.transpose(0, 2, 1).reshape(-1, 5)
        np.testing.assert_array_equal(out, expected if out is cells else expected.T)
        np.testing.assert_allclose(sums, 1 + planes.sum(axis=(0, 2), dtype=np.float64), rtol=1e-13)
        layout(planes, out, sums, False)
        np.testing.assert_allclose(sums, 1 + planes.sum(axis=(0, 2), dtype=np.float64), rtol=1e-13)
