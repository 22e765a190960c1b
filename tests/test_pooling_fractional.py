"""Fractional max pooling against PyTorch given the same samples (on every backend), the named edge cases and
the layers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import colnn
from colnn.nn.network import Network
from reference import numerical_gradient

torch = pytest.importorskip("torch", reason="PyTorch is the oracle")
F = torch.nn.functional


def _torch(ndim, x, kernel, out, samples):
    return getattr(F, f"fractional_max_pool{ndim}d")(torch.from_numpy(x), kernel, out, return_indices=True,
                                                    _random_samples=torch.from_numpy(samples))


def test_matches_torch(backend):
    @backend.settings(50, 10)
    @given(ndim=st.integers(2, 3), data=st.data(), dtype=st.sampled_from(["float32", "float64"]),
           special=st.booleans(), edge=st.sampled_from([None, 0.0, "top"]))
    def check(ndim, data, dtype, special, edge):
        size = tuple(data.draw(st.integers(3, 10)) for _ in range(ndim))
        kernel = tuple(data.draw(st.integers(1, 3)) for _ in range(ndim))
        out = tuple(data.draw(st.integers(1, s - k + 1)) for s, k in zip(size, kernel))
        rng = np.random.default_rng(sum(size))
        x = rng.integers(-3, 3, (2, 3, *size)).astype(dtype)  # ties
        if special:
            for value in (np.nan, np.inf, -np.inf):
                x.reshape(-1)[rng.integers(x.size)] = value
        samples = rng.random((2, 3, ndim)).astype(dtype)
        if edge == 0.0:
            samples[:] = 0
        elif edge == "top":  # the largest sample below 1 (1 - 1e-7 in float64)
            samples[:] = 1 - 1e-7 if dtype == "float64" else np.nextafter(np.float32(1), np.float32(0))
        try:
            expected, expected_indices = _torch(ndim, x, kernel, out, samples)
        except RuntimeError:
            return  # PyTorch's 3-d check is strict (windows that exactly fit): README
        pool = getattr(colnn, f"fractional_max_pool{ndim}d")
        values, indices = backend.call(pool, x, kernel, out, return_indices=True, random_samples=samples,
                                       strategy=False)
        assert values.dtype == x.dtype and indices.dtype == np.int64
        np.testing.assert_array_equal(values, expected.numpy())
        np.testing.assert_array_equal(indices, expected_indices.numpy())
        np.testing.assert_array_equal(backend.call(pool, x[0], kernel, out, random_samples=samples[0], strategy=False),
                                      expected.numpy()[0])

    check()


def test_integer_input_and_output_ratio(backend):
    x = np.arange(2 * 9 * 9).reshape(1, 2, 9, 9)
    out = backend.call(colnn.fractional_max_pool2d, x, 2, output_ratio=0.5, rng=np.random.default_rng(0),
                       strategy=False)
    assert out.shape == (1, 2, 4, 4) and out.dtype == x.dtype


@pytest.mark.parametrize("kwargs, name", [
    ({"kernel_size": 2}, "output_size"), ({"kernel_size": 2, "output_size": 3, "output_ratio": 0.5}, "output_size"),
    ({"kernel_size": 4, "output_size": 3}, "kernel_size"), ({"kernel_size": 2, "output_ratio": 1.5}, "output_ratio"),
    ({"kernel_size": 2, "output_size": 2, "random_samples": np.ones((1, 1, 2))}, "random_samples"),
    ({"kernel_size": 2, "output_size": 2, "random_samples": np.zeros((1, 1, 3))}, "random_samples"),
])
def test_bad_arguments_name_themselves(backend, kwargs, name):
    with pytest.raises(ValueError, match=name):
        backend.call(colnn.fractional_max_pool2d, np.ones((1, 1, 5, 5)), **kwargs, strategy=False)


def _layer_case(seed, ndim):
    """``(shape, x, samples, weights)``: distinct values (a finite difference never moves a maximum)."""
    rng = np.random.default_rng(seed)
    shape = (2, 2) + (5,) * ndim
    x = rng.permutation(np.prod(shape)).reshape(shape) * 0.1
    return shape, x, rng.random((2, 2, ndim)), rng.standard_normal((2, 2) + (3,) * ndim)


@pytest.mark.parametrize("ndim", [2, 3])
def test_layer_gradient_and_round_trip(ndim, tmp_path):
    shape, x, samples, weights = _layer_case(3, ndim)
    layer = getattr(colnn, f"FractionalMaxPool{ndim}d")(2, output_size=3, rng=np.random.default_rng(0))
    layer.forward(x, samples)
    dx = layer.backward(weights)
    np.testing.assert_allclose(
        dx, numerical_gradient(lambda v: float((layer.forward(v, samples) * weights).sum()), x), rtol=1e-6, atol=1e-6)
    # Without samples each call draws from the layer's rng: same seed, same draws.
    cls = getattr(colnn, f"FractionalMaxPool{ndim}d")
    one, two = cls(2, output_size=3, rng=np.random.default_rng(5)), cls(2, output_size=3, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(one.forward(x), two.forward(x))
    np.testing.assert_array_equal(one.indices, two.indices)
    net = Network([layer, getattr(colnn, f"AdaptiveAvgPool{ndim}d")(1), colnn.Affine(np.ones((2, 2)), np.zeros(2))],
                  shape[1:])
    net.save(tmp_path / "model.npz")
    loaded = Network.load(tmp_path / "model.npz")
    assert type(loaded.layers[0]) is type(layer) and loaded.layers[0].kernel_size == layer.kernel_size


@pytest.mark.parametrize("ndim", [2, 3])
def test_layer_gradient_on_every_backend(backend, ndim):
    """Samples given in the input's library or drawn by colnn: the layer answers in that library, backward too."""
    _, x, samples, weights = _layer_case(4, ndim)
    cls = getattr(colnn, f"FractionalMaxPool{ndim}d")
    reference = cls(2, output_size=3)
    expected = numerical_gradient(lambda v: float((reference.forward(v, samples) * weights).sum()), x)
    layer = cls(2, output_size=3, rng=np.random.default_rng(6))
    layer.forward(backend.to(x), backend.to(samples))
    np.testing.assert_allclose(backend.back(layer.backward(backend.to(weights))), expected, rtol=1e-6, atol=1e-6)
    drawn = backend.back(layer.forward(backend.to(x)))
    np.testing.assert_array_equal(drawn, cls(2, output_size=3, rng=np.random.default_rng(6)).forward(x))
    assert backend.back(layer.indices).dtype == np.int64


