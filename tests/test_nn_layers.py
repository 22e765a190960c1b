"""The layer protocol: forward/backward pairing, bad input, state and argument safety.

Tests that take the ``backend`` fixture (``tests/backends.py``) run on each NumPy
strategy and on array_api_strict, PyTorch and JAX arrays: the layers' parameters,
outputs and gradients must then be of the input's library.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import colnn
from reference import TUTORIAL, TUTORIAL_X, numerical_gradient


def book_pooling_forward(x, pool_h, pool_w, stride):
    """The tutorial's ``Pooling.forward`` (it ignores ``pad``), as the tutorial wrote it."""
    return TUTORIAL.Pooling(pool_h, pool_w, stride).forward(x)


def make_layers(to=lambda array: array, strategy=None):
    """Each layer and its input shape; ``to`` converts the weights (a backend's :meth:`~backends.Backend.to`)."""
    rng = np.random.default_rng(0)
    return {
        "MaxPool2d": (colnn.MaxPool2d(3, 2, 1, strategy=strategy), (2, 3, 7, 7)),
        "AvgPool2d": (colnn.AvgPool2d(2, ceil_mode=True, count_include_pad=False, strategy=strategy), (2, 3, 7, 7)),
        "Pooling": (colnn.Pooling(2, 2, 2, 1), (2, 3, 7, 7)),
        "Convolution": (colnn.Convolution(to(rng.standard_normal((4, 3, 3, 3))), to(np.zeros(4)), 1, 1,
                                          strategy=strategy), (2, 3, 7, 7)),
        "Relu": (colnn.Relu(), (2, 3, 7, 7)),
        "Affine": (colnn.Affine(to(rng.standard_normal((147, 5))), to(np.zeros(5))), (2, 3, 7, 7)),
    }


def backend_layers(backend):
    return make_layers(backend.to, backend.strategy)


LAYER_NAMES = list(make_layers())


# --- the book's Pooling class --------------------------------------------------


@pytest.mark.parametrize("shape, pool, stride", [((2, 3, 6, 6), 2, 2), ((1, 2, 7, 5), 3, 1), ((3, 1, 8, 8), 2, 3)])
def test_pooling_is_a_drop_in_for_the_book_where_the_book_is_right(shape, pool, stride):
    x = np.random.default_rng(1).standard_normal(shape)
    np.testing.assert_array_equal(colnn.Pooling(pool, pool, stride).forward(x),
                                  book_pooling_forward(x, pool, pool, stride))


def test_pooling_reproduces_the_tutorial():
    out = colnn.Pooling(2, 2, 2).forward(TUTORIAL_X)
    np.testing.assert_array_equal(out, book_pooling_forward(TUTORIAL_X, 2, 2, 2))


def test_pooling_with_pad_matches_torch(torch):
    x = -np.random.default_rng(2).random((2, 2, 5, 5))  # negative: zero padding would win
    expected = torch.nn.functional.max_pool2d(torch.from_numpy(x), 2, 2, 1).numpy()
    np.testing.assert_array_equal(colnn.Pooling(2, 2, 2, 1).forward(x), expected)


# --- gradients of the small layers --------------------------------------------


@pytest.mark.parametrize("name", ["Relu", "Affine"])
def test_small_layer_gradient_matches_finite_differences(backend, name):
    layer, shape = backend_layers(backend)[name]
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape)
    weights = rng.standard_normal(tuple(layer.forward(backend.to(x)).shape))
    dx = backend.back(layer.backward(backend.to(weights)))

    def loss(v):
        return float((backend.back(layer.forward(backend.to(v))) * weights).sum())

    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-6, atol=1e-7)


def test_affine_parameter_gradients_match_finite_differences(backend):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 2, 2, 2))
    weight, bias = rng.standard_normal((8, 4)), rng.standard_normal(4)
    out_weights = rng.standard_normal((3, 4))
    layer = colnn.Affine(backend.to(weight), backend.to(bias))
    layer.forward(backend.to(x))
    layer.backward(backend.to(out_weights))
    np.testing.assert_allclose(
        backend.back(layer.dW),
        numerical_gradient(lambda w: float(((x.reshape(3, -1) @ w + bias) * out_weights).sum()), weight), rtol=1e-6)
    np.testing.assert_allclose(
        backend.back(layer.db),
        numerical_gradient(lambda b: float(((x.reshape(3, -1) @ weight + b) * out_weights).sum()), bias), rtol=1e-6)


