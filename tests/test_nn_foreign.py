"""Layers on other libraries' CPU arrays run on NumPy views, through DLPack (issue 25, ``colnn.nn.cpu_views``).

The oracle of every layer is the same layer built from NumPy arrays of the same
values and called on NumPy arrays (the compiled path, tested against PyTorch
elsewhere): a PyTorch CPU tensor or a JAX array, with parameters of its
library, must give the same output, input gradient and parameter gradients,
as arrays of the caller's library. Then the promises: the compiled path ran
(the reference, patched to fail, is never called), the caller's arrays and the
layer's parameters are read, never written or replaced, errors are those of the
Array API path (a layer built with ``strategy="im2col"``), and what NumPy cannot
view (bfloat16) stays on the Array API path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

import colnn
from colnn.nn import cpu_views
from colnn.ops import strategy as strategy_module
from colnn.ops.conv import conv as conv_module
from colnn.ops.reference import dense as dense_reference
from test_foreign_arrays import Library, spy_hand_backs

RNG = np.random.default_rng(2025)


def _data(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


X1, X2, X3 = _data(2, 3, 10), _data(2, 3, 8, 9), _data(2, 3, 6, 6, 7)
W1, W2, W3 = _data(4, 3, 3), _data(4, 3, 3, 3), _data(4, 3, 3, 3, 3)
WT2 = _data(3, 4, 3, 3)
BIAS = _data(4)
DENSE_W, DENSE_B = _data(3 * 8 * 9, 5), _data(5)
SCORES, LABELS = _data(6, 5), RNG.integers(0, 5, 6)
SAMPLES = RNG.random((2, 3, 2)).astype(np.float32)
POOLED_VALUES, POOLED_INDICES = colnn.max_pool2d(np.ascontiguousarray(X2[..., :8]), 2, return_indices=True)


@dataclass(frozen=True)
class Case:
    """A layer made from NumPy parameters converted by ``to``, the arrays its forward takes, and how it compares."""

    make: Callable
    inputs: tuple
    exact: bool = True  # max-type results must match exactly; sums to rounding


CASES = {
    "MaxPool1d": Case(lambda to: colnn.MaxPool1d(3, 2, 1), (X1,)),
    "MaxPool2d": Case(lambda to: colnn.MaxPool2d(3, 2, 1), (X2,)),
    "MaxPool3d": Case(lambda to: colnn.MaxPool3d(2), (X3,)),
    "MaxPool2d of integers": Case(lambda to: colnn.MaxPool2d(2), ((X2 * 100).astype(np.int32),)),
    "Pooling": Case(lambda to: colnn.Pooling(2, 2, 2), (X2,)),
    "AvgPool1d": Case(lambda to: colnn.AvgPool1d(3, 2, 1), (X1,), exact=False),
    "AvgPool2d": Case(lambda to: colnn.AvgPool2d(3, 2, 1, count_include_pad=False), (X2,), exact=False),
    "AvgPool3d": Case(lambda to: colnn.AvgPool3d(2), (X3,), exact=False),
    "LPPool2d": Case(lambda to: colnn.LPPool2d(2.0, 2), (X2,), exact=False),
    "AdaptiveAvgPool2d": Case(lambda to: colnn.AdaptiveAvgPool2d((3, 4)), (X2,), exact=False),
    "AdaptiveMaxPool3d": Case(lambda to: colnn.AdaptiveMaxPool3d(3), (X3,)),
    "FractionalMaxPool2d": Case(lambda to: colnn.FractionalMaxPool2d(2, output_size=3), (X2, SAMPLES)),
    "MaxUnpool2d": Case(lambda to: colnn.MaxUnpool2d(2), (POOLED_VALUES, POOLED_INDICES)),
    "Conv1d": Case(lambda to: colnn.Conv1d(to(W1), to(BIAS), padding=1), (X1,), exact=False),
    "Conv2d": Case(lambda to: colnn.Conv2d(to(W2), to(BIAS), padding=1), (X2,), exact=False),
    "Conv3d": Case(lambda to: colnn.Conv3d(to(W3), to(BIAS), stride=2), (X3,), exact=False),
    "Convolution": Case(lambda to: colnn.Convolution(to(W2), to(BIAS), 1, 1), (X2,), exact=False),
    "ConvTranspose2d": Case(lambda to: colnn.nn.ConvTranspose2d(to(WT2), to(BIAS), stride=2), (X2,), exact=False),
    "Affine": Case(lambda to: colnn.Affine(to(DENSE_W), to(DENSE_B)), (X2,), exact=False),
    "Relu": Case(lambda to: colnn.Relu(), (X2,)),
    "Sigmoid": Case(lambda to: colnn.Sigmoid(), (X2,), exact=False),
    "Dropout": Case(lambda to: colnn.Dropout(0.4, seed=3), (X2,)),
    "BatchNorm2d": Case(lambda to: colnn.BatchNorm2d(3, like=to(np.zeros(1, np.float32))), (X2,), exact=False),
    "BatchNormalization": Case(lambda to: colnn.BatchNormalization(to(np.full(3 * 8 * 9, 1.5, np.float32)),
                                                                   to(np.zeros(3 * 8 * 9, np.float32))), (X2,),
                               exact=False),
}


@pytest.fixture(params=["torch", "jax"])
def library(request) -> Library:
    return Library(request.param)


@pytest.fixture
def handed_back(monkeypatch) -> list:
    """The NumPy arrays the layers handed back to the caller's library: proof that they ran on views."""
    return spy_hand_backs(monkeypatch, cpu_views)


