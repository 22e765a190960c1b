"""Every public function and layer given a Dask array: a lazy Dask array equal to NumPy's answer, or a TypeError.

Never a silent compute (issue 22, item 4): a call may only build a graph. The
scheduler is replaced by one that fails while the call runs, so anything that
computes (``np.asarray`` of a Dask array, ``.compute()``) fails the test; the
result is then computed with the synchronous scheduler and compared with the
NumPy path's answer on the same data (the oracle). What cannot be lazy raises
a TypeError that names the op and what to do instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import colnn

da = pytest.importorskip("dask.array", reason="needs dask (pip install colnn[dask])")
dask = pytest.importorskip("dask")


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a Dask graph was computed while the call ran")


@contextlib.contextmanager
def nothing_computed():
    with dask.config.set(scheduler=_refuse):
        yield


def _compute(value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(_compute(item) for item in value)
    return value.compute(scheduler="sync") if isinstance(value, da.Array) else value


def _lazy_equals_numpy(call: Callable[[Any], Any], x: np.ndarray, chunks: Any) -> None:
    """``call`` of a Dask ``x`` is lazy and equals ``call`` of ``x`` (to float64 rounding for sums)."""
    with nothing_computed():
        lazy = call(da.from_array(x, chunks=chunks))
    results = lazy if isinstance(lazy, tuple) else (lazy,)
    assert all(isinstance(result, da.Array) for result in results), [type(result) for result in results]
    expected = call(x)
    expected = expected if isinstance(expected, tuple) else (expected,)
    for got, want in zip(_compute(results), expected):
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


RNG = np.random.default_rng(0)
X = {d: RNG.standard_normal((4, 3, *(7, 6, 5)[:d])) for d in (1, 2, 3)}
CHUNKS = {d: (2, 2, *(3,) * d) for d in (1, 2, 3)}
SAMPLES = {d: RNG.random((4, 3, d)) for d in (2, 3)}


def _functions() -> list[tuple[str, int, Callable[[Any], Any]]]:
    cases = []
    for d in (1, 2, 3):
        weight, transposed = RNG.standard_normal((2, 3, *(2,) * d)), RNG.standard_normal((3, 2, *(2,) * d))
        cases += [
            ("max_pool", d, lambda a, d=d: getattr(colnn, f"max_pool{d}d")(a, 2, 1, 1, return_indices=True)),
            ("avg_pool", d, lambda a, d=d: getattr(colnn, f"avg_pool{d}d")(a, 3, 2, 1, True, False, dilation=1)),
            ("avg_pool dilated", d, lambda a, d=d: getattr(colnn, f"avg_pool{d}d")(a, 2, 1, dilation=2)),
            ("lp_pool", d, lambda a, d=d: getattr(colnn, f"lp_pool{d}d")(abs(a), 2, 2, ceil_mode=True)),
            ("adaptive_avg_pool", d, lambda a, d=d: getattr(colnn, f"adaptive_avg_pool{d}d")(a, 2)),
            ("adaptive_max_pool", d, lambda a, d=d: getattr(colnn, f"adaptive_max_pool{d}d")(a, 2, True)),
            ("conv", d, lambda a, d=d, w=weight: getattr(colnn, f"conv{d}d")(a, w, None, 1, 1)),
            ("conv_transpose", d, lambda a, d=d, w=transposed: getattr(colnn, f"conv_transpose{d}d")(a, w, stride=2)),
            ("unfold", d, lambda a, d=d: colnn.unfold(a, (2,) * d, padding=(1,) * d)),
            ("max_unpool", d, lambda a, d=d: _unpool(a, d)),
        ]
    for d in (2, 3):
        cases.append(("fractional_max_pool", d, lambda a, d=d: getattr(colnn, f"fractional_max_pool{d}d")(
            a, 2, output_size=2, return_indices=True, random_samples=SAMPLES[d])))
    return cases


def _unpool(a: Any, d: int) -> Any:
    pooled, indices = getattr(colnn, f"max_pool{d}d")(a, 2, return_indices=True)
    return getattr(colnn, f"max_unpool{d}d")(pooled, indices, 2, output_size=a.shape[2:])


@pytest.mark.parametrize(("name", "ndim", "call"), _functions(), ids=[f"{n}{d}d" for n, d, _ in _functions()])
def test_every_function_is_lazy_and_equals_numpy(name, ndim, call):
    _lazy_equals_numpy(call, X[ndim], CHUNKS[ndim])


def test_fold_col2im_and_im2col_are_lazy_and_equal_numpy():
    x = X[2]
    blocks = colnn.unfold(x, 3, padding=1, stride=2)
    _lazy_equals_numpy(lambda a: colnn.fold(a, x.shape[2:], 3, padding=1, stride=2), blocks, (2, 9, 5))
    col = colnn.im2col(x, 3, 2, stride=2, pad=1)
    _lazy_equals_numpy(lambda a: colnn.col2im(a, x.shape, 3, 2, stride=2, pad=1), col, (7, 4))
    _lazy_equals_numpy(lambda a: colnn.im2col(a, 3, 2, stride=2, pad=1, pad_value=-np.inf), x, (2, 2, 3, 3))
    volume = X[3]
    cells = colnn.unfold(volume, (2, 2, 2))
    _lazy_equals_numpy(lambda a: colnn.fold(a, volume.shape[2:], 2), cells, (2, 6, 7))


def _layers() -> list[tuple[str, Callable[[], Any], int]]:
    cases = []
    for d in (1, 2, 3):
        cases += [
            (f"MaxPool{d}d", lambda d=d: getattr(colnn, f"MaxPool{d}d")(2, 1, 1), d),
            (f"AvgPool{d}d", lambda d=d: getattr(colnn, f"AvgPool{d}d")(3, 2, 1, dilation=1), d),
            (f"LPPool{d}d", lambda d=d: getattr(colnn, f"LPPool{d}d")(1, 2), d),
            (f"AdaptiveAvgPool{d}d", lambda d=d: getattr(colnn, f"AdaptiveAvgPool{d}d")(2), d),
            (f"AdaptiveMaxPool{d}d", lambda d=d: getattr(colnn, f"AdaptiveMaxPool{d}d")(2), d),
            (f"Conv{d}d", lambda d=d: getattr(colnn, f"Conv{d}d")(RNG.standard_normal((2, 3, *(2,) * d)), 0.5), d),
            (f"ConvTranspose{d}d", lambda d=d: getattr(colnn, f"ConvTranspose{d}d")(
                RNG.standard_normal((3, 2, *(2,) * d)), np.zeros(2), stride=2), d),
        ]
    cases += [("Convolution", lambda: colnn.Convolution(RNG.standard_normal((2, 3, 3, 3)), 0, pad=1), 2),
              ("Pooling", lambda: colnn.Pooling(2, 2, 2), 2), ("Relu", colnn.Relu, 2), ("Sigmoid", colnn.Sigmoid, 2),
              ("Affine", lambda: colnn.Affine(RNG.standard_normal((3 * 7 * 6, 5)), np.zeros(5)), 2),
              ("Dropout eval", lambda: _Eval(colnn.Dropout(0.25)), 2),
              ("BatchNorm2d eval", lambda: _Eval(colnn.BatchNorm2d(3, dtype=np.float64)), 2)]
    return cases


class _Eval:
    """A mode layer's evaluation forward (``forward(x, train_flg=False)``) and its backward."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer

    def forward(self, x: Any) -> Any:
        return self.layer.forward(x, False)

    def backward(self, dout: Any) -> Any:
        return self.layer.backward(dout)


