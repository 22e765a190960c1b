"""Optimizers against hand-written update formulas and torch.optim, on a small quadratic."""

from __future__ import annotations

import math

import numpy as np
import pytest

from colnn.nn.optim import OPTIMIZERS, SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop, make_optimizer

# f(p) = sum(curvature * p**2) / 2, so the gradient is curvature * p.
CURVATURE = np.array([[1.0, 3.0], [0.5, 8.0]])
START = np.array([[1.0, -2.0], [4.0, 0.3]])
STEPS = 6


def run(optimizer) -> np.ndarray:
    params = {"p": START.copy()}
    for _ in range(STEPS):
        optimizer.update(params, {"p": CURVATURE * params["p"]})
    return params["p"]


def reference(step_rule) -> np.ndarray:
    """Apply ``step_rule(p, g, state, t) -> p`` element by element with Python floats."""
    result = np.empty_like(START)
    for index in np.ndindex(START.shape):
        p, state = float(START[index]), {}
        for t in range(1, STEPS + 1):
            p = step_rule(p, float(CURVATURE[index]) * p, state, t)
        result[index] = p
    return result


def sgd_rule(p, g, state, t, lr=0.1):
    return p - lr * g


def momentum_rule(p, g, state, t, lr=0.05, mu=0.8):
    state["v"] = mu * state.get("v", 0.0) - lr * g
    return p + state["v"]


def adagrad_rule(p, g, state, t, lr=0.3, eps=1e-7):
    state["h"] = state.get("h", 0.0) + g * g
    return p - lr * g / (math.sqrt(state["h"]) + eps)


def adam_rule(p, g, state, t, lr=0.2, b1=0.8, b2=0.95, eps=1e-8):
    state["m"] = b1 * state.get("m", 0.0) + (1 - b1) * g
    state["v"] = b2 * state.get("v", 0.0) + (1 - b2) * g * g
    m_hat, v_hat = state["m"] / (1 - b1 ** t), state["v"] / (1 - b2 ** t)
    return p - lr * m_hat / (math.sqrt(v_hat) + eps)


CASES = [
    (SGD(lr=0.1), sgd_rule),
    (Momentum(lr=0.05, momentum=0.8), momentum_rule),
    (AdaGrad(lr=0.3), adagrad_rule),
    (Adam(lr=0.2, beta1=0.8, beta2=0.95), adam_rule),
]


@pytest.mark.parametrize("optimizer, rule", CASES, ids=lambda case: type(case).__name__)
def test_matches_the_hand_written_formula(optimizer, rule):
    np.testing.assert_allclose(run(optimizer), reference(rule), rtol=1e-12, atol=1e-15)


def assert_matches_torch(torch, pairs):
    """Run each pair (ours, a torch.optim factory) on the quadratic; the parameters must agree."""
    for ours, make_theirs in pairs:
        weight = torch.tensor(START.copy(), requires_grad=True)
        theirs = make_theirs(weight)
        for _ in range(STEPS):
            theirs.zero_grad()
            (0.5 * (torch.tensor(CURVATURE) * weight ** 2).sum()).backward()
            theirs.step()
        np.testing.assert_allclose(run(ours), weight.detach().numpy(), rtol=1e-12, atol=1e-15, err_msg=repr(ours))


def test_matches_torch_optim(torch):
    pairs = [
        (SGD(lr=0.1), lambda w: torch.optim.SGD([w], lr=0.1)),
        # torch's velocity is ours divided by -lr; with a constant lr the steps agree.
        (Momentum(lr=0.05, momentum=0.8), lambda w: torch.optim.SGD([w], lr=0.05, momentum=0.8)),
        (AdaGrad(lr=0.3, eps=1e-10), lambda w: torch.optim.Adagrad([w], lr=0.3, eps=1e-10)),
        (Adam(lr=0.2, beta1=0.8, beta2=0.95), lambda w: torch.optim.Adam([w], lr=0.2, betas=(0.8, 0.95))),
    ]
    assert_matches_torch(torch, pairs)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_updates_the_arrays_in_place_and_keeps_their_dtype(name):
    buffer = np.ones((3, 4), dtype=np.float32)
    params = {"view": buffer[1:], "other": np.full(5, 2.0, dtype=np.float32)}
    objects = {key: id(array) for key, array in params.items()}
    grads = {"view": np.full((2, 4), 0.5, dtype=np.float32), "other": np.ones(5, dtype=np.float32)}
    grads_before = {key: grad.copy() for key, grad in grads.items()}
    make_optimizer(name, 0.1).update(params, grads)
    assert {key: id(array) for key, array in params.items()} == objects
    assert np.all(buffer[1:] < 1) and np.all(buffer[0] == 1)  # written through the view
    assert all(array.dtype == np.float32 for array in params.values())
    assert all(np.array_equal(grads[key], grads_before[key]) for key in grads)


