"""lane_sum (an LLVM intrinsic) against exact sums, and the global average pooling built on it against PyTorch."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError

from colnn.kernels.lane_sum import VECTOR_BYTES, lane_sum


@njit
def _sum_of(row):
    return lane_sum(row)


@njit
def _sums_of_rows(rows, out):
    for p in range(rows.shape[0]):
        out[p] = lane_sum(rows[p])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("length", [0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 31, 33, 49, 64, 100])
def test_every_length_sums_whole_vectors_and_the_tail(rng, dtype, length):
    """Lengths below, at and past whole vectors (8 float32 or 4 float64 lanes), against math.fsum."""
    row = rng.standard_normal(length).astype(dtype)
    expected = math.fsum(row.astype(np.float64))
    total = _sum_of(row)
    assert isinstance(total, float)
    tolerance = (1e-6 if dtype == np.float32 else 1e-14) * max(1.0, float(np.abs(row).sum()))
    assert abs(total - expected) <= tolerance


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_cell_counts_once(dtype):
    """Powers of two at every position: any cell dropped or read twice changes the exact integer sum."""
    lanes = VECTOR_BYTES // np.dtype(dtype).itemsize
    for length in range(1, 3 * lanes + 2):
        row = (2.0 ** np.arange(length) % 4096 + np.arange(length)).astype(dtype)
        assert _sum_of(row) == float(row.astype(np.float64).sum())


def test_rows_of_a_matrix_are_summed_apart(rng):
    """Rows of an odd length, one after another in memory: each sum reads its own row only."""
    rows = rng.standard_normal((37, 49)).astype(np.float32)
    out = np.empty(37, np.float32)
    _sums_of_rows(rows, out)
    np.testing.assert_allclose(out, rows.astype(np.float64).sum(axis=1), rtol=0, atol=1e-5)


@pytest.mark.parametrize("special", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("position", [0, 5, 8, 16, 48])
def test_nan_and_inf_reach_the_sum(special, position):
    """In a whole vector or in the tail, as in a plain sum."""
    row = np.ones(49, np.float32)
    row[position] = special
    total = _sum_of(row)
    assert (math.isnan(total) if np.isnan(special) else total == special)


def test_inf_and_minus_inf_make_nan():
    row = np.zeros(20, np.float64)
    row[[2, 17]] = [np.inf, -np.inf]
    assert math.isnan(_sum_of(row))


@pytest.mark.parametrize("array", [np.arange(10, dtype=np.int64), np.ones(10, np.float32)[::2],
                                   np.ones((2, 5), np.float32)], ids=["integers", "strided", "2-d"])
def test_other_arrays_are_refused_when_compiled(array):
    with pytest.raises(TypingError):
        njit(lambda row: lane_sum(row))(array)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(4, 64, 7, 7), (2, 3, 1, 1), (3, 5, 2, 9), (1, 1, 16, 16)])
def test_global_average_pooling_matches_torch(torch, rng, dtype, shape):
    import colnn

    x = rng.standard_normal(shape).astype(dtype)
    expected = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x), 1).numpy()
    out = colnn.adaptive_avg_pool2d(x, 1)
    assert out.dtype == x.dtype and out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=0, atol=2e-6 if dtype == np.float32 else 1e-14)
