"""PyTorch's own OpInfo samples, run through colnn's public functions and layers and compared with torch.

``torch.testing._internal.common_methods_invocations.op_db`` describes every PyTorch
operator with sample inputs written by its maintainers (odd shapes, unbatched inputs,
empty batches, every argument spelled as an int, a tuple or a keyword). Each OpInfo
whose op colnn implements runs every sample in float32 and float64 through

- the function (``colnn.max_pool2d(...)``), values and indices;
- the layer (``colnn.MaxPool2d(...).forward``), values, ``indices`` and
  ``backward(dout)`` (with ``dW``, ``db`` for convolutions) against torch autograd
  given the same ``dout``; ``unfold``, which has no layer, is differentiated by its
  adjoint ``fold``.

Maxima, indices, gathers and scatters must be bit-exact, sums within
:data:`peers.SUM_RTOL`. A sample that torch refuses must be refused by colnn too, with a
``ValueError`` or ``TypeError`` (its boundary errors). ``torch.testing._internal``
imports ``expecttest`` (the test extra).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import colnn
from peers import Mismatches, assert_matches, assert_refuses, describe_array

torch = pytest.importorskip("torch", reason="PyTorch is the oracle")
pytest.importorskip("expecttest", reason="torch.testing._internal needs expecttest (pip install colnn[test])")
opinfo = pytest.importorskip("torch.testing._internal.common_methods_invocations",
                             reason="PyTorch's OpInfo database")

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class Peer:
    """How one torch op maps onto colnn: its parameters in torch's order and the colnn calls."""

    params: tuple[str, ...]  # torch's parameters after ``input``, in order
    exact: bool  # selects or moves values (bit-exact) rather than summing them
    function: Callable[..., Any]  # colnn's function, called as torch's with the same arguments
    layer: Callable[[dict[str, Any]], Any] | None  # builds the layer from the bound arguments
    ndim: int


def _pool_layer(cls: type, names: tuple[str, ...]) -> Callable[[dict[str, Any]], Any]:
    return lambda bound: cls(**{name: bound[name] for name in names if name in bound})


def _conv_layer(cls: type, names: tuple[str, ...]) -> Callable[[dict[str, Any]], Any]:
    def build(bound: dict[str, Any]) -> Any:
        weight = bound["weight"]
        out_channels = weight.shape[1] * bound.get("groups", 1) if cls.transposed else weight.shape[0]
        # A layer always has a bias (the book's); torch's bias=None is a zero bias.
        bias = bound.get("bias")
        bias = np.zeros(out_channels, weight.dtype) if bias is None else bias
        return cls(weight, bias, **{name: bound[name] for name in names if name in bound})
    return build


MAX_POOL = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
AVG_POOL = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")
CONV = ("weight", "bias", "stride", "padding", "dilation", "groups")
CONV_TRANSPOSE = ("weight", "bias", "stride", "padding", "output_padding", "groups", "dilation")
FRACTIONAL = ("kernel_size", "output_size", "output_ratio", "return_indices", "_random_samples")
UNPOOL = ("indices", "kernel_size", "stride", "padding", "output_size")


def _peers() -> dict[str, Peer]:
    table: dict[str, Peer] = {}
    for d in (1, 2, 3):
        avg = AVG_POOL if d > 1 else AVG_POOL[:-1]
        table[f"max_pool{d}d"] = Peer(MAX_POOL, True, getattr(colnn, f"max_pool{d}d"),
                                      _pool_layer(getattr(colnn, f"MaxPool{d}d"), MAX_POOL[:-1]), d)
        table[f"avg_pool{d}d"] = Peer(avg, False, getattr(colnn, f"avg_pool{d}d"),
                                      _pool_layer(getattr(colnn, f"AvgPool{d}d"), avg), d)
        table[f"adaptive_avg_pool{d}d"] = Peer(("output_size",), False, getattr(colnn, f"adaptive_avg_pool{d}d"),
                                               _pool_layer(getattr(colnn, f"AdaptiveAvgPool{d}d"), ("output_size",)), d)
        table[f"adaptive_max_pool{d}d"] = Peer(("output_size", "return_indices"), True,
                                               getattr(colnn, f"adaptive_max_pool{d}d"),
                                               _pool_layer(getattr(colnn, f"AdaptiveMaxPool{d}d"), ("output_size",)), d)
        table[f"max_unpool{d}d"] = Peer(UNPOOL, True, getattr(colnn, f"max_unpool{d}d"),
                                        _pool_layer(getattr(colnn, f"MaxUnpool{d}d"), UNPOOL[1:4]), d)
        table[f"conv{d}d"] = Peer(CONV, False, getattr(colnn, f"conv{d}d"),
                                  _conv_layer(getattr(colnn, f"Conv{d}d"), CONV[2:]), d)
        table[f"conv_transpose{d}d"] = Peer(CONV_TRANSPOSE, False, getattr(colnn, f"conv_transpose{d}d"),
                                            _conv_layer(getattr(colnn, f"ConvTranspose{d}d"), CONV_TRANSPOSE[2:]), d)
    for d in (2, 3):
        table[f"fractional_max_pool{d}d"] = Peer(
            FRACTIONAL, True, getattr(colnn, f"fractional_max_pool{d}d"),
            _pool_layer(getattr(colnn, f"FractionalMaxPool{d}d"), FRACTIONAL[:3]), d)
    table["unfold"] = Peer(("kernel_size", "dilation", "padding", "stride"), True, colnn.unfold, None, 2)
    return table


