"""colnn.book.layers: the book's layers on colnn's, used the way chapters 5-7 use them.

Oracles: the book's formulas written out in NumPy here (softmax with the
``1e-7`` cross-entropy, batch normalisation, the dropout draw), a naive
convolution loop, central differences, and a chapter 5 ``TwoLayerNet`` written
fresh in the book's style.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

from colnn.book.gradient import numerical_gradient
from colnn.book.layers import Affine, BatchNormalization, Convolution, Dropout, Pooling, Relu, Sigmoid, SoftmaxWithLoss
from colnn.book.optimizer import SGD


class TwoLayerNet:
    """Chapter 5's network, written as a reader would: layers built on ``self.params``."""

    def __init__(self, input_size, hidden_size, output_size, weight_init_std=0.01):
        self.params = {"W1": weight_init_std * np.random.randn(input_size, hidden_size), "b1": np.zeros(hidden_size),
                       "W2": weight_init_std * np.random.randn(hidden_size, output_size), "b2": np.zeros(output_size)}
        self.layers = OrderedDict()
        self.layers["Affine1"] = Affine(self.params["W1"], self.params["b1"])
        self.layers["Relu1"] = Relu()
        self.layers["Affine2"] = Affine(self.params["W2"], self.params["b2"])
        self.lastLayer = SoftmaxWithLoss()

    def predict(self, x):
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        return self.lastLayer.forward(self.predict(x), t)

    def numerical_gradient(self, x, t):
        loss_W = lambda W: self.loss(x, t)  # noqa: E731 - the book's idiom
        return {key: numerical_gradient(loss_W, self.params[key]) for key in ("W1", "b1", "W2", "b2")}

    def gradient(self, x, t):
        self.loss(x, t)
        dout = self.lastLayer.backward(1)
        for layer in reversed(list(self.layers.values())):
            dout = layer.backward(dout)
        return {"W1": self.layers["Affine1"].dW, "b1": self.layers["Affine1"].db,
                "W2": self.layers["Affine2"].dW, "b2": self.layers["Affine2"].db}


def test_chapter_5_gradient_check_and_training_on_shared_params():
    np.random.seed(0)
    net = TwoLayerNet(input_size=12, hidden_size=6, output_size=4, weight_init_std=0.3)
    x, t = np.random.rand(3, 12), np.eye(4)[[0, 3, 1]]  # one-hot labels, as gradient_check.py loads them
    numerical, backprop = net.numerical_gradient(x, t), net.gradient(x, t)
    for key in numerical:
        # The loss has the book's 1e-7 inside the log and its gradient does not: about 1e-7 / y apart.
        np.testing.assert_allclose(backprop[key], numerical[key], rtol=1e-5, atol=1e-9, err_msg=key)
    # train_neuralnet.py's loop: the in-place update of params reaches the layers, so the loss falls.
    before = net.loss(x, t)
    optimizer = SGD(lr=0.5)
    for _ in range(20):
        optimizer.update(net.params, net.gradient(x, t))
    assert net.loss(x, t) < 0.5 * before
    assert net.layers["Affine1"].W is net.params["W1"]


def book_softmax_loss(x, t):
    """Chapter 5.6.3 written out: softmax, then the mean of -log(y[label] + 1e-7), and (y - one_hot) / N."""
    y = np.exp(x - x.max(axis=1, keepdims=True))
    y /= y.sum(axis=1, keepdims=True)
    labels = t.argmax(axis=1) if t.ndim == 2 and t.shape == x.shape else t.reshape(-1)
    loss = -np.mean(np.log(y[np.arange(len(x)), labels] + 1e-7))
    return loss, (y - np.eye(x.shape[1])[labels]) / len(x)


