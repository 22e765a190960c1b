"""One network (and its layers) used from several Python threads at once: serial results, or a refusal.

Layers keep the forward's state for the backward (the book's design), so two threads
between one layer's forward and backward could mix their states. The rule (issue 22):
``predict`` and a layer's ``forward`` stay concurrent and give what a serial call gives;
``gradient``, ``loss`` and a layer's forward/backward pair either give the serial result
(calls serialized) or raise a ``RuntimeError`` that names the layer and the way out (one
network per thread, ``copy.deepcopy``) — never a silently wrong value.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

import colnn
from colnn.nn import simple_conv_net
from peers import assert_matches

THREADS = 4
ROUNDS = 6


def _inputs(count: int = THREADS) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(22)
    xs = [rng.standard_normal((6, 1, 12, 12)).astype(np.float32) for _ in range(count)]
    ts = [rng.integers(0, 5, 6) for _ in range(count)]
    return xs, ts


def _network():
    return simple_conv_net(input_dim=(1, 12, 12), filter_num=4, filter_size=3, hidden_size=16, output_size=5, seed=3)


def _together(work: Callable[[int], Any]) -> list[list[Any]]:
    """``work(k)`` ROUNDS times on each of THREADS threads started together; each call's result or exception."""
    barrier = threading.Barrier(THREADS)

    def thread(k: int) -> list[Any]:
        barrier.wait()
        results = []
        for _ in range(ROUNDS):
            try:
                results.append(work(k))
            except Exception as error:
                results.append(error)
        return results

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(thread, range(THREADS)))


def _serial_or_refused(results: list[list[Any]], serial: list[Any], compare: Callable[[Any, Any, str], None],
                       layers: tuple[Any, ...]) -> None:
    refusals = []
    for k, outcomes in enumerate(results):
        for r, outcome in enumerate(outcomes):
            if isinstance(outcome, RuntimeError):
                refusals.append(str(outcome))
            elif isinstance(outcome, Exception):
                raise AssertionError(f"thread {k} call {r}: {type(outcome).__name__}: {outcome}")
            else:
                compare(outcome, serial[k], f"thread {k} call {r}")
    for message in refusals:
        assert any(type(layer).__name__ in message for layer in layers), f"names no layer: {message}"
        assert "deepcopy" in message or "one network per thread" in message, message


def _same_gradients(actual: dict, expected: dict, where: str) -> None:
    assert actual.keys() == expected.keys(), where
    for name in expected:
        assert_matches(actual[name], expected[name], False, f"{where}: gradient {name}")


def test_concurrent_predict_equals_serial():
    net = _network()
    xs, _ = _inputs()
    serial = [net.predict(x) for x in xs]
    for k, outcomes in enumerate(_together(lambda k: net.predict(xs[k]))):
        for r, outcome in enumerate(outcomes):
            assert not isinstance(outcome, Exception), f"thread {k} round {r}: {outcome!r}"
            assert_matches(outcome, serial[k], False, f"thread {k} round {r}")


def test_concurrent_layer_forwards_equal_serial():
    net = _network()
    xs, _ = _inputs()
    convolution, pooling = net.layers[0], colnn.MaxPool2d(2)
    serial = [(convolution.forward(x), pooling.forward(x)) for x in xs]
    for k, outcomes in enumerate(_together(lambda k: (convolution.forward(xs[k]), pooling.forward(xs[k])))):
        for r, outcome in enumerate(outcomes):
            assert not isinstance(outcome, Exception), f"thread {k} round {r}: {outcome!r}"
            assert_matches(outcome[0], serial[k][0], False, f"thread {k} round {r}: Convolution.forward")
            assert_matches(outcome[1], serial[k][1], True, f"thread {k} round {r}: MaxPool2d.forward")


def test_concurrent_gradients_are_serial_or_refused():
    net = _network()
    xs, ts = _inputs()
    serial = [net.gradient(x, t) for x, t in zip(xs, ts)]
    _serial_or_refused(_together(lambda k: net.gradient(xs[k], ts[k])), serial, _same_gradients, net.layers)


