"""The chunked im2col + GEMM convolution in 3-D and the transposed convolution on it, against PyTorch and the reference.

:mod:`colnn.kernels.conv_chunked` builds 3-D columns plane by plane along the
depth (:mod:`colnn.kernels.im2col3d_loops`), an image a slab of output depths at a
time when its columns exceed :data:`~colnn.kernels.conv_chunked.SLAB_BYTES`, or
from input planes' 2-D columns shared between output depths
(:mod:`colnn.kernels.conv3d_planes`), and runs ``conv_transpose`` as the
convolution's input gradient. Each case is held
against ``torch.nn.functional`` (forward and autograd) and against
``strategy="im2col"`` (the Array API reference), with the slabs and chunks made
small enough that every boundary between them is crossed.
"""

from __future__ import annotations

import numpy as np
import pytest

import colnn
from colnn.kernels import conv3d_planes, conv_chunked
from colnn.ops.conv import set_column_budget
from oracle import assert_close

torch = pytest.importorskip("torch", reason="PyTorch is the oracle")
F = torch.nn.functional


@pytest.fixture(params=["one slab", "slabs of one depth", "shared planes", "shared planes, runs of one depth"])
def slabs(request, monkeypatch):
    """Run each case whole, with every 3-D image cut into slabs of one output depth, and by shared planes.

    The shared planes (:mod:`colnn.kernels.conv3d_planes`) take every 3-D case
    whatever its plane size, whole and in runs of one output depth.
    """
    if request.param == "slabs of one depth":
        monkeypatch.setattr(conv_chunked, "SLAB_BYTES", 1)
    if request.param.startswith("shared planes"):
        monkeypatch.setattr(conv3d_planes, "MIN_PLANE_CELLS", 1)
    if request.param == "shared planes, runs of one depth":
        monkeypatch.setattr(conv3d_planes, "PLANES_BYTES", 1)
    return request.param


@pytest.fixture(params=[16 << 20, 1])
def budget(request):
    """The default column budget, and one so small that every chunk holds one image."""
    previous = set_column_budget(request.param)
    yield request.param
    set_column_budget(previous)


def _arrays(rng, dtype, *shapes):
    return [rng.standard_normal(shape).astype(dtype) for shape in shapes]


def _torch_grads(function, x, weight, bias, grad, **kwargs):
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, weight, bias))
    out = function(xt, wt, bt, **kwargs)
    out.backward(torch.tensor(grad))
    return out.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


