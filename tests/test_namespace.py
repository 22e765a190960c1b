"""The public boundary on any array library: one library and one device per call, values not graphs.

The rule (README, "Any array library, any device"): the arrays of one call are
of one library and on one device — an op's input, weight and bias; a layer's
parameters and its input; a backward's ``dout`` and the forward's input. An
array of another library is a TypeError, one on another device a ValueError,
each naming the argument and both libraries (devices). NumPy ``indices``,
``random_samples`` and ``dout`` move to the input's library instead, and lists
or scalars, read by NumPy's rules, do too. A PyTorch tensor that requires grad
is a value: nothing colnn returns has an autograd graph. Mixed float dtypes
promote as in NumPy, on every library.

Every case is parametrized over the public functions and layers that take more
than one array; the expected messages spell the type names out here, and the
values come from the NumPy path on the same data.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import colnn
from colnn.core.checks import same_library, type_name

# How a message must name each library's array: written out, not computed by the code under test.
NAMES = {"numpy": "a numpy.ndarray", "torch": "a torch.Tensor", "array_api_strict": "an array_api_strict Array"}


def mixed(argument: str, library: str, reference: str, reference_library: str) -> str:
    """The whole TypeError message, as a regex, for ``argument`` of ``library`` beside ``reference``."""
    return (rf"^{argument} is {NAMES[library]} but {reference} is {NAMES[reference_library]}; "
            "pass arrays of one library$")


def converter(library: str):
    """A NumPy array -> that library's array (a skip if it is not installed)."""
    if library == "numpy":
        return lambda array: array
    module = pytest.importorskip(library)
    return module.asarray


def to_numpy(value):
    if hasattr(value, "detach"):
        value = value.detach()
    return np.asarray(value)


def floats(*shape):
    return np.random.default_rng(sum(shape)).standard_normal(shape)


# --- the public functions that take more than one array --------------------------------------
# name -> (function, arrays by argument (NumPy), other arguments); the first array is the input.

OPS = {
    "conv1d": (colnn.conv1d, dict(input=floats(1, 2, 5), weight=floats(3, 2, 2), bias=floats(3)), {}),
    "conv2d": (colnn.conv2d, dict(input=floats(1, 2, 5, 5), weight=floats(3, 2, 2, 2), bias=floats(3)), {}),
    "conv3d": (colnn.conv3d, dict(input=floats(1, 2, 4, 4, 4), weight=floats(3, 2, 2, 2, 2), bias=floats(3)), {}),
    "conv_transpose1d": (colnn.conv_transpose1d, dict(input=floats(1, 2, 4), weight=floats(2, 3, 2), bias=floats(3)),
                         {}),
    "conv_transpose2d": (colnn.conv_transpose2d,
                         dict(input=floats(1, 2, 4, 4), weight=floats(2, 3, 2, 2), bias=floats(3)), {}),
    "conv_transpose3d": (colnn.conv_transpose3d,
                         dict(input=floats(1, 2, 3, 3, 3), weight=floats(2, 3, 2, 2, 2), bias=floats(3)), {}),
    "max_unpool1d": (colnn.max_unpool1d, dict(input=floats(1, 2, 3), indices=np.ones((1, 2, 3), np.int64)),
                     dict(kernel_size=2)),
    "max_unpool2d": (colnn.max_unpool2d, dict(input=floats(1, 2, 2, 2), indices=np.ones((1, 2, 2, 2), np.int64)),
                     dict(kernel_size=2)),
    "max_unpool3d": (colnn.max_unpool3d,
                     dict(input=floats(1, 2, 2, 2, 2), indices=np.ones((1, 2, 2, 2, 2), np.int64)),
                     dict(kernel_size=2)),
    "fractional_max_pool2d": (colnn.fractional_max_pool2d,
                              dict(input=floats(1, 2, 5, 5), random_samples=np.full((1, 2, 2), 0.5)),
                              dict(kernel_size=2, output_size=3)),
    "fractional_max_pool3d": (colnn.fractional_max_pool3d,
                              dict(input=floats(1, 2, 5, 5, 5), random_samples=np.full((1, 2, 3), 0.5)),
                              dict(kernel_size=2, output_size=3)),
}
# Each argument is checked against: the bias against the weight, the rest against the input.
CHECKED_AGAINST = {"weight": "input", "bias": "weight", "indices": "input", "random_samples": "input"}
MAY_BE_NUMPY = {"indices", "random_samples"}  # README: these may come as NumPy and move
OP_ARGUMENTS = [(op, argument) for op, (_, arrays, _) in OPS.items() for argument in list(arrays)[1:]]
LIBRARY_PAIRS = [("torch", "numpy"), ("numpy", "torch"), ("torch", "array_api_strict"), ("array_api_strict", "numpy")]


