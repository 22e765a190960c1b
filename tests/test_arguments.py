"""The arguments objects of every op family (``ops/pooling/_base.py``, ``ops/conv/_base.py``), tested as a class.

One call, one answer: for every family in 1, 2 and 3 dimensions and for every
argument given a value it refuses (a flag that is not a bool, a negative or
zero size, a float where an int belongs, a tuple of the wrong length) or
accepts, the function on NumPy (the compiled default), on the reference strategy
and on a Dask array gives the same result or the same error (type and message),
and so does the layer built with the same arguments: at construction for what
depends on the arguments alone, in ``forward`` for what depends on the input.
The oracle is the NumPy path itself (held to PyTorch elsewhere) and the rules
of the checks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import colnn

da = pytest.importorskip("dask.array", reason="needs dask (pip install colnn[dask])")

SHAPES = {1: (2, 3, 9), 2: (2, 3, 9, 8), 3: (2, 3, 7, 6, 5)}


def _input(ndim: int) -> np.ndarray:
    return np.random.default_rng(ndim).standard_normal(SHAPES[ndim])


def _outcome(call: Callable[[], Any]) -> tuple:
    """``("ok", arrays)`` or ``("error", type, message)``; a lazy result is computed after the call, outside."""
    try:
        result = call()
    except (TypeError, ValueError) as error:
        return ("error", type(error), str(error))
    results = result if isinstance(result, tuple) else (result,)
    return ("ok", tuple(np.asarray(r.compute(scheduler="sync") if hasattr(r, "compute") else r) for r in results))


def _same(outcomes: dict[str, tuple], name: str) -> None:
    reference_key = next(iter(outcomes))
    expected = outcomes[reference_key]
    for key, outcome in outcomes.items():
        assert outcome[0] == expected[0], f"{name}: {key} gives {outcome}, {reference_key} gives {expected}"
        if outcome[0] == "error":
            assert outcome[1:] == expected[1:], f"{name}: {key} raises {outcome[1:]}, {reference_key} {expected[1:]}"
        else:
            for got, want in zip(outcome[1], expected[1]):
                assert got.shape == want.shape and got.dtype == want.dtype, f"{name}: {key}"
                np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=f"{name}: {key}")


def _as_layer_message(message: str) -> str:
    """A function's message as the layer's: the layers call the input ``x``, the weights ``W`` and ``b``."""
    message = re.sub(r"\binput(?= must|'s| has)", "x", message)
    return re.sub(r"\bweight\b", "W", re.sub(r"\bbias\b", "b", message))


# Each family: the function, the layer, its required arguments, and the arguments it refuses or takes.
# A variation is (keyword arguments, which dimensions).
BAD_FLAGS = ["no", None, 1, 0.0]
SIZE_VALUES = [-1, 0, 1.5, "2", (2, 2, 2, 2), (2.0,)]


def _window_variations(names: tuple[str, ...], kernel: int = 3) -> list[dict[str, Any]]:
    variations = [{}]
    for value in SIZE_VALUES:
        variations += [{name: value} for name in names if name != "padding"]
    variations += [{"padding": -1}, {"padding": kernel // 2 + 1}, {"padding": 1.0}, {"padding": (1,) * 4}]
    variations += [{"stride": None}, {"stride": ()}, {"stride": []}, {"stride": 2, "padding": 1}, {"kernel_size": 20}]
    return variations


def _flag_variations(*flags: str) -> list[dict[str, Any]]:
    return [{flag: value} for flag in flags for value in BAD_FLAGS] + [{flag: np.bool_(True)} for flag in flags]


FAMILIES = {
    "max_pool": dict(
        function=lambda d: getattr(colnn, f"max_pool{d}d"), layer=lambda d: getattr(colnn, f"MaxPool{d}d"),
        required={"kernel_size": 3}, layer_only_not=("return_indices",),
        variations=_window_variations(("kernel_size", "stride", "dilation"))
        + _flag_variations("ceil_mode", "return_indices") + [{"ceil_mode": True, "stride": 2}]),
    "avg_pool": dict(
        function=lambda d: getattr(colnn, f"avg_pool{d}d"), layer=lambda d: getattr(colnn, f"AvgPool{d}d"),
        required={"kernel_size": 3},
        variations=_window_variations(("kernel_size", "stride", "dilation"))
        + _flag_variations("ceil_mode", "count_include_pad")
        + [{"padding": 1, "count_include_pad": False}, {"dilation": 2, "padding": 1, "ceil_mode": True}]
        + [{"divisor_override": value, "dims": (2, 3)} for value in (0, 1.5, "2", 3)]),
    "lp_pool": dict(
        function=lambda d: getattr(colnn, f"lp_pool{d}d"), layer=lambda d: getattr(colnn, f"LPPool{d}d"),
        required={"norm_type": 2, "kernel_size": 2},
        variations=[{}, {"norm_type": 0}, {"norm_type": "2"}, {"norm_type": float("nan")}, {"norm_type": True},
                    {"norm_type": float("inf")}, {"dilation": 2}, {"dilation": 0}, {"stride": 1.5},
                    {"stride": ()}]
        + [{"kernel_size": value} for value in SIZE_VALUES] + _flag_variations("ceil_mode")),
    "adaptive_avg_pool": dict(
        function=lambda d: getattr(colnn, f"adaptive_avg_pool{d}d"),
        layer=lambda d: getattr(colnn, f"AdaptiveAvgPool{d}d"), required={"output_size": 2}, strategy=False,
        variations=[{}, {"output_size": 0}, {"output_size": 1.5}, {"output_size": (2, 2, 2, 2)},
                    {"output_size": None}, {"output_size": "2"}]),
    "adaptive_max_pool": dict(
        function=lambda d: getattr(colnn, f"adaptive_max_pool{d}d"),
        layer=lambda d: getattr(colnn, f"AdaptiveMaxPool{d}d"), required={"output_size": 2}, strategy=False,
        layer_only_not=("return_indices",),
        variations=[{}, {"output_size": -1}, {"output_size": (3, 3, 3, 3)}, *_flag_variations("return_indices")]),
    "conv": dict(
        function=lambda d: getattr(colnn, f"conv{d}d"), layer=lambda d: getattr(colnn, f"Conv{d}d"),
        weights=lambda d: (np.random.default_rng(9).standard_normal((4, 3, *(2,) * d)), np.zeros(4)),
        required={},
        variations=[{}, {"stride": 0}, {"stride": 1.5}, {"stride": (1,) * 4}, {"padding": -1}, {"padding": "same"},
                    {"padding": "same", "stride": 2}, {"padding": "full"}, {"padding": "valid"},
                    {"dilation": 0}, {"dilation": "1"}, {"groups": 0}, {"groups": 1.0}, {"groups": 2},
                    {"groups": 3}, {"padding": 1, "dilation": 2, "stride": 2}]),
    "conv_transpose": dict(
        function=lambda d: getattr(colnn, f"conv_transpose{d}d"),
        layer=lambda d: getattr(colnn, f"ConvTranspose{d}d"),
        weights=lambda d: (np.random.default_rng(8).standard_normal((3, 2, *(3,) * d)), np.zeros(2)),
        required={},
        variations=[{}, {"stride": 2, "padding": 2, "output_padding": 1}, {"padding": 2},
                    {"output_padding": 1}, {"output_padding": 1, "dilation": 2}, {"stride": 0},
                    {"padding": -1}, {"padding": 5}, {"groups": 0}, {"groups": 2}, {"dilation": 1.5},
                    {"output_padding": (1,) * 4, "stride": 2}]),
}


def _arguments(family: dict, variation: dict) -> dict[str, Any]:
    arguments = {**family["required"], **variation}
    arguments.pop("dims", None)
    return arguments


CASES = [(name, ndim, variation) for name, family in FAMILIES.items() for variation in family["variations"]
         for ndim in (1, 2, 3) if ndim in variation.get("dims", (1, 2, 3))]


@pytest.mark.parametrize(("name", "ndim", "variation"), CASES, ids=[f"{c[0]}{c[1]}d-{c[2]}" for c in CASES])
def test_one_call_one_answer_on_every_path_in_function_and_layer(name, ndim, variation):
    family = FAMILIES[name]
    function, layer_class = family["function"](ndim), family["layer"](ndim)
    arguments = _arguments(family, variation)
    x = _input(ndim)
    weights = family["weights"](ndim) if "weights" in family else ()
    paths = {"numpy": {}, "im2col": {"strategy": "im2col"}} if family.get("strategy", True) else {"numpy": {}}
    outcomes = {path: _outcome(lambda: function(x, *weights, **arguments, **extra)) for path, extra in paths.items()}
    chunks = (1, 3, *(4,) * ndim)
    outcomes["dask"] = _outcome(lambda: function(da.from_array(x, chunks=chunks), *weights, **arguments))
    _same(outcomes, f"{name}{ndim}d{variation}")

    if set(variation) & set(family.get("layer_only_not", ())):
        return  # an argument of the function alone (return_indices: the layers keep ``indices``)
    layer_arguments = arguments
    expected = outcomes["numpy"]
    try:
        layer = layer_class(*weights, **layer_arguments)
    except (TypeError, ValueError) as error:
        assert expected[0] == "error", f"the layer refuses {layer_arguments} ({error}); the function takes them"
        assert (type(error), str(error)) == (expected[1], _as_layer_message(expected[2]))
        return
    layer_outcome = _outcome(lambda: layer.forward(x))
    if expected[0] == "error":
        assert layer_outcome[0] == "error", f"the layer takes what the function refuses: {expected[1:]}"
        assert layer_outcome[1:] == (expected[1], _as_layer_message(expected[2]))
        # An error that the arguments alone decide is the constructor's, not forward's.
        assert "output would be empty" in expected[2] or "channels" in expected[2], (
            f"{layer_class.__name__}({layer_arguments}) builds, but every forward raises: {expected[2]}")
    else:
        np.testing.assert_array_equal(layer_outcome[1][0], expected[1][0])


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("name", ["max_pool", "avg_pool", "lp_pool"])
def test_an_empty_stride_means_the_kernel_as_in_torch(name, ndim):
    # PyTorch's pools take ``stride=()`` (their C++ default) as stride = kernel_size; OpInfo's samples pass it.
    family = FAMILIES[name]
    x = _input(ndim)
    expected = family["function"](ndim)(x, **family["required"], stride=family["required"]["kernel_size"])
    for empty in ((), []):
        np.testing.assert_array_equal(family["function"](ndim)(x, **family["required"], stride=empty), expected)
        np.testing.assert_array_equal(family["layer"](ndim)(**family["required"], stride=empty).forward(x), expected)


# --- fractional pooling and unpooling: arguments beside an input of their own -------------------------------


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("variation", [
    {}, {"kernel_size": 0}, {"kernel_size": 1.5}, {"output_size": (2,) * 5}, {"output_ratio": 1.5},
    {"output_ratio": (0.5,) * 5}, {"output_size": 2, "output_ratio": 0.5}, {"output_size": None},
    {"return_indices": "no"}, {"return_indices": True}, {"output_size": 9}, {"kernel_size": 6},
])
def test_fractional_pooling_answers_alike(ndim, variation):
    x = _input(ndim)
    samples = np.random.default_rng(3).random((*x.shape[:2], ndim))
    arguments = {"kernel_size": 2, "output_size": 3, **variation}
    function = getattr(colnn, f"fractional_max_pool{ndim}d")
    outcomes = {"numpy": _outcome(lambda: function(x, **arguments, random_samples=samples)),
                "dask": _outcome(lambda: function(da.from_array(x, chunks=2), **arguments, random_samples=samples))}
    _same(outcomes, f"fractional{ndim}d{variation}")
    if "return_indices" in variation:
        return  # the function's alone: the layer keeps ``indices``
    try:
        layer = getattr(colnn, f"FractionalMaxPool{ndim}d")(**arguments)
    except (TypeError, ValueError) as error:
        assert outcomes["numpy"][1:] == (type(error), str(error))
        return
    layer_outcome = _outcome(lambda: layer.forward(x, samples))
    assert layer_outcome[0] == outcomes["numpy"][0]


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("variation", [
    {}, {"kernel_size": 0}, {"kernel_size": "2"}, {"stride": -1}, {"padding": -1}, {"padding": (0,) * 4},
    {"output_size": 7}, {"output_size": (99,) * 3},
])
def test_unpooling_answers_alike(ndim, variation):
    x = _input(ndim)
    pooled, indices = getattr(colnn, f"max_pool{ndim}d")(x, 2, return_indices=True)
    # The input's size: the pooled indices address it (a smaller plane is refused when the indices are read).
    arguments = {"kernel_size": 2, "output_size": x.shape[2:], **variation}
    if isinstance(arguments["output_size"], tuple):
        arguments["output_size"] = arguments["output_size"][:ndim]
    function = getattr(colnn, f"max_unpool{ndim}d")
    outcomes = {"numpy": _outcome(lambda: function(pooled, indices, **arguments)),
                "dask": _outcome(lambda: function(da.from_array(pooled, chunks=1), da.from_array(indices, chunks=1),
                                                  **arguments))}
    _same(outcomes, f"unpool{ndim}d{variation}")
    output_size = arguments.pop("output_size", None)
    try:
        layer = getattr(colnn, f"MaxUnpool{ndim}d")(**arguments)
    except (TypeError, ValueError) as error:
        assert outcomes["numpy"][1:] == (type(error), str(error))
        return
    layer_outcome = _outcome(lambda: layer.forward(pooled, indices, output_size))
    assert layer_outcome[0] == outcomes["numpy"][0]
    if layer_outcome[0] == "error":
        assert layer_outcome[1:] == outcomes["numpy"][1:]


# --- unfold and fold: the window arguments, and the number of spatial axes ---------------------------------


@pytest.mark.parametrize("variation", [
    {}, {"kernel_size": 0}, {"kernel_size": 2.5}, {"kernel_size": (2, 2, 2, 2)}, {"dilation": 0}, {"stride": "1"},
    {"padding": -1}, {"padding": 3}, {"kernel_size": 12},
])
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_unfold_and_fold_answer_alike(ndim, variation):
    x = _input(ndim)
    arguments = {"kernel_size": (2,) * ndim if ndim != 2 else 2, **variation}
    outcomes = {path: _outcome(lambda: colnn.unfold(x, **arguments, **extra))
                for path, extra in {"numpy": {}, "im2col": {"strategy": "im2col"}}.items()}
    outcomes["dask"] = _outcome(lambda: colnn.unfold(da.from_array(x, chunks=(1, 2, *(4,) * ndim)), **arguments))
    _same(outcomes, f"unfold{ndim}d{variation}")
    if outcomes["numpy"][0] == "error":
        return
    blocks = outcomes["numpy"][1][0]
    folds = {path: _outcome(lambda: colnn.fold(blocks, x.shape[2:], **arguments, **extra))
             for path, extra in {"numpy": {}, "im2col": {"strategy": "im2col"}}.items()}
    folds["dask"] = _outcome(lambda: colnn.fold(da.from_array(blocks, chunks=(1, 4, 5)), x.shape[2:], **arguments))
    _same(folds, f"fold{ndim}d{variation}")


def test_a_strategy_is_checked_alike_everywhere():
    x = _input(2)
    message = "strategy must be one of [None, 'numba', 'im2col'], got 'fft'"
    calls = [lambda a: colnn.max_pool2d(a, 2, strategy="fft"), lambda a: colnn.avg_pool2d(a, 2, strategy="fft"),
             lambda a: colnn.lp_pool2d(a, 2, 2, strategy="fft"), lambda a: colnn.unfold(a, 2, strategy="fft"),
             lambda a: colnn.conv2d(a, np.ones((1, 3, 2, 2)), strategy="fft"),
             lambda a: colnn.conv_transpose2d(a, np.ones((3, 1, 2, 2)), strategy="fft"),
             lambda a: colnn.MaxPool2d(2, strategy="fft"), lambda a: colnn.Conv2d(np.ones((1, 3, 2, 2)), 0,
                                                                                 strategy="fft")]
    for call in calls:
        for array in (x, da.from_array(x)):
            with pytest.raises(ValueError, match=re.escape(message)):
                call(array)