PEERS = _peers()


@functools.cache
def _opinfos() -> dict[str, Any]:
    """``op_db``'s OpInfos of ``torch.nn.functional`` ops that colnn has too, by ``name`` or ``name-variant``."""
    found = {}
    for op in opinfo.op_db:
        name = op.name.removeprefix("nn.functional.")
        if op.name.startswith("nn.functional.") and name in colnn.__all__:
            found[f"{name}-{op.variant_test_name}" if op.variant_test_name else name] = op
    return found


# The OpInfos of ops colnn has, in torch==2.13.0 (CI's pin): one that appears (lp_pool and
# fold have none yet; tests/test_onnx_nodes.py runs ONNX's LpPool and Col2Im) fails
# test_every_opinfo_of_an_op_colnn_has_is_run until it is mapped in PEERS and listed here.
OPINFOS = sorted(
    [f"{family}{d}d" for family in ("max_pool", "avg_pool", "adaptive_avg_pool", "adaptive_max_pool", "conv",
                                    "conv_transpose", "max_unpool") for d in (1, 2, 3)]
    + [f"max_unpool{d}d-grad" for d in (1, 2, 3)] + ["fractional_max_pool2d", "fractional_max_pool3d", "unfold"])

# The samples of the largest OpInfos are split into this many interleaved shares, so that
# the test processes (pytest-xdist) finish together.
SHARES = {"max_pool1d": 2, "max_pool2d": 4, "max_pool3d": 3, "unfold": 1}


def _cases() -> list[Any]:
    return [pytest.param(name, dtype, share, count, id=f"{name}-{dtype}" + (f"-{share}of{count}" if count > 1 else ""))
            for name in OPINFOS for dtype in DTYPES
            for count in [SHARES.get(name, 1)] for share in range(count)]


@pytest.fixture(autouse=True)
def torch_on_one_thread():
    """The samples are tiny: torch's thread pool costs more than it gives (4x, more on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_every_opinfo_of_an_op_colnn_has_is_run():
    assert sorted(_opinfos()) == OPINFOS


@functools.cache
def _samples(name: str, dtype: str) -> list[Any]:
    # Sample inputs are random (make_tensor); a fixed seed makes a failure reproducible.
    torch.manual_seed(0)
    return list(_opinfos()[name].sample_inputs("cpu", DTYPES[dtype], requires_grad=True))


def _bind(params: tuple[str, ...], args: tuple, kwargs: dict) -> dict[str, Any]:
    assert len(args) <= len(params), f"more positional arguments than {params}"
    bound = dict(zip(params, args))
    for key, value in kwargs.items():
        assert key in params and key not in bound, f"unexpected argument {key}"
        bound[key] = value
    return bound


def _to_numpy(value: Any) -> Any:
    """Tensors as NumPy arrays (torch.Size as a tuple); everything else as it is."""
    if isinstance(value, torch.Size):
        return tuple(value)
    if isinstance(value, torch.Tensor):
        return value.detach().numpy().copy()
    return value


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor{tuple(value.shape)}" + ("" if value.is_floating_point() else f" {value.dtype}")
    if isinstance(value, np.ndarray):
        return describe_array(value)
    return repr(value)


def describe_sample(name: str, x: Any, bound: dict[str, Any]) -> str:
    arguments = ", ".join(f"{key}={_describe(value)}" for key, value in bound.items())
    return f"{name}({_describe(x)}, {arguments})"


@dataclass
class TorchRun:
    """torch's outputs for a sample and its gradients for ``dout``: the oracle of one case."""

    outputs: tuple[np.ndarray, ...]
    grads: dict[str, np.ndarray]
    dout: np.ndarray