BAD_RNGS = [(0, "an int"), (np.random.RandomState(0), "a numpy RandomState"), (torch.Generator(), "a torch.Generator")]
RNG_TAKERS = {
    "fractional_max_pool2d": lambda rng: colnn.fractional_max_pool2d(np.ones((1, 1, 8, 8)), 2, output_size=4, rng=rng),
    "fractional_max_pool3d": lambda rng: colnn.fractional_max_pool3d(np.ones((1, 1, 8, 8, 8)), 2, output_size=4,
                                                                     rng=rng),
    "fractional_max_pool2d with samples": lambda rng: colnn.fractional_max_pool2d(
        np.ones((1, 1, 8, 8)), 2, output_size=4, random_samples=np.full((1, 1, 2), 0.5), rng=rng),
    "FractionalMaxPool2d": lambda rng: colnn.FractionalMaxPool2d(2, output_size=4, rng=rng),
    "FractionalMaxPool3d": lambda rng: colnn.FractionalMaxPool3d(2, output_size=4, rng=rng),
}


@pytest.mark.parametrize("bad, kind", BAD_RNGS, ids=["int", "RandomState", "torch"])
@pytest.mark.parametrize("taker", sorted(RNG_TAKERS))
def test_every_rng_taker_refuses_what_is_not_a_numpy_generator_where_it_is_passed(taker, bad, kind):
    with pytest.raises(TypeError, match=rf"^rng must be a numpy\.random\.Generator or None, got {kind}"):
        RNG_TAKERS[taker](bad)
    RNG_TAKERS[taker](np.random.default_rng(0))  # a NumPy Generator is taken
