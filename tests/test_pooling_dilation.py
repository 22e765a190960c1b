"""Dilated average and LP pooling, ONNX's ``AveragePool`` (opset 19) and ``LpPool`` (opset 18): PyTorch has none.

The oracle is ONNX's own reference implementation (``onnx.reference.ReferenceEvaluator``)
run on a one-node model: the divisor with and without ``count_include_pad``,
``ceil_mode``'s last window, 1, 2 and 3 spatial axes, both strategies, the
layers and the Dask path. Where ONNX's reference shifts its windows (its
``ceil_mode`` pads the input by an extra 2 cells or more, half of them in
front), ONNX Runtime does not, and colnn follows ONNX Runtime there.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import colnn
from colnn.core.window import output_size

onnx = pytest.importorskip("onnx", reason="needs onnx (pip install colnn[bench])")
from onnx import TensorProto, helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402


def _model(op: str, shape: tuple[int, ...], ndim: int, kernel: int, stride: int, padding: int, dilation: int,
           ceil_mode: bool, element: int = TensorProto.DOUBLE, **attributes: int):
    node = helper.make_node(op, ["x"], ["y"], kernel_shape=[kernel] * ndim, strides=[stride] * ndim,
                            pads=[padding] * (2 * ndim), dilations=[dilation] * ndim, ceil_mode=int(ceil_mode),
                            **attributes)
    graph = helper.make_graph([node], "pool", [helper.make_tensor_value_info("x", element, list(shape))],
                              [helper.make_tensor_value_info("y", element, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


def _shifts_windows(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> bool:
    """Whether ONNX's reference pads 2 cells or more for ``ceil_mode``, and so moves every window left."""
    out = output_size(size, kernel, stride, padding, dilation, ceil_mode)
    return (out - 1) * stride + dilation * (kernel - 1) + 1 - size - 2 * padding >= 2


SIZES = {1: (9,), 2: (7, 6), 3: (5, 6, 4)}
SETTINGS = [setting for setting in itertools.product((2, 3), (1, 2, 3), (0, 1), (2, 3), (False, True))
            if setting[2] <= setting[0] // 2]  # kernel, stride, padding, dilation, ceil_mode


def _settings(ndim: int) -> list[tuple]:
    return [(k, s, p, d, ceil) for k, s, p, d, ceil in SETTINGS
            if all(output_size(n, k, s, p, d, ceil) >= 1 for n in SIZES[ndim])
            and not any(_shifts_windows(n, k, s, p, d, ceil) for n in SIZES[ndim])]


@pytest.mark.parametrize("strategy", [None, "im2col"])
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_dilated_average_pooling_is_onnxs(ndim, strategy):
    x = np.random.default_rng(ndim).standard_normal((2, 3, *SIZES[ndim]))
    pool = getattr(colnn, f"avg_pool{ndim}d")
    for kernel, stride, padding, dilation, ceil_mode in _settings(ndim):
        for count_include_pad in (False, True):
            model = _model("AveragePool", x.shape, ndim, kernel, stride, padding, dilation, ceil_mode,
                           count_include_pad=int(count_include_pad))
            expected = ReferenceEvaluator(model).run(None, {"x": x})[0]
            got = pool(x, kernel, stride, padding, ceil_mode, count_include_pad, dilation=dilation, strategy=strategy)
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12,
                                       err_msg=f"k={kernel} s={stride} p={padding} d={dilation} ceil={ceil_mode} "
                                               f"count_include_pad={count_include_pad}")


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_dilated_lp_pooling_is_onnxs(ndim):
    # ONNX sums |x|**p where PyTorch sums x**p: on non-negative input they are one definition.
    x = np.abs(np.random.default_rng(ndim).standard_normal((2, 3, *SIZES[ndim])))
    pool = getattr(colnn, f"lp_pool{ndim}d")
    for kernel, stride, padding, dilation, ceil_mode in _settings(ndim):
        if padding:
            continue  # lp_pool has no padding (PyTorch's signature)
        for norm in (1, 2, 3):
            # A ceil_mode window clipped at the end is scaled by the kernel's size over its own, in both.
            model = _model("LpPool", x.shape, ndim, kernel, stride, 0, dilation, ceil_mode, p=norm)
            expected = ReferenceEvaluator(model).run(None, {"x": x})[0]
            got = pool(x, norm, kernel, stride, ceil_mode, dilation=dilation)
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12,
                                       err_msg=f"p={norm} k={kernel} s={stride} d={dilation} ceil={ceil_mode}")


def test_where_onnxs_reference_shifts_its_windows_colnn_is_onnx_runtimes():
    ort = pytest.importorskip("onnxruntime", reason="needs onnxruntime (pip install colnn[bench])")
    x = np.random.default_rng(5).standard_normal((1, 2, 7, 7)).astype(np.float32)  # ONNX Runtime's dtype here
    checked = 0
    for kernel, stride, padding, dilation, ceil_mode in SETTINGS:
        if not (ceil_mode and _shifts_windows(7, kernel, stride, padding, dilation, ceil_mode)):
            continue
        for count_include_pad in (False, True):
            model = _model("AveragePool", x.shape, 2, kernel, stride, padding, dilation, ceil_mode,
                           TensorProto.FLOAT, count_include_pad=int(count_include_pad))
            session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
            expected = session.run(None, {"x": x})[0]
            got = colnn.avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad, dilation=dilation)
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)  # float32 sums
            checked += 1
    assert checked > 0


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_dilated_average_pooling_layers_gradients_and_dask_agree(ndim):
    x = np.random.default_rng(ndim).standard_normal((2, 3, *SIZES[ndim]))
    function = getattr(colnn, f"avg_pool{ndim}d")
    layer = getattr(colnn, f"AvgPool{ndim}d")(2, 1, 1, True, False, dilation=2)
    expected = function(x, 2, 1, 1, True, False, dilation=2)
    np.testing.assert_array_equal(layer.forward(x), expected)
    # The gradient is the adjoint of the forward: <avg(x), g> == <x, avg_backward(g)>.
    grad = np.random.default_rng(0).standard_normal(expected.shape)
    np.testing.assert_allclose(np.vdot(expected, grad), np.vdot(x, layer.backward(grad)), rtol=1e-12)
    reference = getattr(colnn, f"AvgPool{ndim}d")(2, 1, 1, True, False, dilation=2, strategy="im2col")
    np.testing.assert_allclose(reference.forward(x), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(reference.backward(grad), layer.backward(grad), rtol=1e-12, atol=1e-12)
    da = pytest.importorskip("dask.array")
    lazy = function(da.from_array(x, chunks=(1, 2, *(3,) * ndim)), 2, 1, 1, True, False, dilation=2)
    np.testing.assert_allclose(lazy.compute(scheduler="sync"), expected, rtol=1e-12, atol=1e-12)


def test_dilation_is_keyword_only_and_checked_like_every_window_argument():
    x = np.ones((1, 1, 6))
    with pytest.raises(TypeError):
        colnn.avg_pool1d(x, 2, 1, 0, False, True, 2)  # a seventh positional argument
    with pytest.raises(ValueError, match="dilation must be >= 1, got 0"):
        colnn.lp_pool1d(x, 2, 2, dilation=0)
    with pytest.raises(TypeError, match="dilation must be an int"):
        colnn.AvgPool1d(2, dilation=1.5)