def _compare(got, want, library, exact: bool, what: str) -> None:
    assert isinstance(got, library.array_type), f"{what} is {type(got)}"
    assert got.dtype == library.dtype(want.dtype), what
    assert library.device_is_cpu(got), what
    if exact:
        np.testing.assert_array_equal(library.numpy(got), want, err_msg=what)
    else:
        np.testing.assert_allclose(library.numpy(got), want, rtol=1e-5, atol=1e-6, err_msg=what)


@pytest.mark.parametrize("name", CASES)
def test_every_layer_gives_numpy_s_values_as_the_caller_s_arrays(name, library, handed_back):
    case = CASES[name]
    numpy_layer, layer = case.make(lambda array: array), case.make(library.to)
    params = dict(layer.params)
    out = numpy_layer.forward(*case.inputs)
    dout = _data(*out.shape)
    grad = numpy_layer.backward(dout)
    inputs = [library.to(array) for array in case.inputs]
    dout_in = library.to(dout)
    before = [library.numpy(array).copy() for array in (*inputs, dout_in)]

    _compare(layer.forward(*inputs), out, library, case.exact, f"{name} forward")
    _compare(layer.backward(dout_in), grad, library, case.exact, f"{name} backward")
    assert handed_back, f"{name} did not run on NumPy views"
    assert sorted(layer.grads) == sorted(numpy_layer.grads)
    for key, want in numpy_layer.grads.items():
        _compare(layer.grads[key], want, library, False, f"{name} grads[{key!r}]")
    for key, array in layer.params.items():  # the caller's parameters, kept (not views, not copies)
        assert array is params[key]
    for array, value in zip((*inputs, dout_in), before):  # read, never written
        np.testing.assert_array_equal(library.numpy(array), value)


@pytest.mark.parametrize("name", ["MaxPool2d", "AvgPool3d", "Conv2d", "Affine", "Relu", "BatchNorm2d", "Dropout"])
def test_infer_gives_numpy_s_values_and_leaves_the_layer_as_it_was(name, library, handed_back):
    case = CASES[name]
    numpy_layer, layer = case.make(lambda array: array), case.make(library.to)
    params = dict(layer.params)
    state = dict(vars(layer))
    _compare(layer.infer(*(library.to(array) for array in case.inputs)), numpy_layer.infer(*case.inputs), library,
             case.exact, f"{name} infer")
    assert handed_back
    assert vars(layer) == state and all(layer.params[key] is array for key, array in params.items())


