"""Every layer's constructor against ``torch.nn``'s: it builds what PyTorch can use and refuses what PyTorch cannot.

The class of issue 22's first fault (``ConvTranspose1d(w, b, padding=2)`` refused,
although every real input works): a constructor checks what depends on the
hyper-parameters alone, ``forward`` what depends on the input. The oracle is
PyTorch: a setting is usable when ``torch.nn``'s constructor takes it and its
forward runs on at least one input of a few sizes. colnn's constructor must
build exactly the usable settings (it may refuse earlier than PyTorch, at
construction, what no input could ever run, e.g. a pooling padding above half
the kernel, which PyTorch's constructor takes and every forward refuses), and
for a built layer, ``forward`` must run exactly on the inputs PyTorch's runs on,
with the same output shape.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import colnn

torch = pytest.importorskip("torch", reason="needs torch==2.13.0")

SIZES = (1, 2, 3, 5, 8)


def _torch_outcome(make: Callable[[], Any], shapes: list[tuple[int, ...]]) -> dict[tuple[int, ...], Any]:
    """``{input shape: output shape or None}`` for the shapes PyTorch's layer runs on; None if it does not build."""
    try:
        module = make()
    except (ValueError, RuntimeError, TypeError):
        return None
    outcome = {}
    for shape in shapes:
        try:
            with torch.no_grad():
                out = module(torch.zeros(shape, dtype=torch.float64))
            out_shape = tuple(out.shape) if not isinstance(out, tuple) else tuple(out[0].shape)
            # An empty output is refused by colnn where PyTorch returns an empty tensor (README): not compared.
            outcome[shape] = out_shape if all(out_shape[2:]) else None
        except (ValueError, RuntimeError, IndexError):
            outcome[shape] = None
    return outcome


def _colnn_outcome(make: Callable[[], Any], shapes: list[tuple[int, ...]]) -> dict[tuple[int, ...], Any] | None:
    try:
        layer = make()
    except (ValueError, TypeError):
        return None
    outcome = {}
    for shape in shapes:
        try:
            outcome[shape] = tuple(layer.forward(np.zeros(shape)).shape)
        except ValueError:
            outcome[shape] = None
    return outcome


def _compare(setting: str, expected: dict | None, got: dict | None) -> None:
    usable = expected is not None and any(value is not None for value in expected.values())
    if not usable:
        assert got is None or all(value is None for value in got.values()), (
            f"{setting}: PyTorch can use it on no input, colnn builds it and runs on some")
        return
    assert got is not None, f"{setting}: PyTorch builds and runs it, colnn's constructor refuses it"
    assert got == expected, f"{setting}: forward on these inputs (None: refused) differs: {got} != {expected}"


def _shapes(ndim: int, channels: int = 2) -> list[tuple[int, ...]]:
    return [(1, channels, *(size,) * ndim) for size in SIZES]


POOL_SETTINGS = list(itertools.product((1, 3), (0, 1, 2), (0, 1, 2), (1, 2), (False, True)))  # k, s, p, d, ceil


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_max_pooling_layers(ndim):
    shapes = _shapes(ndim)
    for kernel, stride, padding, dilation, ceil in POOL_SETTINGS:
        setting = f"MaxPool{ndim}d({kernel}, {stride}, {padding}, {dilation}, {ceil})"
        expected = _torch_outcome(lambda: getattr(torch.nn, f"MaxPool{ndim}d")(
            kernel, stride, padding, dilation, ceil_mode=ceil), shapes)
        got = _colnn_outcome(lambda: getattr(colnn, f"MaxPool{ndim}d")(kernel, stride, padding, dilation, ceil),
                             shapes)
        _compare(setting, expected, got)


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_average_and_lp_pooling_layers(ndim):
    shapes = _shapes(ndim)
    for kernel, stride, padding, _, ceil in POOL_SETTINGS:
        for count_include_pad in (False, True):
            setting = f"AvgPool{ndim}d({kernel}, {stride}, {padding}, {ceil}, {count_include_pad})"
            expected = _torch_outcome(lambda: getattr(torch.nn, f"AvgPool{ndim}d")(
                kernel, stride, padding, ceil, count_include_pad), shapes)
            got = _colnn_outcome(lambda: getattr(colnn, f"AvgPool{ndim}d")(
                kernel, stride, padding, ceil, count_include_pad), shapes)
            _compare(setting, *_without_the_3d_window_check(ndim, kernel, expected, got))
        if padding == 0:
            setting = f"LPPool{ndim}d(2, {kernel}, {stride}, {ceil})"
            expected = _torch_outcome(lambda: getattr(torch.nn, f"LPPool{ndim}d")(2, kernel, stride, ceil), shapes)
            got = _colnn_outcome(lambda: getattr(colnn, f"LPPool{ndim}d")(2, kernel, stride, ceil), shapes)
            _compare(setting, *_without_the_3d_window_check(ndim, kernel, expected, got))


