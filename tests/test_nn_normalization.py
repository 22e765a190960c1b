"""Batch normalisation: the book's BatchNormalization and PyTorch's BatchNorm2d.

Oracles: NumPy's mean and variance written out per feature (the book's
definition), ``torch.nn.BatchNorm2d`` with autograd, and central differences
in float64. The conformance tests take the ``backend`` fixture: the layer is
built from that library's arrays (``like=`` for BatchNorm2d), so it computes
there, and every result must come back as that library's array.
"""

from __future__ import annotations

import numpy as np
import pytest

from colnn.nn import BatchNorm2d, BatchNormalization, Network
from reference import numerical_gradient

SHAPES_BOOK = [(6, 5), (4, 2, 3, 3)]


@pytest.fixture
def backend(backend):
    """The conftest backends less ``im2col``: batch normalisation has no strategy, so NumPy runs once."""
    if backend.name == "im2col":
        pytest.skip("batch normalisation has no strategy; the numba backend ran it on NumPy")
    return backend


def weighted_sum_of(forward, weights):
    """A scalar loss whose gradient w.r.t. the output is ``weights``."""
    return lambda v: float((forward(v) * weights).sum())


def book_layer(features, rng, dtype=np.float64, backend=None, **kwargs):
    to = (lambda a: a) if backend is None else backend.to
    kwargs = {key: to(np.asarray(value, dtype)) for key, value in kwargs.items()}
    return BatchNormalization(to(rng.normal(1.0, 0.3, features).astype(dtype)),
                              to(rng.normal(0.0, 0.3, features).astype(dtype)), **kwargs)


def bn2d(backend, channels, dtype=np.float64, **arrays):
    """A BatchNorm2d whose four arrays are ``backend``'s (``arrays`` overrides, given as NumPy)."""
    layer = BatchNorm2d(channels, eps=1e-5, momentum=arrays.pop("momentum", 0.1), dtype=dtype,
                        like=backend.to(np.zeros(1, dtype)) if backend.foreign else None)
    for name, value in arrays.items():
        setattr(layer, name, backend.to(np.array(value, dtype)))
    return layer


def state_of(backend, layer, *names):
    """The named arrays of ``layer`` as NumPy, failing unless they are of ``backend``'s library."""
    return [backend.back(getattr(layer, name)) for name in names]