def test_the_public_state_a_forward_sets_is_of_the_caller_s_library(library):
    relu, dropout, loss = colnn.Relu(), colnn.Dropout(0.5, seed=0), colnn.SoftmaxWithLoss()
    relu.forward(library.to(X2))
    dropout.forward(library.to(X2))
    loss.forward(library.to(SCORES), library.to(LABELS))
    for array, want in ((relu.mask, X2 <= 0), (dropout.mask, colnn.Dropout(0.5, seed=0).forward(X2) != 0)):
        assert isinstance(array, library.array_type)
        np.testing.assert_array_equal(library.numpy(array), want)
    assert isinstance(loss.y, library.array_type)
    norm = colnn.BatchNorm2d(3, like=library.to(np.zeros(1, np.float32)))
    numpy_norm = colnn.BatchNorm2d(3)
    norm.forward(library.to(X2))
    numpy_norm.forward(X2)
    for key in ("running_mean", "running_var"):
        _compare(getattr(norm, key), getattr(numpy_norm, key), library, False, key)


def test_max_pooling_s_indices_are_the_caller_s(library):
    layer, numpy_layer = colnn.MaxPool2d(3, 2, 1), colnn.MaxPool2d(3, 2, 1)
    layer.forward(library.to(X2))
    numpy_layer.forward(X2)
    _compare(layer.indices, numpy_layer.indices, library, True, "indices")


def test_softmax_with_loss_gives_numpy_s_loss_and_gradient(library, handed_back):
    numpy_layer, layer = colnn.SoftmaxWithLoss(), colnn.SoftmaxWithLoss()
    loss = layer.forward(library.to(SCORES), library.to(LABELS))
    assert loss == pytest.approx(numpy_layer.forward(SCORES, LABELS), rel=1e-6)
    _compare(layer.backward(), numpy_layer.backward(), library, False, "backward")
    assert handed_back


class _NoReference:
    """Stands in for the reference path: the test fails if any of it runs."""

    def __getattr__(self, name):
        raise AssertionError(f"the reference path ran ({name})")


def _fail(*args, **kwargs):
    raise AssertionError("the reference path ran")


@pytest.fixture
def no_reference(monkeypatch) -> None:
    """Every reference the layers below could reach, patched to fail."""
    monkeypatch.setattr(strategy_module, "_REFERENCE", _NoReference())
    for name in ("reference_forward", "reference_backward"):
        monkeypatch.setattr(conv_module, name, _fail)
    for name in ("relu_forward", "relu_backward", "affine_forward", "affine_backward"):
        monkeypatch.setattr(dense_reference, name, _fail)


KERNEL_LAYERS = ["MaxPool2d", "MaxPool3d", "AvgPool2d", "Conv2d", "Convolution", "Affine", "Relu"]


@pytest.mark.parametrize("name", KERNEL_LAYERS)
def test_the_compiled_path_runs_forward_and_backward(name, library, no_reference):
    case = CASES[name]
    layer = case.make(library.to)
    out = layer.forward(*(library.to(array) for array in case.inputs))
    layer.backward(library.to(np.ones(tuple(out.shape), np.float32)))


@pytest.mark.parametrize("name", KERNEL_LAYERS)
def test_the_reference_asked_by_name_still_runs_where_the_arrays_live(name, no_reference):
    """The patch of ``no_reference`` catches the Array API path: a layer asked for it fails there."""
    case = CASES[name]
    if name in ("Affine", "Relu"):  # no strategy: array_api_strict's arrays keep the Array API path
        xs = pytest.importorskip("array_api_strict", reason="needs array-api-strict (pip install colnn[test])")
        layer, inputs = case.make(xs.asarray), tuple(xs.asarray(array) for array in case.inputs)
    else:
        torch = Library("torch").module
        layer = _with_strategy(name, torch.from_numpy)
        inputs = tuple(torch.from_numpy(array) for array in case.inputs)
    with pytest.raises(AssertionError, match="the reference path ran"):
        layer.forward(*inputs)