def _without_the_3d_window_check(ndim: int, kernel: int, expected: dict | None, got: dict | None) -> tuple:
    """Leave out the inputs PyTorch's 3-d average (and LP) pooling alone refuses: smaller than the kernel.

    1-d and 2-d take them (the window is clipped); colnn takes them in every
    dimension (README), so only the inputs both sides judge alike are compared.
    """
    if ndim != 3 or expected is None:
        return expected, got
    expected = {shape: out for shape, out in expected.items() if out is not None or min(shape[2:]) >= kernel}
    return expected, None if got is None else {shape: out for shape, out in got.items() if shape in expected}


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_adaptive_and_unpooling_layers(ndim):
    shapes = _shapes(ndim)
    for output_size in (0, 1, 3, None):
        if output_size is None and ndim == 1:
            continue  # PyTorch keeps an axis with None in 2-d and 3-d only; colnn in 1-d too
        sizes = output_size if output_size is not None else (None,) * ndim
        for family in ("Avg", "Max"):
            expected = _torch_outcome(lambda: getattr(torch.nn, f"Adaptive{family}Pool{ndim}d")(sizes), shapes)
            got = _colnn_outcome(lambda: getattr(colnn, f"Adaptive{family}Pool{ndim}d")(sizes), shapes)
            _compare(f"Adaptive{family}Pool{ndim}d({sizes})", expected, got)
    for kernel, stride, padding in itertools.product((0, 1, 2, 3), (None, 0, 1, 2), (0, 1, 2)):
        try:
            getattr(torch.nn, f"MaxUnpool{ndim}d")(kernel, stride, padding)
            builds = kernel > 0 and stride != 0
        except (ValueError, RuntimeError):
            builds = False
        try:
            getattr(colnn, f"MaxUnpool{ndim}d")(kernel, stride, padding)
            colnn_builds = True
        except (ValueError, TypeError):
            colnn_builds = False
        assert colnn_builds == builds, f"MaxUnpool{ndim}d({kernel}, {stride}, {padding})"


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_convolution_layers(ndim):
    shapes = _shapes(ndim, channels=4)
    for kernel, stride, padding, dilation, groups in itertools.product(
            (1, 3), (0, 1, 2), (0, 1, 2, "same", "valid"), (0, 1, 2), (1, 2, 3)):
        setting = f"Conv{ndim}d(4, 6, {kernel}, {stride}, {padding!r}, {dilation}, {groups})"

        def make_torch() -> Any:
            return getattr(torch.nn, f"Conv{ndim}d")(4, 6, kernel, stride, padding, dilation, groups,
                                                      dtype=torch.float64)

        def make_colnn() -> Any:
            weight = np.ones((6, max(4 // groups, 1), *(kernel,) * ndim))
            return getattr(colnn, f"Conv{ndim}d")(weight, np.zeros(6), stride, padding, dilation, groups)

        expected = _torch_outcome(make_torch, shapes)
        if expected is not None and groups == 3:
            expected = None  # 4 channels in 3 groups: PyTorch refuses at construction; colnn's weight cannot say
        got = _colnn_outcome(make_colnn, shapes)
        if groups == 3 and got is not None:
            got = dict.fromkeys(got)  # colnn builds from the weight alone, and forward refuses 4 channels
        _compare(setting, expected, got)


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_transposed_convolution_layers(ndim):
    """Issue 22's first fault, as a class: every setting PyTorch builds and runs on some input, colnn builds."""
    shapes = _shapes(ndim, channels=4)
    for kernel, stride, padding, output_padding, dilation, groups in itertools.product(
            (1, 3), (1, 2), (0, 1, 2, 3), (0, 1, 2), (1, 2), (1, 2)):
        setting = f"ConvTranspose{ndim}d(4, 6, {kernel}, {stride}, {padding}, {output_padding}, {groups}, {dilation})"

        def make_torch() -> Any:
            return getattr(torch.nn, f"ConvTranspose{ndim}d")(4, 6, kernel, stride, padding, output_padding, groups,
                                                               True, dilation, dtype=torch.float64)

        def make_colnn() -> Any:
            weight = np.ones((4, 6 // groups, *(kernel,) * ndim))
            return getattr(colnn, f"ConvTranspose{ndim}d")(weight, np.zeros(6), stride, padding, output_padding,
                                                           groups, dilation)

        _compare(setting, _torch_outcome(make_torch, shapes), _colnn_outcome(make_colnn, shapes))


def test_the_issues_transposed_convolutions_build_and_match_the_function():
    weight, bias = np.ones((3, 3, 3), np.float32), np.zeros(3, np.float32)
    x = np.ones((1, 3, 4), np.float32)
    for arguments in ({"stride": 2, "padding": 2, "output_padding": 1}, {"padding": 2}):
        layer = colnn.ConvTranspose1d(weight, bias, **arguments)
        np.testing.assert_array_equal(layer.forward(x), colnn.conv_transpose1d(x, weight, bias, **arguments))
    with pytest.raises(ValueError, match=r"output would be empty: input size 1"):
        colnn.ConvTranspose1d(weight, bias, padding=2).forward(np.ones((1, 3, 1), np.float32))


@pytest.mark.parametrize(("make", "message"), [
    (lambda: colnn.MaxPool1d(2, ceil_mode="no"), "ceil_mode must be True or False, got 'no'"),
    (lambda: colnn.AvgPool3d(2, count_include_pad="no"), "count_include_pad must be True or False, got 'no'"),
    (lambda: colnn.LPPool2d(2, 2, ceil_mode=1), "ceil_mode must be True or False, got 1"),
    (lambda: colnn.MaxPool2d(2, padding=2), "padding must be at most half of kernel_size"),
    (lambda: colnn.ConvTranspose2d(np.ones((2, 2, 3, 3)), np.zeros(2), output_padding=1),
     "output_padding must be smaller than stride or dilation"),
    (lambda: colnn.Conv2d(np.ones((2, 2, 3, 3)), np.zeros(2), stride=2, padding="same"),
     "padding='same' requires stride 1"),
    (lambda: colnn.Convolution(np.ones((2, 2, 3, 3)), np.zeros(2), stride=2, pad="same"),
     "pad='same' requires stride 1"),
])
def test_a_constructor_refuses_what_no_input_could_run_with_the_functions_message(make, message):
    with pytest.raises((TypeError, ValueError), match=message.replace("(", r"\(").replace(")", r"\)")):
        make()
