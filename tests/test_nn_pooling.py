"""The 1/2/3-d layers: finite differences in float64, layer guarantees (on every backend), Network round trips,
huge arguments."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import colnn
from colnn.nn.network import Network
from reference import numerical_gradient

rng = np.random.default_rng(7)


def _distinct(shape):
    """Values far apart (and positive, for LPPool's powers): a finite difference never changes the maximum."""
    return (rng.permutation(np.prod(shape)).reshape(shape).astype(np.float64) + 1) * 0.1


LAYERS = [
    lambda: (colnn.MaxPool1d(3, 2, 1), (2, 2, 7)),
    lambda: (colnn.MaxPool3d(2, 1, (0, 1, 0), dilation=(1, 1, 2), ceil_mode=True), (1, 2, 3, 4, 5)),
    lambda: (colnn.AvgPool1d(3, 2, 1, ceil_mode=True, count_include_pad=False), (2, 2, 6)),
    lambda: (colnn.AvgPool3d(2, (1, 2, 1), 1, divisor_override=3), (1, 2, 3, 3, 4)),
    lambda: (colnn.AdaptiveAvgPool1d(4), (2, 2, 5)),
    lambda: (colnn.AdaptiveAvgPool2d((3, None)), (1, 2, 5, 4)),
    lambda: (colnn.AdaptiveAvgPool3d(2), (1, 1, 3, 4, 5)),
    lambda: (colnn.AdaptiveMaxPool1d(3), (2, 2, 5)),
    lambda: (colnn.AdaptiveMaxPool2d((2, 3)), (1, 2, 5, 4)),
    lambda: (colnn.AdaptiveMaxPool3d(2), (1, 1, 3, 4, 5)),
    lambda: (colnn.LPPool1d(2, 3, 2, ceil_mode=True), (2, 2, 6)),
    lambda: (colnn.LPPool2d(1.5, (2, 3), 1), (1, 2, 4, 5)),
    lambda: (colnn.LPPool3d(3, 2), (1, 1, 4, 4, 4)),
    lambda: (colnn.Conv1d(rng.standard_normal((4, 1, 3)), rng.standard_normal(4), 2, 1, 1, 2), (2, 2, 7)),
    lambda: (colnn.Conv2d(rng.standard_normal((2, 2, 2, 3)), rng.standard_normal(2), 1, "same"), (2, 2, 4, 5)),
    lambda: (colnn.Conv3d(rng.standard_normal((2, 1, 2, 1, 2)), rng.standard_normal(2), 1, 1, (1, 1, 2)),
             (1, 1, 3, 3, 4)),
    lambda: (colnn.ConvTranspose1d(rng.standard_normal((2, 2, 3)), rng.standard_normal(2), 2, 1, 1), (2, 2, 4)),
    lambda: (colnn.ConvTranspose2d(rng.standard_normal((4, 1, 2, 3)), rng.standard_normal(2), 2, 0, 1, 2, 2),
             (1, 4, 3, 3)),
    lambda: (colnn.ConvTranspose3d(rng.standard_normal((2, 2, 2, 2, 2)), rng.standard_normal(2), (1, 2, 1)),
             (1, 2, 2, 3, 2)),
]


LAYER_IDS = [type(make()[0]).__name__ for make in LAYERS]


def on_backend(layer, backend):
    """A copy of ``layer`` with its parameters in ``backend``'s library, running ``backend``'s strategy."""
    params = {name: backend.to(np.array(param)) for name, param in layer.params.items()}
    copy = type(layer).from_config(layer.config(), params)
    if hasattr(copy, "strategy"):
        copy.strategy = backend.strategy
    return copy


@functools.cache
def finite_differences(index):
    """Layer ``index`` of LAYERS (NumPy), an input, output weights, and the central-difference gradients of
    ``sum(forward(x) * weights)`` w.r.t. the input and each parameter: the oracle every backend is held to."""
    layer, shape = LAYERS[index]()
    x = _distinct(shape)
    weights = rng.standard_normal(layer.forward(x).shape)
    grads = {"x": numerical_gradient(lambda v: float((layer.forward(v) * weights).sum()), x)}
    for name, param in layer.params.items():
        def loss(value, name=name):
            saved = layer.params[name].copy()
            layer.params[name][...] = value
            try:
                return float((layer.forward(x) * weights).sum())
            finally:
                layer.params[name][...] = saved
        grads[name] = numerical_gradient(loss, param.copy())
    return layer, x, weights, grads


@pytest.mark.parametrize("index", range(len(LAYERS)), ids=LAYER_IDS)
def test_backward_is_the_finite_difference(backend, index):
    reference, x, weights, expected = finite_differences(index)
    layer = on_backend(reference, backend)
    layer.forward(backend.to(x))
    dx = backend.back(layer.backward(backend.to(weights)))
    np.testing.assert_allclose(dx, expected["x"], rtol=1e-6, atol=1e-8)
    for name in layer.params:
        backend.back(layer.params[name])  # kept in the weights' library
        np.testing.assert_allclose(backend.back(layer.grads[name]), expected[name], rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("make", LAYERS, ids=LAYER_IDS)
def test_unbatched_input_and_dtype(backend, make):
    reference, shape = make()
    layer = on_backend(reference, backend)
    x = _distinct(shape).astype(np.float32)
    batched = backend.back(layer.forward(backend.to(x)))
    single = backend.back(layer.forward(backend.to(x[0])))
    assert single.dtype == np.result_type(x, *reference.params.values()) and single.shape == batched.shape[1:]
    np.testing.assert_allclose(single, batched[0], rtol=1e-5, atol=1e-6)
    assert backend.back(layer.backward(backend.to(np.ones_like(single)))).shape == x.shape[1:]


@pytest.mark.parametrize("make", LAYERS, ids=LAYER_IDS)
def test_a_failed_call_leaves_the_layer_as_it_was(backend, make):
    reference, shape = make()
    layer = on_backend(reference, backend)
    x = _distinct(shape)
    given_x = backend.to(x)
    out = backend.back(layer.forward(given_x))
    with pytest.raises(ValueError):
        layer.forward(backend.to(np.ones((1,) * (len(shape) + 1))))
    with pytest.raises(ValueError):
        layer.backward(backend.to(np.ones((1,) * len(shape))))
    assert backend.back(layer.backward(backend.to(np.ones_like(out)))).shape == x.shape
    np.testing.assert_array_equal(backend.back(given_x), x)


def test_a_network_of_the_new_layers_round_trips(tmp_path):
    layers = [
        colnn.Conv2d(rng.standard_normal((4, 2, 3, 3)), np.zeros(4), padding=1),
        colnn.ConvTranspose2d(rng.standard_normal((4, 3, 2, 2)), np.zeros(3), stride=2),
        colnn.AdaptiveMaxPool2d((4, None)),
        colnn.AdaptiveAvgPool2d(2),
        colnn.Affine(rng.standard_normal((12, 5)), np.zeros(5)),
    ]
    net = Network(layers, (2, 4, 4))
    x = rng.standard_normal((3, 2, 4, 4))
    net.save(tmp_path / "model.npz")
    loaded = Network.load(tmp_path / "model.npz")
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in layers]
    np.testing.assert_allclose(loaded.predict(x), net.predict(x))
    for source in (
        [colnn.Conv3d(rng.standard_normal((2, 1, 2, 2, 2)), np.zeros(2), groups=1), colnn.MaxPool3d(2, ceil_mode=True),
         colnn.AvgPool3d(1, divisor_override=2), colnn.AdaptiveAvgPool3d(1),
         colnn.Affine(np.ones((2, 2)), np.zeros(2))],
        [colnn.Conv1d(rng.standard_normal((2, 1, 3)), np.zeros(2)), colnn.MaxPool1d(2), colnn.LPPool1d(2, 1),
         colnn.ConvTranspose1d(rng.standard_normal((2, 2, 2)), np.zeros(2), 2, output_padding=1),
         colnn.AvgPool1d(2), colnn.AdaptiveMaxPool1d(1), colnn.AdaptiveAvgPool1d(1),
         colnn.Affine(np.ones((2, 2)), np.zeros(2))],
    ):
        shape = (1, 4, 4, 4) if isinstance(source[0], colnn.Conv3d) else (1, 9)
        net = Network(source, shape)
        net.save(tmp_path / "other.npz")
        x = rng.standard_normal((2, *shape))
        np.testing.assert_allclose(Network.load(tmp_path / "other.npz").predict(x), net.predict(x))


def test_integer_max_pooling_gives_float_gradients(backend):
    layer = colnn.MaxPool3d(2, strategy=backend.strategy)
    layer.forward(backend.to(np.arange(8).reshape(1, 1, 2, 2, 2)))
    grad = backend.back(layer.backward(backend.to(np.full((1, 1, 1, 1, 1), 0.5))))
    assert grad.dtype.kind == "f" and grad[0, 0, 1, 1, 1] == 0.5


# --- huge arguments: work scales with the output, never with the nominal kernel ---------


@pytest.mark.parametrize("k", [2**30, 2**40 + 1, 2**60])
def test_huge_pooling_windows_return_at_once(k):
    x = np.arange(4.0).reshape(1, 1, 4)
    out, indices = colnn.max_pool1d(x, k, k, k // 2, return_indices=True)
    assert out.shape == (1, 1, 1) and out[0, 0, 0] == 3 and indices[0, 0, 0] == 3
    assert colnn.avg_pool1d(x, k, k, k // 2, count_include_pad=False)[0, 0, 0] == 1.5
    layer = colnn.MaxPool1d(k, k, k // 2)
    layer.forward(x)
    np.testing.assert_array_equal(layer.backward(np.ones((1, 1, 1))), [[[0, 0, 0, 1]]])
    assert colnn.max_pool3d(np.ones((1, 1, 2, 2, 2)), (k, 1, 1), padding=(k // 2, 0, 0)).shape == (1, 1, 1, 2, 2)


def test_huge_2d_pooling_matches_torch():
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle")
    x = np.arange(4.0).reshape(1, 1, 2, 2)
    k = 2**30
    expected, expected_indices = torch.nn.functional.max_pool2d(torch.from_numpy(x), k, k, k // 2, return_indices=True)
    out, indices = colnn.max_pool2d(x, k, k, k // 2, return_indices=True)
    np.testing.assert_array_equal(out, expected.numpy())
    np.testing.assert_array_equal(indices, expected_indices.numpy())
    # More than 2**31 cells per window: offsets beyond int32.
    x = np.random.default_rng(0).permutation(8).reshape(1, 1, 2, 4).astype(np.float64)
    geometry = dict(kernel_size=(2**31, 2), stride=1, padding=(2**30, 0))
    # PyTorch refuses kernels past int32; every window here covers both rows and columns ox, ox+1.
    blocks = [x[0, 0, :, ox:ox + 2] for ox in range(3)]
    expected = np.array([[[[block.max() for block in blocks]] * 3]])
    expected_indices = np.array([[[[np.flatnonzero(x[0, 0] == block.max())[0] for block in blocks]] * 3]])
    layer = colnn.MaxPool2d(**geometry)
    np.testing.assert_array_equal(layer.forward(x), expected)
    np.testing.assert_array_equal(layer.indices, expected_indices)
    grad = layer.backward(np.ones((1, 1, 3, 3)))
    np.testing.assert_array_equal(grad.reshape(-1), np.bincount(expected_indices.reshape(-1), minlength=8))


@pytest.mark.parametrize("call, name", [
    (lambda: colnn.max_pool2d(np.ones((1, 1, 2, 2)), 2**64), "kernel_size"),
    (lambda: colnn.avg_pool3d(np.ones((1, 1, 2, 2, 2)), 2, stride=2**63), "stride"),
    (lambda: colnn.unfold(np.ones((1, 1, 2, 2)), 1, dilation=2**70), "dilation"),
    (lambda: colnn.im2col(np.ones((1, 1, 2, 2)), 1, 1, pad=2**63), "pad"),
    (lambda: colnn.conv1d(np.ones((1, 1, 2)), np.ones((1, 1, 1)), padding=2**64), "padding"),
    (lambda: colnn.conv_transpose2d(np.ones((1, 1, 2, 2)), np.ones((1, 1, 1, 1)), stride=2**63), "stride"),
])
def test_arguments_beyond_int64_are_value_errors_naming_them(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_huge_stride_and_dilation_in_unfold_and_conv():
    x = np.arange(6.0).reshape(1, 1, 2, 3)
    np.testing.assert_array_equal(colnn.unfold(x, 1, stride=2**62), [[[0.0]]])
    np.testing.assert_array_equal(colnn.im2col(x, 1, 2, stride=2**62, dilation=2), [[0.0, 2.0]])
    out = colnn.conv2d(x, np.ones((1, 1, 2, 2)), stride=2**62, dilation=(1, 2**40), padding=(0, 2**40))
    assert out.shape == (1, 1, 1, 1)
    assert colnn.conv1d(np.ones((1, 1, 3)), np.ones((1, 1, 2)), stride=2**63 - 1).shape == (1, 1, 1)


def test_max_unpool_backward_is_the_finite_difference(backend):
    pooled, indices = colnn.max_pool3d(_distinct((1, 2, 4, 4, 4)), 2, return_indices=True)
    layer = colnn.MaxUnpool3d(2)
    weights = rng.standard_normal((1, 2, 4, 4, 4))
    expected = numerical_gradient(lambda v: float((layer.forward(v, indices) * weights).sum()), pooled)
    layer.forward(backend.to(pooled), backend.to(indices))
    np.testing.assert_allclose(backend.back(layer.backward(backend.to(weights))), expected, rtol=1e-6)


EMPTY_BATCH_LAYERS = [
    lambda: colnn.MaxPool3d(2), lambda: colnn.AvgPool3d(2), lambda: colnn.LPPool3d(2, 2),
    lambda: colnn.AdaptiveAvgPool2d(3), lambda: colnn.AdaptiveMaxPool3d(2), lambda: colnn.FractionalMaxPool3d(2, 2),
    lambda: colnn.Conv3d(np.ones((3, 2, 2, 2, 2)), np.zeros(3)),
    lambda: colnn.ConvTranspose3d(np.ones((2, 3, 2, 2, 2)), np.zeros(3)),
    lambda: colnn.ConvTranspose2d(np.ones((2, 3, 2, 2)), np.zeros(3), stride=2),
]


@pytest.mark.parametrize("make", EMPTY_BATCH_LAYERS, ids=lambda make: type(make()).__name__)
def test_an_empty_batch_gives_empty_results_and_zero_gradients(backend, make):
    layer = make()
    if layer.params:
        layer = on_backend(layer, backend)
    if hasattr(layer, "strategy"):
        layer.strategy = backend.strategy
    x = np.zeros((0, 2) + (4,) * layer.ndim)
    out = backend.back(layer.forward(backend.to(x)))
    assert out.shape[0] == 0
    assert backend.back(layer.backward(backend.to(np.ones_like(out)))).shape == x.shape
    for grad in layer.grads.values():
        assert not backend.back(grad).any()