def _with_strategy(name: str, to: Callable, strategy: str = "im2col"):
    """The layer of ``CASES[name]`` asked for ``strategy`` (the layers whose constructor takes one)."""
    return {
        "MaxPool2d": lambda: colnn.MaxPool2d(3, 2, 1, strategy=strategy),
        "MaxPool3d": lambda: colnn.MaxPool3d(2, strategy=strategy),
        "AvgPool2d": lambda: colnn.AvgPool2d(3, 2, 1, count_include_pad=False, strategy=strategy),
        "Conv2d": lambda: colnn.Conv2d(to(W2), to(BIAS), padding=1, strategy=strategy),
        "Convolution": lambda: colnn.Convolution(to(W2), to(BIAS), 1, 1, strategy=strategy),
    }[name]()


def test_a_network_computes_torch_and_jax_input_on_the_compiled_path(library, no_reference):
    net = colnn.nn.simple_conv_net((1, 8, 8), filter_num=4, filter_size=3, pad=1, hidden_size=6, output_size=3)
    x, t = RNG.random((5, 1, 8, 8)).astype(np.float32), RNG.integers(0, 3, 5)
    grads = net.gradient(library.to(x), library.to(t))
    np.testing.assert_array_equal(net.predict(library.to(x)), net.predict(x))
    for key, want in net.gradient(x, t).items():
        np.testing.assert_array_equal(grads[key], want)


def test_the_layer_s_parameters_are_trained_in_place_through_their_views():
    torch = Library("torch").module
    weight, bias = torch.from_numpy(W2.copy()), torch.from_numpy(BIAS.copy())
    layer = colnn.Conv2d(torch.nn.Parameter(weight), torch.nn.Parameter(bias), padding=1)
    out = layer.forward(torch.from_numpy(X2))
    assert not out.requires_grad
    layer.backward(torch.ones_like(out))
    with torch.no_grad():
        for key, array in layer.params.items():
            array -= 0.1 * layer.grads[key]  # an optimizer's in-place step on the caller's tensors
    numpy_layer = colnn.Conv2d(W2.copy(), BIAS.copy(), padding=1)
    numpy_layer.backward(np.ones(numpy_layer.forward(X2).shape, np.float32))
    numpy_layer.W -= 0.1 * numpy_layer.dW
    numpy_layer.b -= 0.1 * numpy_layer.db
    np.testing.assert_allclose(layer.forward(torch.from_numpy(X2)).numpy(), numpy_layer.forward(X2), rtol=1e-5,
                               atol=1e-5)


def test_a_result_never_aliases_the_input():
    torch = Library("torch").module
    tensor = torch.from_numpy(X2.copy())
    layer = colnn.MaxPool2d(1)
    out = layer.forward(tensor)  # a 1x1 window: the values of the input itself
    out += 1
    grad = torch.from_numpy(X2.copy())
    dx = layer.backward(grad)
    dx += 1
    np.testing.assert_array_equal(tensor.numpy(), X2)
    np.testing.assert_array_equal(grad.numpy(), X2)


def test_a_numpy_gradient_after_a_forward_on_a_tensor_gives_a_tensor():
    torch = Library("torch").module
    layer = colnn.Conv2d(torch.from_numpy(W2), torch.from_numpy(BIAS), padding=1)
    out = layer.forward(torch.from_numpy(X2))
    dout = np.ones(tuple(out.shape), np.float32)
    grad = layer.backward(dout)
    assert isinstance(grad, torch.Tensor) and isinstance(layer.dW, torch.Tensor)
    numpy_layer = colnn.Conv2d(W2, BIAS, padding=1)
    numpy_layer.forward(X2)
    np.testing.assert_allclose(grad.numpy(), numpy_layer.backward(dout), rtol=1e-6)


