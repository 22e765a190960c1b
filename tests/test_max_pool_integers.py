"""Max pooling of every integer dtype against a naive loop, in 1, 2 and 3 dimensions.

The oracle visits one window cell at a time, as PyTorch's CPU kernel does: padding is
never chosen, the first in-bounds cell starts the window and a strictly greater value
replaces it (ties keep the first). Values span the dtype's whole range (its minimum and
maximum included), so a padding value, a cast or a comparison done in another dtype
shows. Each strategy, with padding, dilation, ``ceil_mode`` and indices; the layers'
backward scatters ``dout`` (float64, as a gradient never is an integer) onto the winners.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import colnn
from peers import assert_matches

INTEGERS = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
POOLS = {1: (colnn.max_pool1d, colnn.MaxPool1d), 2: (colnn.max_pool2d, colnn.MaxPool2d),
         3: (colnn.max_pool3d, colnn.MaxPool3d)}


def out_size(size: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    span = size + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + p:  # a last window must start inside the input or its left padding
        out -= 1
    return out


def naive_max_pool(x: np.ndarray, kernel, stride, padding, dilation, ceil: bool) -> tuple[np.ndarray, np.ndarray]:
    """(values, int64 row-major indices into each plane), one window cell at a time.

    A window of padding only (a dilated window can step over a one-cell input) holds the
    dtype's lowest value, and its index is PyTorch's: where its first cell would be once
    the padding is stepped over, which lies outside the plane (``real_windows`` tells them).
    """
    spatial = x.shape[2:]
    outs = [out_size(*args, ceil) for args in zip(spatial, kernel, stride, padding, dilation)]
    values = np.zeros((*x.shape[:2], *outs), x.dtype)
    indices = np.zeros(values.shape, np.int64)
    lowest = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    for plane in itertools.product(*map(range, x.shape[:2])):
        for position in itertools.product(*map(range, outs)):
            best = None
            for offset in itertools.product(*map(range, kernel)):
                cell = tuple(o * s - p + k * d for o, s, p, k, d in zip(position, stride, padding, offset, dilation))
                if all(0 <= c < size for c, size in zip(cell, spatial)):
                    value = x[(*plane, *cell)]
                    if best is None or value > best[0]:
                        best = (value, np.ravel_multi_index(cell, spatial))
            if best is None:
                starts = [o * s - p for o, s, p in zip(position, stride, padding)]
                starts = [start + -(-max(0, -start) // d) * d for start, d in zip(starts, dilation)]
                best = (lowest, functools.reduce(lambda flat, axis: flat * axis[1] + axis[0], zip(starts, spatial), 0))
            values[(*plane, *position)], indices[(*plane, *position)] = best
    return values, indices


def real_windows(x_spatial: tuple[int, ...], kernel, stride, padding, dilation, ceil: bool) -> np.ndarray:
    """True for each output position whose window holds at least one real cell."""
    outs = [out_size(*args, ceil) for args in zip(x_spatial, kernel, stride, padding, dilation)]
    axes = [np.array([any(0 <= o * s - p + k * d < size for k in range(kk)) for o in range(out)])
            for size, kk, s, p, d, out in zip(x_spatial, kernel, stride, padding, dilation, outs)]
    return functools.reduce(np.logical_and.outer, axes) if len(axes) > 1 else axes[0]


def naive_backward(dout: np.ndarray, indices: np.ndarray, spatial: tuple[int, ...],
                   real: np.ndarray | None = None) -> np.ndarray:
    """dout added onto the winners, window by window in row-major order (PyTorch's); none from padding-only windows."""
    grad = np.zeros((*dout.shape[:2], math.prod(spatial)), np.float64)
    real = np.ones(dout.shape[2:], bool) if real is None else real
    for plane in itertools.product(*map(range, dout.shape[:2])):
        for value, index, counts in zip(dout[plane].ravel(), indices[plane].ravel(), real.ravel()):
            if counts:
                grad[(*plane, index)] += value
    return grad.reshape(*dout.shape[:2], *spatial)


@st.composite
def geometry(draw, ndim: int):
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(ndim))
    # PyTorch's rule, which colnn keeps: padding at most half the kernel (undilated).
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    size = tuple(draw(st.integers(max(1, span - 2 * p), span - 2 * p + 3)) for span, p in zip(spans, padding))
    return size, kernel, stride, padding, dilation, draw(st.booleans())


