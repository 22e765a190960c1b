"""Network-level fusion of Convolution/Affine -> Relu: the same outputs, masks and gradients as the layers alone.

The oracle is the same network with fusion off (every layer's own forward,
ReLU by :mod:`colnn.kernels.relu`), compared bit for bit, and PyTorch's
``relu(conv2d(...))`` for the values, NaN and inf included.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

import colnn
from colnn.kernels import conv_chunked, direct_conv, image_gemm, winograd
from colnn.nn import Affine, Convolution, Layer, MaxPool2d, Relu
from colnn.nn.network import Network

# (C, H, W), filters (FN, C/groups, kh, kw), stride, pad, groups: one case per convolution kernel.
CONV_CASES = {
    "direct": ((1, 12, 12), (6, 1, 5, 5), 1, 0, 1),
    "image_gemm": ((1, 12, 12), (16, 1, 4, 4), 1, 1, 1),  # 5x5 would take the unrolled direct loop
    "direct_padded": ((3, 9, 11), (4, 3, 2, 3), 1, 1, 1),
    "chunked": ((6, 10, 10), (5, 6, 5, 5), 1, 2, 1),
    "chunked_stride2": ((2, 11, 11), (4, 2, 3, 3), 2, 1, 1),
    "chunked_groups": ((4, 8, 8), (6, 2, 3, 3), 1, 1, 2),
    "winograd": ((2, 10, 10), (4, 2, 3, 3), 1, 1, 1),
}


def conv_net(case: str, dtype, seed: int = 0) -> Network:
    """conv -> relu -> max pool 2 -> affine -> relu -> affine, with nonzero biases (half of them negative)."""
    (channels, height, width), weight_shape, stride, pad, groups = CONV_CASES[case]
    rng = np.random.default_rng(seed)
    out_h = (height + 2 * pad - weight_shape[2]) // stride + 1
    out_w = (width + 2 * pad - weight_shape[3]) // stride + 1
    pooled = weight_shape[0] * (out_h // 2) * (out_w // 2)
    layers = [
        Convolution(rng.standard_normal(weight_shape).astype(dtype), rng.normal(size=weight_shape[0]).astype(dtype),
                    stride, pad, groups=groups),
        Relu(),
        MaxPool2d(2),
        Affine(rng.normal(scale=0.3, size=(pooled, 7)).astype(dtype), rng.normal(size=7).astype(dtype)),
        Relu(),
        Affine(rng.normal(size=(7, 4)).astype(dtype), rng.normal(size=4).astype(dtype)),
    ]
    return Network(layers, input_shape=(channels, height, width))


def fused_and_separate(case: str, dtype, strategy=None) -> tuple[Network, Network]:
    fused = conv_net(case, dtype)
    fused.layers[0].strategy = strategy
    separate = copy.deepcopy(fused)
    separate.fuse_epilogues = False
    return fused, separate


def assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    np.testing.assert_array_equal(actual, expected, strict=True)


def test_the_cases_reach_each_convolution_kernel(monkeypatch):
    seen = []
    for module, name in [(direct_conv, "conv2d_forward_direct"), (conv_chunked, "conv2d_forward_chunked"),
                         (winograd, "conv2d_forward_winograd"), (image_gemm, "conv2d_forward_image_gemm")]:
        original = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *args, original=original, name=name:
                            seen.append(name) or original(*args))
    for case in CONV_CASES:
        # In float32 the direct loops beat the per-image GEMM: its case is float64.
        dtype = np.float64 if case == "image_gemm" else np.float32
        net = conv_net(case, dtype)
        net.predict(np.ones((2, *net.input_shape), dtype))
        assert seen, case
        kind = seen.pop()
        assert kind == {"direct": "conv2d_forward_direct", "winograd": "conv2d_forward_winograd",
                        "image": "conv2d_forward_image_gemm"}.get(
            case.split("_")[0], "conv2d_forward_chunked"), case
        seen.clear()


@pytest.mark.parametrize("strategy", [None, "im2col"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CONV_CASES)
def test_fused_network_equals_the_layers_one_by_one(case, dtype, strategy):
    fused, separate = fused_and_separate(case, dtype, strategy)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, *fused.input_shape)).astype(dtype)
    labels = rng.integers(0, 4, size=5)
    assert_same(fused.predict(x), separate.predict(x))
    loss, grads = fused.loss_and_gradient(x, labels)
    expected_loss, expected_grads = separate.loss_and_gradient(x, labels)
    assert loss == expected_loss
    assert grads.keys() == expected_grads.keys()
    for name in grads:
        assert_same(grads[name], expected_grads[name])
    for index in (1, 4):  # the Relu layers keep the same mask for backward
        assert_same(fused.layers[index].mask, separate.layers[index].mask)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # NaN through the affine layers
@pytest.mark.parametrize("case", ["direct", "chunked", "winograd"])
def test_nan_and_inf_pass_relu_as_in_torch(case, torch):
    fused, separate = fused_and_separate(case, np.float64)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, *fused.input_shape))
    x[0, 0, 4, 4], x[1, -1, 0, 0], x[2, 0, 5, 5] = np.nan, np.inf, -np.inf
    assert_same(fused.predict(x), separate.predict(x))
    labels = np.zeros(3, dtype=int)
    loss, expected_loss = fused.loss(x, labels), separate.loss(x, labels)  # loss keeps the layers' state
    np.testing.assert_array_equal(loss, expected_loss)  # NaN where NaN
    conv, relu = fused.layers[0], fused.layers[1]
    assert_same(relu.mask, separate.layers[1].mask)
    out = conv.forward_relu(x, relu)
    expected = torch.relu(torch.nn.functional.conv2d(
        torch.from_numpy(x), torch.from_numpy(conv.W), torch.from_numpy(conv.b),
        stride=conv.stride, padding=conv.pad, groups=conv.groups)).numpy()
    assert np.isnan(out).any() and np.isnan(expected).any()
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(out), np.isinf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(out[finite], expected[finite], rtol=1e-10, atol=1e-10)
    assert_same(out, separate.layers[1].forward(separate.layers[0].forward(x)))
    np.testing.assert_array_equal(relu.mask, separate.layers[1].mask)


def test_an_affine_pair_with_inf_and_nan_scores_matches_the_layers():
    rng = np.random.default_rng(3)
    weight = rng.standard_normal((6, 5)).astype(np.float32)
    bias = np.array([0.0, -np.inf, np.inf, np.nan, -0.0], np.float32)
    x = rng.standard_normal((4, 2, 3)).astype(np.float32)
    x[1, 0, 0] = np.nan
    affine, relu = Affine(weight, bias), Relu()
    out = affine.forward_relu(x, relu)
    separate_affine, separate_relu = Affine(weight, bias), Relu()
    expected = separate_relu.forward(separate_affine.forward(x))
    assert_same(out, expected)
    assert_same(relu.mask, separate_relu.mask)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    assert_same(affine.backward(relu.backward(dout)), separate_affine.backward(separate_relu.backward(dout)))
    assert_same(affine.dW, separate_affine.dW)
    assert np.signbit(out[:, 4]).sum() == 0  # -0.0 scores become +0.0, as relu's 0


def test_only_exact_pairs_of_native_arrays_fuse():
    class MyRelu(Relu):
        pass

    rng = np.random.default_rng(4)
    affine = Affine(rng.standard_normal((3, 2)).astype(np.float32), np.zeros(2, np.float32))
    x = np.ones((2, 3), np.float32)
    assert affine.forward_relu(x, Relu()) is not None and affine.forward_relu(x, MyRelu()) is None
    assert Relu().forward_relu(x, Relu()) is None and MaxPool2d(2).forward_relu(x[None, None], Relu()) is None
    assert affine.forward_relu(x.astype(np.float64), Relu()) is None  # the layer promotes: not ours to do
    assert affine.forward_relu(np.ones((2, 4), np.float32), Relu()) is None  # the layer raises its error
    assert affine.forward_relu(np.ones(3, np.float32), Relu()) is None  # unbatched
    assert affine.forward_relu(x.astype(np.float16), Relu()) is None


def test_a_network_with_a_wrong_input_raises_the_layers_error_fused_or_not():
    fused, separate = fused_and_separate("chunked", np.float32)
    fused.input_shape = separate.input_shape = None
    x = np.ones((2, 5, 10, 10), np.float32)
    with pytest.raises(ValueError) as fused_error:
        fused.predict(x)
    with pytest.raises(ValueError) as separate_error:
        separate.predict(x)
    assert str(fused_error.value) == str(separate_error.value)


@pytest.mark.parametrize("case", ["direct", "chunked"])
def test_the_books_backward_loop_after_loss_works_fused(case):
    """The book's ``gradient``: ``loss`` (evaluation mode), then each layer's ``backward`` by hand."""
    fused, separate = fused_and_separate(case, np.float64)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, *fused.input_shape))
    t = rng.integers(0, fused.layers[-1].W.shape[1], size=4)
    grads = []
    for net in (fused, separate):
        net.loss(x, t)
        dout = net.loss_layer.backward(1)
        for layer in reversed(net.layers):
            dout = layer.backward(dout)
        grads.append((dout, fused.layers[0].dW if net is fused else separate.layers[0].dW))
    assert_same(grads[0][0], grads[1][0])
    assert_same(grads[0][1], grads[1][1])


def test_relu_backward_overwrites_only_gradients_the_network_owns():
    """ReLU's backward runs in place on a fresh gradient (after pooling or an affine layer), never on another array."""

    class Keep(Layer):
        """Identity whose backward hands back an array it keeps: not the network's to overwrite."""

        def forward(self, x):
            return x

        def backward(self, dout):
            self.kept = np.array(dout)
            self.seen = self.kept.copy()
            return self.kept

    rng = np.random.default_rng(5)
    net = conv_net("direct", np.float64)
    keep = Keep()
    layers = list(net.layers)
    net = Network([*layers[:4], Relu(), keep, *layers[5:]], input_shape=net.input_shape)
    x = rng.standard_normal((3, *net.input_shape))
    labels = rng.integers(0, 4, size=3)
    separate = copy.deepcopy(net)
    separate.fuse_epilogues = False
    _, grads = net.loss_and_gradient(x, labels)
    _, expected = separate.loss_and_gradient(x, labels)
    assert (keep.seen[net.layers[4].mask] != 0).any()  # an in-place ReLU would change the kept array
    assert_same(keep.kept, keep.seen)  # the Relu before Keep wrote a new array
    for name in grads:
        assert_same(grads[name], expected[name])