def test_a_bfloat16_gradient_is_read_in_float32():
    torch = Library("torch").module
    layer = colnn.MaxPool2d(2)
    out = layer.forward(torch.from_numpy(X2))
    dout = torch.from_numpy(_data(*out.shape)).to(torch.bfloat16)
    expected = colnn.MaxPool2d(2)
    expected.forward(X2)
    grad = layer.backward(dout)
    assert grad.dtype == torch.float32
    np.testing.assert_array_equal(grad.numpy(), expected.backward(dout.float().numpy()))


def test_bfloat16_which_numpy_lacks_stays_on_the_array_api_path(handed_back):
    torch = Library("torch").module
    tensor = torch.from_numpy(X2).to(torch.bfloat16)
    layer = colnn.MaxPool2d(2)
    out = layer.forward(tensor)
    assert out.dtype == torch.bfloat16 and not handed_back
    assert torch.equal(out, torch.nn.functional.max_pool2d(tensor, 2))
    layer.backward(torch.ones_like(out))
    assert not handed_back


def test_a_forward_on_numpy_after_one_on_a_tensor_keeps_numpy():
    torch = Library("torch").module
    layer = colnn.MaxPool2d(2)
    layer.forward(torch.from_numpy(X2))
    out = layer.forward(X2)
    assert isinstance(layer.backward(np.ones(out.shape, np.float32)), np.ndarray)


def _backward_of_the_wrong_shape(layer, to):
    layer.forward(to(X2))
    layer.backward(to(np.ones((1, 1, 1, 1), np.float32)))


# Calls that fail, each the same on the compiled path as on the Array API path (a layer asked for "im2col").
FAILURES = {
    "wrong rank": lambda layer, to: layer.forward(to(X1[0])),
    "integer input": lambda layer, to: layer.forward(to(X2.astype(np.int32))),
    "wrong channels": lambda layer, to: layer.forward(to(X2[:, :2])),
    "dout of the wrong shape": _backward_of_the_wrong_shape,
    "numpy weights with foreign input": lambda layer, to: colnn.Conv2d(W2, BIAS, strategy=layer.strategy).forward(
        to(X2)),
}


@pytest.mark.parametrize("failure", FAILURES)
def test_errors_are_those_of_the_array_api_path(failure, library):
    compiled = _with_strategy("Conv2d", library.to, None)
    reference = _with_strategy("Conv2d", library.to)
    with pytest.raises((TypeError, ValueError)) as expected:
        FAILURES[failure](reference, library.to)
    with pytest.raises(expected.type) as got:
        FAILURES[failure](compiled, library.to)
    assert str(got.value) == str(expected.value)


def test_a_gradient_of_another_library_is_the_array_api_path_s_error():
    torch, jnp = Library("torch").module, Library("jax").module.numpy
    messages = []
    for strategy in (None, "im2col"):
        layer = colnn.MaxPool2d(2, strategy=strategy)
        out = layer.forward(torch.from_numpy(X2))
        with pytest.raises(TypeError) as error:
            layer.backward(jnp.ones(tuple(out.shape), jnp.float32))
        messages.append(str(error.value))
    assert messages[0] == messages[1]
    assert "dout is a jax.Array but the forward's input is a torch.Tensor" in messages[0]


def test_the_bench_s_layer_rows_time_steps_that_agree_with_torch_nn():
    """``colnn bench``'s layer rows (``... fwd+bwd``): each side's step gives the same input gradient."""
    torch = Library("torch").module
    from colnn.apps.bench_foreign import foreign_cases

    Library("jax")
    cases = [case for case in foreign_cases(True, torch, 1e10, 1e11) if "fwd+bwd" in case.name]
    assert [case.name for case in cases] == ["XT MaxPool2d fwd+bwd of torch", "XT Conv2d fwd+bwd of torch",
                                             "XJ MaxPool2d fwd+bwd of jax"]
    for case in cases:
        got, want = (np.asarray(step()) for step in case.impls.values())
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=case.name)