def test_softmax_with_loss_is_the_books_for_every_label_form():
    rng = np.random.default_rng(1)
    x, labels = rng.normal(size=(4, 5)) * 3, np.array([4, 0, 2, 2])
    expected_loss, expected_grad = book_softmax_loss(x, labels)
    for t in (labels, labels.reshape(-1, 1), labels.astype(np.uint8), np.eye(5)[labels]):
        layer = SoftmaxWithLoss()
        assert layer.forward(x, t) == pytest.approx(expected_loss, rel=1e-14)
        np.testing.assert_allclose(layer.backward(), expected_grad, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(layer.backward(2.0), 2 * expected_grad, rtol=1e-13)
    with pytest.raises(ValueError, match=r"t must be labels of shape \(4,\) or \(4, 1\), or one-hot rows of shape "
                                         r"\(4, 5\); got ndarray of dtype int64, shape \(3,\)"):
        SoftmaxWithLoss().forward(x, labels[:3])


def test_the_books_gradient_check_label_column_of_one_sample():
    """ch07/gradient_check.py passes T = np.array([1]).reshape((1, 1))."""
    x = np.array([[0.5, -1.0, 2.0]])
    loss, grad = book_softmax_loss(x, np.array([1]))
    layer = SoftmaxWithLoss()
    assert layer.forward(x, np.array([1]).reshape((1, 1))) == pytest.approx(loss, rel=1e-15)
    np.testing.assert_allclose(layer.backward(), grad, rtol=1e-14)


def naive_conv(x, w, b, stride, pad):
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n, _, h, wd = x.shape
    fn, _, fh, fw = w.shape
    out_h, out_w = (h - fh) // stride + 1, (wd - fw) // stride + 1
    out = np.zeros((n, fn, out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            window = x[:, :, i * stride:i * stride + fh, j * stride:j * stride + fw]
            out[:, :, i, j] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out


def test_convolution_with_the_books_scalar_bias_and_shared_weights():
    """apply_filter.py: Convolution(w, 0) on a float32 image with float64 filters."""
    rng = np.random.default_rng(2)
    image, w = rng.random((1, 1, 9, 9), dtype=np.float32), rng.normal(size=(1, 1, 5, 5))
    layer = Convolution(w, 0)
    np.testing.assert_allclose(layer.forward(image), naive_conv(image.astype(np.float64), w, 0.0, 1, 0), rtol=1e-12)
    w += 1.0  # the layer holds the caller's array
    np.testing.assert_allclose(layer.forward(image), naive_conv(image.astype(np.float64), w, 0.0, 1, 0), rtol=1e-12)
    params = {"W": rng.normal(size=(3, 2, 3, 3)), "b": rng.normal(size=3)}
    conv = Convolution(params["W"], params["b"], stride=2, pad=1)
    x = rng.normal(size=(2, 2, 7, 7))
    np.testing.assert_allclose(conv.forward(x), naive_conv(x, params["W"], params["b"], 2, 1), rtol=1e-12)


def test_float64_convolution_keeps_exact_zeros():
    """MNIST's blank background with zero biases: every window of zeros gives exactly 0 (no -1e-15 to flip ReLU)."""
    rng = np.random.default_rng(3)
    x = np.zeros((2, 16, 12, 12))
    x[:, :, 4:7, 4:7] = rng.normal(size=(2, 16, 3, 3))
    w = rng.normal(size=(16, 16, 3, 3))
    out = Convolution(w, np.zeros(16), 1, 1).forward(x)
    blank = naive_conv(x, np.ones_like(w), 0.0, 1, 1) == 0  # windows that see only zeros
    assert blank.sum() > 100 and np.all(out[blank] == 0.0)


def test_pooling_defaults_to_the_books_stride_2_and_pads_with_minus_infinity():
    x = -np.arange(1.0, 17.0).reshape(1, 1, 4, 4)  # all negative: a zero pad would win every padded window
    np.testing.assert_array_equal(Pooling(2, 2).forward(x)[0, 0], [[-1.0, -3.0], [-9.0, -11.0]])
    padded = Pooling(2, 2, stride=2, pad=1).forward(x)
    assert padded.shape == (1, 1, 3, 3)  # (4 + 2 - 2) // 2 + 1: pad counts in the size
    assert padded[0, 0, 0, 0] == -1.0 and np.all(padded < 0)


def test_dropout_draws_its_mask_from_the_global_state_as_the_book():
    x = np.random.default_rng(4).normal(size=(3, 8))
    np.random.seed(5)
    mask = np.random.rand(3, 8) > 0.3
    np.random.seed(5)
    layer = Dropout(0.3)
    np.testing.assert_array_equal(layer.forward(x), x * mask)
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), mask * 1.0)
    np.testing.assert_allclose(layer.forward(x, train_flg=False), x * 0.7)


def test_batch_normalization_shares_gamma_and_beta_and_is_the_books():
    rng = np.random.default_rng(6)
    params = {"gamma": np.ones(4), "beta": np.zeros(4)}
    layer = BatchNormalization(params["gamma"], params["beta"])
    x = rng.normal(size=(5, 4)) * 3 + 1
    mean, var = x.mean(axis=0), x.var(axis=0)
    np.testing.assert_allclose(layer.forward(x), (x - mean) / np.sqrt(var + 10e-7), rtol=1e-12)
    np.testing.assert_allclose(layer.running_mean, 0.1 * mean, rtol=1e-12)  # momentum 0.9 from zeros
    params["gamma"] *= 2.0  # an optimizer's in-place step reaches the layer, as in the book
    params["beta"] += 1.0
    np.testing.assert_allclose(layer.forward(x), 2 * (x - mean) / np.sqrt(var + 10e-7) + 1, rtol=1e-12)
    # Backward against central differences of sum(forward(x) * weights).
    weights = rng.normal(size=(5, 4))
    layer.forward(x)
    dx = layer.backward(weights)
    numerical = numerical_gradient(lambda _: float(np.sum(layer.forward(x) * weights)), x)
    np.testing.assert_allclose(dx, numerical, rtol=1e-5, atol=1e-8)


def test_sigmoid_and_relu_backward_leave_dout_alone():
    x = np.array([[-1.0, 0.0, 2.0]])
    relu, sigmoid = Relu(), Sigmoid()
    dout = np.ones_like(x)
    relu.forward(x)
    np.testing.assert_array_equal(relu.backward(dout), [[0.0, 0.0, 1.0]])  # the book's mask x <= 0: none at 0
    y = sigmoid.forward(x)
    np.testing.assert_allclose(sigmoid.backward(dout), y * (1 - y))
    np.testing.assert_array_equal(dout, np.ones_like(x))


def test_star_import_brings_what_the_books_module_brings():
    namespace: dict = {}
    exec("from colnn.book.layers import *", namespace)
    expected = {"np", "Relu", "Sigmoid", "Affine", "SoftmaxWithLoss", "Dropout", "BatchNormalization", "Convolution",
                "Pooling", "sigmoid", "softmax", "cross_entropy_error", "relu",
                "im2col", "col2im", "identity_function", "step_function", "sigmoid_grad", "relu_grad",
                "sum_squared_error", "softmax_loss"}
    assert expected <= set(namespace)
    exec("from colnn.book.optimizer import *", namespace := {})
    assert {"np", "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"} <= set(namespace)


def test_lean_paths_compute_the_books_formulas_and_leave_other_inputs_to_colnn():
    """Affine, Relu and BatchNormalization skip colnn's per-call checks for the book's (N, D) NumPy batches."""
    rng = np.random.default_rng(7)
    W, b = rng.normal(size=(6, 3)), rng.normal(size=3)
    affine = Affine(W, b)
    x32 = rng.random((2, 6)).astype(np.float32)  # load_mnist's float32 rows into float64 weights, as in the book
    out = affine.forward(x32)
    np.testing.assert_array_equal(out, np.dot(x32.astype(np.float64), W) + b)
    assert out.dtype == np.float64
    dout = rng.normal(size=(2, 3))
    np.testing.assert_allclose(affine.backward(dout), dout @ W.T, rtol=1e-15)
    np.testing.assert_allclose(affine.dW, x32.astype(np.float64).T @ dout, rtol=1e-6)
    np.testing.assert_allclose(affine.db, dout.sum(axis=0), rtol=1e-15)
    # Images (N, C, H, W) and wrong widths still take colnn's checked path.
    images = rng.random((2, 6, 1, 1))
    np.testing.assert_allclose(affine.forward(images), images.reshape(2, 6) @ W + b, rtol=1e-15)
    assert affine.backward(dout).shape == images.shape
    with pytest.raises(ValueError, match="x has 5 features"):
        affine.forward(np.ones((2, 5)))
    relu = Relu()
    h = np.array([[-2.0, 0.0, np.nan, 3.0]], dtype=np.float32)
    np.testing.assert_array_equal(relu.forward(h), np.array([[0.0, 0.0, np.nan, 3.0]], dtype=np.float32))
    np.testing.assert_array_equal(relu.mask, h <= 0)
    assert relu.forward(np.array([[-1, 2]])).tolist() == [[0, 2]]  # integers: colnn's checked path
    # Batch normalisation in evaluation: the running estimates, with the book's 10e-7.
    gamma, beta = rng.random(3) + 0.5, rng.normal(size=3)
    norm = BatchNormalization(gamma, beta, running_mean=rng.normal(size=3), running_var=rng.random(3) + 0.1)
    x = rng.normal(size=(4, 3))
    expected = gamma * (x - norm.running_mean) / np.sqrt(norm.running_var + 10e-7) + beta
    np.testing.assert_allclose(norm.forward(x, train_flg=False), expected, rtol=1e-13)
    mean_before, var_before = norm.running_mean.copy(), norm.running_var.copy()
    norm.forward(x, train_flg=True)
    np.testing.assert_allclose(norm.running_mean, 0.9 * mean_before + 0.1 * x.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(norm.running_var, 0.9 * var_before + 0.1 * x.var(axis=0), rtol=1e-13)
    with pytest.raises(ValueError, match="features per sample"):
        norm.forward(np.ones((2, 4)))