# --- every layer that fuses: the layer owns its fused forward --------------------------------------------------


def _fusing_layers(dtype):
    rng = np.random.default_rng(7)

    def weights(*shape):
        return rng.standard_normal(shape).astype(dtype)

    return {
        "Conv1d": (colnn.Conv1d(weights(4, 3, 3), weights(4), 1, 1), (5, 3, 11), colnn.AdaptiveAvgPool1d(1)),
        "Conv2d": (colnn.Conv2d(weights(4, 3, 3, 3), weights(4), 1, 1), (5, 3, 9, 8), colnn.AdaptiveAvgPool2d(1)),
        "Conv3d": (colnn.Conv3d(weights(4, 3, 2, 3, 2), weights(4), 1, 1), (5, 3, 5, 6, 4),
                   colnn.AdaptiveAvgPool3d(1)),
        "Convolution": (Convolution(weights(4, 3, 3, 3), weights(4), 1, 1), (5, 3, 9, 8), colnn.AdaptiveAvgPool2d(1)),
        "Conv2d strided": (colnn.Conv2d(weights(4, 1, 5, 5), weights(4), 2, 2), (5, 1, 12, 12),
                           colnn.AdaptiveAvgPool2d(1)),
        "Affine": (Affine(weights(3 * 6, 4), weights(4)), (5, 3, 6), None),
    }


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(_fusing_layers(np.float32)))
def test_every_layer_that_fuses_equals_its_layers_one_by_one(name, dtype):
    """forward_relu against forward then Relu.forward: outputs, masks, dx, dW, db bit for bit; input_grad=False."""
    layer, shape, _ = _fusing_layers(dtype)[name]
    separate, _, _ = _fusing_layers(dtype)[name]
    rng = np.random.default_rng(8)
    x = rng.standard_normal(shape).astype(dtype)
    relu, separate_relu = Relu(), Relu()
    out = layer.forward_relu(x, relu)
    assert out is not None, f"{name} does not fuse"
    expected = separate_relu.forward(separate.forward(x))
    assert_same(out, expected)
    assert_same(relu.mask, separate_relu.mask)
    dout = rng.standard_normal(out.shape).astype(dtype)
    assert_same(layer.backward(relu.backward(dout)), separate.backward(separate_relu.backward(dout)))
    assert_same(layer.dW, separate.dW)
    assert_same(layer.db, separate.db)
    assert layer.skips_input_grad
    assert layer.backward(relu.backward(dout), input_grad=False) is None
    # Without an input gradient the weight gradient's GEMM may run in its other, faster orientation
    # (kernels.conv_grad_loops.planes_to_cells): the same sums in another order, so to rounding.
    tolerance = 1e-12 if np.dtype(dtype) == np.float64 else 1e-5
    np.testing.assert_allclose(layer.dW, separate.dW, rtol=tolerance, atol=tolerance * np.abs(separate.dW).max())
    assert layer.dW.dtype == separate.dW.dtype
    assert_same(layer.db, separate.db)
    inference = Relu()
    assert_same(layer.forward_relu(x, inference, keep=False), expected)
    assert inference.mask is None  # inference keeps nothing