def _integers(rng: np.random.Generator, shape, dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    # The extremes, where a padding value or a cast through another dtype shows.
    flat = x.reshape(-1)
    flat[rng.integers(flat.size, size=max(1, flat.size // 6))] = info.min
    flat[rng.integers(flat.size, size=max(1, flat.size // 8))] = info.max
    return x


@pytest.mark.parametrize("strategy", colnn.available_strategies())
@pytest.mark.parametrize("dtype", INTEGERS, ids=lambda dtype: np.dtype(dtype).name)
def test_integer_max_pooling_matches_the_naive_loop(dtype, strategy):
    @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(case=st.sampled_from([1, 2, 3]).flatmap(geometry), seed=st.integers(0, 2**32 - 1))
    def check(case, seed):
        size, kernel, stride, padding, dilation, ceil = case
        function, layer_class = POOLS[len(size)]
        rng = np.random.default_rng(seed)
        x = _integers(rng, (2, 2, *size), dtype)
        expected, expected_indices = naive_max_pool(x, kernel, stride, padding, dilation, ceil)
        values, indices = function(x, kernel, stride, padding, dilation, ceil, return_indices=True, strategy=strategy)
        assert_matches(values, expected, True, f"values {case}")
        assert_matches(indices, expected_indices, True, f"indices {case}")

        layer = layer_class(kernel, stride, padding, dilation, ceil, strategy=strategy)
        assert_matches(layer.forward(x), expected, True, f"layer.forward {case}")
        assert_matches(layer.indices, expected_indices, True, f"layer.indices {case}")
        dout = rng.standard_normal(expected.shape)
        # Exact for the default strategy; the "im2col" strategy adds a cell's three or more
        # contributions in another order (test_backward_adds_in_pytorchs_order below).
        real = real_windows(size, kernel, stride, padding, dilation, ceil)
        assert_matches(layer.backward(dout), naive_backward(dout, expected_indices, size, real), strategy == "numba",
                       f"layer.backward {case}")

    check()


@pytest.mark.parametrize("dtype", INTEGERS, ids=lambda dtype: np.dtype(dtype).name)
def test_a_plane_of_the_minimum_chooses_its_first_real_cell_not_the_padding(dtype):
    # Padding counts as the dtype's minimum when compared; a window of real minima must still
    # point at its first real cell (PyTorch's rule), never at a padded one.
    x = np.full((1, 1, 3, 4), np.iinfo(dtype).min, dtype)
    values, indices = colnn.max_pool2d(x, 3, 2, 1, return_indices=True)
    expected, expected_indices = naive_max_pool(x, (3, 3), (2, 2), (1, 1), (1, 1), False)
    assert_matches(values, expected, True, "values")
    assert_matches(indices, expected_indices, True, "indices")


@pytest.mark.parametrize("strategy", colnn.available_strategies())
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_backward_adds_in_pytorchs_order(ndim, strategy):
    """Overlapping windows send one cell three gradients or more: PyTorch adds them window by window.

    Floating-point addition is not associative, so any other order differs in the last bits
    (the README says every strategy gives PyTorch's numbers).
    """
    _, layer_class = POOLS[ndim]
    rng = np.random.default_rng(ndim)
    differ = []
    for trial in range(20):
        x = rng.standard_normal((1, 2, *(6,) * ndim))
        layer = layer_class(3, 1, strategy=strategy)
        out = layer.forward(x)
        dout = rng.standard_normal(out.shape)
        _, indices = naive_max_pool(x, (3,) * ndim, (1,) * ndim, (0,) * ndim, (1,) * ndim, False)
        expected = naive_backward(dout, indices, x.shape[2:])
        if not np.array_equal(layer.backward(dout), expected):
            differ.append(trial)
    assert not differ, f"{len(differ)} of 20 backward passes differ from the window-by-window sum"
