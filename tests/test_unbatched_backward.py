"""Every layer given one unbatched sample ``(C, *spatial)``: its backward's values against torch autograd.

Shapes alone would pass a backward that dropped or reordered the sample's planes; the
values come from torch autograd on the same sample as a batch of one (what PyTorch's own
unbatched inputs mean; its ``max_unpool`` takes no unbatched input), given the same ``dout``.
Maxima, indices and scatters bit-exact, sums within :data:`peers.SUM_RTOL`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

import colnn
from peers import assert_matches

torch = pytest.importorskip("torch", reason="PyTorch is the oracle")
F = torch.nn.functional

SIZES = {1: (9,), 2: (7, 6), 3: (5, 6, 4)}
CHANNELS = 4


@dataclass
class Case:
    layer: Any
    oracle: Callable[..., Any]  # torch's op on the batched input tensor and the weights
    exact: bool
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # torch's leaves besides the input
    forward_kwargs: dict[str, Any] = field(default_factory=dict)  # besides x
    x: np.ndarray | None = None  # when the case needs its own input (unpooling)


def _fn(name: str, ndim: int) -> Callable[..., Any]:
    return getattr(F, name.format(ndim))


def _cases(ndim: int, rng: np.random.Generator, dtype: Any = np.float64) -> dict[str, Callable[[], Case]]:
    """Constructors of each layer's case, by layer name, for ``ndim`` spatial axes, weights in ``dtype``."""
    cases: dict[str, Callable[[], Case]] = {}
    d = ndim

    def normal(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(dtype)

    def conv() -> Case:
        weight, bias = normal(6, CHANNELS // 2, *(3,) * d), normal(6)
        layer = getattr(colnn, f"Conv{d}d")(weight, bias, 2, 1, 1, 2)
        return Case(layer, lambda t, W, b: _fn("conv{}d", d)(t, W, b, 2, 1, 1, 2), False, {"W": weight, "b": bias})

    def conv_transpose() -> Case:
        weight, bias = normal(CHANNELS, 3, *(3,) * d), normal(6)
        layer = getattr(colnn, f"ConvTranspose{d}d")(weight, bias, 2, 1, 1, 2)
        return Case(layer, lambda t, W, b: _fn("conv_transpose{}d", d)(t, W, b, 2, 1, 1, 2), False,
                    {"W": weight, "b": bias})

    def unpool() -> Case:
        pooled, indices = getattr(colnn, f"max_pool{d}d")(normal(CHANNELS, *SIZES[d]), 2, return_indices=True)
        size = SIZES[d]
        return Case(getattr(colnn, f"MaxUnpool{d}d")(2),
                    lambda t: _fn("max_unpool{}d", d)(t, torch.from_numpy(indices[None]), 2, output_size=size), True,
                    forward_kwargs={"indices": indices, "output_size": size}, x=pooled)

    cases[f"MaxPool{d}d"] = lambda: Case(getattr(colnn, f"MaxPool{d}d")(3, 2, 1, 2, True),
                                         lambda t: _fn("max_pool{}d", d)(t, 3, 2, 1, 2, True), True)
    cases[f"AvgPool{d}d"] = lambda: Case(getattr(colnn, f"AvgPool{d}d")(3, 2, 1, True, False),
                                         lambda t: _fn("avg_pool{}d", d)(t, 3, 2, 1, True, False), False)
    cases[f"AdaptiveAvgPool{d}d"] = lambda: Case(getattr(colnn, f"AdaptiveAvgPool{d}d")(3),
                                                 lambda t: _fn("adaptive_avg_pool{}d", d)(t, 3), False)
    cases[f"AdaptiveMaxPool{d}d"] = lambda: Case(getattr(colnn, f"AdaptiveMaxPool{d}d")(3),
                                                 lambda t: _fn("adaptive_max_pool{}d", d)(t, 3), True)
    cases[f"LPPool{d}d"] = lambda: Case(getattr(colnn, f"LPPool{d}d")(2.0, 2, 2, True),
                                        lambda t: _fn("lp_pool{}d", d)(t, 2.0, 2, 2, True), False)
    cases[f"Conv{d}d"] = conv
    cases[f"ConvTranspose{d}d"] = conv_transpose
    cases[f"MaxUnpool{d}d"] = unpool
    if d > 1:
        samples = rng.random((CHANNELS, d)).astype(dtype)
        cases[f"FractionalMaxPool{d}d"] = lambda: Case(
            getattr(colnn, f"FractionalMaxPool{d}d")(2, output_size=2),
            lambda t: _fn("fractional_max_pool{}d", d)(t, 2, 2, _random_samples=torch.from_numpy(samples[None])),
            True, forward_kwargs={"random_samples": samples})
    if d == 2:
        weight, bias = normal(5, CHANNELS, 3, 3), normal(5)
        cases["MaxPool2d"] = lambda: Case(colnn.MaxPool2d(3, 2, 1, 2, True),
                                          lambda t: F.max_pool2d(t, 3, 2, 1, 2, True), True)
        cases["AvgPool2d"] = lambda: Case(colnn.AvgPool2d(3, 2, 1, True, True, 2),
                                          lambda t: F.avg_pool2d(t, 3, 2, 1, True, True, 2), False)
        cases["Pooling"] = lambda: Case(colnn.Pooling(2, 2, 2, 1), lambda t: F.max_pool2d(t, 2, 2, 1), True)
        cases["Convolution"] = lambda: Case(colnn.Convolution(weight, bias, 2, 1),
                                            lambda t, W, b: F.conv2d(t, W, b, 2, 1), False, {"W": weight, "b": bias})
    return cases


# Layers that take no unbatched sample, and why.
NOT_SPATIAL = {
    "Layer": "the base class",
    "Relu": "any rank; no batch axis to drop", "Sigmoid": "any rank; no batch axis to drop",
    "Dropout": "any rank; no batch axis to drop",
    "Affine": "rows are samples: one sample is a (1, D) batch", "SoftmaxWithLoss": "rows are samples",
    "BatchNormalization": "statistics over the batch",
    "BatchNorm2d": "statistics over the batch (as torch's, 4-D only)",
}


def _all_cases() -> list[Any]:
    params = []
    for ndim in (1, 2, 3):
        for name in _cases(ndim, np.random.default_rng(0)):
            params.append(pytest.param(name, ndim, id=name))
    return params


def test_every_layer_is_covered_or_named():
    layers = {name for name in colnn.__all__
              if isinstance(getattr(colnn, name), type) and issubclass(getattr(colnn, name), colnn.Layer)}
    covered = {param.values[0] for param in _all_cases()}
    assert layers - covered == set(NOT_SPATIAL), layers - covered ^ set(NOT_SPATIAL)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("name", "ndim"), _all_cases())
def test_unbatched_backward_values_match_torch(name, ndim, dtype):
    rng = np.random.default_rng(ndim)
    case = _cases(ndim, rng, dtype)[name]()
    x = case.x if case.x is not None else rng.standard_normal((CHANNELS, *SIZES[ndim])).astype(dtype)
    if name.startswith("LPPool"):
        x = np.abs(x) + dtype(0.1)  # PyTorch's LP takes the (1/p)-th power of a sum of x**p

    leaf = torch.from_numpy(x[None].copy()).requires_grad_()
    weights = {key: torch.from_numpy(np.asarray(value)).requires_grad_() for key, value in case.weights.items()}
    expected = case.oracle(leaf, *weights.values())
    expected = expected[0] if isinstance(expected, tuple) else expected
    dout = rng.standard_normal(tuple(expected.shape[1:])).astype(dtype)
    expected.backward(torch.from_numpy(dout[None]))

    out = case.layer.forward(x, **case.forward_kwargs)
    assert_matches(out, expected.detach().numpy()[0], case.exact, f"{name}.forward")
    assert_matches(case.layer.backward(dout), leaf.grad.numpy()[0], case.exact,
                   f"{name}.backward")
    for key, attribute in (("W", "dW"), ("b", "db")):
        if key in weights:
            assert_matches(getattr(case.layer, attribute), weights[key].grad.numpy(), False, f"{name}.{attribute}")
