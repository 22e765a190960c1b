"""Any array library: the public ops on Array API namespaces other than NumPy.

Every case runs the same inputs through the NumPy path (the oracle here; it is
itself held to PyTorch by the other test modules) and through the caller's
namespace: ``array_api_strict`` (which rejects anything outside the standard),
PyTorch CPU tensors and JAX arrays. Results must be of the input's kind, and
equal bit for bit for max-type outputs, indices and im2col-type copies (to
rounding for sums and products).
"""

from __future__ import annotations

import numpy as np
import pytest

import colnn

NAMESPACES = ("array_api_strict", "torch", "jax")


@pytest.fixture(params=NAMESPACES)
def lib(request):
    """``(to_library, to_numpy, is_of_library)`` for one namespace, or a skip if it is absent."""
    name = request.param
    if name == "array_api_strict":
        xs = pytest.importorskip("array_api_strict")
        return name, xs.asarray, np.asarray, lambda a: type(a) is type(xs.asarray(0))
    if name == "torch":
        torch = pytest.importorskip("torch")
        return name, torch.asarray, lambda a: a.numpy(), lambda a: isinstance(a, torch.Tensor)
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)  # float64 stays float64, as in NumPy
    import jax.numpy as jnp

    return name, jnp.asarray, np.asarray, lambda a: isinstance(a, jax.Array)


def check_same(got, expected, lib, *, exact: bool) -> None:
    _, _, to_numpy, is_of_library = lib
    assert is_of_library(got), f"expected the input's kind of array, got {type(got)}"
    got = to_numpy(got)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    if exact:
        np.testing.assert_array_equal(got, expected)
    else:
        tolerance = 1e-12 if expected.dtype == np.float64 else 1e-5
        np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance)


def with_specials(rng, shape, dtype=np.float64):
    """Random data with a NaN, an inf, a -inf and a tie, placed at random."""
    x = rng.standard_normal(shape).astype(dtype)
    flat = x.reshape(-1)
    cells = rng.choice(flat.size, size=5, replace=False)
    flat[cells[0]], flat[cells[1]], flat[cells[2]] = np.nan, np.inf, -np.inf
    flat[cells[4]] = flat[cells[3]]
    return x


GEOMETRIES = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(3, 2), stride=(1, 2), padding=(1, 0), dilation=(2, 1), ceil_mode=True),
]


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool2d_values_and_indices(lib, rng, geometry, dtype):
    x = with_specials(rng, (2, 3, 7, 6), dtype)
    out, indices = colnn.max_pool2d(lib[1](x), **geometry, return_indices=True)
    expected_out, expected_indices = colnn.max_pool2d(x, **geometry, return_indices=True)
    check_same(out, expected_out, lib, exact=True)
    check_same(indices, expected_indices, lib, exact=True)


@pytest.mark.parametrize("dtype", [np.int32, np.uint8])
def test_max_pool2d_of_integers(lib, rng, dtype):
    x = rng.integers(0, 5, size=(1, 2, 5, 5)).astype(dtype)  # many ties
    out, indices = colnn.max_pool2d(lib[1](x), 3, 1, 1, return_indices=True)
    expected_out, expected_indices = colnn.max_pool2d(x, 3, 1, 1, return_indices=True)
    check_same(out, expected_out, lib, exact=True)
    check_same(indices, expected_indices, lib, exact=True)


@pytest.mark.parametrize("geometry", GEOMETRIES[:2])
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool2d(lib, rng, geometry, count_include_pad):
    x = rng.standard_normal((2, 3, 7, 6))
    out = colnn.avg_pool2d(lib[1](x), **geometry, count_include_pad=count_include_pad)
    check_same(out, colnn.avg_pool2d(x, **geometry, count_include_pad=count_include_pad), lib, exact=False)


