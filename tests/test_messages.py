"""An argument given an array where a number or a size belongs: the error names its type, dtype and shape.

Never its contents (which may be large or private), and the exception is a
TypeError or ValueError naming the argument, at every kind of entry point: ops,
layers, optimizers (colnn's and the book's), the thread limit.
"""

from __future__ import annotations

import numpy as np
import pytest

import colnn
from colnn.book import optimizer as book_optimizer
from colnn.nn import optim

BIG = np.arange(100_000.0)
X = np.ones((1, 1, 6, 6), np.float32)

CALLS = {
    "max_pool2d kernel_size": ("kernel_size", lambda: colnn.max_pool2d(X, BIG)),
    "avg_pool2d stride": ("stride", lambda: colnn.avg_pool2d(X, 2, stride=BIG)),
    "conv2d padding": ("padding", lambda: colnn.conv2d(X, np.ones((1, 1, 3, 3), np.float32), padding=BIG)),
    "Convolution stride": ("stride", lambda: colnn.Convolution(np.ones((1, 1, 3, 3)), np.zeros(1), stride=BIG)),
    "Pooling pool_h": ("(pool_h, pool_w)", lambda: colnn.Pooling(BIG, 2)),
    "Dropout dropout_ratio": ("dropout_ratio", lambda: colnn.Dropout(BIG)),
    "SGD lr": ("lr", lambda: optim.SGD(lr=BIG)),
    "book SGD lr": ("lr", lambda: book_optimizer.SGD(lr=BIG)),
    "set_num_threads": ("n", lambda: colnn.set_num_threads(BIG)),
    "lp_pool2d norm_type": ("norm_type", lambda: colnn.lp_pool2d(X, BIG, 2)),
}


@pytest.mark.parametrize("case", list(CALLS))
def test_an_array_argument_is_named_by_type_dtype_and_shape(case):
    name, call = CALLS[case]
    with pytest.raises((TypeError, ValueError)) as caught:
        call()
    message = str(caught.value)
    assert message.startswith(name), message
    assert "numpy.ndarray of dtype float64 and shape (100000,)" in message
    assert "99999" not in message and len(message) < 300, message


@pytest.mark.parametrize("value", ["2", 2.0, None])
def test_set_num_threads_of_a_non_int_is_a_type_error(value):
    with pytest.raises(TypeError, match=r"^n must be an int"):
        colnn.set_num_threads(value)