def test_concurrent_losses_are_serial_or_refused():
    net = _network()
    xs, ts = _inputs()
    serial = [net.loss(x, t) for x, t in zip(xs, ts)]

    def same_loss(actual: float, expected: float, where: str) -> None:
        assert actual == pytest.approx(expected, rel=1e-5), where

    _serial_or_refused(_together(lambda k: net.loss(xs[k], ts[k])), serial, same_loss, net.layers)


def _interleaved(first: Callable[[], Any], then: Callable[[], Any], second: Callable[[], Any],
                 last: Callable[[], Any], wait: float = 1.0) -> tuple[Any, Any]:
    """Thread A runs ``first`` and later ``then``; thread B runs ``second`` between them, then ``last``.

    The order A-forward, B-forward, A-backward, B-backward is the one that mixes two
    threads' states in a layer. If the layer serializes (B's forward waits for A's
    backward), A stops waiting for B after ``wait`` seconds, so that neither blocks.
    Returns each thread's result or exception.
    """
    a_forwarded, b_forwarded, a_done = threading.Event(), threading.Event(), threading.Event()
    results: dict[str, Any] = {}

    def thread_a() -> None:
        try:
            first()
            a_forwarded.set()
            b_forwarded.wait(wait)
            results["a"] = then()
        except Exception as error:
            results["a"] = error
        finally:
            a_forwarded.set()
            a_done.set()

    def thread_b() -> None:
        a_forwarded.wait(wait)
        try:
            second()
            b_forwarded.set()
            a_done.wait(wait)
            results["b"] = last()
        except Exception as error:
            results["b"] = error
        finally:
            b_forwarded.set()

    threads = [threading.Thread(target=thread_a), threading.Thread(target=thread_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10 * wait)
    return results.get("a", TimeoutError("thread A")), results.get("b", TimeoutError("thread B"))


def _layers() -> list[Any]:
    rng = np.random.default_rng(5)
    weight = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(3).astype(np.float32)
    affine = rng.standard_normal((2 * 6 * 6, 4)).astype(np.float32)
    return [
        pytest.param(lambda: colnn.Convolution(weight, bias, pad=1), id="Convolution"),
        pytest.param(lambda: colnn.Conv2d(weight, bias, padding=1), id="Conv2d"),
        pytest.param(lambda: colnn.MaxPool2d(2), id="MaxPool2d"),
        pytest.param(lambda: colnn.AvgPool2d(3, 1, 1), id="AvgPool2d"),
        pytest.param(lambda: colnn.Affine(affine, np.zeros(4, np.float32)), id="Affine"),
        pytest.param(lambda: colnn.Relu(), id="Relu"),
    ]


@pytest.mark.parametrize("make", _layers())
def test_a_shared_layers_interleaved_forward_backward_is_serial_or_refused(make):
    layer = make()
    rng = np.random.default_rng(8)
    xs = [rng.standard_normal((2, 2, 6, 6)).astype(np.float32) for _ in range(2)]
    douts = [rng.standard_normal(layer.forward(x).shape).astype(np.float32) for x in xs]

    def backward(k: int) -> tuple[np.ndarray, ...]:
        grads = (layer.backward(douts[k]),)
        parameters = (getattr(layer, name, None) for name in ("dW", "db"))
        return grads + tuple(gradient.copy() for gradient in parameters if gradient is not None)

    serial = []
    for k in range(2):
        layer.forward(xs[k])
        serial.append(backward(k))
    a, b = _interleaved(lambda: layer.forward(xs[0]), lambda: backward(0), lambda: layer.forward(xs[1]),
                        lambda: backward(1))

    def same(actual: tuple, expected: tuple, where: str) -> None:
        assert len(actual) == len(expected), where
        for name, got, wanted in zip(("dx", "dW", "db"), actual, expected):
            assert_matches(got, wanted, False, f"{where}: {type(layer).__name__} {name}")

    _serial_or_refused([[a], [b]], serial, same, (layer,))