def test_softmax_with_loss_matches_torch(torch, backend):
    rng = np.random.default_rng(6)
    scores = rng.standard_normal((5, 4)) * 3
    labels = rng.integers(0, 4, 5)
    scores_t = torch.from_numpy(scores.copy()).requires_grad_()
    loss_t = torch.nn.functional.cross_entropy(scores_t, torch.from_numpy(labels))
    loss_t.backward()
    layer = colnn.SoftmaxWithLoss()
    assert layer.forward(backend.to(scores), backend.to(labels)) == pytest.approx(loss_t.item(), rel=1e-12)
    np.testing.assert_allclose(backend.back(layer.backward()), scores_t.grad.numpy(), rtol=1e-10, atol=1e-12)
    one_hot = np.eye(4)[labels]
    assert layer.forward(backend.to(scores), backend.to(one_hot)) == pytest.approx(loss_t.item(), rel=1e-12)


def test_softmax_with_loss_is_stable_for_huge_scores(backend):
    layer = colnn.SoftmaxWithLoss()
    loss = layer.forward(backend.to(np.array([[1000.0, 0.0], [0.0, -1000.0]])), backend.to(np.array([1, 1])))
    assert np.isfinite(loss) and loss == pytest.approx(1000.0 / 2 + 1000.0 / 2, rel=1e-12)
    assert np.isfinite(backend.back(layer.backward())).all()


# --- protocol: order, shapes, state, no mutation ------------------------------


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_backward_before_forward_raises_runtime_error(backend, name):
    layer, _ = backend_layers(backend)[name]
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(backend.to(np.zeros((1,))))


def test_softmax_backward_before_forward_raises_runtime_error():
    with pytest.raises(RuntimeError, match="before forward"):
        colnn.SoftmaxWithLoss().backward()


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_dout_of_wrong_shape_raises_value_error(backend, name):
    layer, shape = backend_layers(backend)[name]
    out = layer.forward(backend.to(np.ones(shape)))
    with pytest.raises(ValueError, match="dout"):
        layer.backward(backend.to(np.ones((*out.shape[:-1], out.shape[-1] + 1))))


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_layers_never_modify_their_arguments(name):
    layer, shape = make_layers()[name]
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape)
    x.flags.writeable = False  # an in-place write would raise
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape)
    dout.flags.writeable = False
    dx = layer.backward(dout)
    assert dx.shape == x.shape


@pytest.mark.parametrize("name", ["MaxPool2d", "AvgPool2d", "Convolution", "Affine", "Relu"])
def test_failed_forward_keeps_the_previous_state(backend, name):
    layer, shape = backend_layers(backend)[name]
    rng = np.random.default_rng(8)
    x = rng.standard_normal(shape)
    out = layer.forward(backend.to(x))
    dout = backend.to(rng.standard_normal(tuple(out.shape)))
    expected_dx = backend.back(layer.backward(dout))
    with pytest.raises((ValueError, TypeError)):
        # not (N, C, H, W), nor 147 features; Relu takes any shape but no complex numbers
        layer.forward(backend.to(np.ones((7, 7), dtype=complex if name == "Relu" else float)))
    np.testing.assert_array_equal(backend.back(layer.backward(dout)), expected_dx)


