"""The compiled fast paths of global average pooling, tiled adaptive backward, max_unpool and 1-d max pooling.

Each is held to PyTorch (sums to the dtype's rounding, picks bit for bit) and
to the reference strategy, on the shapes of ``colnn bench`` and the edge
cases; and each test of a path makes sure it is the one that runs, by making
the path it replaced raise.
"""

from __future__ import annotations

import numpy as np
import pytest

import colnn
from colnn.kernels import box_pool
from colnn.kernels.pool import NumbaStrategy
from colnn.nn import AdaptiveAvgPool2d, MaxUnpool2d
from oracle import assert_close

torch = pytest.importorskip("torch", reason="PyTorch is the oracle")
F = torch.nn.functional


def _refuse(*args, **kwargs):
    raise AssertionError("the path this test rules out ran")


# --- adaptive average pooling to 1x1: one vectorized sum per volume ---------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(64, 2048, 7, 7), (1, 3, 1, 1), (2, 5, 13, 11), (3, 4, 1, 97), (1, 1, 64, 64)])
def test_global_average_matches_torch(monkeypatch, dtype, shape):
    monkeypatch.setattr(box_pool, "box_avg", _refuse)  # the general box loops must not run
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype) * 100
    out = colnn.adaptive_avg_pool2d(x, 1)
    assert_close(out, F.adaptive_avg_pool2d(torch.from_numpy(x), 1).numpy())
    assert_close(out, colnn.adaptive_avg_pool2d(x, 1, strategy="im2col"))


@pytest.mark.parametrize("ndim", [1, 3])
def test_global_average_other_ranks_and_views(monkeypatch, ndim):
    monkeypatch.setattr(box_pool, "box_avg", _refuse)
    x = np.random.default_rng(2).standard_normal((2, 6, *(5,) * ndim, 3))[..., 1]  # not contiguous
    out = getattr(colnn, f"adaptive_avg_pool{ndim}d")(x, 1)
    assert_close(out, getattr(F, f"adaptive_avg_pool{ndim}d")(torch.from_numpy(x.copy()), 1).numpy())
    unbatched = getattr(colnn, f"adaptive_avg_pool{ndim}d")(x[0], 1)
    assert_close(unbatched, out[0])


def test_global_average_keeps_nan_and_inf_in_their_planes():
    x = np.ones((1, 4, 7, 7), dtype=np.float32)
    x[0, 0, 3, 3] = np.nan
    x[0, 1, 6, 6] = np.inf
    x[0, 2, 0, 0], x[0, 2, 6, 6] = np.inf, -np.inf
    out = colnn.adaptive_avg_pool2d(x, 1)[0, :, 0, 0]
    np.testing.assert_array_equal(out, [np.nan, np.inf, np.nan, 1.0])


# --- adaptive average pooling backward: bins that tile each axis are stored once --------------------


def test_tiles_says_which_bins_tile_an_axis():
    bins = box_pool.bin_bounds(*zip(colnn.ops.pooling.adaptive.adaptive_bins(56, 7)))
    assert box_pool._tiles(bins[2], 56)
    overlapping = box_pool.bin_bounds(*zip(colnn.ops.pooling.adaptive.adaptive_bins(10, 4)))
    assert not box_pool._tiles(overlapping[2], 10)
    gaps = np.array([[0, 3], [0, 0], [2, 2]])  # cells [0, 2) and [3, 5) of 5: cell 2 has no box
    assert not box_pool._tiles(gaps, 5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("shape", "out_size"), [
    ((32, 64, 56, 56), 7),   # the bench's row: tiled
    ((2, 3, 9, 12), (3, 4)),  # tiled, non-square
    ((2, 3, 10, 7), (4, 3)),  # overlapping bins
    ((1, 2, 3, 5), (7, 8)),   # output larger than the input: bins repeat cells
    ((1, 1, 5, 5), 1),        # one bin
])
def test_adaptive_average_backward_matches_torch(dtype, shape, out_size):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dtype)
    layer = AdaptiveAvgPool2d(out_size)
    out = layer.forward(x)
    grad = rng.standard_normal(out.shape).astype(dtype)
    grad.reshape(-1)[::5] = -0.0  # a zeroed gradient's sum turns -0.0 into +0.0
    leaf = torch.from_numpy(x).requires_grad_()
    F.adaptive_avg_pool2d(leaf, out_size).backward(torch.from_numpy(grad))
    expected = leaf.grad.numpy()
    got = layer.backward(grad)
    assert_close(got, expected)
    assert not np.signbit(got[got == 0]).any()
    reference = colnn.ops.pooling.adaptive.adaptive_avg_backward(grad, x.shape, strategy="im2col")
    assert_close(got, reference)