def _torch_run(op: Any, sample: Any, extra: dict[str, Any], seed: int) -> TorchRun:
    result = op.op(sample.input, *sample.args, **{**sample.kwargs, **extra})
    outputs = result if isinstance(result, tuple) else (result,)
    values = outputs[0]
    dout = np.random.default_rng(seed).standard_normal(tuple(values.shape)).astype(_to_numpy(values).dtype)
    leaves = {"input": sample.input}
    leaves.update({name: arg for name, arg in zip(("weight", "bias"), sample.args)
                   if isinstance(arg, torch.Tensor) and arg.requires_grad})
    grads = torch.autograd.grad(values, list(leaves.values()), torch.from_numpy(dout), allow_unused=True)
    return TorchRun(tuple(_to_numpy(output) for output in outputs),
                    {name: _to_numpy(grad) for name, grad in zip(leaves, grads) if grad is not None}, dout)


def _random_samples(sample: Any, ndim: int, seed: int) -> dict[str, Any]:
    """torch's ``_random_samples`` for a fractional pool, drawn here so that colnn gets the same ones."""
    if "_random_samples" in sample.kwargs:
        return {}
    batch = tuple(sample.input.shape[:-ndim])
    batch = batch if len(batch) == 2 else (1, *batch)
    generator = torch.Generator().manual_seed(seed)
    return {"_random_samples": torch.rand(*batch, ndim, generator=generator, dtype=sample.input.dtype)}


def _colnn_arguments(bound: dict[str, Any]) -> dict[str, Any]:
    arguments = {key: _to_numpy(value) for key, value in bound.items()}
    if "_random_samples" in arguments:
        arguments["random_samples"] = arguments.pop("_random_samples")
    return arguments


def _check_function(peer: Peer, x: np.ndarray, arguments: dict[str, Any], expected: TorchRun, case: str) -> None:
    result = peer.function(x, **arguments)
    result = result if isinstance(result, tuple) else (result,)
    assert len(result) == len(expected.outputs), f"{case}: {len(result)} outputs, torch gives {len(expected.outputs)}"
    for index, (actual, wanted) in enumerate(zip(result, expected.outputs)):
        assert_matches(actual, wanted, peer.exact or index > 0, f"function output {index}")


def _layer_forward(peer: Peer, x: np.ndarray, arguments: dict[str, Any]) -> tuple[Any, np.ndarray]:
    layer = peer.layer(arguments)
    extra = {key: arguments[key] for key in ("random_samples",) if key in arguments}
    if "indices" in arguments:  # an unpooling layer takes the pool's indices with the input
        extra = {"indices": arguments["indices"], "output_size": arguments.get("output_size")}
    return layer, layer.forward(x, **extra)


def _check_layer(peer: Peer, x: np.ndarray, arguments: dict[str, Any], expected: TorchRun) -> None:
    layer, out = _layer_forward(peer, x, arguments)
    assert_matches(out, expected.outputs[0], peer.exact, "layer.forward")
    if len(expected.outputs) > 1:
        assert_matches(layer.indices, expected.outputs[1], True, "layer.indices")
    assert_matches(layer.backward(expected.dout), expected.grads["input"], peer.exact, "layer.backward")
    for name, attribute in (("weight", "dW"), ("bias", "db")):
        if name in expected.grads:
            assert_matches(getattr(layer, attribute), expected.grads[name], False, f"layer.{attribute}")


def _check_unfold_backward(x: np.ndarray, arguments: dict[str, Any], expected: TorchRun) -> None:
    # The gradient of a gather is the scatter of its adjoint: fold onto the input's size.
    grad = colnn.fold(expected.dout, tuple(x.shape[-2:]), **arguments)
    assert_matches(grad, expected.grads["input"], True, "fold(dout) as unfold's backward")