def test_max_pool_layer_indices_match_functional(backend):
    x = np.random.default_rng(9).standard_normal((2, 2, 6, 6))
    layer = colnn.MaxPool2d(3, 2, 1, strategy=backend.strategy)
    out = backend.back(layer.forward(backend.to(x)))
    expected_out, expected_indices = colnn.max_pool2d(x, 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(out, expected_out)
    np.testing.assert_array_equal(backend.back(layer.indices), expected_indices)


def test_unbatched_layer_round_trip(backend):
    x = np.random.default_rng(10).standard_normal((3, 6, 6))
    layer = colnn.MaxPool2d(2, strategy=backend.strategy)
    out = backend.back(layer.forward(backend.to(x)))
    assert out.shape == (3, 3, 3)
    assert backend.back(layer.backward(backend.to(np.ones_like(out)))).shape == (3, 6, 6)


# --- bad input to pooling -------------------------------------------------------

X = np.zeros((1, 1, 4, 4))
# Each call takes ``to``, a backend's converter, for its numeric arrays: the errors are the same on every library.
BAD_POOLING = [
    (lambda to: colnn.max_pool2d(to(np.zeros((4, 4))), 2), ValueError, r"input must be 3-D \(unbatched\) or 4-D"),
    (lambda to: colnn.max_pool2d(to(np.zeros((1, 1, 1, 4, 4))), 2), ValueError,
     r"input must be 3-D \(unbatched\) or 4-D"),
    (lambda to: colnn.max_pool2d(to(X), 0), ValueError, "kernel_size must be >= 1"),
    (lambda to: colnn.max_pool2d(to(X), 2, stride=0), ValueError, "stride must be >= 1"),
    (lambda to: colnn.max_pool2d(to(X), 2, dilation=0), ValueError, "dilation must be >= 1"),
    (lambda to: colnn.max_pool2d(to(X), 2, padding=-1), ValueError, "padding must be >= 0"),
    (lambda to: colnn.max_pool2d(to(X), 2, padding=2), ValueError, "padding must be at most half"),
    (lambda to: colnn.avg_pool2d(to(X), (3, 2), padding=(1, 2)), ValueError, "padding must be at most half"),
    (lambda to: colnn.max_pool2d(to(X), 5), ValueError, "output would be empty"),
    (lambda to: colnn.max_pool2d(to(np.zeros((1, 0, 4, 4))), 2), ValueError,
     "input must have non-empty axes after the batch"),
    (lambda to: colnn.max_pool2d(to(np.zeros((1, 1, 0, 4))), 2), ValueError,
     "input must have non-empty axes after the batch"),
    (lambda to: colnn.avg_pool2d(to(X), 2, divisor_override=0), ValueError, "divisor_override"),
    (lambda to: colnn.max_pool2d(np.full((1, 1, 2, 2), "a"), 2), TypeError, "numeric|integer or floating"),
    (lambda to: colnn.max_pool2d(np.empty((1, 1, 2, 2), dtype=object), 2), TypeError, "dtype object"),
    (lambda to: colnn.max_pool2d(to(np.zeros((1, 1, 2, 2), dtype=complex)), 2), TypeError, "complex"),
    (lambda to: colnn.max_pool2d(None, 2), TypeError, "None"),
    (lambda to: colnn.avg_pool2d(to(np.zeros((1, 1, 2, 2), dtype=np.int32)), 2), TypeError, "floating"),
    (lambda to: colnn.MaxPool2d(0), ValueError, "kernel_size"),
    (lambda to: colnn.AvgPool2d(2, divisor_override=0), ValueError, "divisor_override"),
    (lambda to: colnn.MaxPool2d("2"), TypeError, "kernel_size"),
]


@pytest.mark.parametrize("call, error, match", BAD_POOLING)
def test_bad_pooling_input_raises_naming_the_argument(backend, call, error, match):
    with pytest.raises(error, match=match):
        call(backend.to)


def test_empty_batch_is_allowed(torch, backend):
    x = np.zeros((0, 2, 4, 4), dtype=np.float32)
    expected = torch.nn.functional.max_pool2d(torch.from_numpy(x), 2)
    assert backend.call(colnn.max_pool2d, x, 2).shape == tuple(expected.shape)


@pytest.mark.parametrize(
    ("layer", "expected"),
    [
        (colnn.MaxPool2d(3, 2, 1), "MaxPool2d(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1)"),
        (colnn.AvgPool2d(2, divisor_override=3), "AvgPool2d(kernel_size=(2, 2), stride=(2, 2)"),
        (colnn.Pooling(2, 3, 2, 1), "Pooling(pool_h=2, pool_w=3, stride=(2, 2), pad=(1, 1))"),
        (colnn.Convolution(np.ones((4, 2, 3, 3)), np.zeros(4), pad=1), "Convolution(W=(4, 2, 3, 3), stride=(1, 1)"),
        (colnn.Affine(np.ones((6, 5), np.float32), np.zeros(5)), "Affine(W=(6, 5), dtype=float32)"),
        (colnn.Relu(), "Relu()"),
        (colnn.SoftmaxWithLoss(), "SoftmaxWithLoss()"),
    ],
)
def test_repr_names_the_layer_and_its_settings(layer, expected):
    assert repr(layer).startswith(expected)


# --- every layer: empty batches, byte order, strategies, degenerate parameters ------

STRATEGY_LAYERS = {
    "MaxPool2d": (lambda s, to: colnn.MaxPool2d(3, 2, 1, strategy=s), lambda nn: nn.MaxPool2d(3, 2, 1)),
    "MaxPool2d k2s2": (lambda s, to: colnn.MaxPool2d(2, strategy=s), lambda nn: nn.MaxPool2d(2)),
    "AvgPool2d": (lambda s, to: colnn.AvgPool2d(3, 1, 1, strategy=s), lambda nn: nn.AvgPool2d(3, 1, 1)),
    "AvgPool2d k2s2": (lambda s, to: colnn.AvgPool2d(2, strategy=s), lambda nn: nn.AvgPool2d(2)),
    "Convolution 3x3": (lambda s, to: colnn.Convolution(to(np.ones((4, 3, 3, 3))), to(np.ones(4)), 1, 1, strategy=s),
                        lambda nn: nn.Conv2d(3, 4, 3, 1, 1)),
    "Convolution 2x2 stride 2": (lambda s, to: colnn.Convolution(to(np.ones((4, 3, 2, 2))), to(np.ones(4)), 2,
                                                                 strategy=s),
                                 lambda nn: nn.Conv2d(3, 4, 2, 2)),
}
OTHER_LAYERS = {
    "Pooling": (lambda to: colnn.Pooling(2, 2, 2, 1), None),
    "Relu": (lambda to: colnn.Relu(), lambda nn: nn.ReLU()),
    "Affine": (lambda to: colnn.Affine(to(np.ones((3 * 7 * 6, 5))), to(np.ones(5))), lambda nn: nn.Sequential(
        nn.Flatten(), nn.Linear(3 * 7 * 6, 5))),
}
ALL_LAYERS = [(name, s) for name in STRATEGY_LAYERS for s in ("numba", "im2col")] + [(n, None) for n in OTHER_LAYERS]
LAYER_KINDS = [*STRATEGY_LAYERS, *OTHER_LAYERS]


def build_layer(name, strategy, to=lambda array: array):
    return STRATEGY_LAYERS[name][0](strategy, to) if name in STRATEGY_LAYERS else OTHER_LAYERS[name][0](to)


def torch_module(name):
    return (STRATEGY_LAYERS.get(name) or OTHER_LAYERS[name])[1]


def skip_repeat_without_strategy(backend, name):
    """A layer without a strategy runs NumPy the same way on both NumPy backends: once is enough."""
    if name in OTHER_LAYERS and backend.name == "im2col":
        pytest.skip(f"{name} has no strategy; the numba backend ran it on NumPy")


# Layers whose forward depends on train_flg; an empty batch must work in both modes.
TRAIN_MODE_LAYERS = {
    "Dropout": (lambda to: colnn.Dropout(0.5, seed=0), lambda nn: nn.Dropout(0.5)),
    "BatchNorm2d": (lambda to: colnn.BatchNorm2d(3, like=to(np.zeros(1, np.float32))), lambda nn: nn.BatchNorm2d(3)),
    "BatchNormalization": (lambda to: colnn.BatchNormalization(to(np.ones(3 * 7 * 6, np.float32)),
                                                               to(np.zeros(3 * 7 * 6, np.float32))), None),
}


@pytest.mark.parametrize("train_flg", [True, False])
@pytest.mark.parametrize("name", [*LAYER_KINDS, *TRAIN_MODE_LAYERS])
def test_every_layer_takes_an_empty_batch_forward_and_backward(torch, backend, name, train_flg):
    if name in TRAIN_MODE_LAYERS:
        if backend.name == "im2col":
            pytest.skip(f"{name} has no strategy; the numba backend ran it on NumPy")
        layer, make_module = TRAIN_MODE_LAYERS[name][0](backend.to), TRAIN_MODE_LAYERS[name][1]
        forward = functools.partial(layer.forward, train_flg=train_flg)
    else:
        skip_repeat_without_strategy(backend, name)
        layer, make_module = build_layer(name, backend.strategy, backend.to), torch_module(name)
        forward = layer.forward
    x = np.zeros((0, 3, 7, 6), np.float32)
    out = backend.back(forward(backend.to(x)))
    if make_module is not None:
        assert out.shape == tuple(make_module(torch.nn).train(train_flg)(torch.zeros(x.shape)).shape)
    assert out.dtype == np.float32 or name in ("Convolution 3x3", "Convolution 2x2 stride 2", "Affine")
    dx = backend.back(layer.backward(backend.to(np.zeros(out.shape, out.dtype))))
    assert dx.shape == x.shape
    for grad_name, grad in layer.grads.items():
        grad = backend.back(grad)
        assert grad.shape == tuple(layer.params[grad_name].shape)
        assert not grad.any()


def test_softmax_with_loss_takes_an_empty_batch_as_pytorch_does(torch, backend):
    layer = colnn.SoftmaxWithLoss()
    expected = torch.nn.functional.cross_entropy(torch.zeros((0, 4)), torch.zeros(0, dtype=torch.long))
    assert np.isnan(layer.forward(backend.to(np.zeros((0, 4))), backend.to(np.zeros(0, np.int64))))
    assert torch.isnan(expected)
    assert backend.back(layer.backward()).shape == (0, 4)


@pytest.mark.parametrize("name, strategy", ALL_LAYERS)
@pytest.mark.parametrize("order", [">", "<"])
def test_every_layer_takes_any_byte_order_and_answers_in_native_order(name, strategy, order):
    x = np.random.default_rng(1).integers(-9, 9, size=(2, 3, 7, 6)).astype(np.float64)
    native, swapped = build_layer(name, strategy), build_layer(name, strategy)
    out = swapped.forward(x.astype(np.dtype(np.float64).newbyteorder(order)))
    np.testing.assert_array_equal(out, native.forward(x))
    dout = np.ones(out.shape)
    dx = swapped.backward(dout.astype(np.dtype(np.float64).newbyteorder(order)))
    np.testing.assert_array_equal(dx, native.backward(dout))
    for array in (out, dx, *swapped.grads.values()):
        assert array.dtype.isnative


def test_layers_take_parameters_of_any_byte_order():
    weight = np.ones((2, 1, 2, 2), ">f4")
    conv = colnn.Convolution(weight, np.zeros(2, ">f4"))
    affine = colnn.Affine(np.ones((4, 2), ">f8"), np.zeros(2, ">f8"))
    assert conv.forward(np.ones((1, 1, 3, 3), ">f4")).dtype.isnative
    assert affine.forward(np.ones((1, 4), ">f8")).dtype.isnative


INTEGER_LAYERS = [name for name in LAYER_KINDS if not name.startswith(("Convolution", "AvgPool2d", "Affine"))]


@pytest.mark.parametrize("name", INTEGER_LAYERS)
def test_every_layer_given_integers_has_floating_gradients(backend, name):
    skip_repeat_without_strategy(backend, name)
    layer = build_layer(name, backend.strategy, backend.to)
    out = layer.forward(backend.to(np.arange(2 * 3 * 7 * 6).reshape(2, 3, 7, 6) % 7 - 3))
    dx = backend.back(layer.backward(backend.to(np.full(tuple(out.shape), 3))))
    assert dx.dtype == np.float64


def _softmax_after_forward():
    layer = colnn.SoftmaxWithLoss()
    layer.forward(np.zeros((2, 3)), np.array([0, 1]))
    return layer


BAD_ARGUMENTS = [
    (lambda: colnn.MaxPool2d(2, strategy="bogus"), ValueError, "strategy must be one of .*got 'bogus'"),
    (lambda: colnn.AvgPool2d(2, strategy="fast"), ValueError, "strategy must be one of .*got 'fast'"),
    (lambda: colnn.Convolution(np.ones((1, 1, 2, 2)), np.zeros(1), strategy=3), ValueError,
     "strategy must be one of .*got 3"),
    (lambda: colnn.Convolution(np.ones((0, 1, 1, 1)), np.zeros(0)), ValueError, r"W must have non-empty axes"),
    (lambda: colnn.Convolution(np.ones((2, 0, 1, 1)), np.zeros(2)), ValueError, r"W must have non-empty axes"),
    (lambda: colnn.Convolution(np.ones((2, 1, 1, 1)), np.zeros(3)), ValueError, r"b must have shape \(2,\)"),
    (lambda: colnn.Convolution(np.ones((2, 1, 1, 1)), np.zeros((2, 1))), ValueError, r"b must be 1-D"),
    (lambda: colnn.conv2d(np.ones((1, 1, 2, 2)), np.ones((0, 1, 1, 1))), ValueError, r"weight must have non-empty"),
    (lambda: colnn.conv2d(np.ones((1, 1, 2, 2)), np.ones((1, 1, 0, 1))), ValueError, r"weight must have non-empty"),
    (lambda: colnn.conv2d(np.ones((1, 1, 2, 2)), np.ones((1, 1, 1, 1)), np.ones(0)), ValueError,
     r"bias must have non-empty"),
    (lambda: colnn.conv2d(np.ones((1, 1, 2, 2)), np.ones((2, 1, 1, 1)), np.ones(3)), ValueError,
     r"bias must have shape \(2,\)"),
    (lambda: colnn.Affine(np.ones((0, 3)), np.zeros(3)), ValueError, r"W must have non-empty axes"),
    (lambda: colnn.Affine(np.ones((4, 0)), np.zeros(0)), ValueError, r"W must have non-empty axes"),
    (lambda: colnn.Affine(np.ones((4, 3)), np.zeros(2)), ValueError, r"b must have shape \(3,\)"),
    (lambda: colnn.Affine(np.ones((4, 3)), np.zeros(3)).forward(1.0), ValueError,
     r"x must be 1-D to 8-D, got a scalar 1.0"),
    (lambda: colnn.Affine(np.ones((4, 3)), np.zeros(3)).forward([[1.0, 2.0], [3.0]]), ValueError,
     r"x must be a rectangular array, got a ragged sequence"),
    (lambda: colnn.Relu().forward(np.array(["a"])), TypeError,
     r"x must be a real integer or floating array, got numpy.ndarray of dtype <U1"),
    (lambda: colnn.MaxPool2d(2).forward([[[1, 2], [3]]]), ValueError, r"x must be a rectangular array"),
    (lambda: colnn.im2col(np.ones((1, 1, 2, 2)), 2, 2, pad=1, pad_value="a"), TypeError,
     r"pad_value must be a real number, got 'a'"),
    (lambda: colnn.im2col(np.ones((1, 1, 2, 2), np.float16), 2, 2, pad=1, pad_value=1e6), ValueError,
     r"pad_value 1000000.0 cannot be represented in the input's dtype float16"),
    (lambda: colnn.col2im(np.ones((1, 4)), "abcd", 2, 2), TypeError,
     r"input_shape must be a tuple of 4 ints, got 'abcd'"),
    (lambda: colnn.col2im(np.ones((1, 4)), (1, 1, 2), 2, 2), ValueError, r"input_shape must be 4 sizes"),
    (lambda: _softmax_after_forward().backward("a"), TypeError, r"dout must be a real integer or floating"),
    (lambda: colnn.MaxPool2d(2, ceil_mode="no"), TypeError, r"ceil_mode must be True or False, got 'no'"),
    (lambda: colnn.AvgPool2d(2, count_include_pad=None), TypeError,
     r"count_include_pad must be True or False, got None"),
    (lambda: colnn.max_pool2d(np.ones((1, 2, 2)), 2, return_indices="yes"), TypeError, r"return_indices must be True"),
    (lambda: colnn.avg_pool2d(np.ones((1, 2, 2)), 2, ceil_mode=2), TypeError,
     r"ceil_mode must be True or False, got 2"),
]


@pytest.mark.parametrize("call, error, match", BAD_ARGUMENTS)
def test_bad_arguments_raise_naming_the_argument_and_value(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --- SoftmaxWithLoss: class probabilities ---------------------------------------------


def test_softmax_with_loss_takes_class_probabilities_as_pytorch_does(torch, backend):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 4))
    t = rng.random((5, 4))
    t /= t.sum(axis=1, keepdims=True)
    xt = torch.tensor(x, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(xt, torch.tensor(t))
    expected.backward()
    layer = colnn.SoftmaxWithLoss()
    assert layer.forward(backend.to(x), backend.to(t)) == pytest.approx(expected.item(), rel=1e-12)
    np.testing.assert_allclose(backend.back(layer.backward()), xt.grad.numpy(), rtol=1e-12, atol=1e-15)
    assert colnn.SoftmaxWithLoss().forward([[0.0, 1.0, 2.0]], [[0.2, 0.3, 0.5]]) == pytest.approx(1.1076059644)


def test_one_hot_targets_give_the_labels_numbers(backend):
    x = backend.to(np.random.default_rng(3).standard_normal((6, 5)))
    labels = np.array([0, 4, 2, 2, 1, 3])
    by_labels, by_one_hot = colnn.SoftmaxWithLoss(), colnn.SoftmaxWithLoss()
    assert by_one_hot.forward(x, backend.to(np.eye(5)[labels])) == by_labels.forward(x, backend.to(labels))
    np.testing.assert_array_equal(backend.back(by_one_hot.backward()), backend.back(by_labels.backward()))


@pytest.mark.parametrize("t", [[[0.5, 0.6, 0.0]], [[-0.5, 1.5, 0.0]], [[0.2, 0.2, 0.2]], [[np.nan, 1.0, 0.0]],
                               [[1.0, 0.0, 0.0], [0.5, 0.6, 0.0]]])
def test_probability_rows_must_be_non_negative_and_sum_to_one(backend, t):
    row = len(t) - 1
    with pytest.raises(ValueError, match=rf"t must hold class probabilities.*row {row} "):
        colnn.SoftmaxWithLoss().forward(backend.to(np.zeros((len(t), 3))), backend.to(np.array(t)))


@pytest.mark.parametrize("labels", [[0, 3], [-1, 0]])
def test_labels_outside_the_classes_raise_value_error(backend, labels):
    with pytest.raises(ValueError, match=r"t must hold labels in \[0, 3\)"):
        colnn.SoftmaxWithLoss().forward(backend.to(np.zeros((2, 3))), backend.to(np.array(labels)))


# --- Relu, Affine and SoftmaxWithLoss against PyTorch on every backend ------------------


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int8, np.int32, np.int64])
def test_relu_matches_torch_relu_nan_included(torch, backend, dtype):
    if not backend.supports(dtype):
        pytest.skip(f"{backend.name} has no {np.dtype(dtype)}")
    rng = np.random.default_rng(11)
    x = rng.integers(-3, 4, size=(3, 4, 5)).astype(dtype)
    if np.dtype(dtype).kind == "f":
        x = (x + rng.random(x.shape)).astype(dtype)
        x.reshape(-1)[:6] = [np.nan, -np.inf, np.inf, 0.0, -0.0, np.nan]
    layer = colnn.Relu()
    out = backend.back(layer.forward(backend.to(x)))
    expected = torch.relu(torch.from_numpy(x))
    assert out.dtype == x.dtype
    np.testing.assert_array_equal(out, expected.numpy())  # NaN stays NaN, bit for bit
    # (Equal values: torch.relu keeps -0.0 as -0.0 where colnn, NumPy path and Array API path alike, gives +0.0.)
    dout = rng.standard_normal(x.shape).astype(x.dtype if np.dtype(dtype).kind == "f" else np.float64)
    dx = backend.back(layer.backward(backend.to(dout)))
    if np.dtype(dtype).kind == "f":
        x_t = torch.from_numpy(x.astype(np.float64)).requires_grad_()
        torch.relu(x_t).backward(torch.from_numpy(dout.astype(np.float64)))
        expected_dx = x_t.grad.numpy()
    else:  # torch has no gradients of integers: the mask rule, x > 0 passes
        expected_dx = np.where(x > 0, dout, 0.0)
    np.testing.assert_array_equal(dx, expected_dx.astype(dx.dtype))
    assert dx.dtype == (x.dtype if np.dtype(dtype).kind == "f" else np.float64)