def test_state_is_kept_per_parameter_name():
    optimizer = Momentum(lr=1.0, momentum=0.5)
    params = {"a": np.zeros(1), "b": np.zeros(1)}
    optimizer.update(params, {"a": np.ones(1), "b": -np.ones(1)})
    optimizer.update(params, {"a": np.zeros(1), "b": np.zeros(1)})
    # a: v = -1 then -0.5, so a = -1.5; b mirrors it.
    assert params["a"][0] == pytest.approx(-1.5) and params["b"][0] == pytest.approx(1.5)


def test_a_rejected_update_changes_nothing():
    params = {"a": np.ones(2), "b": np.ones(3)}
    optimizer = Adam(0.1)
    with pytest.raises(ValueError, match=r"grads\['b'\] has shape \(2,\), but params\['b'\] has \(3,\)"):
        optimizer.update(params, {"a": np.ones(2), "b": np.ones(2)})
    assert np.all(params["a"] == 1) and optimizer.steps == 0
    with pytest.raises(KeyError, match=r"missing \['b'\], unexpected \['c'\]"):
        optimizer.update(params, {"a": np.ones(2), "c": np.ones(3)})
    frozen = np.ones(2)
    frozen.flags.writeable = False
    with pytest.raises(TypeError, match="params\\['a'\\] must be a writeable ndarray"):
        SGD(0.1).update({"a": frozen}, {"a": np.ones(2)})


