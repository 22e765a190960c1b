"""Dropout: the book's semantics, its own seedable generator, and its gradient through a fixed mask."""

from __future__ import annotations

import numpy as np
import pytest

from colnn.nn import Dropout
from reference import numerical_gradient


def test_training_keeps_about_one_minus_ratio_of_the_elements_unchanged(rng):
    x = rng.normal(size=(200, 50))
    layer = Dropout(0.3, seed=0)
    out = layer.forward(x)
    kept = out != 0
    assert np.array_equal(out[kept], x[kept])  # the book does not rescale the survivors
    assert abs(kept.mean() - 0.7) < 0.01  # 10,000 draws: the std of the fraction is 0.005
    assert np.array_equal(kept, layer.mask)


def test_evaluation_scales_by_the_kept_fraction_and_matches_the_training_mean(rng):
    x = rng.normal(size=(3, 4)).astype(np.float32)
    layer = Dropout(0.25, seed=1)
    out = layer.forward(x, train_flg=False)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, 0.75 * x, rtol=1e-6)
    np.testing.assert_allclose(layer.backward(np.ones_like(x)), np.full(x.shape, 0.75), rtol=1e-6)
    # In expectation the training output equals the evaluation output.
    draws = np.mean([layer.forward(x) for _ in range(4000)], axis=0)
    np.testing.assert_allclose(draws, out, atol=0.05)


def test_the_seed_fixes_the_masks_and_the_global_state_is_untouched(rng):
    x = np.ones((5, 6))
    state = np.random.get_state()
    first, second = Dropout(0.5, seed=7), Dropout(0.5, seed=7)
    assert np.array_equal(first.forward(x), second.forward(x))
    assert np.array_equal(first.forward(x), second.forward(x))
    assert not np.array_equal(Dropout(0.5, seed=8).forward(x), Dropout(0.5, seed=7).forward(x))
    after = np.random.get_state()
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2:] == after[2:]


def test_gradient_through_a_fixed_mask_matches_finite_differences(backend, rng):
    x = rng.normal(size=(4, 3, 2))
    weights = rng.normal(size=x.shape)
    layer = Dropout(0.4, seed=3)

    def loss(v):
        layer.rng = np.random.default_rng(3)  # replays the same mask on every call
        return float((backend.back(layer.forward(backend.to(v))) * weights).sum())

    expected = numerical_gradient(loss, x)
    layer.rng = np.random.default_rng(3)
    layer.forward(backend.to(x))
    np.testing.assert_allclose(backend.back(layer.backward(backend.to(weights))), expected, rtol=1e-7, atol=1e-9)
    assert np.count_nonzero(expected == 0) > 0  # some elements were dropped


@pytest.mark.parametrize("ratio, error", [(1.0, ValueError), (-0.1, ValueError), ("0.5", TypeError), (True, TypeError)])
def test_bad_ratios_are_rejected(ratio, error):
    with pytest.raises(error, match=f"dropout_ratio must be .*got {ratio!r}"):
        Dropout(ratio)


def test_backward_needs_forward_and_the_output_shape(backend):
    layer = Dropout()
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(backend.to(np.ones(3)))
    layer.forward(backend.to(np.ones((2, 3))))
    with pytest.raises(ValueError, match=r"dout must have the forward output's shape \(2, 3\)"):
        layer.backward(backend.to(np.ones(3)))
    with pytest.raises(TypeError, match="x must be a floating array"):
        layer.forward(backend.to(np.ones(3, dtype=int)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_backend_draws_the_numpy_mask_and_keeps_the_dtype(backend, rng, dtype):
    x = rng.normal(size=(6, 5)).astype(dtype)
    expected_layer, layer = Dropout(0.3, seed=4), Dropout(0.3, seed=4)
    expected = expected_layer.forward(x)
    out = backend.back(layer.forward(backend.to(x)))
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, expected)
    dout = rng.normal(size=x.shape).astype(dtype)
    np.testing.assert_array_equal(backend.back(layer.backward(backend.to(dout))), expected_layer.backward(dout))
    evaluated = backend.back(layer.forward(backend.to(x), train_flg=False))
    assert evaluated.dtype == dtype
    np.testing.assert_array_equal(evaluated, expected_layer.forward(x, train_flg=False))
    np.testing.assert_array_equal(backend.back(layer.backward(backend.to(dout))), expected_layer.backward(dout))


@pytest.mark.parametrize("seed, error, message", [
    (1.5, TypeError, r"seed must be an int or None, got a float \(1\.5\)"),
    (True, TypeError, r"seed must be an int or None, got a bool"),
    (np.random.default_rng(0), TypeError, r"seed must be an int or None, got a numpy"),
    (-1, ValueError, r"seed must be >= 0, got -1"),
])
def test_a_bad_seed_is_refused_at_construction_naming_it(seed, error, message):
    with pytest.raises(error, match=message):
        Dropout(0.5, seed=seed)
