"""colnn pool's methods (colnn.apps.pool.methods) against a naive NumPy loop over the windows.

The oracle reads each window's cells inside the image straight from the
definition (PyTorch's output size and window placement, cells outside the
image ignored) and reduces them with NumPy: max, min, the mean of the level-0
cells each cell covers (float64 sums of level-0 values and of level-0 cell
counts, each summed window by window from level 0, divided, then rounded half
to even), the cell nearest the window's centre, and the
most frequent value (ties to the smallest, via numpy.unique). Every method,
dtype and axis choice, odd sizes, padding and ceil_mode, chunks that cut
windows.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="colnn pool needs dask (pip install colnn[dask])")

from colnn.apps.pool.methods import METHODS, Geometry, mode_of, pyramid  # noqa: E402

DTYPES = [np.uint8, np.uint16, np.int16, np.float32, np.float64]


def out_size(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output size: with ceil_mode the last window must start inside the image or its left padding."""
    span = size + 2 * padding - kernel
    count = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (count - 1) * stride >= size + padding:
        count -= 1
    return count


def naive_level(x: np.ndarray, pooled, kernel, stride, padding, ceil_mode, method) -> np.ndarray:
    """One level by a loop over the windows: each window's cells inside the image, reduced."""
    moved = np.moveaxis(x, pooled, range(x.ndim - len(pooled), x.ndim))
    lead = moved.shape[:x.ndim - len(pooled)]
    sizes = moved.shape[len(lead):]
    outs = [out_size(n, k, s, p, ceil_mode) for n, k, s, p in zip(sizes, kernel, stride, padding)]
    result = np.empty((*lead, *outs), dtype=np.float64 if method in ("avg", "sum") else x.dtype)
    for index in itertools.product(*(range(m) for m in outs)):
        if method == "nearest":
            cell = tuple(min(max(i * s - p + (k - 1) // 2, 0), n - 1)
                         for i, n, k, s, p in zip(index, sizes, kernel, stride, padding))
            result[(..., *index)] = moved[(..., *cell)]
            continue
        cuts = tuple(slice(max(i * s - p, 0), min(i * s - p + k, n))
                     for i, n, k, s, p in zip(index, sizes, kernel, stride, padding))
        cells = moved[(..., *cuts)].reshape(*lead, -1)
        if method == "max":
            value = cells.max(axis=-1)
        elif method == "min":
            value = cells.min(axis=-1)
        elif method == "avg":
            value = cells.astype(np.float64).mean(axis=-1)
        elif method == "sum":
            value = cells.astype(np.float64).sum(axis=-1)
        else:
            flat = cells.reshape(-1, cells.shape[-1])
            value = np.array([np.unique(row, return_counts=True)[0][np.argmax(np.unique(row, return_counts=True)[1])]
                              for row in flat]).reshape(lead)
        result[(..., *index)] = value
    return np.moveaxis(result, range(x.ndim - len(pooled), x.ndim), pooled)


def naive_pyramid(x, levels, method, pooled, kernel, stride, padding, ceil_mode) -> list[np.ndarray]:
    """Every level; a mean is the sum of level 0's values over the sum of level 0's cell counts (both summed
    window by window from level 0, padding adding nothing), rounded once to the input's dtype."""
    out, current = [x], x.astype(np.float64) if method == "avg" else x
    cells = np.ones(x.shape)
    for _ in range(levels):
        if method != "avg":
            current = naive_level(current, pooled, kernel, stride, padding, ceil_mode, method)
            out.append(current)
            continue
        current = naive_level(current, pooled, kernel, stride, padding, ceil_mode, "sum")
        cells = naive_level(cells, pooled, kernel, stride, padding, ceil_mode, "sum")
        mean = current / cells
        out.append(np.rint(mean).astype(x.dtype) if x.dtype.kind in "iu" else mean.astype(x.dtype))
    return out


def sample(shape, dtype, rng) -> np.ndarray:
    """Values with ties (for mode) and the dtype's extremes (for min, max and the rounding)."""
    if np.dtype(dtype).kind == "f":
        return rng.normal(0, 100, shape).astype(dtype)
    info = np.iinfo(dtype)
    x = rng.integers(0, 5, shape).astype(dtype)  # few values: windows with ties
    x.flat[::7] = info.max
    x.flat[3::11] = info.min
    return x


def run_pyramid(x, method, pooled, kernel, stride, padding, ceil_mode, levels, chunks, compiled=False):
    geometry = Geometry(pooled, kernel, stride, padding, ceil_mode)
    level0 = da.from_array(x, chunks=chunks)
    return [level.compute() for level in pyramid(level0, geometry, method, levels, lambda a: a.rechunk(chunks),
                                                 compiled=compiled)]


def check(got, expected, dtype, method=None):
    assert len(got) == len(expected)
    for level, (g, e) in enumerate(zip(got, expected)):
        assert g.dtype == np.dtype(dtype) and g.shape == e.shape, level
        if np.dtype(dtype).kind == "f" and method == "avg":
            # colnn sums a window's cells in another order than NumPy's mean: each level adds a few float64
            # ulps of the largest cell (absolute: with cells of both signs a mean can be far smaller than its
            # cells), which a float32 result rounded from the float64 chain can turn into one float32 ulp.
            # A float32 accumulation would be off by about 1e-7 of the largest cell: 1e8 times this bound.
            atol = 16 * len(expected) * np.finfo(np.float64).eps * float(np.max(np.abs(expected[0])))
            rtol = 2 ** -23 if np.dtype(dtype) == np.float32 else 0
            np.testing.assert_allclose(g, e, rtol=rtol, atol=atol, err_msg=f"level {level}")
        else:
            np.testing.assert_array_equal(g, e, err_msg=f"level {level}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("method", METHODS)
def test_every_method_and_dtype_over_yx(method, dtype):
    rng = np.random.default_rng(METHODS.index(method))
    x = sample((2, 23, 18), dtype, rng)  # c, y, x: odd sizes, ceil_mode keeps the partial windows
    args = dict(method=method, pooled=(1, 2), kernel=(2, 2), stride=(2, 2), padding=(0, 0), ceil_mode=True)
    got = run_pyramid(x, levels=3, chunks=(2, 8, 7), **args)
    check(got, naive_pyramid(x, levels=3, **args), dtype, method)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("method", METHODS)
def test_every_method_and_dtype_over_zyx(method, dtype):
    rng = np.random.default_rng(10 + METHODS.index(method))
    x = sample((9, 11, 10), dtype, rng)
    args = dict(method=method, pooled=(0, 1, 2), kernel=(2, 2, 2), stride=(2, 2, 2), padding=(0, 0, 0),
                ceil_mode=False)
    got = run_pyramid(x, levels=2, chunks=(5, 4, 6), **args)
    check(got, naive_pyramid(x, levels=2, **args), dtype, method)


GEOMETRIES = {
    "kernel 3 stride 2 padding 1": ((3, 3), (2, 2), (1, 1), False),
    "kernel 3 stride 2 ceil": ((3, 3), (2, 2), (0, 0), True),
    "anisotropic, overlapping": ((1, 3), (1, 2), (0, 1), True),
    "kernel 4 stride 3 padding 2": ((4, 4), (3, 3), (2, 2), False),
}


@pytest.mark.parametrize("geometry", GEOMETRIES.values(), ids=GEOMETRIES.keys())
@pytest.mark.parametrize("method", METHODS)
def test_windows_that_overlap_pad_and_cross_chunks(method, geometry):
    kernel, stride, padding, ceil_mode = geometry
    x = sample((2, 3, 21, 17), np.int16, np.random.default_rng(7))  # t, c... pooled: the last two
    args = dict(method=method, pooled=(2, 3), kernel=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)
    got = run_pyramid(x, levels=2, chunks=(2, 3, 8, 7), **args)
    check(got, naive_pyramid(x, levels=2, **args), np.int16)


@pytest.mark.parametrize("method", ["max", "avg", "nearest"])
def test_one_pooled_axis_keeps_the_others(method):
    x = sample((5, 14, 9), np.float64, np.random.default_rng(3))
    args = dict(method=method, pooled=(0,), kernel=(2,), stride=(2,), padding=(0,), ceil_mode=True)
    check(run_pyramid(x, levels=2, chunks=(2, 5, 9), **args), naive_pyramid(x, levels=2, **args), np.float64, method)


@pytest.mark.parametrize("method", ["max", "min", "nearest", "mode"])
def test_a_bool_mask_stays_a_bool_mask(method):
    x = np.random.default_rng(4).random((13, 10)) < 0.4
    args = dict(method=method, pooled=(0, 1), kernel=(2, 2), stride=(2, 2), padding=(0, 0), ceil_mode=True)
    expected = naive_pyramid(x.astype(np.uint8), levels=2, **args)
    check(run_pyramid(x, levels=2, chunks=(5, 4), **args), [e.astype(bool) for e in expected], bool)


def test_a_mean_of_a_mask_is_refused():
    geometry = Geometry((0, 1), (2, 2), (2, 2), (0, 0), False)
    with pytest.raises(ValueError, match="a mean of a mask is not a mask"):
        pyramid(da.zeros((4, 4), dtype=bool), geometry, "avg", 1, lambda a: a)


def test_integer_means_round_half_to_even_once_from_level_0():
    # A 2x2 window of 1, 2, 2, 2 has mean 1.75; of 0, 0, 1, 1 mean 0.5 -> 0; of 1, 1, 2, 2 mean 1.5 -> 2.
    x = np.array([[1, 2, 0, 0, 1, 1, 0, 0], [2, 2, 1, 1, 2, 2, 0, 0]], np.uint16)
    geometry = Geometry((0, 1), (2, 2), (2, 2), (0, 0), False)
    levels = [level.compute() for level in pyramid(da.from_array(x), geometry, "avg", 1, lambda a: a)]
    np.testing.assert_array_equal(levels[1], [[2, 0, 2, 0]])
    # Level 1 of this block is [[0.5, 0.5], [0.5, 0.75]]; level 2, the mean of its 16 cells, 0.5625 -> 1.
    # Rounding level 1 first ([[0, 0], [0, 1]]) and averaging that would give 0.25 -> 0.
    block = np.array([[0, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 1], [1, 1, 1, 1]], np.uint8)
    levels = [level.compute() for level in pyramid(da.from_array(block), geometry, "avg", 2, lambda a: a)]
    np.testing.assert_array_equal(levels[1], [[0, 0], [0, 1]])
    assert levels[2][0, 0] == 1 and np.rint(levels[1].mean()) == 0


def test_mode_ties_go_to_the_smallest_value():
    values = [np.array([3, 7, 7, 5]), np.array([7, 3, 5, 5]), np.array([3, 9, 1, 5]), np.array([7, 9, 1, 2])]
    valid = [np.array(True)] * 4
    np.testing.assert_array_equal(mode_of(values, valid), [3, 9, 1, 5])
    # Invalid cells (outside the image) never count, even when they would win.
    np.testing.assert_array_equal(mode_of(values, [np.array(v) for v in (False, True, True, True)]), [7, 9, 1, 5])


AXIS_CHOICES = [(0,), (1,), (2,), (0, 2), (1, 2), (0, 1, 2)]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("pooled", AXIS_CHOICES, ids=lambda p: "".join("zyx"[a] for a in p))
@pytest.mark.parametrize("ceil_mode", [False, True], ids=["floor", "ceil"])
@pytest.mark.parametrize("method", ["avg", "avg-compiled", "avg-kept", "max", "min"])
def test_windows_that_tile_the_blocks(method, dtype, pooled, ceil_mode, monkeypatch):
    # Chunks of even sizes: each block is pooled alone by colnn.kernels.pyramid (no halo), level 0 read in its dtype.
    if method == "avg-kept":  # the means stay in their blocks for the next level while the windows tile them
        from colnn.apps.pool import methods

        monkeypatch.setattr(methods, "CHAIN_BLOCK_CELLS", 1)
    x = sample((7, 13, 11), dtype, np.random.default_rng(20 + len(pooled)))
    count = len(pooled)
    args = dict(method=method.split("-")[0], pooled=pooled, kernel=(2,) * count, stride=(2,) * count,
                padding=(0,) * count, ceil_mode=ceil_mode)
    chunks = (4, 4, 4) if method == "avg-kept" else (4, 6, 4)  # level 1's means in blocks of 2s (kept), 3s
    got = run_pyramid(x, levels=2, chunks=chunks, compiled=method.endswith("compiled"), **args)
    check(got, naive_pyramid(x, levels=2, **args), dtype, args["method"])


@pytest.mark.parametrize("dtype", [*DTYPES, np.int8, np.uint32, np.float16], ids=lambda d: np.dtype(d).name)
def test_the_pyramid_kernel_against_numpy_sums(dtype):
    from colnn.kernels.pyramid import round_half_even, window_sums

    x = sample((3, 4, 9, 10, 5), dtype, np.random.default_rng(30))
    if np.dtype(dtype).kind == "f":  # windows of -0.0 alone: a sum from 0.0 gives 0.0
        x[:, :2] = -0.0
    for pooled, kernel in [((4,), (3,)), ((1, 3), (3, 2)), ((0, 2, 4), (2, 4, 2)), ((2, 3), (1, 1))]:
        for ceil_mode in (False, True):
            expected = naive_level(x.astype(np.float64), pooled, kernel, kernel, (0,) * len(kernel), ceil_mode, "sum")
            got = window_sums(x, pooled, kernel, ceil_mode)
            # Numba's loops add the same cells in the same order: the same bits, a signed zero's sign included.
            assert got.tobytes() == window_sums(x, pooled, kernel, ceil_mode, compiled=True).tobytes()
            if np.dtype(dtype).kind in "iu":  # integer sums are exact in float64: equal
                np.testing.assert_array_equal(got, expected)
            else:  # another order of adding than NumPy's pairwise sum: a few ulps of the largest cell
                atol = 16 * np.finfo(np.float64).eps * float(np.max(np.abs(x)))
                np.testing.assert_allclose(got, expected, rtol=0, atol=atol)
    chain = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 254.5, 255.5, 1e9, -1e9, 3.49999999])
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        expected = np.clip(np.rint(chain), info.min, info.max).astype(dtype)
    else:
        chain = chain[np.abs(chain) < 6e4]  # a mean of float16 cells lies in float16's range
        expected = chain.astype(dtype)
    np.testing.assert_array_equal(round_half_even(chain, dtype), expected)
    np.testing.assert_array_equal(round_half_even(chain, dtype, compiled=True), expected)


def torch_rule_level(x: np.ndarray, pooled, kernel, ceil_mode, largest) -> np.ndarray:
    """PyTorch's max pooling rule by a loop over the windows: row-major, a cell replaces the running value
    when it is greater (min: smaller) or NaN."""
    outs = [-(-x.shape[a] // k) if ceil_mode else x.shape[a] // k for a, k in zip(pooled, kernel)]
    moved = np.moveaxis(x, pooled, range(x.ndim - len(pooled), x.ndim))
    result = np.empty((*moved.shape[:x.ndim - len(pooled)], *outs), dtype=x.dtype)
    for index in np.ndindex(*result.shape):
        lead, window = index[:x.ndim - len(pooled)], index[x.ndim - len(pooled):]
        cells = moved[(*lead, *(slice(i * k, i * k + k) for i, k in zip(window, kernel)))].reshape(-1)
        running = cells[0]
        for cell in cells[1:]:
            if (cell > running if largest else cell < running) or cell != cell:
                running = cell
        result[index] = running
    return np.moveaxis(result, range(x.ndim - len(pooled), x.ndim), pooled)


EXTREME_DTYPES = [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
                  np.float16, np.float32, np.float64]


@pytest.mark.parametrize("dtype", EXTREME_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("largest", [True, False], ids=["max", "min"])
def test_the_pyramid_kernel_against_the_window_rule(dtype, largest):
    from colnn.kernels.pyramid import window_extremes

    rng = np.random.default_rng(40)
    x = rng.integers(0, 2, (3, 5, 9, 7)).astype(dtype) if dtype == np.bool_ else sample((3, 5, 9, 7), dtype, rng)
    if np.dtype(dtype).kind == "f":  # signed zeros side by side, and NaN of both signs in some windows
        x.flat[::5] = 0.0
        x.flat[1::10] = -0.0
        x.flat[2::17] = np.nan
        x.flat[3::23] = -np.nan
    for pooled, kernel in [((3,), (3,)), ((1, 2), (2, 2)), ((0, 1, 3), (2, 3, 2)), ((2,), (1,)), ((1, 2), (5, 4))]:
        for ceil_mode in (False, True):
            got = window_extremes(x, pooled, kernel, ceil_mode, largest)
            expected = torch_rule_level(x, pooled, kernel, ceil_mode, largest)
            assert got.dtype == x.dtype and got.shape == expected.shape
            # Bit for bit: the sign of a zero and which NaN (its sign) count.
            assert got.tobytes() == expected.tobytes(), (pooled, kernel, ceil_mode)


@pytest.mark.parametrize("largest", [True, False], ids=["max", "min"])
def test_the_pyramid_kernel_is_torch_max_pool_bit_for_bit(largest):
    torch = pytest.importorskip("torch")
    from colnn.kernels.pyramid import window_extremes

    x = np.random.default_rng(41).normal(0, 1, (2, 3, 11, 10)).astype(np.float32)
    x.flat[::4] = 0.0
    x.flat[1::8] = -0.0
    x.flat[2::13] = np.nan
    x.flat[5::19] = -np.nan
    for ceil_mode in (False, True):
        got = window_extremes(x, (2, 3), (2, 3), ceil_mode, largest)
        sign = 1 if largest else -1
        expected = sign * torch.nn.functional.max_pool2d(sign * torch.from_numpy(x), (2, 3), ceil_mode=ceil_mode)
        assert got.tobytes() == expected.numpy().tobytes()


def block_means(x: np.ndarray, pooled, kernel, level: int) -> np.ndarray:
    """Level ``level`` of tiling windows straight from level 0: each cell the float64 mean of the level-0 block
    it covers (``kernel ** level`` cells a side, the last block cut at the image's end)."""
    result = x.astype(np.float64)
    for axis, k in zip(pooled, kernel):
        side = k ** level
        starts = np.arange(0, x.shape[axis], side)
        result = np.add.reduceat(result, starts, axis=axis)
        cells = np.minimum(side, x.shape[axis] - starts).reshape([-1 if a == axis else 1 for a in range(x.ndim)])
        result = result / cells
    return result


@pytest.mark.parametrize("variant", ["numpy", "compiled", "kept", "halo"])
@pytest.mark.parametrize("kernel", [(2, 2), (3, 2)], ids=["k2", "k3x2"])
def test_ceil_mode_means_are_exact_means_of_level_0(variant, kernel, monkeypatch):
    # Partial windows at every level: each level must be the mean of the level-0 cells it covers, not a mean of
    # the level before's means (which would weigh a partial window's mean like a whole one's).
    if variant == "kept":
        from colnn.apps.pool import methods

        monkeypatch.setattr(methods, "CHAIN_BLOCK_CELLS", 1)
    x = np.random.default_rng(50).integers(0, 65535, (2, 31, 23), dtype=np.uint16)
    chunks = {"numpy": (1, 18, 8), "compiled": (1, 18, 8), "kept": (2, 36, 8), "halo": (1, 7, 5)}[variant]
    args = dict(method="avg", pooled=(1, 2), kernel=kernel, stride=kernel, padding=(0, 0), ceil_mode=True)
    got = run_pyramid(x, levels=3, chunks=chunks, compiled=variant == "compiled", **args)
    for level in range(1, 4):
        expected = np.rint(block_means(x, (1, 2), kernel, level)).astype(np.uint16)
        np.testing.assert_array_equal(got[level], expected, err_msg=f"level {level}")


@pytest.mark.parametrize("chunk", [7, 5, 3])
def test_the_ceil_mode_mean_of_a_row_with_a_partial_window(chunk):
    # The tryout's case: level 2's last cell covers level-0 cells 4..6 (0, 0, 3), whose mean is 1; the mean of
    # level 1's means (0 and 3) would be 1.5, rounded to 2.
    x = np.array([[0, 0, 0, 0, 0, 0, 3]] * 2, np.uint8)
    args = dict(method="avg", pooled=(0, 1), kernel=(2, 2), stride=(2, 2), padding=(0, 0), ceil_mode=True)
    got = run_pyramid(x, levels=2, chunks=(2, chunk), **args)
    np.testing.assert_array_equal(got[1], [[0, 0, 0, 3]])
    np.testing.assert_array_equal(got[2], [[0, np.rint(np.mean(x[:, 4:]))]])
    assert got[2][0, 1] == 1


def test_padded_means_count_only_the_cells_inside_the_image():
    # count_include_pad=False, carried through the levels: each level's value is the sum of the level-0 values
    # its windows reach over the number of level-0 cells they reach (with multiplicity), padding adding neither.
    x = np.random.default_rng(51).integers(0, 255, (1, 19), dtype=np.uint8)
    args = dict(method="avg", pooled=(1,), kernel=(3,), stride=(2,), padding=(1,), ceil_mode=False)
    got = run_pyramid(x, levels=2, chunks=(1, 5), **args)
    # Level 1 by hand: window o covers cells 2o-1..2o+1 inside 0..18; level 2 the same over level 1's windows.
    windows1 = [[c for c in (2 * o - 1, 2 * o, 2 * o + 1) if 0 <= c < 19] for o in range(10)]
    windows2 = [[c for w in (2 * o - 1, 2 * o, 2 * o + 1) if 0 <= w < 10 for c in windows1[w]] for o in range(5)]
    for level, windows in ((1, windows1), (2, windows2)):
        expected = [np.rint(np.mean(x[0, cells].astype(np.float64))) for cells in windows]
        np.testing.assert_array_equal(got[level][0], expected, err_msg=f"level {level}")