@pytest.mark.parametrize("make, message", [
    (lambda: SGD(lr=0), "lr must be a finite number > 0, got 0"),
    (lambda: SGD(lr=-1.0), "lr must be a finite number > 0, got -1.0"),
    (lambda: Adam(lr=float("nan")), "lr must be a finite number > 0, got nan"),
    (lambda: Momentum(0.1, momentum=1.0), r"momentum must be a finite number in \[0, 1\), got 1.0"),
    (lambda: Adam(0.1, beta2=1.5), r"beta2 must be a finite number in \[0, 1\), got 1.5"),
    (lambda: AdaGrad(0.1, eps=-1e-3), "eps must be a finite number >= 0, got -0.001"),
])
def test_bad_settings_raise_value_error_naming_them(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_non_numbers_and_unknown_names_are_rejected():
    with pytest.raises(TypeError, match=r"lr must be a number, got '0\.1'"):
        SGD(lr="0.1")
    with pytest.raises(TypeError, match="lr must be a number, got True"):
        SGD(lr=True)
    with pytest.raises(ValueError, match=r"optimizer must be one of .*, got 'lbfgs'"):
        make_optimizer("lbfgs", 0.1)
    assert isinstance(make_optimizer("adagrad", 0.1), AdaGrad)


def test_every_optimizer_has_its_own_default_lr():
    """Without lr each optimizer takes the rate that learns the default `colnn train` run (measured there)."""
    expected = {"sgd": 0.1, "momentum": 0.01, "adagrad": 0.01, "adam": 0.001}
    for name, optimizer in OPTIMIZERS.items():
        assert optimizer().lr == make_optimizer(name).lr == make_optimizer(name, None).lr
        assert optimizer().lr == expected.get(name, optimizer().lr), name
    p = {"w": np.array([1.0])}
    SGD().update(p, {"w": np.array([2.0])})
    assert p["w"].tolist() == [1.0 - 0.1 * 2.0]


# --- the book's Nesterov and RMSprop ------------------------------------------------


def nesterov_rule(p, g, state, t, lr=0.05, mu=0.8):
    """Sutskever's look-ahead form: the gradient at p + mu * v, rewritten at p (Bengio et al., 2013)."""
    v_old = state.get("v", 0.0)
    state["v"] = mu * v_old - lr * g
    return p - mu * v_old + (1 + mu) * state["v"]


def rmsprop_rule(p, g, state, t, lr=0.02, rho=0.9, eps=1e-7):
    state["h"] = rho * state.get("h", 0.0) + (1 - rho) * g * g
    return p - lr * g / (math.sqrt(state["h"]) + eps)


@pytest.mark.parametrize("optimizer, rule", [
    (Nesterov(lr=0.05, momentum=0.8), nesterov_rule),
    (RMSprop(lr=0.02, decay_rate=0.9), rmsprop_rule),
], ids=["Nesterov", "RMSprop"])
def test_book_optimizers_match_the_hand_written_formula(optimizer, rule):
    np.testing.assert_allclose(run(optimizer), reference(rule), rtol=1e-12, atol=1e-15)


def test_book_optimizers_match_torch_optim(torch):
    pairs = [
        (Nesterov(lr=0.05, momentum=0.8), lambda w: torch.optim.SGD([w], lr=0.05, momentum=0.8, nesterov=True)),
        (RMSprop(lr=0.02, decay_rate=0.9, eps=1e-8), lambda w: torch.optim.RMSprop([w], lr=0.02, alpha=0.9, eps=1e-8)),
    ]
    assert_matches_torch(torch, pairs)


def test_book_optimizers_have_the_books_names_and_defaults():
    assert (Nesterov().lr, Nesterov().momentum) == (0.01, 0.9)
    assert (RMSprop().lr, RMSprop().decay_rate) == (0.01, 0.99)
    assert OPTIMIZERS["nesterov"] is Nesterov and OPTIMIZERS["rmsprop"] is RMSprop
    with pytest.raises(ValueError, match=r"decay_rate must be a finite number in \[0, 1\), got 1.0"):
        RMSprop(decay_rate=1.0)


# --- parameters of another array library ---------------------------------------------------

def _mutable_library(name):
    """``(to_library, to_numpy)`` for a library whose arrays can be written in place, or a skip."""
    if name == "torch":
        torch = pytest.importorskip("torch")
        return torch.asarray, lambda a: a.numpy()
    xs = pytest.importorskip("array_api_strict")
    return xs.asarray, np.asarray


@pytest.mark.parametrize("library", ["torch", "array_api_strict"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_updates_another_librarys_arrays_in_place_as_numpy(library, name):
    to_library, to_numpy = _mutable_library(library)
    theirs = {"p": to_library(START.copy())}
    same_object = theirs["p"]
    ours = {"p": START.copy()}
    optimizer, oracle = make_optimizer(name, 0.05), make_optimizer(name, 0.05)
    for _ in range(STEPS):
        optimizer.update(theirs, {"p": to_library(CURVATURE) * theirs["p"]})
        oracle.update(ours, {"p": CURVATURE * ours["p"]})
    assert theirs["p"] is same_object
    np.testing.assert_allclose(to_numpy(same_object), ours["p"], rtol=1e-14, atol=0)


def test_a_layer_with_torch_weights_trains_in_place(rng):
    torch = pytest.importorskip("torch")
    from colnn.nn import Convolution

    weight, bias = rng.standard_normal((2, 1, 3, 3)), rng.standard_normal(2)
    x, dout = rng.standard_normal((2, 1, 5, 5)), rng.standard_normal((2, 2, 3, 3))
    layer, oracle = Convolution(torch.asarray(weight), torch.asarray(bias)), Convolution(weight.copy(), bias.copy())
    for net, to in ((layer, torch.asarray), (oracle, np.asarray)):
        net.forward(to(x))
        net.backward(to(dout))
        Adam(0.1).update({"W": net.W, "b": net.b}, {"W": net.dW, "b": net.db})
    np.testing.assert_allclose(layer.forward(torch.asarray(x)).numpy(), oracle.forward(x), rtol=1e-12)


def test_arrays_that_cannot_be_written_in_place_are_refused_naming_them():
    jnp = pytest.importorskip("jax.numpy")
    before = jnp.ones(2)
    with pytest.raises(TypeError, match=r"params\['w'\] .* got an immutable JAX array"):
        SGD(0.1).update({"w": before}, {"w": jnp.ones(2)})
    torch = pytest.importorskip("torch")
    leaf = torch.ones(2, requires_grad=True)
    with pytest.raises(TypeError, match=r"params\['w'\] is a torch.Tensor that requires grad"):
        SGD(0.1).update({"w": leaf}, {"w": torch.ones(2)})
    params = {"v": torch.ones(2), "w": torch.ones(2)}
    with pytest.raises(TypeError, match=r"grads\['w'\] is a numpy.ndarray but params\['w'\] is a torch.Tensor"):
        SGD(0.1).update(params, {"v": torch.ones(2), "w": np.ones(2)})
    assert torch.equal(params["v"], torch.ones(2))  # refused before any step


def test_a_grad_on_another_device_than_its_param_is_refused_naming_the_key_and_both_devices():
    strict = pytest.importorskip("array_api_strict", reason="array_api_strict has a second device")
    other = strict.Device("device1")
    params = {"v": strict.ones(2), "w": strict.ones(2, device=other)}
    with pytest.raises(ValueError, match=r"grads\['w'\] is on device .*CPU.* but params\['w'\] is on device .*device1"):
        SGD(0.1).update(params, {"v": strict.ones(2), "w": strict.ones(2)})
    assert bool(strict.all(params["v"] == 1))  # refused before any step


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_on_numpy_is_the_textbook_expression_bit_for_bit(dtype):
    # The oracle is Adam's formula written as plain NumPy expressions (fresh temporaries);
    # colnn computes NumPy parameters in two scratch buffers and must round identically.
    rng = np.random.default_rng(3)
    param = rng.standard_normal((64, 33)).astype(dtype)
    expected = param.copy()
    first, second = np.zeros_like(param), np.zeros_like(param)
    lr, beta1, beta2, eps = 0.003, 0.8, 0.99, 1e-7
    optimizer = Adam(lr, beta1, beta2, eps)
    for step in range(1, 6):
        grad = rng.standard_normal(param.shape).astype(dtype)
        first = first + (1.0 - beta1) * (grad - first)
        second = second + (1.0 - beta2) * (grad * grad - second)
        expected = expected - lr * (first / (1.0 - beta1 ** step)) / (np.sqrt(second / (1.0 - beta2 ** step)) + eps)
        optimizer.update({"w": param}, {"w": grad})
        np.testing.assert_array_equal(param, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_adam_matches_the_textbook_expression_on_zeros_infinities_and_nans(dtype, layout):
    # eps = 0 and a zero gradient make 0/0; inf and NaN gradients spread as in NumPy.
    grad = np.array([[0.0, 1.0, -2.0, np.inf], [-np.inf, np.nan, 3e-30, 0.5]], dtype=dtype)
    param = np.linspace(-1, 1, grad.size).astype(dtype).reshape(grad.shape)
    if layout == "strided":
        param, grad = np.asfortranarray(param), np.asfortranarray(grad)
    lr, beta1, beta2 = 0.01, 0.9, 0.999
    with np.errstate(all="ignore"):
        first = (1.0 - beta1) * grad
        second = (1.0 - beta2) * (grad * grad)
        expected = param - lr * (first / (1.0 - beta1)) / (np.sqrt(second / (1.0 - beta2)) + 0.0)
        Adam(lr, beta1, beta2, eps=0.0).update({"w": param}, {"w": grad})
    np.testing.assert_array_equal(param, expected)


def test_the_compiled_adam_step_declines_arrays_it_cannot_write():
    from colnn.kernels.adam import adam_step_inplace

    arrays = [np.ones(4, np.float32) for _ in range(4)]
    for index in (0, 2, 3):  # param, first, second
        readonly = [a.copy() for a in arrays]
        readonly[index].flags.writeable = False
        before = [a.copy() for a in readonly]
        assert adam_step_inplace(*readonly, lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8, step=1) is False
        for got, expected in zip(readonly, before):
            np.testing.assert_array_equal(got, expected)
    assert adam_step_inplace(*arrays, lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8, step=1) is True