def test_im2col_col2im_unfold_fold(lib, rng):
    x = rng.standard_normal((2, 3, 6, 5))
    to_lib = lib[1]
    col = colnn.im2col(to_lib(x), 3, 2, 2, 1)
    check_same(col, colnn.im2col(x, 3, 2, 2, 1), lib, exact=True)
    check_same(colnn.col2im(col, x.shape, 3, 2, 2, 1),
               colnn.col2im(np.asarray(colnn.im2col(x, 3, 2, 2, 1)), x.shape, 3, 2, 2, 1), lib, exact=True)
    blocks = colnn.unfold(to_lib(x), (2, 3), dilation=(1, 2), padding=1, stride=(2, 1))
    expected_blocks = colnn.unfold(x, (2, 3), dilation=(1, 2), padding=1, stride=(2, 1))
    check_same(blocks, expected_blocks, lib, exact=True)
    check_same(colnn.fold(blocks, (6, 5), (2, 3), dilation=(1, 2), padding=1, stride=(2, 1)),
               colnn.fold(expected_blocks, (6, 5), (2, 3), dilation=(1, 2), padding=1, stride=(2, 1)), lib, exact=True)


@pytest.mark.parametrize("groups", [1, 2])
def test_conv2d(lib, rng, groups):
    x = rng.standard_normal((2, 4, 7, 6))
    weight = rng.standard_normal((6, 4 // groups, 3, 3))
    bias = rng.standard_normal(6)
    to_lib = lib[1]
    out = colnn.conv2d(to_lib(x), to_lib(weight), to_lib(bias), stride=2, padding=1, groups=groups)
    check_same(out, colnn.conv2d(x, weight, bias, stride=2, padding=1, groups=groups), lib, exact=False)


def test_layers_forward_and_backward(lib, rng):
    to_lib = lib[1]
    x = with_specials(rng, (2, 3, 6, 6))
    x[np.isnan(x)] = 0.5  # a NaN's gradient route is tested by the functions above
    dout = rng.standard_normal((2, 3, 3, 3))
    for make in (lambda: colnn.MaxPool2d(2), lambda: colnn.AvgPool2d(3, 2, 1)):
        layer, oracle = make(), make()
        out = layer.forward(to_lib(x))
        expected = oracle.forward(x)
        check_same(out, expected, lib, exact=isinstance(layer, colnn.MaxPool2d))
        dout_here = dout[:, :, :expected.shape[2], :expected.shape[3]]
        check_same(layer.backward(to_lib(dout_here)), oracle.backward(dout_here), lib, exact=False)


def test_convolution_layer_keeps_the_weights_namespace(lib, rng):
    to_lib = lib[1]
    weight, bias = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    x, dout = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((2, 4, 5, 5))
    layer, oracle = colnn.Convolution(to_lib(weight), to_lib(bias), pad=1), colnn.Convolution(weight, bias, pad=1)
    check_same(layer.forward(to_lib(x)), oracle.forward(x), lib, exact=False)
    check_same(layer.backward(to_lib(dout)), oracle.backward(dout), lib, exact=False)
    check_same(layer.dW, oracle.dW, lib, exact=False)
    check_same(layer.db, oracle.db, lib, exact=False)


def test_bad_input_raises_as_for_numpy(lib):
    to_lib = lib[1]
    with pytest.raises(ValueError, match="kernel_size"):
        colnn.max_pool2d(to_lib(np.ones((1, 1, 4, 4))), 0)
    with pytest.raises(ValueError, match="input"):
        colnn.max_pool2d(to_lib(np.ones((4, 4))), 2)
    with pytest.raises(TypeError, match="input"):
        colnn.avg_pool2d(to_lib(np.ones((1, 1, 4, 4), np.int32)), 2)


def test_torch_tensors_that_require_grad_are_taken_as_values(rng):
    torch = pytest.importorskip("torch")
    x = torch.tensor(rng.standard_normal((1, 2, 4, 4)), requires_grad=True)
    out = colnn.max_pool2d(x, 2)
    assert isinstance(out, torch.Tensor)
    np.testing.assert_array_equal(out.detach().numpy(), colnn.max_pool2d(x.detach().numpy(), 2))


def test_no_library_is_imported_unless_its_arrays_are_passed():
    import subprocess
    import sys

    code = ("import sys, numpy as np, colnn; colnn.max_pool2d(np.ones((1, 1, 2, 2)), 2, strategy='im2col'); "
            "print(sorted(m for m in ('torch', 'jax', 'cupy', 'array_api_strict') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