def call_op(op: str, library: str, odd: str | None = None, odd_library: str | None = None, modify=None):
    """``op`` with every array in ``library`` but ``odd`` in ``odd_library`` (``modify`` applied to all)."""
    function, arrays, options = OPS[op]
    converted = {}
    for name, array in arrays.items():
        value = converter(odd_library if name == odd else library)(array)
        converted[name] = value if modify is None else modify(name, value)
    return function(**converted, **options)


@pytest.mark.parametrize("input_library, odd_library", LIBRARY_PAIRS)
@pytest.mark.parametrize("op, argument", OP_ARGUMENTS)
def test_an_array_of_another_library_is_a_type_error_naming_the_argument(op, argument, input_library, odd_library):
    if argument in MAY_BE_NUMPY and odd_library == "numpy":
        # The README's promise: NumPy indices and samples move to the input's library.
        result = call_op(op, input_library, argument, odd_library)
        expected = call_op(op, "numpy")
        assert type(result) is type(converter(input_library)(np.zeros(1)))
        np.testing.assert_array_equal(to_numpy(result), expected)
        return
    reference = CHECKED_AGAINST[argument]
    with pytest.raises(TypeError, match=mixed(argument, odd_library, reference, input_library)):
        call_op(op, input_library, argument, odd_library)


def test_a_list_bias_is_read_as_numpy_reads_it_and_goes_where_the_input_is():
    torch = pytest.importorskip("torch")
    _, arrays, _ = OPS["conv2d"]
    out = colnn.conv2d(torch.asarray(arrays["input"]), torch.asarray(arrays["weight"]), list(arrays["bias"]))
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.numpy(), colnn.conv2d(arrays["input"], arrays["weight"], list(arrays["bias"])))


@pytest.mark.parametrize("op, argument", OP_ARGUMENTS)
def test_an_array_on_another_device_is_a_value_error_naming_both_devices(op, argument):
    torch = pytest.importorskip("torch")
    # "meta" tensors have shapes and dtypes but no data: any computation on one would fail or leak it.
    with pytest.raises(ValueError, match=rf"^{argument} is on device meta but {CHECKED_AGAINST[argument]} is on "
                                         r"device cpu; pass arrays on one device$"):
        call_op(op, "torch", modify=lambda name, value: value.to("meta") if name == argument else value)
    del torch


# --- every public op: a tensor that requires grad is a value ------------------------------------
# Each takes a slice of one 5-D array: ``x`` for 3-d ops, ``x[0]`` for 2-d, ``x[0, 0]`` for 1-d.

SINGLE_INPUT_OPS = {
    "im2col": lambda x: colnn.im2col(x[0], 2, 2),
    "col2im": lambda x: colnn.col2im(x[0, 0, 0], (1, 1, 3, 3), 2, 2),
    "unfold": lambda x: colnn.unfold(x[0], 2),
    "fold": lambda x: colnn.fold(x[0, 0, :1], (3, 3), 2),
    "max_pool1d": lambda x: colnn.max_pool1d(x[0, 0], 2, return_indices=True),
    "max_pool2d": lambda x: colnn.max_pool2d(x[0], 2, return_indices=True),
    "max_pool3d": lambda x: colnn.max_pool3d(x, 2),
    "avg_pool1d": lambda x: colnn.avg_pool1d(x[0, 0], 2),
    "avg_pool2d": lambda x: colnn.avg_pool2d(x[0], 2),
    "avg_pool3d": lambda x: colnn.avg_pool3d(x, 2),
    "lp_pool1d": lambda x: colnn.lp_pool1d(x[0, 0], 2, 2),
    "lp_pool2d": lambda x: colnn.lp_pool2d(x[0], 2, 2),
    "lp_pool3d": lambda x: colnn.lp_pool3d(x, 2, 2),
    "adaptive_avg_pool1d": lambda x: colnn.adaptive_avg_pool1d(x[0, 0], 2),
    "adaptive_avg_pool2d": lambda x: colnn.adaptive_avg_pool2d(x[0], 2),
    "adaptive_avg_pool3d": lambda x: colnn.adaptive_avg_pool3d(x, 2),
    "adaptive_max_pool1d": lambda x: colnn.adaptive_max_pool1d(x[0, 0], 2, return_indices=True),
    "adaptive_max_pool2d": lambda x: colnn.adaptive_max_pool2d(x[0], 2, return_indices=True),
    "adaptive_max_pool3d": lambda x: colnn.adaptive_max_pool3d(x, 2),
}


