"""The book's ``im2col``/``col2im`` against PyTorch's ``unfold``/``fold``, in every geometry.

``im2col(x, FH, FW, stride, pad, dilation=, pad_value=)`` is ``unfold`` transposed into
the book's layout: rows ``(N, out_h, out_w)``, columns ``(C, FH, FW)``, so
``unfold(x).transpose(0, 2, 1).reshape(N*out_h*out_w, C*FH*FW)``; a ``pad_value`` is
``unfold`` of the input padded with that value. ``col2im`` takes that layout back and
is ``fold``. Both move values (a gather and a scatter-add), so they must be bit-exact.
Every backend (``tests/backends.py``): the compiled default, the NumPy reference, and
the Array API path on array_api_strict, PyTorch and JAX arrays.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import colnn
from peers import assert_matches

torch = pytest.importorskip("torch", reason="PyTorch is the oracle")
F = torch.nn.functional


@st.composite
def geometry(draw):
    """A batch and a window with rectangular kernel, stride, padding and dilation, and a non-empty output."""
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = tuple(draw(st.integers(0, k)) for k in kernel)
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    size = [draw(st.integers(max(1, span - 2 * p), span - 2 * p + 6)) for span, p in zip(spans, padding)]
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), *size)
    return shape, kernel, stride, padding, dilation


PAD_VALUES = st.sampled_from([0.0, -np.inf, 7.5, np.nan])


def _book_layout(unfolded: np.ndarray) -> np.ndarray:
    n, columns, windows = unfolded.shape
    return unfolded.transpose(0, 2, 1).reshape(n * windows, columns)


def _torch_im2col(x: np.ndarray, kernel, stride, padding, dilation, pad_value: float) -> np.ndarray:
    (ph, pw) = padding
    padded = F.pad(torch.from_numpy(x), (pw, pw, ph, ph), value=pad_value)
    return _book_layout(F.unfold(padded, kernel, dilation, 0, stride).numpy())


def test_im2col_is_torch_unfold_in_the_books_layout(backend):
    @backend.settings(60, 15)
    @given(case=geometry(), pad_value=PAD_VALUES, dtype=st.sampled_from([np.float32, np.float64]),
           seed=st.integers(0, 2**32 - 1))
    def check(case, pad_value, dtype, seed):
        shape, kernel, stride, padding, dilation = case
        x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
        expected = _torch_im2col(x, kernel, stride, padding, dilation, pad_value)
        col = backend.call(colnn.im2col, x, kernel[0], kernel[1], stride, padding, dilation=dilation,
                           pad_value=pad_value)
        assert_matches(col, expected, True, f"im2col {case} pad_value={pad_value}")

    check()


def test_col2im_is_torch_fold_of_the_books_layout(backend):
    @backend.settings(60, 15)
    @given(case=geometry(), dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**32 - 1))
    def check(case, dtype, seed):
        shape, kernel, stride, padding, dilation = case
        n, c, h, w = shape
        windows = F.unfold(torch.zeros(shape), kernel, dilation, padding, stride).shape[-1]
        col = np.random.default_rng(seed).standard_normal((n * windows, c * kernel[0] * kernel[1])).astype(dtype)
        unfolded = torch.from_numpy(col.reshape(n, windows, -1).transpose(0, 2, 1).copy())
        expected = F.fold(unfolded, (h, w), kernel, dilation, padding, stride).numpy()
        image = backend.call(colnn.col2im, col, shape, kernel[0], kernel[1], stride, padding, dilation=dilation)
        assert_matches(image, expected, True, f"col2im {case}")

    check()


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.int64])
def test_im2col_of_integers_pads_with_the_value_given(dtype):
    # Integer pads: -inf is the dtype's minimum (the max pool's padding), an integer is itself.
    x = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5).astype(dtype)
    info = np.iinfo(dtype)
    for pad_value, torch_value in ((-np.inf, info.min), (0, 0), (3, 3)):
        col = colnn.im2col(x, 3, 2, (2, 1), (1, 2), dilation=(1, 2), pad_value=pad_value)
        wide = x.astype(np.float64)  # torch pads integer tensors too, but has no uint16..uint64
        expected = _torch_im2col(wide, (3, 2), (2, 1), (1, 2), (1, 2), float(torch_value)).astype(dtype)
        assert_matches(col, expected, True, f"pad_value={pad_value}")
