"""colnn.book.functions, .gradient and .util: the book's formulas, checked against the book's own worked numbers.

Oracles: the values the book prints in chapters 3-4 (recomputed here with
``math``), central differences written in the test, and plain loops.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from colnn.book.functions import (
    cross_entropy_error,
    identity_function,
    relu,
    relu_grad,
    sigmoid,
    sigmoid_grad,
    softmax,
    softmax_loss,
    step_function,
    sum_squared_error,
)
from colnn.book.gradient import numerical_gradient, numerical_gradient_2d
from colnn.book.util import col2im, conv_output_size, im2col, shuffle_dataset, smooth_curve

# Chapter 4.2's example: the network says "2" with probability 0.6; the label is 2.
BOOK_Y = np.array([0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0])
BOOK_T = np.eye(10)[2]


def test_the_losses_give_the_books_worked_examples():
    assert sum_squared_error(BOOK_Y, BOOK_T) == pytest.approx(0.5 * (0.1**2 * 3 + 0.05**2 * 2 + 0.4**2))
    # The book's 1e-7 inside the logarithm: -log(0.6 + 1e-7), not -log(0.6).
    assert cross_entropy_error(BOOK_Y, BOOK_T) == -math.log(0.6 + 1e-7)
    assert cross_entropy_error(BOOK_Y, 2) == cross_entropy_error(BOOK_Y, BOOK_T)
    # A probability of exactly 0 for the label costs -log(1e-7), finite.
    assert cross_entropy_error(BOOK_Y, 3) == pytest.approx(-math.log(1e-7))


def test_cross_entropy_takes_labels_columns_and_one_hot_rows_alike():
    rng = np.random.default_rng(0)
    y = softmax(rng.normal(size=(5, 4)))
    labels = np.array([0, 3, 1, 1, 2])
    expected = -sum(math.log(y[n, label] + 1e-7) for n, label in enumerate(labels)) / 5
    for t in (labels, labels.reshape(-1, 1), np.eye(4)[labels], labels.astype(np.uint8)):
        assert cross_entropy_error(y, t) == pytest.approx(expected, rel=1e-15)
    assert softmax_loss(np.log(y), labels) == pytest.approx(expected, rel=1e-12)


def test_softmax_is_exp_over_its_sum_even_for_huge_scores():
    x = np.array([[0.3, 2.9, 4.0], [1010.0, 1000.0, 990.0]])
    got = softmax(x)
    first = [math.exp(v) / sum(math.exp(w) for w in x[0]) for v in x[0]]
    second = [math.exp(v - 1010) / sum(math.exp(w - 1010) for w in x[1]) for v in x[1]]
    np.testing.assert_allclose(got, [first, second], rtol=1e-14)
    np.testing.assert_allclose(softmax(x[0]), first, rtol=1e-14)  # one sample, as in chapter 3


def test_activations_and_their_derivatives():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    np.testing.assert_array_equal(step_function(x), [0, 0, 0, 1, 1])
    assert step_function(x).dtype.kind == "i"
    np.testing.assert_allclose(sigmoid(x), [1 / (1 + math.exp(-v)) for v in x], rtol=1e-15)
    np.testing.assert_array_equal(relu(x), [0, 0, 0, 0.5, 2])
    np.testing.assert_array_equal(relu_grad(x), [0, 0, 1, 1, 1])  # the book takes 1 at 0
    h = 1e-5
    np.testing.assert_allclose(sigmoid_grad(x), (sigmoid(x + h) - sigmoid(x - h)) / (2 * h), rtol=1e-8)
    assert identity_function(x) is x
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sigmoid(np.array([-1000.0]))[0] == 0.0  # the book's value, without NumPy's overflow warning


def test_numerical_gradient_gives_the_books_chapter_4_values_and_restores_x():
    def function_2(x):
        return x[0] ** 2 + x[1] ** 2

    for point, expected in (([3.0, 4.0], [6.0, 8.0]), ([0.0, 2.0], [0.0, 4.0]), ([3.0, 0.0], [6.0, 0.0])):
        x = np.array(point)
        np.testing.assert_allclose(numerical_gradient(function_2, x), expected, atol=1e-7)
        np.testing.assert_array_equal(x, point)
    # Any shape: a network's weight matrix, read by f through the perturbed array itself.
    w = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(numerical_gradient(lambda _: float(np.sum(w ** 3)), w), 3 * w ** 2, rtol=1e-7, atol=1e-7)
    rows = np.array([[1.0, 2.0], [3.0, -1.0]])
    np.testing.assert_allclose(numerical_gradient_2d(lambda row: float(np.sum(row ** 2)), rows), 2 * rows, atol=1e-7)


def test_numerical_gradient_refuses_an_array_it_could_not_perturb():
    with pytest.raises(TypeError, match=r"x must be a writeable floating NumPy array.*got ndarray of dtype int64"):
        numerical_gradient(lambda x: 0.0, np.array([1, 2]))
    frozen = np.ones(2)
    frozen.flags.writeable = False
    with pytest.raises(TypeError, match="read-only"):
        numerical_gradient(lambda x: 0.0, frozen)


def test_smooth_curve_is_a_normalised_kaiser_window_over_the_mirrored_curve():
    curve = np.random.default_rng(1).random(40)
    window = np.kaiser(11, 2) / np.kaiser(11, 2).sum()
    padded = np.concatenate([curve[10:0:-1], curve, curve[-1:-11:-1]])
    expected = [float(np.dot(window[::-1], padded[i:i + 11])) for i in range(5, 5 + 40)]
    np.testing.assert_allclose(smooth_curve(curve), expected, rtol=1e-12)
    np.testing.assert_allclose(smooth_curve(np.full(20, 3.0)), np.full(20, 3.0))  # a flat curve stays flat
    with pytest.raises(ValueError, match="at least 11 points"):
        smooth_curve([1.0, 2.0])


def test_shuffle_dataset_draws_one_permutation_from_the_global_state():
    x, t = np.arange(12.0).reshape(6, 2), np.arange(6)
    np.random.seed(7)
    order = np.random.permutation(6)
    np.random.seed(7)
    x_shuffled, t_shuffled = shuffle_dataset(x, t)
    np.testing.assert_array_equal(t_shuffled, order)
    np.testing.assert_array_equal(x_shuffled, x[order])
    np.testing.assert_array_equal(t, np.arange(6))  # the caller's arrays stay as they were
    with pytest.raises(ValueError, match="same number of samples"):
        shuffle_dataset(x, t[:3])


def test_conv_output_size_and_im2col_have_the_books_signatures():
    assert conv_output_size(28, 5) == 24.0 and conv_output_size(28, 3, stride=1, pad=1) == 28.0
    x = np.arange(2 * 3 * 5 * 5, dtype=np.float64).reshape(2, 3, 5, 5)
    col = im2col(x, 3, 3, stride=2, pad=1)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    rows = [padded[n, :, i:i + 3, j:j + 3].ravel() for n in range(2) for i in (0, 2, 4) for j in (0, 2, 4)]
    np.testing.assert_array_equal(col, rows)
    # col2im is im2col's adjoint: <im2col(x), y> == <x, col2im(y)>.
    y = np.random.default_rng(2).normal(size=col.shape)
    assert np.sum(col * y) == pytest.approx(np.sum(x * col2im(y, x.shape, 3, 3, stride=2, pad=1)), rel=1e-12)