# --- BatchNormalization (the book's) ------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES_BOOK, ids=str)
def test_book_forward_normalises_each_flattened_feature(backend, shape, rng):
    x = rng.normal(2.0, 3.0, shape)
    layer = book_layer(int(np.prod(shape[1:])), rng, backend=backend)
    gamma, beta = state_of(backend, layer, "gamma", "beta")
    out = backend.back(layer.forward(backend.to(x)))
    flat = x.reshape(shape[0], -1)
    mean, var = flat.mean(axis=0), ((flat - flat.mean(axis=0)) ** 2).mean(axis=0)
    expected = gamma * (flat - mean) / np.sqrt(var + 1e-6) + beta
    np.testing.assert_allclose(out, expected.reshape(shape), rtol=1e-12, atol=1e-12)
    # momentum=0.9 keeps 90% of the old estimate (zeros) and takes 10% of the batch's biased variance.
    running_mean, running_var = state_of(backend, layer, "running_mean", "running_var")
    np.testing.assert_allclose(running_mean, 0.1 * mean, rtol=1e-12)
    np.testing.assert_allclose(running_var, 0.1 * var, rtol=1e-12)
    evaluated = backend.back(layer.forward(backend.to(x), train_flg=False))
    expected_eval = gamma * (flat - 0.1 * mean) / np.sqrt(0.1 * var + 1e-6) + beta
    np.testing.assert_allclose(evaluated, expected_eval.reshape(shape), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("train_flg", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", SHAPES_BOOK, ids=str)
def test_book_gradients_match_finite_differences(backend, shape, train_flg, rng):
    x = rng.normal(size=shape)
    features = int(np.prod(shape[1:]))
    layer = book_layer(features, rng, backend=backend, running_mean=rng.normal(size=features),
                       running_var=rng.uniform(0.5, 2.0, features))
    weights = rng.normal(size=shape)
    gamma0, beta0, *start = state_of(backend, layer, "gamma", "beta", "running_mean", "running_var")

    def forward(v, gamma=gamma0, beta=beta0):
        probe = BatchNormalization(*(backend.to(a) for a in (gamma, beta)), 0.9, *map(backend.to, start))
        return backend.back(probe.forward(backend.to(v), train_flg))

    layer.forward(backend.to(x), train_flg)
    dx = backend.back(layer.backward(backend.to(weights)))
    np.testing.assert_allclose(dx, numerical_gradient(weighted_sum_of(forward, weights), x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(backend.back(layer.dgamma), numerical_gradient(
        weighted_sum_of(lambda g: forward(x, gamma=g), weights), gamma0), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(backend.back(layer.dbeta), numerical_gradient(
        weighted_sum_of(lambda b: forward(x, beta=b), weights), beta0), rtol=1e-6, atol=1e-8)
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


def torch_pair(torch, backend, channels, rng, dtype=np.float64):
    weight, bias = rng.normal(1.0, 0.3, channels), rng.normal(0.0, 0.3, channels)
    ours = bn2d(backend, channels, dtype, momentum=0.2, weight=weight, bias=bias)
    theirs = torch.nn.BatchNorm2d(channels, eps=1e-5, momentum=0.2).to(getattr(torch, np.dtype(dtype).name))
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(weight.astype(dtype)))
        theirs.bias.copy_(torch.from_numpy(bias.astype(dtype)))
    return ours, theirs


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 2e-5)], ids=["float64", "float32"])
def test_batchnorm2d_matches_torch_in_training_and_evaluation(torch, backend, rng, dtype, tol):
    ours, theirs = torch_pair(torch, backend, 3, rng, dtype)
    for _ in range(3):  # running estimates accumulate over steps
        x = rng.normal(1.5, 2.0, (4, 3, 5, 6)).astype(dtype)
        dout = rng.normal(size=x.shape).astype(dtype)
        xt = torch.tensor(x, requires_grad=True)
        theirs.train()
        theirs.zero_grad()
        out_t = theirs(xt)
        out_t.backward(torch.from_numpy(dout))
        out = backend.back(ours.forward(backend.to(x)))
        dx = backend.back(ours.backward(backend.to(dout)))
        assert out.dtype == dx.dtype == dtype
        np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=tol, atol=tol)
        grad_weight, grad_bias = backend.back(ours.grads["weight"]), backend.back(ours.grads["bias"])
        assert grad_weight.dtype == grad_bias.dtype == dtype
        np.testing.assert_allclose(grad_weight, theirs.weight.grad.numpy(), rtol=tol, atol=tol * 10)
        np.testing.assert_allclose(grad_bias, theirs.bias.grad.numpy(), rtol=tol, atol=tol * 10)
        running_mean, running_var = state_of(backend, ours, "running_mean", "running_var")
        assert running_mean.dtype == running_var.dtype == dtype
        np.testing.assert_allclose(running_mean, theirs.running_mean.numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(running_var, theirs.running_var.numpy(), rtol=tol, atol=tol)
    x = rng.normal(size=(2, 3, 4, 4)).astype(dtype)
    dout = rng.normal(size=x.shape).astype(dtype)
    theirs.eval()
    theirs.zero_grad()
    xt = torch.tensor(x, requires_grad=True)
    out_t = theirs(xt)
    out_t.backward(torch.from_numpy(dout))
    running = backend.back(ours.running_var).copy()
    np.testing.assert_allclose(backend.back(ours.forward(backend.to(x), train_flg=False)), out_t.detach().numpy(),
                               rtol=tol, atol=tol)
    np.testing.assert_allclose(backend.back(ours.backward(backend.to(dout))), xt.grad.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(backend.back(ours.grads["weight"]), theirs.weight.grad.numpy(), rtol=tol,
                               atol=tol * 10)
    assert np.array_equal(backend.back(ours.running_var), running)  # evaluation leaves the estimates alone


@pytest.mark.parametrize("train_flg", [True, False], ids=["train", "eval"])
def test_batchnorm2d_gradients_match_finite_differences(backend, rng, train_flg):
    x = rng.normal(size=(3, 2, 3, 4))
    weights = rng.normal(size=x.shape)
    state = {"weight": rng.normal(size=2), "bias": rng.normal(size=2), "running_mean": rng.normal(size=2),
             "running_var": rng.uniform(0.5, 2, 2)}
    layer = bn2d(backend, 2, **state)

    def forward(v, **override):
        probe = bn2d(backend, 2, **{**state, **override})
        return backend.back(probe.forward(backend.to(v), train_flg))

    layer.forward(backend.to(x), train_flg)
    dx = backend.back(layer.backward(backend.to(weights)))
    np.testing.assert_allclose(dx, numerical_gradient(weighted_sum_of(forward, weights), x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(backend.back(layer.grads["weight"]), numerical_gradient(
        weighted_sum_of(lambda w: forward(x, weight=w), weights), state["weight"]), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(backend.back(layer.grads["bias"]), numerical_gradient(
        weighted_sum_of(lambda b: forward(x, bias=b), weights), state["bias"]), rtol=1e-6, atol=1e-8)


def test_batchnorm2d_rejects_what_torch_rejects(backend, rng):
    layer = bn2d(backend, 3, np.float32)
    with pytest.raises(ValueError, match="more than one value per channel when training"):
        layer.forward(backend.to(np.ones((1, 3, 1, 1), np.float32)))
    out = backend.back(layer.forward(backend.to(np.ones((1, 3, 1, 1), np.float32)), train_flg=False))
    assert out.shape == (1, 3, 1, 1)
    with pytest.raises(ValueError, match=r"x must have 3 channels, got shape \(2, 4, 2, 2\)"):
        layer.forward(backend.to(np.ones((2, 4, 2, 2), np.float32)))
    with pytest.raises(ValueError, match="num_features must be a positive int, got 0"):
        BatchNorm2d(0)
    with pytest.raises(ValueError, match="eps must be a finite number > 0, got -1"):
        BatchNorm2d(2, eps=-1)
    running_mean, running_var = state_of(backend, layer, "running_mean", "running_var")
    assert np.array_equal(running_mean, np.zeros(3)) and np.array_equal(running_var, np.ones(3))


# --- any array library: where the arrays live -------------------------------------


@pytest.mark.parametrize("kind", ["book", "2d"])
def test_a_layer_rejects_an_input_of_another_library_and_stays_as_it_was(backend, kind, rng):
    if not backend.foreign:
        pytest.skip("needs another library's arrays")
    x = rng.normal(size=(4, 2, 3, 3))
    numpy_layer = book_layer(18, rng) if kind == "book" else BatchNorm2d(2, dtype=np.float64)
    foreign_layer = book_layer(18, rng, backend=backend) if kind == "book" else bn2d(backend, 2)
    scale = "gamma" if kind == "book" else "weight"
    before = numpy_layer.running_mean.copy()
    with pytest.raises(TypeError, match=rf"x is an? [\w. ]+ but \w+'s {scale} is a numpy.ndarray; pass arrays of one"):
        numpy_layer.forward(backend.to(x))
    assert np.array_equal(numpy_layer.running_mean, before)
    with pytest.raises(TypeError, match=rf"x is a numpy.ndarray but \w+'s {scale} is an? "):
        foreign_layer.forward(x)
    assert np.array_equal(backend.back(foreign_layer.running_mean), np.zeros(18 if kind == "book" else 2))


def test_foreign_layers_keep_their_arrays_in_their_library_and_take_a_numpy_gradient(backend, rng):
    x, dout = rng.normal(size=(4, 2, 3, 3)), rng.normal(size=(4, 2, 3, 3))
    # All four of gamma's library (any float dtype: they take gamma's); a NumPy beta with them is a TypeError.
    gamma = backend.to(np.ones(18, np.float32))
    if backend.foreign:
        with pytest.raises(TypeError, match=r"beta is a numpy.ndarray but gamma is an? [\w. ]+; pass arrays of one"):
            BatchNormalization(gamma, np.zeros(18))
    layer = BatchNormalization(gamma, *map(backend.to, (np.zeros(18), 0.9, np.zeros(18), np.ones(18))))
    for name in ("gamma", "beta", "running_mean", "running_var"):
        assert backend.back(getattr(layer, name)).dtype == np.float32, name
    layer.forward(backend.to(x.astype(np.float32)))
    dx = backend.back(layer.backward(dout.astype(np.float32)))  # a NumPy gradient answers in the input's library
    reference = BatchNormalization(np.ones(18, np.float32), np.zeros(18, np.float32), 0.9, np.zeros(18), np.ones(18))
    reference.forward(x.astype(np.float32))
    np.testing.assert_allclose(dx, reference.backward(dout.astype(np.float32)), rtol=1e-5, atol=1e-5)
    assert [backend.back(g).dtype for g in layer.grads.values()] == [np.float32, np.float32]
    layer2d = bn2d(backend, 2, np.float32)
    layer2d.forward(backend.to(x.astype(np.float32)))
    backend.back(layer2d.backward(dout.astype(np.float32)))
    assert all(backend.back(array).dtype == np.float32 for array in (*layer2d.params.values(),
                                                                     *layer2d.buffers.values()))


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


def test_torch_inputs_that_require_grad_are_taken_as_values(torch, rng):
    x = rng.normal(size=(4, 2, 3, 3))
    layer = BatchNorm2d(2, dtype=np.float64, like=torch.zeros(1, dtype=torch.float64))
    out = layer.forward(torch.tensor(x, requires_grad=True))
    # Like torch's own running estimates (updated under no_grad), no step's graph is kept.
    assert not (out.requires_grad or layer.running_mean.requires_grad or layer.running_var.requires_grad)
    np.testing.assert_allclose(out.numpy(), BatchNorm2d(2, dtype=np.float64).forward(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["book", "2d"])
@pytest.mark.parametrize("train_flg", [True, False])
def test_an_empty_batch_works_as_in_pytorch(torch, backend, kind, train_flg, rng):
    """PyTorch: an empty output, running estimates unchanged, an empty dx and zero parameter gradients."""
    theirs = torch.nn.BatchNorm2d(3).train(train_flg)
    x = torch.zeros((0, 3, 4, 4), requires_grad=True)
    expected = theirs(x)
    expected.sum().backward()
    layer = bn2d(backend, 3, np.float32) if kind == "2d" else book_layer(3 * 4 * 4, rng, np.float32, backend)
    before = [backend.back(array).copy() for array in layer.buffers.values()]
    out = backend.back(layer.forward(backend.to(np.zeros((0, 3, 4, 4), np.float32)), train_flg))
    assert out.shape == tuple(expected.shape) and out.dtype == np.float32
    for old, new in zip(before, layer.buffers.values()):
        np.testing.assert_array_equal(backend.back(new), old)
    assert np.array_equal(theirs.running_mean.numpy(), np.zeros(3)) and np.array_equal(
        theirs.running_var.numpy(), np.ones(3))
    dx = backend.back(layer.backward(backend.to(np.zeros((0, 3, 4, 4), np.float32))))
    assert dx.shape == tuple(x.grad.shape)
    assert not theirs.weight.grad.any()
    for name, grad in layer.grads.items():
        grad = backend.back(grad)
        assert grad.shape == tuple(layer.params[name].shape) and not grad.any()


@pytest.mark.parametrize("like", [[1.0], 0.0, "cpu"])
def test_batchnorm2d_like_must_be_an_array_as_numpys_like(like):
    # NumPy's own like= refuses a list; so must ours, rather than silently meaning NumPy.
    with pytest.raises(TypeError, match=r"like must be an array .* got "):
        BatchNorm2d(3, like=like)


def test_batchnorm2d_dtype_not_like_sets_the_parameters_dtype():
    # As np.ones(3, like=x) keeps its own dtype argument, not x's.
    layer = BatchNorm2d(3, like=np.zeros(1, np.float64))
    arrays = (layer.weight, layer.bias, layer.running_mean, layer.running_var)
    assert {a.dtype for a in arrays} == {np.dtype(np.float32)}
    layer = BatchNorm2d(3, dtype=np.float64, like=np.zeros(1, np.float32))
    assert layer.weight.dtype == np.float64
