"""What a reader may hand colnn.book by mistake: never a silently wrong value or a silent compute.

- labels outside ``[0, K)`` (NumPy would read -1 as the last class) are an IndexError;
- a Dask array (``np.asarray`` would compute it whole) is a TypeError naming the function;
- ``SoftmaxWithLoss`` used from two threads between its forward and backward raises, like every layer.
"""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest

import colnn
from colnn.book import functions
from colnn.book.layers import Pooling, SoftmaxWithLoss

SCORES = np.array([[0.1, 2.0, -1.0], [1.5, 0.2, 0.3]])


@pytest.mark.parametrize("labels", [np.array([1, -1]), np.array([1, 3]), np.array([[0], [-2]])])
def test_labels_outside_the_classes_are_refused(labels):
    with pytest.raises(IndexError, match=r"outside \[0, 3\)"):
        functions.cross_entropy_error(functions.softmax(SCORES), labels)
    layer = SoftmaxWithLoss()
    with pytest.raises(IndexError, match=r"outside \[0, 3\)"):
        layer.forward(SCORES, labels)
    assert layer.y is None and layer.t is None  # a refused call keeps nothing


@pytest.mark.parametrize(("labels", "error", "message"), [
    (np.array([1.0, 2.0]), TypeError, "float64 of 2 values"),  # float labels: NumPy's bare IndexError before
    (np.array([[0.0, 1.0], [1.0, 0.0]]), TypeError, "one-hot rows of y's shape"),  # one-hot of the wrong width
    (np.array([1, 2, 0]), ValueError, "must be 2 integer labels"),  # a label per row, not three
])
def test_labels_of_the_wrong_kind_or_count_are_named(labels, error, message):
    with pytest.raises(error, match=re.escape(message)):
        functions.cross_entropy_error(functions.softmax(SCORES), labels)
    with pytest.raises(ValueError, match=r"t must be labels of shape \(2,\) or \(2, 1\)"):
        SoftmaxWithLoss().forward(SCORES, labels)


def test_a_column_of_labels_counts_as_labels_in_accuracy():
    """The book's accuracy reads an (N, 1) column as one-hot rows and counts every label 0 (silently wrong)."""
    from colnn.book import SimpleConvNet

    rng = np.random.default_rng(0)
    network = SimpleConvNet(input_dim=(1, 10, 10), conv_param={"filter_num": 4, "filter_size": 3, "pad": 0,
                                                               "stride": 1}, hidden_size=8, output_size=5)
    x = rng.standard_normal((40, 1, 10, 10))
    predicted = network.predict(x).argmax(axis=1)
    labels = np.where(np.arange(40) % 2 == 0, predicted, (predicted + 1) % 5)  # every other one right
    for t in (labels, labels[:, None], np.eye(5)[labels]):
        assert network.accuracy(x, t) == 0.5
        assert network.accuracy(x, t, batch_size=7) == 0.5


def test_labels_inside_give_the_books_loss():
    labels = np.array([1, 0])
    probabilities = np.exp(SCORES) / np.exp(SCORES).sum(axis=1, keepdims=True)
    expected = -np.mean(np.log(probabilities[[0, 1], labels] + 1e-7))  # the book's formula, chapter 4.2.4
    assert functions.cross_entropy_error(functions.softmax(SCORES), labels) == pytest.approx(expected, rel=1e-12)
    assert SoftmaxWithLoss().forward(SCORES, labels) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("call", [
    lambda x: functions.softmax(x), lambda x: functions.sigmoid(x), lambda x: functions.step_function(x),
    lambda x: functions.relu_grad(x), lambda x: functions.sum_squared_error(x, x),
    lambda x: functions.cross_entropy_error(x, np.array([0, 1])),
    lambda x: functions.softmax_loss(x, np.array([0, 1])), lambda x: SoftmaxWithLoss().forward(x, np.array([0, 1])),
])
def test_a_dask_array_is_refused_not_computed(call):
    da = pytest.importorskip("dask.array", reason="needs dask (pip install colnn[dask])")
    import dask

    def refuse(*args, **kwargs):
        raise AssertionError("a Dask array was computed")

    with dask.config.set(scheduler=refuse), pytest.raises(TypeError, match="Dask array: compute it first"):
        call(da.from_array(SCORES, chunks=1))


def test_softmax_with_loss_refuses_a_backward_after_another_threads_forward():
    layer = SoftmaxWithLoss()
    layer.forward(SCORES, np.array([1, 0]))
    other = threading.Thread(target=layer.forward, args=(SCORES[::-1].copy(), np.array([2, 2])))
    other.start()
    other.join()
    with pytest.raises(RuntimeError, match=r"SoftmaxWithLoss\.backward was called in another thread"):
        layer.backward()
    # In its own thread again, the layer works: forward then backward gives (y - onehot(t)) / N.
    layer.forward(SCORES, np.array([1, 0]))
    probabilities = np.exp(SCORES) / np.exp(SCORES).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(layer.backward(), (probabilities - np.eye(3)[[1, 0]]) / 2, rtol=1e-12)


@pytest.mark.parametrize(("args", "error", "message"), [
    ((2, 0), ValueError, "(pool_h, pool_w) must be >= 1, got (2, 0)"),
    ((0, 2, 2), ValueError, "(pool_h, pool_w) must be >= 1, got (0, 2)"),
    ((2, 2, 0), ValueError, "stride must be >= 1, got 0"),
    ((2, 2, 2, -1), ValueError, "pad must be >= 0, got -1"),
    ((2, 2, 2, 5), ValueError, "pad must be at most half of (pool_h, pool_w) (2, 2), i.e. at most (1, 1), got 5"),
    ((2.0, 2), TypeError, "(pool_h, pool_w)"),
])
def test_pooling_names_the_books_arguments(args, error, message):
    """The book's Pooling(pool_h, pool_w, stride, pad): its messages use its names, not kernel_size or padding."""
    with pytest.raises(error) as caught:
        Pooling(*args)
    assert message in str(caught.value)
    assert "kernel_size" not in str(caught.value) and "padding" not in str(caught.value)


@pytest.mark.parametrize("build", [
    lambda: colnn.Conv2d(3, 16, 3),
    lambda: colnn.Conv1d(1, 8, 5),
    lambda: colnn.ConvTranspose2d(16, 8, 4),
    lambda: colnn.Convolution(np.int64(3), 16),
])
def test_a_convolution_layer_built_from_channel_counts_says_how_it_is_built(build):
    """torch.nn's convolutions take (in_channels, out_channels, kernel_size); colnn's take the weights."""
    with pytest.raises(TypeError, match=r"^W must be the weight array, got .*: colnn's \w+ is built from its weights"):
        build()