@pytest.mark.parametrize("x_dtype, w_dtype", [(np.float32, np.float32), (np.float64, np.float64),
                                              (np.float32, np.float64)])
def test_affine_matches_torch_linear(torch, backend, x_dtype, w_dtype):
    rng = np.random.default_rng(12)
    x = rng.standard_normal((4, 2, 3, 2)).astype(x_dtype)
    weight, bias = rng.standard_normal((12, 5)).astype(w_dtype), rng.standard_normal(5).astype(w_dtype)
    dout = rng.standard_normal((4, 5)).astype(w_dtype)
    layer = colnn.Affine(backend.to(weight), backend.to(bias))
    out = backend.back(layer.forward(backend.to(x)))
    dx = backend.back(layer.backward(backend.to(dout)))
    # Parameters and their gradients stay in the weights' library (``back`` checks the kind).
    params = {name: backend.back(value) for name, value in layer.params.items()}
    grads = {name: backend.back(value) for name, value in layer.grads.items()}
    common = np.result_type(x_dtype, w_dtype)
    x_t = torch.from_numpy(x.astype(common)).requires_grad_()
    w_t, b_t = (torch.from_numpy(a.copy()).requires_grad_() for a in (weight, bias))
    expected = torch.nn.functional.linear(x_t.flatten(1), w_t.T, b_t)
    expected.backward(torch.from_numpy(dout))
    tol = 1e-5 if common == np.float32 else 1e-12
    assert out.dtype == common and dx.dtype == common and grads["W"].dtype == grads["b"].dtype == w_dtype
    np.testing.assert_allclose(out, expected.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, x_t.grad.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(grads["W"], w_t.grad.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(grads["b"], b_t.grad.numpy(), rtol=tol, atol=tol)
    np.testing.assert_array_equal(params["W"], weight)
    np.testing.assert_array_equal(params["b"], bias)


def test_affine_answers_as_the_numpy_path_does(backend):
    rng = np.random.default_rng(13)
    x, weight, bias = rng.standard_normal((3, 7)), rng.standard_normal((7, 2)), rng.standard_normal(2)
    numpy_layer, layer = colnn.Affine(weight, bias), colnn.Affine(backend.to(weight), backend.to(bias))
    np.testing.assert_allclose(backend.back(layer.forward(backend.to(x))), numpy_layer.forward(x), rtol=1e-13)
    np.testing.assert_allclose(backend.back(layer.forward(backend.to(x[0]))), numpy_layer.forward(x[0]), rtol=1e-13)
    with pytest.raises(ValueError, match=r"x has 6 features per sample but W expects 7"):
        layer.forward(backend.to(np.ones((2, 3, 2))))
    with pytest.raises(ValueError, match=r"b must have shape \(2,\)"):
        colnn.Affine(backend.to(weight), backend.to(np.zeros(3)))
    with pytest.raises(TypeError, match=r"W must be a floating array"):
        colnn.Affine(backend.to(np.ones((7, 2), np.int32)), backend.to(bias))
    with pytest.raises(TypeError, match=r"x must be a floating array"):
        layer.forward(backend.to(np.ones((2, 7), np.int64)))
    if backend.foreign:  # NumPy input to a layer whose weights live in another library
        with pytest.raises(TypeError, match=r"^x is a numpy.ndarray but W is an? [\w. ]+; pass arrays of one library$"):
            layer.forward(x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_with_loss_matches_torch_cross_entropy_in_float32_and_float64(torch, backend, dtype):
    rng = np.random.default_rng(14)
    scores = (rng.standard_normal((6, 5)) * 4).astype(dtype)
    labels = rng.integers(0, 5, 6)
    scores_t = torch.from_numpy(scores.copy()).requires_grad_()
    loss_t = torch.nn.functional.cross_entropy(scores_t, torch.from_numpy(labels))
    loss_t.backward(torch.tensor(2.5, dtype=scores_t.dtype))
    layer = colnn.SoftmaxWithLoss()
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert layer.forward(backend.to(scores), backend.to(labels)) == pytest.approx(loss_t.item(), rel=tol)
    grad = backend.back(layer.backward(2.5))
    assert grad.dtype == dtype
    np.testing.assert_allclose(grad, scores_t.grad.numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("strategy", [None, "im2col"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_convolution_without_input_grad_sets_the_same_parameter_grads(strategy, dtype):
    # The oracle is the full backward of an identical layer: dW and db must not depend on skipping dx.
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 2, 9, 8)).astype(dtype)
    W, b = rng.standard_normal((4, 2, 3, 3)).astype(dtype), rng.standard_normal(4).astype(dtype)
    full, partial = (colnn.Convolution(W, b, stride=1, pad=1, strategy=strategy) for _ in range(2))
    dout = rng.standard_normal(full.forward(x).shape).astype(dtype)
    partial.forward(x)
    dx = full.backward(dout)
    assert partial.backward(dout, input_grad=False) is None
    assert dx.shape == x.shape
    np.testing.assert_array_equal(partial.dW, full.dW)
    np.testing.assert_array_equal(partial.db, full.db)
    with pytest.raises(TypeError, match="input_grad"):
        partial.backward(dout, input_grad="no")