@pytest.mark.parametrize("name", [name for name in _fusing_layers(np.float32) if name != "Affine"])
def test_every_convolution_network_fuses_and_skips_the_first_input_gradient(name, monkeypatch):
    """A network asks each layer: every convolution layer fuses its Relu, and the first skips its input gradient."""
    def network(fuse: bool) -> Network:
        layer, shape, pool = _fusing_layers(np.float64)[name]
        net = Network([layer, Relu(), pool, Affine(np.random.default_rng(9).standard_normal((4, 3)), np.zeros(3))],
                      input_shape=shape[1:])
        net.fuse_epilogues = fuse
        return net

    fused, separate = network(True), network(False)
    x = np.random.default_rng(10).standard_normal((5, *fused.input_shape))
    labels = np.array([0, 1, 2, 1, 0])
    calls = []
    original = type(fused.layers[0]).forward_relu

    def counted(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        calls.append(result is not None)
        return result

    backward = type(fused.layers[0]).backward
    asked = []

    def recorded(self, dout, **kwargs):
        asked.append(kwargs.get("input_grad", True))
        return backward(self, dout, **kwargs)

    monkeypatch.setattr(type(fused.layers[0]), "forward_relu", counted)
    monkeypatch.setattr(type(fused.layers[0]), "backward", recorded)
    assert_same(fused.predict(x), separate.predict(x))
    loss, grads = fused.loss_and_gradient(x, labels)
    expected_loss, expected_grads = separate.loss_and_gradient(x, labels)
    assert calls == [True, True]  # predict and the training step both took the fused pass
    assert asked == [False, False]  # the first layer, fused or not, computed dW and db only
    assert loss == expected_loss
    for key in expected_grads:
        assert_same(grads[key], expected_grads[key])