CONV3D_CASES = [
    # (input, weight, keyword arguments): odd sizes, stride, padding (ints, "same", "valid"), dilation, groups
    ((2, 3, 5, 7, 6), (4, 3, 3, 3, 3), {"padding": 1}),
    ((3, 4, 6, 5, 7), (6, 2, 3, 2, 3), {"stride": (2, 1, 3), "padding": (1, 0, 2), "dilation": (1, 2, 1), "groups": 2}),
    ((1, 2, 4, 6, 5), (3, 2, 3, 3, 1), {"padding": "same", "dilation": (2, 1, 1)}),
    ((2, 4, 7, 4, 4), (4, 1, 2, 2, 2), {"padding": "valid", "stride": 2, "groups": 4}),
    ((5, 1, 3, 3, 9), (2, 1, 1, 1, 4), {"stride": (1, 1, 2)}),
    ((2, 3, 8, 5, 6), (4, 3, 3, 2, 2), {"stride": (2, 1, 2), "padding": (1, 1, 0)}),  # shared planes a stride apart
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, w_shape, kwargs", CONV3D_CASES)
def test_conv3d_layer_matches_torch_and_reference(x_shape, w_shape, kwargs, dtype, slabs, budget):
    rng = np.random.default_rng(3)
    x, weight, bias = _arrays(rng, dtype, x_shape, w_shape, (w_shape[0],))
    with torch.no_grad():
        out_shape = F.conv3d(torch.tensor(x), torch.tensor(weight), **kwargs).shape
    grad = rng.standard_normal(out_shape).astype(dtype)
    out, grad_x, grad_w, grad_b = _torch_grads(F.conv3d, x, weight, bias, grad, **kwargs)
    for strategy in (None, "im2col"):
        layer = colnn.nn.Conv3d(weight, bias, strategy=strategy, **kwargs)
        assert_close(layer.forward(x), out)
        assert_close(layer.backward(grad), grad_x, what="dx")
        assert_close(layer.dW, grad_w, what="dW")
        assert_close(layer.db, grad_b, what="db")


TRANSPOSE_CASES = [
    # (ndim, input, weight, keyword arguments)
    (1, (2, 4, 9), (4, 3, 4), {"stride": 2, "padding": 1}),
    (1, (3, 6, 5), (6, 2, 3), {"stride": 3, "padding": 1, "output_padding": 2, "groups": 2, "dilation": 2}),
    (2, (2, 4, 5, 7), (4, 3, 4, 4), {"stride": 2, "padding": 1}),
    (2, (3, 6, 5, 4), (6, 2, 3, 2), {"stride": (2, 3), "padding": (1, 0), "output_padding": (1, 2), "groups": 3,
                                     "dilation": (2, 1)}),
    (3, (2, 4, 3, 5, 4), (4, 2, 4, 3, 4), {"stride": 2, "padding": 1, "output_padding": (1, 0, 1)}),
    (3, (2, 4, 4, 3, 3), (4, 1, 3, 3, 3), {"stride": (1, 2, 1), "padding": (0, 1, 1), "groups": 2,
                                           "dilation": (2, 1, 1)}),
    # depthwise: one channel per group, whose column gradient is an outer product
    (1, (2, 3, 7), (3, 1, 3), {"stride": 2, "groups": 3}),
    (2, (2, 4, 5, 5), (4, 2, 3, 3), {"stride": 2, "padding": 1, "groups": 4}),
    # stride 1: its input gradient is a convolution that a specialised 2-D kernel takes, not the fused backward
    (2, (2, 4, 6, 5), (4, 3, 3, 3), {"padding": 1}),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ndim, x_shape, w_shape, kwargs", TRANSPOSE_CASES)
def test_conv_transpose_layer_matches_torch_and_reference(ndim, x_shape, w_shape, kwargs, dtype, slabs, budget):
    rng = np.random.default_rng(4)
    groups = kwargs.get("groups", 1)
    x, weight, bias = _arrays(rng, dtype, x_shape, w_shape, (w_shape[1] * groups,))
    function = getattr(F, f"conv_transpose{ndim}d")
    with torch.no_grad():
        out_shape = function(torch.tensor(x), torch.tensor(weight), **kwargs).shape
    grad = rng.standard_normal(out_shape).astype(dtype)
    out, grad_x, grad_w, grad_b = _torch_grads(function, x, weight, bias, grad, **kwargs)
    for strategy in (None, "im2col"):
        layer = getattr(colnn.nn, f"ConvTranspose{ndim}d")(weight, bias, strategy=strategy, **kwargs)
        assert_close(layer.forward(x), out)
        assert_close(layer.backward(grad), grad_x, what="dx")
        assert_close(layer.dW, grad_w, what="dW")
        assert_close(layer.db, grad_b, what="db")


def test_conv3d_float64_exact_zeros_stay_zero():
    """A blank region with a zero bias gives exact zeros in float64 (no transform rounds them to 1e-17)."""
    rng = np.random.default_rng(5)
    x = np.zeros((2, 3, 6, 8, 8))
    x[:, :, :2] = rng.standard_normal((2, 3, 2, 8, 8))
    weight = rng.standard_normal((4, 3, 3, 3, 3))
    out = colnn.conv3d(x, weight, np.zeros(4), padding=1)
    assert np.all(out[:, :, 4:] == 0)
    assert np.any(out[:, :, :3] != 0)


def test_conv_transpose_leaves_its_arguments_alone():
    rng = np.random.default_rng(6)
    x, weight, bias = _arrays(rng, np.float32, (2, 4, 3, 3, 3), (4, 2, 2, 2, 2), (2,))
    copies = [a.copy() for a in (x, weight, bias)]
    layer = colnn.nn.ConvTranspose3d(weight, bias, stride=2)
    layer.backward(np.ones_like(layer.forward(x)))
    for array, copy in zip((x, weight, bias), copies):
        np.testing.assert_array_equal(array, copy)


def test_conv3d_backward_adjoint_of_forward():
    """``<conv3d(x), g> == <x, dx(g)>``: the compiled col2im across slabs is im2col's adjoint."""
    rng = np.random.default_rng(7)
    x, weight, grad = _arrays(rng, np.float64, (2, 3, 9, 5, 6), (2, 3, 3, 2, 3), (2, 2, 5, 3, 4))
    layer = colnn.nn.Conv3d(weight, np.zeros(2), stride=(2, 2, 1), padding=(1, 1, 0))
    out = layer.forward(x)
    assert out.shape == grad.shape
    np.testing.assert_allclose(np.vdot(out, grad), np.vdot(x, layer.backward(grad)), rtol=1e-12)


def test_slabs_of_one_depth_are_taken(monkeypatch):
    """The slab fixture's premise: with a 1-byte cap, a 3-D image runs one output depth per piece."""
    monkeypatch.setattr(conv_chunked, "SLAB_BYTES", 1)
    window = colnn.ops.conv.conv_window((5, 4, 4), (3, 3, 3), padding=1)
    columns = conv_chunked._Columns((2, 3, 5, 4, 4), 4, window, np.dtype(np.float32), 16 << 20)
    pieces = [(first, count, lo, hi) for first, count, lo, hi, _, _ in columns.pieces(2)]
    assert pieces == [(image, 1, depth, depth + 1) for image in range(2) for depth in range(5)]


def test_shared_planes_are_taken(monkeypatch):
    """The fixture's premise: a 3-D case with small planes runs shared planes once allowed, in runs of one depth."""
    window = colnn.ops.conv.conv_window((5, 4, 4), (3, 3, 3), padding=1)
    assert not conv3d_planes.applies(window, 1)
    monkeypatch.setattr(conv3d_planes, "MIN_PLANE_CELLS", 1)
    monkeypatch.setattr(conv3d_planes, "PLANES_BYTES", 1)
    assert conv3d_planes.applies(window, 1) and conv3d_planes.applies_backward(window, 1)
    assert not conv3d_planes.applies(window, 2) and not conv3d_planes.applies(window, 1, relu=True)
    planes = conv3d_planes.Planes(np.zeros((4, 3, 3, 3, 3), np.float32), window, np.dtype(np.float32), 16 << 20)
    assert planes.depths == 1
    strided = colnn.ops.conv.conv_window((5, 4, 4), (3, 3, 3), stride=(2, 1, 1), padding=1)
    assert conv3d_planes.applies(strided, 1) and not conv3d_planes.applies_backward(strided, 1)


def test_conv3d_shared_planes_at_the_benchmark_shape():
    """D3 of ``colnn bench`` (planes of 32x32) against PyTorch, forward and every gradient, on two images."""
    rng = np.random.default_rng(8)
    x, weight, bias = _arrays(rng, np.float32, (2, 16, 6, 32, 32), (32, 16, 3, 3, 3), (32,))
    window = colnn.ops.conv.conv_window((6, 32, 32), (3, 3, 3), padding=1)
    assert conv3d_planes.applies_backward(window, 1)
    grad = rng.standard_normal((2, 32, 6, 32, 32)).astype(np.float32)
    out, grad_x, grad_w, grad_b = _torch_grads(F.conv3d, x, weight, bias, grad, padding=1)
    layer = colnn.nn.Conv3d(weight, bias, padding=1)
    assert_close(layer.forward(x), out)
    assert_close(layer.backward(grad), grad_x, what="dx")
    assert_close(layer.dW, grad_w, what="dW")
    assert_close(layer.db, grad_b, what="db")


# --- Winograd across the planes (colnn.kernels.winograd3d) -------------------------------------------

WINOGRAD3D_CASES = [
    # (input, weight, padding): the benchmark's 3x3x3 in small, planes not a multiple of the 4x4 tile,
    # depth kernels of 1 and 2, padding per axis, and more output depths than one run holds; 16 filters
    # at least, so that the input gradient (a convolution of the 16-channel output gradient) takes it too
    ((2, 16, 5, 13, 11), (16, 16, 3, 3, 3), 1),
    ((1, 16, 4, 9, 9), (16, 16, 2, 3, 3), (0, 1, 1)),
    ((2, 16, 3, 8, 8), (16, 16, 1, 3, 3), (0, 0, 1)),
    ((1, 16, 9, 6, 7), (16, 16, 3, 3, 3), (2, 1, 1)),
]


@pytest.mark.parametrize("x_shape, w_shape, padding", WINOGRAD3D_CASES)
@pytest.mark.parametrize("with_bias", [True, False])
def test_conv3d_winograd_matches_torch(monkeypatch, x_shape, w_shape, padding, with_bias):
    from colnn.kernels import winograd3d

    monkeypatch.setattr(winograd3d, "RUN_BYTES", 1)  # one output depth per run: every run boundary crossed
    rng = np.random.default_rng(9)
    x, weight, bias = _arrays(rng, np.float32, x_shape, w_shape, (w_shape[0],))
    bias = bias if with_bias else None
    window = colnn.ops.conv.conv_window(x_shape[2:], w_shape[2:], padding=padding)
    assert winograd3d.applies(x.shape, weight.shape, window, 1)
    assert winograd3d.input_grad_window(x.shape, weight.shape, window, 1) is not None
    tensors = [torch.tensor(a, requires_grad=True) for a in (x, weight)]
    expected = F.conv3d(*tensors, None if bias is None else torch.tensor(bias), padding=padding)
    assert_close(colnn.conv3d(x, weight, bias, padding=padding), expected.detach().numpy())
    # The input gradient at stride 1 is a Winograd convolution of the output gradient too.
    grad = rng.standard_normal(expected.shape).astype(np.float32)
    expected.backward(torch.tensor(grad))
    layer = colnn.nn.Conv3d(weight, np.zeros(w_shape[0], np.float32) if bias is None else bias, padding=padding)
    layer.forward(x)
    assert_close(layer.backward(grad), tensors[0].grad.numpy(), what="dx")
    assert_close(layer.dW, tensors[1].grad.numpy(), what="dW")


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # NumPy's note on NaN in matmul, in a worker
def test_conv3d_winograd_leaves_an_image_with_nan_inf_or_huge_values_to_the_exact_path():
    """Such an image takes the direct sums (NaN and inf where a window's own sum gives them); the others Winograd."""
    rng = np.random.default_rng(10)
    x = (rng.integers(-8, 9, size=(2, 16, 4, 9, 10)) / 8).astype(np.float32)
    x[1, 3, 2, 4, 5], x[1, 7, 0, 0, 9], x[1, 0, 3, 8, 0] = np.nan, np.inf, 1e38
    weight = rng.integers(0, 3, size=(4, 16, 3, 3, 3)).astype(np.float32)  # zeros too: inf * 0 arises
    with np.errstate(over="ignore", invalid="ignore"):
        out = colnn.conv3d(x, weight, padding=1)
        expected = F.conv3d(torch.tensor(x, dtype=torch.float64), torch.tensor(weight, dtype=torch.float64),
                            padding=1).numpy().astype(np.float32)
    for where in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(where(out), where(expected))
    assert np.isnan(out[1]).any() and np.isinf(out[1]).any()
    finite = np.isfinite(expected)
    np.testing.assert_allclose(out[finite], expected[finite], rtol=1e-5, atol=1e-4)


def test_conv3d_winograd_is_float32_only():
    """float64 keeps the direct sums (exact zeros stay zero); a stride or dilation is not this path's either."""
    from colnn.kernels import winograd3d

    window = colnn.ops.conv.conv_window((4, 8, 8), (3, 3, 3), padding=1)
    assert winograd3d.applies((1, 16, 4, 8, 8), (4, 16, 3, 3, 3), window, 1)
    assert not colnn.ops.conv.conv._transforms_allowed(np.float64)
    for other in (colnn.ops.conv.conv_window((4, 8, 8), (3, 3, 3), stride=(1, 2, 1)),
                  colnn.ops.conv.conv_window((6, 8, 8), (3, 3, 3), dilation=(2, 1, 1))):
        assert not winograd3d.applies((1, 16, 4, 8, 8), (4, 16, 3, 3, 3), other, 1)
    assert not winograd3d.applies((1, 16, 4, 8, 8), (4, 16, 3, 3, 2), window, 1)
    assert not winograd3d.applies((1, 16, 4, 8, 8), (4, 8, 3, 3, 3), window, 2)


def test_a_chunk_stops_at_gemm_columns():
    """Small planes share a chunk up to GEMM_COLUMNS columns; a wide image is a chunk of its own."""
    small = colnn.ops.conv.conv_window((8, 8), (3, 3), padding=1)  # 64 columns an image
    columns = conv_chunked._Columns((32, 3, 8, 8), 4, small, np.dtype(np.float32), 16 << 20)
    assert columns.images == -(-conv_chunked.GEMM_COLUMNS // 64)
    wide = colnn.ops.conv.conv_window((1, 4000), (1, 3), padding=(0, 1))
    assert conv_chunked._Columns((16, 64, 1, 4000), 64, wide, np.dtype(np.float32), 16 << 20).images == 1