def assert_values(result, torch):
    for item in result if isinstance(result, tuple) else (result,):
        assert isinstance(item, torch.Tensor)
        assert not item.requires_grad and item.grad_fn is None


@pytest.mark.parametrize("op", [*SINGLE_INPUT_OPS, *OPS])
def test_every_op_takes_a_tensor_that_requires_grad_as_a_value(op):
    torch = pytest.importorskip("torch")

    def requiring_grad(name, value):
        return value.requires_grad_(True) if value.dtype.is_floating_point else value

    if op in OPS:
        result = call_op(op, "torch", modify=requiring_grad)
        expected = call_op(op, "numpy")
    else:
        x = floats(2, 3, 4, 4, 4)
        result = SINGLE_INPUT_OPS[op](torch.asarray(x).requires_grad_(True))
        expected = SINGLE_INPUT_OPS[op](x)
    assert_values(result, torch)
    for got, want in zip(result if isinstance(result, tuple) else (result,),
                         expected if isinstance(expected, tuple) else (expected,)):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)


# --- every layer -------------------------------------------------------------------------------
# name -> (make(to), input shape, forward(layer, x, to)); ``to`` converts the layer's NumPy arrays.

def _plain_forward(layer, x, to):
    return layer.forward(x)


def _unpool_forward(layer, x, to):
    return layer.forward(x, to(np.ones(tuple(x.shape), np.int64)))


def _bn2d(to):
    return colnn.BatchNorm2d(2, dtype=np.float64, like=to(np.zeros(1)))