def _check_refused(peer: Peer, x: np.ndarray, arguments: dict[str, Any], torch_error: Exception) -> None:
    """torch refused the sample: colnn must refuse it too, at its boundary."""
    why = f"torch refuses it ({type(torch_error).__name__}: {_first_line(torch_error)})"
    assert_refuses(lambda: peer.function(x, **arguments), (ValueError, TypeError), f"the function: {why}")
    if peer.layer is not None:
        assert_refuses(lambda: _layer_forward(peer, x, arguments), (ValueError, TypeError), f"the layer: {why}")


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [""])[0]


@dataclass(frozen=True)
class Declined:
    """Samples that colnn refuses by its documented contract although torch computes them."""

    applies: Callable[[dict[str, Any]], bool]
    argument: str  # colnn's ValueError must name it
    reason: str


def _samples_outside_unit_interval(bound: dict[str, Any]) -> bool:
    samples = bound.get("_random_samples")
    return samples is not None and bool(((samples < 0) | (samples >= 1)).any())


DECLINED = {
    # OpInfo's last fractional_max_pool2d sample passes make_tensor's values in [-9, 9).
    "fractional_max_pool2d": Declined(
        _samples_outside_unit_interval, "random_samples",
        "colnn's public random_samples are draws from U[0, 1) (torch.rand's), checked at the boundary; "
        "torch reads its private _random_samples unchecked"),
}


def _check_declined(peer: Peer, x: np.ndarray, arguments: dict[str, Any], declined: Declined) -> None:
    assert_refuses(lambda: peer.function(x, **arguments), ValueError, f"the function ({declined.reason})",
                   declined.argument)
    assert_refuses(lambda: _layer_forward(peer, x, arguments), ValueError, f"the layer ({declined.reason})",
                   declined.argument)


def _run_case(name: str, op: Any, peer: Peer, sample: Any, seed: int) -> None:
    extra = _random_samples(sample, peer.ndim, seed) if name.startswith("fractional") else {}
    bound = _bind(peer.params, sample.args, {**sample.kwargs, **extra})
    x = _to_numpy(sample.input)
    arguments = _colnn_arguments(bound)
    declined = DECLINED.get(name)
    if declined is not None and declined.applies(bound):
        _check_declined(peer, x, arguments, declined)
        return
    try:
        expected = _torch_run(op, sample, extra, seed)
    except (RuntimeError, ValueError, TypeError, IndexError) as error:
        _check_refused(peer, x, arguments, error)
        return
    _check_function(peer, x, arguments, expected, name)
    if peer.layer is None:
        _check_unfold_backward(x, arguments, expected)
    else:
        _check_layer(peer, x, arguments, expected)


@pytest.mark.parametrize(("name", "dtype", "share", "count"), _cases())
def test_opinfo_samples_match_torch(name, dtype, share, count):
    op = _opinfos()[name]
    peer = PEERS[name.split("-")[0]]
    mismatches = Mismatches(f"{name} {dtype}")
    samples = _samples(name, dtype)
    for index in range(share, len(samples), count):
        sample = samples[index]
        case = f"sample {index}: {describe_sample(name, sample.input, _bind(peer.params, sample.args, sample.kwargs))}"
        mismatches.check(case, functools.partial(_run_case, name, op, peer, sample, index))
    mismatches.assert_none()


def _error_cases() -> list[Any]:
    return [pytest.param(name, id=name) for name in OPINFOS if _opinfos()[name].error_inputs_func is not None]


@pytest.mark.parametrize("name", _error_cases())
def test_what_torch_refuses_colnn_refuses(name):
    """OpInfo's error inputs (negative padding, zero stride, a window larger than the input...)."""
    op = _opinfos()[name]
    peer = PEERS[name.split("-")[0]]
    mismatches = Mismatches(f"{name} error inputs")
    for index, error_input in enumerate(op.error_inputs("cpu")):
        sample = error_input.sample_input
        bound = _bind(peer.params, sample.args, sample.kwargs)
        case = f"error input {index}: {describe_sample(name, sample.input, bound)}"
        mismatches.check(case, functools.partial(_check_both_refuse, op, peer, sample, bound, error_input.error_type))
    mismatches.assert_none()


def _check_both_refuse(op: Any, peer: Peer, sample: Any, bound: dict[str, Any], error_type: type) -> None:
    try:
        op.op(sample.input, *sample.args, **sample.kwargs)
    except error_type as error:
        _check_refused(peer, _to_numpy(sample.input), _colnn_arguments(bound), error)
    else:
        raise AssertionError(f"torch no longer refuses it with {error_type.__name__}")