def test_tiled_backward_writes_every_cell():
    # The tiled pass skips the zero fill: a cell it missed would keep what the buffer held (NaN here).
    from colnn.kernels import box_pool_loops

    bounds, divisor = colnn.ops.pooling.adaptive._bins((8, 15), (4, 5))
    grad = np.ones((6, 1, 4, 5), dtype=np.float32)
    grad_input = np.full((6, 1, 8, 15), np.nan, dtype=np.float32)
    box_pool_loops.box_avg_backward(grad, *bounds, divisor.astype(np.float32).reshape(1, 4, 5), True, grad_input)
    np.testing.assert_array_equal(grad_input, np.full((6, 1, 8, 15), 1 / 6, dtype=np.float32))


# --- max_unpool: the range check rides on the scatter -----------------------------------------------


def _pool_indices(shape, seed=4):
    source = np.random.default_rng(seed).random((*shape[:2], *(2 * s for s in shape[2:])), dtype=np.float32)
    return colnn.max_pool2d(source, 2, return_indices=True)[1]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(32, 64, 28, 28), (1, 1, 1, 1), (2, 3, 5, 7)])
def test_unpool_layer_matches_torch_without_a_range_pass(monkeypatch, dtype, shape):
    monkeypatch.setattr(box_pool, "cell_range", _refuse)  # valid indices need no pass of their own
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(dtype)
    indices = _pool_indices(shape)
    layer = MaxUnpool2d(2)
    out = layer.forward(x, indices)
    leaf = torch.from_numpy(x).requires_grad_()
    expected = F.max_unpool2d(leaf, torch.from_numpy(indices), 2)
    assert_close(out, expected.detach().numpy(), exact=True)
    assert_close(colnn.max_unpool2d(x, indices, 2), out, exact=True)
    grad = rng.standard_normal(out.shape).astype(dtype)
    expected.backward(torch.from_numpy(grad))
    assert_close(layer.backward(grad), leaf.grad.numpy(), exact=True)


@pytest.mark.parametrize("bad", [-1, 16, 2**40, -2**62])
@pytest.mark.parametrize("call", ["function", "layer"])
def test_unpool_index_outside_the_plane_names_the_range(bad, call):
    x = np.ones((2, 3, 2, 2), dtype=np.float32)
    indices = _pool_indices(x.shape)
    indices[1, 2, 1, 0] = bad
    low, high = min(int(indices.min()), bad), max(int(indices.max()), bad)
    layer = MaxUnpool2d(2)
    with pytest.raises(ValueError, match=rf"indices must lie in \[0, 16\).*\[{low}, {high}\]"):
        colnn.max_unpool2d(x, indices, 2) if call == "function" else layer.forward(x, indices)
    if call == "layer":
        with pytest.raises(RuntimeError):
            layer.backward(np.ones((2, 3, 4, 4), dtype=np.float32))  # nothing was kept for it