LAYERS = {
    "MaxPool2d": (lambda to: colnn.MaxPool2d(2), (2, 2, 5, 5), _plain_forward),
    "AvgPool2d": (lambda to: colnn.AvgPool2d(2), (2, 2, 5, 5), _plain_forward),
    "Pooling": (lambda to: colnn.Pooling(2, 2, 2, 1), (2, 2, 5, 5), _plain_forward),
    "Convolution": (lambda to: colnn.Convolution(to(floats(3, 2, 2, 2)), to(floats(3))), (2, 2, 5, 5), _plain_forward),
    "Relu": (lambda to: colnn.Relu(), (2, 2, 5, 5), _plain_forward),
    "Affine": (lambda to: colnn.Affine(to(floats(50, 3)), to(floats(3))), (2, 2, 5, 5), _plain_forward),
    "Sigmoid": (lambda to: colnn.Sigmoid(), (2, 2, 5, 5), _plain_forward),
    "Dropout": (lambda to: colnn.Dropout(0.5, seed=0), (2, 2, 5, 5), _plain_forward),
    "BatchNormalization": (lambda to: colnn.BatchNormalization(to(floats(50)), to(floats(50))), (2, 2, 5, 5),
                           _plain_forward),
    "BatchNorm2d": (_bn2d, (2, 2, 5, 5), _plain_forward),
    "MaxPool1d": (lambda to: colnn.MaxPool1d(2), (2, 2, 5), _plain_forward),
    "MaxPool3d": (lambda to: colnn.MaxPool3d(2), (2, 2, 4, 4, 4), _plain_forward),
    "AvgPool1d": (lambda to: colnn.AvgPool1d(2), (2, 2, 5), _plain_forward),
    "AvgPool3d": (lambda to: colnn.AvgPool3d(2), (2, 2, 4, 4, 4), _plain_forward),
    "LPPool2d": (lambda to: colnn.LPPool2d(2, 2), (2, 2, 5, 5), _plain_forward),
    "AdaptiveAvgPool2d": (lambda to: colnn.AdaptiveAvgPool2d(2), (2, 2, 5, 5), _plain_forward),
    "AdaptiveMaxPool2d": (lambda to: colnn.AdaptiveMaxPool2d(2), (2, 2, 5, 5), _plain_forward),
    "FractionalMaxPool2d": (lambda to: colnn.FractionalMaxPool2d(2, output_size=3, rng=np.random.default_rng(0)),
                            (2, 2, 5, 5), _plain_forward),
    "MaxUnpool2d": (lambda to: colnn.MaxUnpool2d(2), (2, 2, 2, 2), _unpool_forward),
    "Conv1d": (lambda to: colnn.Conv1d(to(floats(3, 2, 2)), to(floats(3))), (2, 2, 5), _plain_forward),
    "Conv2d": (lambda to: colnn.Conv2d(to(floats(3, 2, 2, 2)), to(floats(3))), (2, 2, 5, 5), _plain_forward),
    "Conv3d": (lambda to: colnn.Conv3d(to(floats(3, 2, 2, 2, 2)), to(floats(3))), (2, 2, 4, 4, 4), _plain_forward),
    "ConvTranspose1d": (lambda to: colnn.ConvTranspose1d(to(floats(2, 3, 2)), to(floats(3))), (2, 2, 4),
                        _plain_forward),
    "ConvTranspose2d": (lambda to: colnn.ConvTranspose2d(to(floats(2, 3, 2, 2)), to(floats(3))), (2, 2, 4, 4),
                        _plain_forward),
    "ConvTranspose3d": (lambda to: colnn.ConvTranspose3d(to(floats(2, 3, 2, 2, 2)), to(floats(3))), (2, 2, 3, 3, 3),
                        _plain_forward),
}
# Layers built from two arrays: their names in messages (the second is checked against the first).
# Every layer names its parameters as its constructor does (Conv2d(W, b, ...)).
PARAMETERS = {"Convolution": ("W", "b"), "Affine": ("W", "b"), "BatchNormalization": ("gamma", "beta"),
              **{f"Conv{d}d": ("W", "b") for d in (1, 2, 3)},
              **{f"ConvTranspose{d}d": ("W", "b") for d in (1, 2, 3)}}
# What the input is checked against, as messages call it.
INPUT_REFERENCE = {"Convolution": "W", "Affine": "W", "BatchNormalization": "BatchNormalization's gamma",
                   "BatchNorm2d": "BatchNorm2d's weight", **{f"Conv{d}d": "W" for d in (1, 2, 3)},
                   **{f"ConvTranspose{d}d": "W" for d in (1, 2, 3)}}


def run_layer(name: str, library: str, dout_library: str | None = None, x_library: str | None = None):
    """``(layer, out, dx)``: one forward and backward of ``name`` built in ``library``."""
    make, shape, forward = LAYERS[name]
    to = converter(library)
    layer = make(to)
    out = forward(layer, converter(x_library or library)(floats(*shape)), to)
    dout = floats(*tuple(out.shape))
    return layer, out, layer.backward(converter(dout_library or library)(dout))


