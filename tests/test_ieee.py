"""NaN, inf and negative powers come back as PyTorch's values, without NumPy's RuntimeWarnings.

Oracle: ``torch.nn.functional`` (and ``torch.nn`` with autograd for the layers) on
the same float64 data, which holds negatives, zeros, NaN, +-inf and values whose
powers overflow. Every call runs under ``warnings.simplefilter("error")``: a
RuntimeWarning NumPy prints where torch is silent fails the test.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import colnn
from colnn.core.ieee import quiet_ieee
from colnn.nn import BatchNorm2d, BatchNormalization

torch = pytest.importorskip("torch", reason="PyTorch is the oracle")
F = torch.nn.functional

X = np.array([[[[-1.0, 0.0, np.nan, 2.0, 1.0, -3.0],
                [np.inf, -np.inf, 3.0, -0.5, 0.0, 0.0],
                [1e300, -1e300, 0.0, 1.0, 2.0, 2.0],
                [4.0, -4.0, 0.5, 0.0, -2.0, 1e-300]]]])

OPS = {  # name: (colnn call on NumPy with a strategy, the same on torch)
    "lp_pool1d p3 ceil": (lambda x, s: colnn.lp_pool1d(x[0], 3, 3, 2, True, strategy=s),
                          lambda x: F.lp_pool1d(x[0], 3, 3, 2, True)),
    "lp_pool2d p1.5": (lambda x, s: colnn.lp_pool2d(x, 1.5, 2, strategy=s), lambda x: F.lp_pool2d(x, 1.5, 2)),
    "lp_pool2d p-1": (lambda x, s: colnn.lp_pool2d(x, -1, 2, strategy=s), lambda x: F.lp_pool2d(x, -1, 2)),
    "lp_pool2d p2": (lambda x, s: colnn.lp_pool2d(x, 2, 2, strategy=s), lambda x: F.lp_pool2d(x, 2, 2)),
    "avg_pool2d": (lambda x, s: colnn.avg_pool2d(x, 2, strategy=s), lambda x: F.avg_pool2d(x, 2)),
    "avg_pool2d padded": (lambda x, s: colnn.avg_pool2d(x, 3, 1, 1, strategy=s),
                          lambda x: F.avg_pool2d(x, 3, 1, 1)),
    "conv2d": (lambda x, s: colnn.conv2d(x, np.ones((1, 1, 2, 2)), strategy=s),
               lambda x: F.conv2d(x, torch.ones((1, 1, 2, 2), dtype=x.dtype))),
    "adaptive_avg_pool2d": (lambda x, s: colnn.adaptive_avg_pool2d(x, 3), lambda x: F.adaptive_avg_pool2d(x, 3)),
    "adaptive_avg_pool2d global": (lambda x, s: colnn.adaptive_avg_pool2d(x, 1),
                                   lambda x: F.adaptive_avg_pool2d(x, 1)),
}


@pytest.mark.parametrize("strategy", ["numba", "im2col"])
@pytest.mark.parametrize("name", sorted(OPS))
def test_ops_on_nan_inf_and_negatives_match_torch_without_warnings(name, strategy):
    ours, theirs = OPS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = ours(X, strategy)
    np.testing.assert_allclose(got, theirs(torch.from_numpy(X)).numpy(), rtol=1e-12, equal_nan=True)


LAYERS = {  # name: (colnn layer, torch module), both float64
    "LPPool2d p1.5": (lambda: colnn.LPPool2d(1.5, 2), lambda: torch.nn.LPPool2d(1.5, 2)),
    "LPPool2d p0.5": (lambda: colnn.LPPool2d(0.5, 2), lambda: torch.nn.LPPool2d(0.5, 2)),
    "LPPool2d p-1": (lambda: colnn.LPPool2d(-1, 2), lambda: torch.nn.LPPool2d(-1, 2)),
    "AdaptiveAvgPool2d": (lambda: colnn.AdaptiveAvgPool2d(3), lambda: torch.nn.AdaptiveAvgPool2d(3)),
    "BatchNorm2d": (lambda: BatchNorm2d(1, dtype=np.float64), lambda: torch.nn.BatchNorm2d(1).double()),
    "Convolution": (lambda: colnn.Convolution(np.ones((1, 1, 2, 2)), np.zeros(1)),
                    lambda: _ones_conv(torch.nn.Conv2d(1, 1, 2).double())),
}


def _ones_conv(module):
    with torch.no_grad():
        module.weight.fill_(1.0)
        module.bias.zero_()
    return module


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layers_forward_and_backward_match_autograd_without_warnings(name):
    layer, module = LAYERS[name][0](), LAYERS[name][1]()
    x = torch.from_numpy(X.copy()).requires_grad_(True)
    expected = module(x)
    expected.backward(torch.ones_like(expected))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = layer.forward(X.copy())
        dx = layer.backward(np.ones_like(out))
    np.testing.assert_allclose(out, expected.detach().numpy(), rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(dx, x.grad.numpy(), rtol=1e-12, equal_nan=True)


def test_book_batch_normalization_and_affine_take_inf_without_warnings():
    x = np.concatenate([X, -X]).reshape(2, -1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        book = BatchNormalization(np.ones(x.shape[1]), np.zeros(x.shape[1]))
        out = book.forward(x)
        book.backward(np.ones_like(out))
        affine = colnn.Affine(np.ones((x.shape[1], 2)), np.zeros(2))
        scores = affine.forward(x)
        affine.backward(np.ones_like(scores))
    theirs = torch.nn.functional.batch_norm(torch.from_numpy(x), None, None, training=True, eps=1e-6)
    np.testing.assert_allclose(out, theirs.numpy(), rtol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(np.isnan(scores), np.isnan((torch.from_numpy(x) @ torch.ones(x.shape[1], 2,
                                                                                            dtype=torch.float64)).numpy()))


def test_quiet_ieee_silences_only_inside_the_call_and_keeps_the_function():
    @quiet_ieee
    def power(a, p):
        """doc"""
        return a ** p

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(power(np.array(-1.0), 0.5)) and power.__doc__ == "doc"
        with pytest.raises(RuntimeWarning):
            np.array(-1.0) ** 0.5