@pytest.mark.parametrize(("name", "make", "ndim"), _layers(), ids=[case[0] for case in _layers()])
def test_every_layer_forward_is_lazy_and_equals_numpy_and_its_backward_refuses(name, make, ndim):
    layer = make()
    x = X[ndim]
    _lazy_equals_numpy(layer.forward, x, CHUNKS[ndim])
    if name not in ("Affine", "BatchNorm2d eval"):  # they take batches only
        _lazy_equals_numpy(layer.forward, x[0], x[0].shape)  # one sample, unbatched
    layer.forward(da.from_array(x))
    with pytest.raises(RuntimeError, match=r"backward after a forward on a Dask array.*compute"):
        layer.backward(np.ones(1))


def test_a_layers_backward_after_a_lazy_forward_says_what_to_do():
    layer = colnn.MaxPool2d(2)
    layer.forward(da.from_array(X[2]))
    with pytest.raises(RuntimeError, match=r"MaxPool2d.backward after a forward on a Dask array.*x.compute\(\)"):
        layer.backward(np.ones((4, 3, 3, 3)))


@pytest.mark.parametrize(("name", "call"), [
    ("SoftmaxWithLoss", lambda a: colnn.SoftmaxWithLoss().forward(a[:, :, 0, 0], np.zeros(4, int))),
    ("Dropout", lambda a: colnn.Dropout(0.5).forward(a)),
    ("BatchNorm2d", lambda a: colnn.BatchNorm2d(3, dtype=np.float64).forward(a)),
    ("BatchNormalization", lambda a: colnn.BatchNormalization(np.ones(126), np.zeros(126)).forward(a)),
    ("conv2d's weight", lambda a: colnn.conv2d(X[2], a)),
    ("a layer's weight", lambda a: colnn.Conv2d(a, 0.0)),
])
def test_what_cannot_be_lazy_is_a_type_error_naming_the_op_and_the_way(name, call):
    with nothing_computed(), pytest.raises(TypeError, match=r"(Dask|dask).*compute"):
        call(da.from_array(X[2]))


def test_the_layers_of_a_network_are_mapped_over_samples_lazily():
    net = colnn.nn.simple_conv_net((1, 8, 8), filter_num=3, filter_size=3, pad=1, hidden_size=6, dtype=np.float64)
    x = RNG.standard_normal((6, 1, 8, 8))
    _lazy_equals_numpy(net.predict, x, (2, 1, 8, 8))
    _lazy_equals_numpy(lambda a: net.layers[0].forward(a), x, (2, 1, 8, 8))


def test_dask_unpooling_checks_the_index_range_as_each_chunk_is_computed():
    pooled, indices = colnn.max_pool2d(X[2], 2, return_indices=True)
    lazy = colnn.max_unpool2d(da.from_array(pooled), da.from_array(indices + 1000), 2)  # no values read yet
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 36\)"):
        lazy.compute(scheduler="sync")