@pytest.mark.parametrize("library", ["torch", "array_api_strict"])
@pytest.mark.parametrize("name", LAYERS)
def test_every_backward_takes_a_numpy_dout_to_the_inputs_library(name, library):
    _, _, dx = run_layer(name, library, dout_library="numpy")
    _, _, expected = run_layer(name, "numpy")
    assert type(dx) is type(converter(library)(np.zeros(1)))
    np.testing.assert_allclose(to_numpy(dx), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("library, dout_library", [("numpy", "torch"), ("torch", "array_api_strict")])
@pytest.mark.parametrize("name", LAYERS)
def test_every_backward_refuses_a_dout_of_another_library(name, library, dout_library):
    with pytest.raises(TypeError, match=mixed("dout", dout_library, "the forward's input", library)):
        run_layer(name, library, dout_library=dout_library)


@pytest.mark.parametrize("name", LAYERS)
def test_every_backward_refuses_a_dout_on_another_device(name):
    torch = pytest.importorskip("torch")
    make, shape, forward = LAYERS[name]
    layer = make(torch.asarray)
    out = forward(layer, torch.asarray(floats(*shape)), torch.asarray)
    with pytest.raises(ValueError, match=r"^dout is on device meta but the forward's input is on device cpu"):
        layer.backward(torch.ones(tuple(out.shape), dtype=out.dtype, device="meta"))


@pytest.mark.parametrize("first, second", [("torch", "numpy"), ("numpy", "torch"), ("torch", "array_api_strict")])
@pytest.mark.parametrize("name", PARAMETERS)
def test_a_layers_parameters_are_of_one_library(name, first, second):
    make = LAYERS[name][0]
    first_name, second_name = PARAMETERS[name]
    arrays = iter([converter(first), converter(second)])
    with pytest.raises(TypeError, match=mixed(second_name, second, first_name, first)):
        make(lambda array: next(arrays)(array))


@pytest.mark.parametrize("layer_library, x_library", [("numpy", "torch"), ("torch", "numpy"),
                                                      ("torch", "array_api_strict")])
@pytest.mark.parametrize("name", INPUT_REFERENCE)
def test_a_layer_with_parameters_refuses_an_input_of_another_library(name, layer_library, x_library):
    with pytest.raises(TypeError, match=mixed("x", x_library, INPUT_REFERENCE[name], layer_library)):
        run_layer(name, layer_library, x_library=x_library)


@pytest.mark.parametrize("name", LAYERS)
def test_every_layer_takes_tensors_and_parameters_that_require_grad_as_values(name):
    torch = pytest.importorskip("torch")
    make, shape, forward = LAYERS[name]

    def parameter(array):  # what a PyTorch user's weights are
        tensor = torch.asarray(array)
        return torch.nn.Parameter(tensor) if tensor.dtype.is_floating_point else tensor

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # copying a Parameter once warned about requires_grad
        layer = make(parameter)
        out = forward(layer, torch.asarray(floats(*shape)).requires_grad_(True), parameter)
        dx = layer.backward(torch.asarray(floats(*tuple(out.shape))).requires_grad_(True))
    assert_values((out, dx, *layer.params.values(), *layer.grads.values()), torch)
    _, expected_out, expected_dx = run_layer(name, "numpy")
    np.testing.assert_allclose(out.numpy(), expected_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx.numpy(), expected_dx, rtol=1e-12, atol=1e-12)


# --- messages ----------------------------------------------------------------------------------


def test_a_type_is_named_as_a_reader_writes_it():
    assert type_name(np.zeros(1)) == "a numpy.ndarray"
    assert type_name([1.0]) == "a list"
    torch = pytest.importorskip("torch")
    assert type_name(torch.zeros(1)) == "a torch.Tensor"
    xs = pytest.importorskip("array_api_strict")
    assert type_name(xs.zeros(1)) == "an array_api_strict Array"
    jnp = pytest.importorskip("jax.numpy")
    assert type_name(jnp.zeros(1)) == "a jax.Array"


@pytest.mark.parametrize("call", [
    lambda to: colnn.conv2d(to(floats(1, 2, 5, 5)), floats(3, 2, 2, 2), strategy="bogus"),
    lambda to: colnn.conv1d(to(floats(1, 2, 5)), floats(3, 2, 2), strategy="bogus"),
    lambda to: colnn.conv_transpose2d(to(floats(1, 2, 4, 4)), floats(2, 3, 2, 2), strategy="bogus"),
    lambda to: colnn.max_pool2d(to(floats(1, 2, 5, 5)), 2, strategy="bogus"),
    lambda to: colnn.im2col(to(floats(1, 2, 5, 5)), 2, 2, strategy="bogus"),
], ids=["conv2d", "conv1d", "conv_transpose2d", "max_pool2d", "im2col"])
@pytest.mark.parametrize("library", ["torch", "array_api_strict"])
def test_a_bogus_strategy_is_named_before_anything_about_libraries(call, library):
    with pytest.raises(ValueError, match=r"^strategy must be one of \[None, .*'im2col'.*\], got 'bogus'$"):
        call(converter(library))


def test_a_numpy_only_strategy_names_the_array_as_a_reader_writes_it():
    xs = pytest.importorskip("array_api_strict")
    with pytest.raises(ValueError, match=r"^strategy 'numba' runs NumPy arrays only; an array_api_strict Array runs"):
        colnn.max_pool2d(xs.asarray(floats(1, 1, 4, 4)), 2, strategy="numba")


def test_same_library_compares_devices_by_the_library_s_own_device(monkeypatch):
    # Two CPU tensors that report different devices stand in for CPU and CUDA.
    torch = pytest.importorskip("torch")
    import array_api_compat

    a, b = torch.zeros(2), torch.zeros(2)
    devices = {id(a): "cuda:0", id(b): "cpu"}
    monkeypatch.setattr(array_api_compat, "device", lambda x: devices[id(x)])
    with pytest.raises(ValueError, match=r"^weight is on device cuda:0 but input is on device cpu"):
        same_library(a, "weight", b, "input")


# --- mixed float dtypes promote as in NumPy, on every library -------------------------------------


@pytest.mark.parametrize("library", ["numpy", "torch", "array_api_strict"])
@pytest.mark.parametrize("op", [op for op in OPS if op.startswith("conv")])
def test_a_float32_input_with_float64_weights_computes_in_float64(op, library):
    function, arrays, options = OPS[op]
    to = converter(library)
    mixed = {name: to(array.astype(np.float32) if name == "input" else array) for name, array in arrays.items()}
    result = function(**mixed, **options)
    # The oracle: NumPy on the float32 input cast up to float64.
    expected = function(**{name: array.astype(np.float32).astype(np.float64) if name == "input" else array
                           for name, array in arrays.items()}, **options)
    assert "float64" in str(result.dtype)
    np.testing.assert_allclose(to_numpy(result), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("library", ["numpy", "torch", "array_api_strict"])
@pytest.mark.parametrize("name", ["Convolution", "Affine", "Conv2d", "ConvTranspose2d"])
def test_a_layer_of_float64_weights_promotes_a_float32_input(name, library):
    make, shape, forward = LAYERS[name]
    to = converter(library)
    x = floats(*shape).astype(np.float32)
    out = forward(make(to), to(x), to)
    assert "float64" in str(out.dtype)
    np.testing.assert_allclose(to_numpy(out), forward(make(np.asarray), x.astype(np.float64), np.asarray),
                               rtol=1e-12, atol=1e-12)


# --- NumPy moved into another library: any byte order, read-only or broadcast, never narrowed --------


def _swapped(array):
    return array.astype(array.dtype.newbyteorder("S"))


def _read_only(array):
    array = array.copy()
    array.flags.writeable = False
    return array


def _broadcast(array):
    # Every test array here is constant, so a broadcast of its first value holds the same values.
    return np.broadcast_to(array.reshape(-1)[0], array.shape)


ODD_NUMPY = {"non-native byte order": _swapped, "read-only": _read_only, "broadcast": _broadcast}


@pytest.fixture
def jax_without_x64():
    """JAX with its default 32-bit types (other tests turn x64 on for the whole session); restored after."""
    jax = pytest.importorskip("jax", reason="needs jax (pip install colnn[bench])")
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    yield jax
    jax.config.update("jax_enable_x64", before)


def _library_converter(library: str):
    return pytest.importorskip("jax.numpy").asarray if library == "jax" else converter(library)


@pytest.mark.parametrize("odd", ODD_NUMPY)
@pytest.mark.parametrize("library", ["torch", "jax", "array_api_strict"])
@pytest.mark.parametrize("op, argument", [(op, argument) for op, argument in OP_ARGUMENTS if argument in MAY_BE_NUMPY])
def test_numpy_indices_and_samples_of_any_layout_move_without_error_or_warning(op, argument, library, odd):
    to = _library_converter(library)
    function, arrays, options = OPS[op]
    moved = {name: ODD_NUMPY[odd](array) if name == argument else to(array) for name, array in arrays.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PyTorch's "The given NumPy array is not writable" included
        result = function(**moved, **options)
    np.testing.assert_allclose(to_numpy(result), call_op(op, "numpy"), rtol=1e-6)


@pytest.mark.parametrize("odd", ODD_NUMPY)
@pytest.mark.parametrize("library", ["torch", "array_api_strict"])
@pytest.mark.parametrize("name", LAYERS)
def test_every_backward_takes_a_numpy_dout_of_any_layout(name, library, odd):
    make, shape, forward = LAYERS[name]
    to = converter(library)
    x = floats(*shape)
    layer, oracle = make(to), make(np.asarray)
    out = forward(layer, to(x), to)
    forward(oracle, x, np.asarray)
    dout = np.full(tuple(out.shape), 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dx = layer.backward(ODD_NUMPY[odd](dout))
    np.testing.assert_allclose(to_numpy(dx), oracle.backward(dout), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("offset", [2**31, 2**32])
@pytest.mark.parametrize("op", [op for op in OPS if op.startswith("max_unpool")])
def test_numpy_indices_beyond_jax_s_int32_are_refused_with_the_caller_s_value(op, offset, jax_without_x64):
    jnp = jax_without_x64.numpy
    function, arrays, options = OPS[op]
    indices = arrays["indices"] + offset  # all 1 + offset: an int32 cast would wrap them into range
    message = rf"^indices holds {1 + offset}, which jax.numpy stores as int32 .*jax_enable_x64"
    with pytest.raises(ValueError, match=message):
        function(jnp.asarray(arrays["input"]), indices, **options)


def test_numpy_labels_beyond_jax_s_int32_are_refused_not_wrapped(jax_without_x64):
    jnp = jax_without_x64.numpy
    # 2**32 would wrap to label 0, a valid one: the loss would be silently wrong.
    with pytest.raises(ValueError, match=rf"^t holds {2**32}, which jax.numpy stores as int32"):
        colnn.SoftmaxWithLoss().forward(jnp.zeros((2, 3)), np.array([1, 2**32]))


# --- SoftmaxWithLoss: labels under the one-library rule --------------------------------------------


@pytest.mark.parametrize("x_library, t_library", [("torch", "array_api_strict"), ("array_api_strict", "torch"),
                                                  ("numpy", "torch")])
def test_labels_of_another_library_than_the_scores_are_a_type_error_naming_t(x_library, t_library):
    x, t = converter(x_library)(floats(2, 3)), converter(t_library)(np.array([0, 2]))
    with pytest.raises(TypeError, match=rf"^t is {NAMES[t_library]} but x is {NAMES[x_library]}; "):
        colnn.SoftmaxWithLoss().forward(x, t)


def test_labels_on_another_device_than_the_scores_are_a_value_error_naming_both_devices():
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match=r"^t is on device meta but x is on device cpu; pass arrays on one device$"):
        colnn.SoftmaxWithLoss().forward(torch.zeros(2, 3), torch.tensor([0, 2], device="meta"))


@pytest.mark.parametrize("labels", [[0, 2], np.array([0, 2], ">i8"), _read_only(np.array([0, 2]))],
                         ids=["list", "non-native", "read-only"])
@pytest.mark.parametrize("library", ["torch", "array_api_strict"])
def test_numpy_and_list_labels_move_to_the_scores_library(library, labels):
    to, x = converter(library), floats(2, 3)
    layer, oracle = colnn.SoftmaxWithLoss(), colnn.SoftmaxWithLoss()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = layer.forward(to(x), labels)
    assert loss == pytest.approx(oracle.forward(x, np.array([0, 2])), rel=1e-12)
    assert type(layer.backward()) is type(to(np.zeros(1)))


# --- a list or Python scalar takes the dtype of the array it is checked against (NEP 50) -------------


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("op", [op for op in OPS if op.startswith("conv")])
def test_a_list_bias_takes_the_weight_s_dtype(op, library):
    function, arrays, options = OPS[op]
    to = converter(library)
    single = {name: array.astype(np.float32) for name, array in arrays.items()}
    result = function(to(single["input"]), to(single["weight"]), arrays["bias"].tolist(), **options)
    # The oracle: the same bias as a float32 array, as NumPy 2 reads Python floats beside float32.
    expected = function(to(single["input"]), to(single["weight"]), to(arrays["bias"].astype(np.float32)), **options)
    assert "float32" in str(result.dtype)
    np.testing.assert_array_equal(to_numpy(result), to_numpy(expected))


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("name", ["Convolution", "Conv2d", "ConvTranspose2d"])
def test_a_layer_with_a_list_bias_keeps_the_weight_s_dtype_like_the_function(name, library):
    make, shape, forward = LAYERS[name]
    to = converter(library)
    weight = make(np.asarray).W.astype(np.float32)
    layer = type(make(np.asarray))(to(weight), [0.1, 0.2, 0.3])
    out = forward(layer, to(floats(*shape).astype(np.float32)), to)
    assert "float32" in str(out.dtype)


# --- a dtype the namespace lacks is refused, never substituted -----------------------------------------


def test_batchnorm2d_refuses_a_dtype_jax_lacks_without_x64(jax_without_x64):
    jnp = jax_without_x64.numpy
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not JAX's "Explicitly requested dtype float64" warning
        with pytest.raises(TypeError, match=r"^dtype float64 is not a dtype of jax.numpy.*jax_enable_x64"):
            colnn.BatchNorm2d(3, dtype=np.float64, like=jnp.zeros((1, 3, 2, 2)))


def test_batchnorm2d_refuses_a_dtype_array_api_strict_lacks():
    strict = pytest.importorskip("array_api_strict")
    with pytest.raises(TypeError, match=r"^dtype float16 is not a dtype of array_api_strict"):
        colnn.BatchNorm2d(3, dtype=np.float16, like=strict.zeros((1, 3, 2, 2)))


@pytest.mark.parametrize("name", ["MaxPool2d", "MaxPool1d", "AdaptiveMaxPool2d", "Relu"])
def test_an_integer_forward_s_gradient_follows_jax_s_default_float_without_a_warning(name, jax_without_x64):
    # The gradient of an integer forward is float64 on NumPy (gradient_dtype); JAX without x64
    # has none, so it answers its default float, as jnp.asarray does for float64 data.
    jnp = jax_without_x64.numpy
    make, shape, forward = LAYERS[name]
    x = np.arange(math.prod(shape)).reshape(shape) % 7
    layer, oracle = make(jnp.asarray), make(np.asarray)
    out = forward(layer, jnp.asarray(x, dtype=jnp.int32), jnp.asarray)
    forward(oracle, x, np.asarray)
    dout = np.arange(math.prod(tuple(out.shape))).reshape(tuple(out.shape)) % 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not JAX's "Explicitly requested dtype float64" warning
        dx = layer.backward(jnp.asarray(dout, dtype=jnp.int32))
    assert dx.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(dx), oracle.backward(dout).astype(np.float32))


def test_batchnorm2d_takes_float16_on_torch_though_the_standard_lacks_it():
    torch = pytest.importorskip("torch")
    layer = colnn.BatchNorm2d(3, dtype=np.float16, like=torch.zeros(1))
    assert layer.weight.dtype == torch.float16


def test_cpu_numpy_views_share_memory_and_give_up_on_any_array_without_a_view():
    torch = pytest.importorskip("torch")
    from colnn.core.namespace import array_namespace, cpu_numpy_views, device_of, is_foreign_array

    a, b = torch.arange(6.0), torch.ones(3)
    views = cpu_numpy_views({"a": a, "b": b})
    assert set(views) == {"a", "b"}
    a[0] = 42.0  # a view, not a copy: the tensor's write shows through
    assert views["a"][0] == 42.0 and np.array_equal(views["b"], np.ones(3, np.float32))
    assert cpu_numpy_views({"a": a, "bf16": torch.ones(2, dtype=torch.bfloat16)}) is None  # NumPy has no bfloat16
    assert is_foreign_array(a) and not is_foreign_array(np.ones(2)) and not is_foreign_array(torch.Generator())
    assert array_namespace(np.ones(2), np.ones(1)) is np and device_of(np.ones(2)) == "cpu"
