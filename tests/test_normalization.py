"""Batch normalisation: the book's BatchNormalization and PyTorch's BatchNorm2d.

Oracles: NumPy's mean and variance written out per feature (the book's
definition), ``torch.nn.BatchNorm2d`` with autograd, and central differences
in float64.
"""

from __future__ import annotations

import numpy as np
import pytest
from reference import numerical_gradient

from colnn.nn import BatchNorm2d, BatchNormalization, Network

SHAPES_BOOK = [(6, 5), (4, 2, 3, 3)]


def weighted_sum_of(forward, weights):
    """A scalar loss whose gradient w.r.t. the output is ``weights``."""
    return lambda v: float((forward(v) * weights).sum())


def book_layer(features, rng, dtype=np.float64, **kwargs):
    return BatchNormalization(rng.normal(1.0, 0.3, features).astype(dtype),
                              rng.normal(0.0, 0.3, features).astype(dtype), **kwargs)


# --- BatchNormalization (the book's) ------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES_BOOK, ids=str)
def test_book_forward_normalises_each_flattened_feature(shape, rng):
    x = rng.normal(2.0, 3.0, shape)
    layer = book_layer(int(np.prod(shape[1:])), rng)
    out = layer.forward(x)
    flat = x.reshape(shape[0], -1)
    mean, var = flat.mean(axis=0), ((flat - flat.mean(axis=0)) ** 2).mean(axis=0)
    expected = layer.gamma * (flat - mean) / np.sqrt(var + 1e-6) + layer.beta
    np.testing.assert_allclose(out, expected.reshape(shape), rtol=1e-12, atol=1e-12)
    # momentum=0.9 keeps 90% of the old estimate (zeros) and takes 10% of the batch's biased variance.
    np.testing.assert_allclose(layer.running_mean, 0.1 * mean, rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, 0.1 * var, rtol=1e-12)
    evaluated = layer.forward(x, train_flg=False)
    expected_eval = layer.gamma * (flat - 0.1 * mean) / np.sqrt(0.1 * var + 1e-6) + layer.beta
    np.testing.assert_allclose(evaluated, expected_eval.reshape(shape), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("train_flg", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", SHAPES_BOOK, ids=str)
def test_book_gradients_match_finite_differences(shape, train_flg, rng):
    x = rng.normal(size=shape)
    features = int(np.prod(shape[1:]))
    layer = book_layer(features, rng, running_mean=rng.normal(size=features),
                       running_var=rng.uniform(0.5, 2.0, features))
    weights = rng.normal(size=shape)
    start = (layer.running_mean.copy(), layer.running_var.copy())

    def forward(v, gamma=layer.gamma, beta=layer.beta):
        probe = BatchNormalization(gamma, beta, 0.9, *start)
        return probe.forward(v, train_flg)

    layer.forward(x, train_flg)
    dx = layer.backward(weights)
    np.testing.assert_allclose(dx, numerical_gradient(weighted_sum_of(forward, weights), x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(layer.dgamma, numerical_gradient(
        weighted_sum_of(lambda g: forward(x, gamma=g), weights), layer.gamma), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(layer.dbeta, numerical_gradient(
        weighted_sum_of(lambda b: forward(x, beta=b), weights), layer.beta), rtol=1e-6, atol=1e-8)
    assert layer.grads.keys() == {"gamma", "beta"}


def test_book_keeps_dtype_and_never_touches_the_callers_arrays(rng):
    gamma, beta, x = np.ones(4, np.float32), np.zeros(4, np.float32), rng.random((3, 4), dtype=np.float32)
    copies = [gamma.copy(), beta.copy(), x.copy()]
    layer = BatchNormalization(gamma, beta)
    out = layer.forward(x)
    dx = layer.backward(np.ones_like(out))
    assert out.dtype == dx.dtype == layer.dgamma.dtype == layer.running_mean.dtype == np.float32
    layer.gamma += 1
    assert all(np.array_equal(a, b) for a, b in zip([gamma, beta, x], copies))


def test_book_rejects_bad_input_and_a_failed_call_changes_nothing(rng):
    layer = book_layer(4, rng)
    running = layer.running_mean.copy()
    with pytest.raises(ValueError, match=r"x has 5 features per sample but gamma has 4"):
        layer.forward(np.ones((2, 5)))
    with pytest.raises(TypeError, match="x must be a floating array, got dtype int64"):
        layer.forward(np.ones((2, 4), dtype=np.int64))
    assert np.array_equal(layer.running_mean, running)
    with pytest.raises(ValueError, match=r"beta must have shape \(4,\), got \(3,\)"):
        BatchNormalization(np.ones(4), np.zeros(3))
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\], got 1.5"):
        BatchNormalization(np.ones(4), np.zeros(4), momentum=1.5)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        book_layer(4, rng).backward(np.ones((2, 4)))


# --- BatchNorm2d (PyTorch's) -------------------------------------------------------


def torch_pair(torch, channels, rng, dtype=np.float64):
    ours = BatchNorm2d(channels, eps=1e-5, momentum=0.2, dtype=dtype)
    ours.weight[:] = rng.normal(1.0, 0.3, channels)
    ours.bias[:] = rng.normal(0.0, 0.3, channels)
    theirs = torch.nn.BatchNorm2d(channels, eps=1e-5, momentum=0.2).to(getattr(torch, np.dtype(dtype).name))
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.weight.copy()))
        theirs.bias.copy_(torch.from_numpy(ours.bias.copy()))
    return ours, theirs


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 2e-5)], ids=["float64", "float32"])
def test_batchnorm2d_matches_torch_in_training_and_evaluation(torch, rng, dtype, tol):
    ours, theirs = torch_pair(torch, 3, rng, dtype)
    for step in range(3):  # running estimates accumulate over steps
        x = rng.normal(1.5, 2.0, (4, 3, 5, 6)).astype(dtype)
        dout = rng.normal(size=x.shape).astype(dtype)
        xt = torch.tensor(x, requires_grad=True)
        theirs.train()
        theirs.zero_grad()
        out_t = theirs(xt)
        out_t.backward(torch.from_numpy(dout))
        out = ours.forward(x)
        dx = ours.backward(dout)
        assert out.dtype == dx.dtype == dtype
        np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(ours.grads["weight"], theirs.weight.grad.numpy(), rtol=tol, atol=tol * 10)
        np.testing.assert_allclose(ours.grads["bias"], theirs.bias.grad.numpy(), rtol=tol, atol=tol * 10)
        np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), rtol=tol, atol=tol)
    x = rng.normal(size=(2, 3, 4, 4)).astype(dtype)
    dout = rng.normal(size=x.shape).astype(dtype)
    theirs.eval()
    theirs.zero_grad()
    xt = torch.tensor(x, requires_grad=True)
    out_t = theirs(xt)
    out_t.backward(torch.from_numpy(dout))
    running = ours.running_var.copy()
    np.testing.assert_allclose(ours.forward(x, train_flg=False), out_t.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(ours.backward(dout), xt.grad.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(ours.grads["weight"], theirs.weight.grad.numpy(), rtol=tol, atol=tol * 10)
    assert np.array_equal(ours.running_var, running)  # evaluation leaves the estimates alone


@pytest.mark.parametrize("train_flg", [True, False], ids=["train", "eval"])
def test_batchnorm2d_gradients_match_finite_differences(rng, train_flg):
    x = rng.normal(size=(3, 2, 3, 4))
    weights = rng.normal(size=x.shape)
    layer = BatchNorm2d(2, dtype=np.float64)
    layer.weight[:], layer.bias[:] = rng.normal(size=2), rng.normal(size=2)
    layer.running_mean[:], layer.running_var[:] = rng.normal(size=2), rng.uniform(0.5, 2, 2)
    state = {name: getattr(layer, name).copy() for name in ("weight", "bias", "running_mean", "running_var")}

    def forward(v, **override):
        probe = BatchNorm2d(2, dtype=np.float64)
        for name, value in {**state, **override}.items():
            setattr(probe, name, value.copy())
        return probe.forward(v, train_flg)

    layer.forward(x, train_flg)
    dx = layer.backward(weights)
    np.testing.assert_allclose(dx, numerical_gradient(weighted_sum_of(forward, weights), x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(layer.grads["weight"], numerical_gradient(
        weighted_sum_of(lambda w: forward(x, weight=w), weights), state["weight"]), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(layer.grads["bias"], numerical_gradient(
        weighted_sum_of(lambda b: forward(x, bias=b), weights), state["bias"]), rtol=1e-6, atol=1e-8)


def test_batchnorm2d_rejects_what_torch_rejects(rng):
    layer = BatchNorm2d(3)
    with pytest.raises(ValueError, match="more than one value per channel when training"):
        layer.forward(np.ones((1, 3, 1, 1), np.float32))
    assert layer.forward(np.ones((1, 3, 1, 1), np.float32), train_flg=False).shape == (1, 3, 1, 1)
    with pytest.raises(ValueError, match=r"x must have 3 channels, got shape \(2, 4, 2, 2\)"):
        layer.forward(np.ones((2, 4, 2, 2), np.float32))
    with pytest.raises(ValueError, match="num_features must be a positive int, got 0"):
        BatchNorm2d(0)
    with pytest.raises(ValueError, match="eps must be a finite number > 0, got -1"):
        BatchNorm2d(2, eps=-1)
    assert np.array_equal(layer.running_mean, np.zeros(3)) and np.array_equal(layer.running_var, np.ones(3))


# --- in a network: saved running statistics, evaluation mode ------------------------


def test_networks_save_running_statistics_and_evaluate_with_them(tmp_path, rng):
    from colnn.nn import Affine, Convolution, Relu

    net = Network([Convolution(rng.normal(size=(4, 1, 3, 3)), np.zeros(4), pad=1), BatchNorm2d(4, dtype=np.float64),
                   Relu(), Affine(rng.normal(size=(4 * 36, 6)), np.zeros(6)),
                   BatchNormalization(np.ones(6), np.zeros(6)), Affine(rng.normal(size=(6, 3)), np.zeros(3))],
                  input_shape=(1, 6, 6))
    x, t = rng.normal(size=(8, 1, 6, 6)), rng.integers(0, 3, 8)
    for _ in range(3):
        net.loss_and_gradient(x, t)  # training mode: the estimates move
    assert not np.allclose(net.layers[1].running_var, 1.0)
    net.save(tmp_path / "bn.npz")
    back = Network.load(tmp_path / "bn.npz")
    for name in ("running_mean", "running_var", "weight", "bias"):
        assert np.array_equal(getattr(back.layers[1], name), getattr(net.layers[1], name))
    for name in ("running_mean", "running_var", "gamma", "beta"):
        assert np.array_equal(getattr(back.layers[4], name), getattr(net.layers[4], name))
    # Evaluation uses the running estimates, so a single sample gets the same scores alone or in a batch.
    np.testing.assert_array_equal(back.predict(x), net.predict(x))
    np.testing.assert_allclose(back.predict(x[:1]), net.predict(x)[:1], rtol=1e-12)
    assert sorted(back.params) == sorted(net.params)  # running estimates are not trained
