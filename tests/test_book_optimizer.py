"""colnn.book.optimizer: the book's six update rules and defaults, on arrays (in place) and on plain floats.

Oracles: each rule written out here from chapter 6.1's equations with Python
floats, and the chapter 6 demo (``optimizer_compare_naive.py``'s pattern) as a
script run twice, once on floats and once on arrays.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from colnn.book.optimizer import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop
from colnn.nn import optim as colnn_optim

GRADS = [0.5, -1.5, 2.0]  # the gradient seen at three successive steps


def book_steps(name, p, lr, **hyper):
    """The book's rule for one scalar parameter over GRADS, in Python floats: the positions after each step."""
    v = h = m = 0.0
    positions = []
    for step, g in enumerate(GRADS, start=1):
        if name == "SGD":
            p -= lr * g
        elif name == "Momentum":
            v = hyper["momentum"] * v - lr * g
            p += v
        elif name == "Nesterov":
            mu = hyper["momentum"]
            p += mu * mu * v
            p -= (1 + mu) * lr * g
            v = mu * v - lr * g
        elif name == "AdaGrad":
            h += g * g
            p -= lr * g / (math.sqrt(h) + 1e-7)
        elif name == "RMSprop":
            rho = hyper["decay_rate"]
            h = rho * h + (1 - rho) * g * g
            p -= lr * g / (math.sqrt(h) + 1e-7)
        elif name == "Adam":
            b1, b2 = hyper["beta1"], hyper["beta2"]
            m += (1 - b1) * (g - m)
            h += (1 - b2) * (g * g - h)
            lr_t = lr * math.sqrt(1 - b2 ** step) / (1 - b1 ** step)
            p -= lr_t * m / (math.sqrt(h) + 1e-7)
        positions.append(p)
    return positions


CASES = [(SGD, {}), (Momentum, {"momentum": 0.9}), (Nesterov, {"momentum": 0.9}), (AdaGrad, {}),
         (RMSprop, {"decay_rate": 0.99}), (Adam, {"beta1": 0.9, "beta2": 0.999})]


@pytest.mark.parametrize("kind, hyper", CASES, ids=[kind.__name__ for kind, _ in CASES])
def test_each_rule_is_the_books_on_arrays_in_place_and_on_floats(kind, hyper):
    lr = 0.1
    expected = book_steps(kind.__name__, 1.0, lr, **hyper)
    array, floats = {"w": np.array([1.0, 1.0])}, {"w": 1.0}
    held = array["w"]
    array_opt, float_opt = kind(lr, *hyper.values()), kind(lr, *hyper.values())
    for g, position in zip(GRADS, expected):
        array_opt.update(array, {"w": np.array([g, g])})
        float_opt.update(floats, {"w": g})
        np.testing.assert_allclose(array["w"], [position, position], rtol=1e-14)
        assert float(floats["w"]) == pytest.approx(position, rel=1e-14)
    assert array["w"] is held  # the layer that shares the array sees every step
    assert np.ndim(floats["w"]) == 0  # a float stays a scalar, rebound in the dict


def test_defaults_are_the_books():
    assert SGD().lr == 0.01  # colnn.nn.optim.SGD steps by 0.1
    assert (Momentum().lr, Momentum().momentum) == (0.01, 0.9)
    assert (Nesterov().lr, Nesterov().momentum) == (0.01, 0.9)
    assert AdaGrad().lr == 0.01 and (RMSprop().lr, RMSprop().decay_rate) == (0.01, 0.99)
    assert (Adam().lr, Adam().beta1, Adam().beta2) == (0.001, 0.9, 0.999)


def test_nesterov_is_pytorchs_step_in_another_order():
    """The book's Nesterov and colnn's (torch.optim.SGD(nesterov=True)) are one update, rounded otherwise."""
    ours, theirs = {"w": np.array([1.0])}, {"w": np.array([1.0])}
    book, torch_style = Nesterov(lr=0.1, momentum=0.9), colnn_optim.Nesterov(lr=0.1, momentum=0.9)
    for g in GRADS:
        book.update(ours, {"w": np.array([g])})
        torch_style.update(theirs, {"w": np.array([g])})
        np.testing.assert_allclose(ours["w"], theirs["w"], rtol=1e-15)
    one = {"w": 1.0}
    Nesterov(lr=0.1, momentum=0.9).update(one, {"w": 1.0})
    assert one["w"] == pytest.approx(1 - (1 + 0.9) * 0.1)  # 0.81


def test_adam_adds_its_epsilon_to_the_uncorrected_root():
    """A tiny gradient shows where epsilon sits: the book's step differs from PyTorch's."""
    g = 1e-9
    book = {"w": np.array([0.0])}
    Adam(lr=1.0).update(book, {"w": np.array([g])})
    m, v = 0.1 * g, 0.001 * g * g
    lr_t = math.sqrt(1 - 0.999) / (1 - 0.9)
    assert book["w"][0] == pytest.approx(-lr_t * m / (math.sqrt(v) + 1e-7), rel=1e-12)
    torch_style = {"w": np.array([0.0])}
    colnn_optim.Adam(lr=1.0, eps=1e-7).update(torch_style, {"w": np.array([g])})
    assert abs(book["w"][0] - torch_style["w"][0]) > 1e-3 * abs(book["w"][0])


def test_the_chapter_6_demo_on_floats_follows_the_same_path_as_on_arrays():
    """optimizer_compare_naive.py's pattern: f(x, y) = x**2 / 20 + y**2 from (-7, 2), 30 steps."""
    for kind, lr in ((SGD, 0.95), (Momentum, 0.1), (AdaGrad, 1.5), (Adam, 0.3)):
        floats, arrays = {"x": -7.0, "y": 2.0}, {"x": np.array(-7.0), "y": np.array(2.0)}
        float_opt, array_opt = kind(lr=lr), kind(lr=lr)
        for _ in range(30):
            float_opt.update(floats, {"x": floats["x"] / 10.0, "y": 2.0 * floats["y"]})
            array_opt.update(arrays, {"x": arrays["x"] / 10.0, "y": 2.0 * arrays["y"]})
        assert float(floats["x"]) == pytest.approx(float(arrays["x"]), rel=1e-12, abs=1e-12)
        assert abs(float(floats["x"])) < 7 and abs(float(floats["y"])) < 2  # each heads for the minimum at 0


def test_bad_hyper_parameters_and_missing_gradients_are_refused():
    with pytest.raises(ValueError, match=r"lr must be a finite number in \(0, inf\), got -1"):
        SGD(lr=-1)
    with pytest.raises(TypeError, match=r"momentum must be a number, got '0\.9'"):
        Momentum(momentum="0.9")
    with pytest.raises(ValueError, match=r"decay_rate must be a finite number in \[0, 1\)"):
        RMSprop(decay_rate=1.0)
    params = {"W1": np.ones(2), "b1": np.zeros(2)}
    with pytest.raises(KeyError, match=r"missing \['b1'\]"):
        Adam().update(params, {"W1": np.ones(2)})
    np.testing.assert_array_equal(params["W1"], [1.0, 1.0])  # refused before any step
