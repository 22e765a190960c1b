"""The index dtype: the namespace's own, and JAX without 64-bit types (its default).

``jax_enable_x64`` is a process-wide flag that the ``backend`` fixture turns on
(float64 stays float64 there). Here :func:`jax.enable_x64` is used as a context
manager, thread-local and restored on exit, to run ops and layers as a new JAX
user does: float32 data and int32 indices. Every call must then be silent (a
JAX dtype warning is an error here), answer in JAX arrays, and equal the NumPy
call on the same data, indices in the namespace's index dtype (int32 here,
as ``jax.numpy.argmax`` gives).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import colnn
from colnn.core.indices import index_dtype

RNG = np.random.default_rng(16)
X = RNG.standard_normal((2, 3, 7, 6)).astype(np.float32)
X[0, 1, 2, 3] = X[0, 1, 2, 4]  # a tie: the first index wins
W = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
B = RNG.standard_normal(4).astype(np.float32)
SAMPLES = RNG.random((2, 3, 2)).astype(np.float32)
AFFINE_W = RNG.standard_normal((3 * 7 * 6, 3)).astype(np.float32)


@pytest.fixture
def jnp32():
    """``jax.numpy`` with ``jax_enable_x64`` off for the test, warnings raised as errors."""
    jax = pytest.importorskip("jax", reason="needs jax (pip install colnn[bench])")
    import jax.numpy as jnp

    with jax.enable_x64(False), warnings.catch_warnings():
        warnings.simplefilter("error")
        assert jnp.asarray(np.zeros(1, np.int64)).dtype == np.int32
        yield jnp


def _pooled_then_unpooled(x, to):
    out, indices = colnn.max_pool2d(x, 2, return_indices=True)
    return colnn.max_unpool2d(out, indices, 2, output_size=(7, 6)), indices


OPS = {
    "max_pool2d": lambda x, to: colnn.max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True),
    "max_pool1d": lambda x, to: colnn.max_pool1d(x[:, :, 0], 3, 2, 1, return_indices=True),
    "max_pool3d": lambda x, to: colnn.max_pool3d(x, 2, 1, return_indices=True),
    "max_unpool2d": _pooled_then_unpooled,
    "adaptive_max_pool2d": lambda x, to: colnn.adaptive_max_pool2d(x, (4, 3), return_indices=True),
    "fractional_max_pool2d": lambda x, to: colnn.fractional_max_pool2d(
        x, 2, output_size=(4, 3), return_indices=True, random_samples=to(SAMPLES)),
    "avg_pool2d": lambda x, to: (colnn.avg_pool2d(x, 3, 2, 1, count_include_pad=False),),
    "lp_pool2d": lambda x, to: (colnn.lp_pool2d(x, 2, 2),),
    "im2col_col2im": lambda x, to: (colnn.im2col(x, 3, 2, 2, 1),
                                    colnn.col2im(colnn.im2col(x, 3, 2, 2, 1), x.shape, 3, 2, 2, 1)),
    "unfold_fold": lambda x, to: (colnn.fold(colnn.unfold(x, 2, padding=1), (7, 6), 2, padding=1),),
    "conv2d": lambda x, to: (colnn.conv2d(x, to(W), to(B), stride=2, padding=1),),
    "conv_transpose2d": lambda x, to: (colnn.conv_transpose2d(x, to(W.transpose(1, 0, 2, 3)), stride=2),),
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_ops_on_jax_without_x64_are_silent_and_equal_numpy(jnp32, name):
    got, expected = OPS[name](jnp32.asarray(X), jnp32.asarray), OPS[name](X, np.asarray)
    got, expected = (got, expected) if isinstance(got, tuple) else ((got,), (expected,))
    for value, oracle in zip(got, expected):
        assert type(value).__module__.startswith("jax"), type(value)
        value = np.asarray(value)
        if oracle.dtype == np.int64:
            assert value.dtype == np.int32  # jax.numpy's index dtype without x64, as its argmax answers
            np.testing.assert_array_equal(value, oracle)
        else:
            assert value.dtype == oracle.dtype
            np.testing.assert_allclose(value, oracle, rtol=1e-4, atol=1e-4)


LAYERS = {
    "MaxPool2d": lambda like: colnn.MaxPool2d(3, 2, 1),
    "AvgPool2d": lambda like: colnn.AvgPool2d(3, 2, 1),
    "AdaptiveMaxPool2d": lambda like: colnn.AdaptiveMaxPool2d((4, 3)),
    "FractionalMaxPool2d": lambda like: colnn.FractionalMaxPool2d(2, output_size=(4, 3), rng=np.random.default_rng(3)),
    "LPPool2d": lambda like: colnn.LPPool2d(2, 2),
    "Convolution": lambda like: colnn.Convolution(like(W), like(B), pad=1),
    "ConvTranspose2d": lambda like: colnn.ConvTranspose2d(like(W.transpose(1, 0, 2, 3)), like(B), stride=2),
    "BatchNorm2d": lambda like: colnn.BatchNorm2d(3, like=like(X)),
    "Relu": lambda like: colnn.Relu(),
    "Sigmoid": lambda like: colnn.Sigmoid(),
    "Dropout": lambda like: colnn.Dropout(0.5, seed=4),  # NumPy's generator draws the same mask everywhere
    "Affine": lambda like: colnn.Affine(like(AFFINE_W), like(B[:3])),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layers_on_jax_without_x64_are_silent_and_equal_numpy(jnp32, name):
    layer, oracle = LAYERS[name](jnp32.asarray), LAYERS[name](np.asarray)
    out, expected = layer.forward(jnp32.asarray(X)), oracle.forward(X)
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-4, atol=1e-4)
    dout = RNG.standard_normal(expected.shape).astype(np.float32)
    grad = layer.backward(jnp32.asarray(dout))
    assert type(grad).__module__.startswith("jax") and grad.dtype == np.float32
    np.testing.assert_allclose(np.asarray(grad), oracle.backward(dout), rtol=1e-4, atol=1e-4)


def test_softmax_with_loss_takes_int32_labels(jnp32):
    scores = RNG.standard_normal((4, 5)).astype(np.float32)
    labels = np.array([0, 4, 2, 2])
    layer, oracle = colnn.SoftmaxWithLoss(), colnn.SoftmaxWithLoss()
    loss = layer.forward(jnp32.asarray(scores), jnp32.asarray(labels))
    np.testing.assert_allclose(float(loss), oracle.forward(scores, labels), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(layer.backward()), oracle.backward(), rtol=1e-6, atol=1e-7)


def test_index_dtype_is_the_namespace_default():
    import array_api_compat

    assert index_dtype(array_api_compat.array_namespace(np.zeros(1))) == np.int64
    torch = pytest.importorskip("torch")
    assert index_dtype(array_api_compat.array_namespace(torch.zeros(1))) == torch.int64


def test_an_index_past_int32_is_refused_naming_the_size(jnp32):
    with pytest.raises(ValueError, match=r"2147483648 cells.*2147483647.*jax_enable_x64"):
        index_dtype(jnp32, 2**31)
    assert index_dtype(jnp32, 2**31 - 1) == np.int32
    # Unpooling to a 50000 x 50000 plane: refused before anything is allocated.
    x = jnp32.ones((1, 1, 2, 2))
    with pytest.raises(ValueError, match="output plane of 2500000000 cells"):
        colnn.max_unpool2d(x, jnp32.zeros((1, 1, 2, 2), dtype=jnp32.int32), 25000)