def test_unpool_reference_strategy_still_checks_the_range():
    x = np.ones((1, 1, 2, 2))
    indices = np.array([[[[0, 1], [2, 99]]]])
    with pytest.raises(ValueError, match=r"\[0, 99\]"):
        colnn.max_unpool2d(x, indices, 2, strategy="im2col")


# --- max_pool1d inference: rows straight into the output --------------------------------------------


def _special_rows(shape, dtype, seed=6):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind in "iu":
        return rng.integers(0, 4, shape).astype(dtype)
    x = rng.integers(-2, 3, shape).astype(dtype)  # ties
    flat = x.reshape(-1)
    for value in (np.nan, np.inf, -np.inf, -0.0, 0.0):
        flat[rng.integers(0, flat.size, max(flat.size // 50, 1))] = value
    return x


@pytest.mark.parametrize("dtype", ["float32", "float64", "int16", "uint8", "float16"])
@pytest.mark.parametrize(("kernel", "stride"), [(3, 2), (2, 2), (1, 1), (3, 1), (5, 2), (4, 2), (7, 1)])
@pytest.mark.parametrize("length", [4096, 17, 8])
def test_max_pool1d_rows_match_reference_bit_for_bit(monkeypatch, dtype, kernel, stride, length):
    x = _special_rows((3, 5, length), dtype)
    expected = colnn.max_pool1d(x, kernel, stride, strategy="im2col")
    monkeypatch.setattr(NumbaStrategy, "_max", _refuse)  # the plane kernels must not run
    got = colnn.max_pool1d(x, kernel, stride)
    assert_close(got, expected, exact=True)  # -0.0 equals 0.0 here: the reference may pick either of a tie
    if dtype in ("float32", "float64"):
        expected = F.max_pool1d(torch.from_numpy(x), kernel, stride).numpy()
        assert_close(got, expected, exact=True)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))  # PyTorch's first maximum


def test_max_pool1d_rows_on_the_bench_shape_and_views(monkeypatch):
    x = _special_rows((32, 64, 4096), "float32")
    expected = F.max_pool1d(torch.from_numpy(x), 3, 2).numpy()
    monkeypatch.setattr(NumbaStrategy, "_max", _refuse)
    assert_close(colnn.max_pool1d(x, 3, 2), expected, exact=True)
    assert_close(colnn.max_pool1d(x[0], 3, 2), expected[0], exact=True)  # unbatched
    strided = x[:, :, ::2]  # not contiguous
    assert_close(colnn.max_pool1d(strided, 3, 2), F.max_pool1d(torch.from_numpy(strided.copy()), 3, 2).numpy(),
                 exact=True)
    assert_close(colnn.max_pool1d(x[:1, :1], 3, 2), expected[:1, :1], exact=True)  # one row


@pytest.mark.parametrize("options", [dict(padding=1), dict(dilation=2), dict(stride=3), dict(ceil_mode=True),
                                     dict(return_indices=True)])
def test_max_pool1d_other_windows_keep_the_plane_kernels(monkeypatch, options):
    x = _special_rows((2, 3, 16), "float32")
    kwargs = {"stride": 2, **options}
    expected = colnn.max_pool1d(x, 3, **kwargs, strategy="im2col")
    monkeypatch.setattr(box_pool, "row_max_values", _refuse)
    got = colnn.max_pool1d(x, 3, **kwargs)
    pairs = zip(got, expected) if isinstance(got, tuple) else [(got, expected)]
    for part, expected_part in pairs:
        assert_close(part, expected_part, exact=True)


def test_fits_row_max_needs_every_window_inside():
    from colnn.ops.pooling._base import MaxPoolArgs

    assert box_pool.fits_row_max(MaxPoolArgs.check(1, 3, 2).window((9,)))
    assert not box_pool.fits_row_max(MaxPoolArgs.check(1, 3, 2, ceil_mode=True).window((10,)))  # last one sticks out
    assert box_pool.fits_row_max(MaxPoolArgs.check(1, 3, 2, ceil_mode=True).window((9,)))
