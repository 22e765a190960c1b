"""Direct convolution (few input channels) against the im2col reference, PyTorch, a naive sum and its conditions.

The convolution tests of test_conv.py also run through it: their inputs have
few channels, so every ungrouped, stride-1, undilated case they draw that is
not 3x3 (Winograd's) takes this path.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colnn.kernels import conv_chunked, direct_conv
from colnn.ops import conv
from reference import naive_conv2d

TOL = {np.float32: 2e-5, np.float64: 1e-12}


def _draw_arrays(draw, kernel, padding, max_height, max_width, max_filters):
    """x, weight and bias (or None) of a random dtype for ``kernel`` and ``padding``, at least one window."""
    height = draw(st.integers(max(1, kernel[0] - 2 * padding[0]), max_height))
    width = draw(st.integers(max(1, kernel[1] - 2 * padding[1]), max_width))
    shape = (draw(st.integers(1, 5)), draw(st.integers(1, direct_conv.MAX_CHANNELS)), height, width)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal(shape).astype(dtype)
    weight = rng.standard_normal((draw(st.integers(1, max_filters)), shape[1], *kernel)).astype(dtype)
    bias = rng.standard_normal(weight.shape[0]).astype(dtype) if draw(st.booleans()) else None
    return x, weight, bias


@st.composite
def direct_case(draw):
    kernel = (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    padding = (draw(st.integers(0, kernel[0] - 1)), draw(st.integers(0, kernel[1] - 1)))
    return (*_draw_arrays(draw, kernel, padding, 14, 14, 5), padding)


@settings(max_examples=150, deadline=None)
@given(case=direct_case())
def test_direct_equals_the_im2col_reference(case):
    x, weight, bias, padding = case
    window = conv.conv_window(x.shape[2:], weight.shape[2:], 1, padding, 1)
    assert direct_conv.applies(x.shape, weight.shape, window, 1)
    expected, _ = conv.conv2d_forward(x, weight, bias, window, strategy="im2col")
    out = direct_conv.conv2d_forward_direct(x, weight, bias, window)
    assert out.dtype == x.dtype and out.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(out, expected, rtol=0, atol=TOL[x.dtype.type] * scale)


@st.composite
def strided_case(draw):
    """A horizontal stride that divides the kernel's width: the direct path splits the columns into phases."""
    stride = draw(st.integers(2, 4))
    kernel = (draw(st.integers(1, 3)), stride * draw(st.integers(1, 4)))
    padding = (draw(st.integers(0, kernel[0] - 1)), draw(st.integers(0, kernel[1] - 1)))
    return (*_draw_arrays(draw, kernel, padding, 6, 40, 6), padding, stride)


@settings(max_examples=150, deadline=None)
@given(case=strided_case())
def test_strided_direct_equals_the_im2col_reference(case):
    x, weight, bias, padding, stride = case
    window = conv.conv_window(x.shape[2:], weight.shape[2:], (1, stride), padding, 1)
    assert direct_conv.applies(x.shape, weight.shape, window, 1)
    assert direct_conv.preferred(x.shape, x.dtype, window)
    expected, _ = conv.conv2d_forward(x, weight, bias, window, strategy="im2col")
    for relu in (False, True):
        out = direct_conv.conv2d_forward_direct(x, weight, bias, window, relu)
        assert out.dtype == x.dtype and out.shape == expected.shape
        scale = max(1.0, float(np.abs(expected).max()))
        np.testing.assert_allclose(out, np.maximum(expected, 0) if relu else expected, rtol=0,
                                   atol=TOL[x.dtype.type] * scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("channels", "kernel_size", "stride", "padding"),
                         [(1, 80, 4, 0), (1, 80, 4, 3), (2, 6, 2, 1), (3, 9, 3, 4), (4, 4, 4, 0)])
def test_conv1d_at_a_stride_dividing_the_kernel_runs_directly_and_matches_torch(
        torch, rng, monkeypatch, dtype, channels, kernel_size, stride, padding):
    """conv1d's stride through the unit axis (W1 of ``colnn bench``: raw audio, 80 taps at stride 4).

    9,001 samples: each phase's row spans several of the tap loop's blocks of cells.
    """
    x = rng.standard_normal((3, channels, 9001)).astype(dtype)
    weight = rng.standard_normal((8, channels, kernel_size)).astype(dtype)
    bias = rng.standard_normal(8).astype(dtype)
    taken = []
    direct = direct_conv.conv2d_forward_direct
    monkeypatch.setattr(direct_conv, "conv2d_forward_direct", lambda *args: taken.append(1) or direct(*args))
    out = conv.conv1d(x, weight, bias, stride=stride, padding=padding)
    expected = torch.nn.functional.conv1d(*map(torch.from_numpy, (x, weight, bias)), stride=stride,
                                          padding=padding).numpy()
    assert taken and out.dtype == x.dtype and out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=0, atol=TOL[dtype] * np.abs(expected).max())


@pytest.mark.parametrize(("images", "filters"), [(5, 19), (3, 16), (1, 9)])
def test_filters_in_several_tasks_each_reach_their_own_planes(torch, rng, images, filters):
    """More filters than a task takes (:data:`~colnn.kernels.direct_conv_loops.FILTERS_PER_TASK`), odd counts
    of images and filters: every (image, filter) plane written once, by its own filter."""
    from colnn.kernels import direct_conv_loops

    assert filters > direct_conv_loops.FILTERS_PER_TASK
    x = rng.standard_normal((images, 3, 12, 13))
    weight = rng.standard_normal((filters, 3, 2, 4))
    bias = rng.standard_normal(filters)
    out = np.full((images, filters, 11, 10), np.nan)
    direct_conv_loops.conv_valid_in_pairs(x, weight, bias, True, False, out)
    expected = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(weight), torch.from_numpy(bias))
    np.testing.assert_allclose(out, expected.numpy(), rtol=0, atol=1e-12 * float(expected.abs().max()))


@pytest.mark.parametrize("shape", [(2, 3, 60, 50), (1, 2, 1, 3000)])
def test_grids_of_several_blocks_sum_every_tap_into_every_cell(torch, rng, shape):
    """More cells than one block of the tap-by-tap loop (:data:`~colnn.kernels.direct_conv_loops.BLOCK_CELLS`)."""
    from colnn.kernels import direct_conv_loops

    kernel = (3, 5) if shape[2] > 1 else (1, 7)
    assert (shape[2] - kernel[0] + 1) * shape[3] > 2 * direct_conv_loops.BLOCK_CELLS
    x = rng.standard_normal(shape)
    weight = rng.standard_normal((6, shape[1], *kernel))
    window = conv.conv_window(shape[2:], kernel, 1, 0, 1)
    out = direct_conv.conv2d_forward_direct(x, weight, None, window)
    expected = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(weight)).numpy()
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12 * np.abs(expected).max())


def test_a_stride_that_does_not_divide_the_kernel_stays_on_im2col(rng):
    """Its phases would have unequal tap counts, a zero weight padding the short ones (0 * inf would be NaN)."""
    window = conv.conv_window((1, 100), (1, 5), (1, 2), 0, 1)
    assert not direct_conv.applies((2, 1, 1, 100), (8, 1, 1, 5), window, 1)
    assert direct_conv.applies((2, 1, 1, 100), (8, 1, 1, 6), conv.conv_window((1, 100), (1, 6), (1, 2), 0, 1), 1)
    assert not direct_conv.applies((2, 1, 5, 100), (8, 1, 2, 6), conv.conv_window((5, 100), (2, 6), 2, 0, 1), 1)


def test_a_strided_direct_conv_never_reads_the_columns_no_window_reaches(torch, rng):
    """inf and NaN past the last window (a length the stride does not divide) stay out of every output."""
    x = rng.standard_normal((2, 1, 103)).astype(np.float32)
    x[:, :, 100:] = [np.inf, np.nan, -np.inf]  # windows of 8 at stride 4 end at column 99
    weight = rng.standard_normal((4, 1, 8)).astype(np.float32)
    out = conv.conv1d(x, weight, stride=4)
    expected = torch.nn.functional.conv1d(torch.from_numpy(x), torch.from_numpy(weight), stride=4).numpy()
    assert np.isfinite(out).all() and out.shape == expected.shape == (2, 4, 24)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("padding", [0, 2, "same"])
def test_direct_matches_torch_on_the_first_layer_of_simple_conv_net(torch, rng, padding):
    x = rng.random((100, 1, 28, 28), dtype=np.float32)
    weight = (rng.standard_normal((30, 1, 5, 5)) / 5).astype(np.float32)
    bias = rng.standard_normal(30).astype(np.float32)
    expected = torch.nn.functional.conv2d(*map(torch.from_numpy, (x, weight, bias)), padding=padding).numpy()
    out = conv.conv2d(x, weight, bias, padding=padding)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the reference's 0 * inf
@pytest.mark.parametrize(("x_shape", "w_shape", "unrolled"), [
    ((2, 2, 7, 7), (3, 2, 3, 2), False),  # tap by tap
    ((3, 1, 9, 9), (3, 1, 3, 3), True),   # the unrolled one-channel loop
])
def test_nan_and_inf_propagate_as_in_a_plain_sum_of_products(rng, x_shape, w_shape, unrolled):
    x = rng.standard_normal(x_shape)
    x[0, 0, 3, 3], x[1, -1, 0, 0], x[-1, 0, -1, -1] = np.nan, np.inf, -np.inf
    weight = rng.standard_normal(w_shape)
    weight[2, -1, 0, 0] = 0.0  # 0 * inf is NaN: a zero tap must not skip the product
    bias = rng.standard_normal(3)
    window = conv.conv_window(x.shape[2:], weight.shape[2:], 1, 1, 1)
    assert direct_conv.unrolls(x.shape, x.dtype, window) == unrolled
    out = direct_conv.conv2d_forward_direct(x, weight, bias, window)
    expected = naive_conv2d(x, weight, bias, (1, 1), (1, 1), (1, 1), 1)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(np.isinf(out), np.isinf(expected))
    np.testing.assert_array_equal(out[~finite & ~np.isnan(expected)], expected[~finite & ~np.isnan(expected)])
    np.testing.assert_allclose(out[finite], expected[finite], rtol=1e-12, atol=1e-12)


def test_the_strategy_picks_direct_for_few_channels_only(monkeypatch, rng):
    calls = []
    original = direct_conv.conv2d_forward_direct
    monkeypatch.setattr(direct_conv, "conv2d_forward_direct", lambda *args: calls.append(1) or original(*args))
    weight = rng.standard_normal((6, 1, 5, 5)).astype(np.float32)
    conv.conv2d(rng.standard_normal((2, 1, 12, 12)).astype(np.float32), weight)
    assert calls == [1]
    for x_shape, w_shape, stride in [((2, 5, 12, 12), (6, 5, 5, 5), 1), ((2, 1, 12, 12), (6, 1, 5, 5), 2)]:
        monkeypatch.setattr(conv_chunked, "conv2d_forward_chunked",
                            lambda *args, seen=[]: seen.append(1) or np.zeros(0))
        conv.conv2d(rng.standard_normal(x_shape).astype(np.float32),
                    rng.standard_normal(w_shape).astype(np.float32), stride=stride)
    assert calls == [1]


def test_caller_arrays_are_not_modified(rng):
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    weight = rng.standard_normal((4, 3, 4, 4)).astype(np.float32)
    before = x.copy(), weight.copy()
    conv.conv2d(x, weight, padding=2)
    np.testing.assert_array_equal(x, before[0])
    np.testing.assert_array_equal(weight, before[1])


UNROLLED_CASES = [(kernel, dtype) for kernel, dtypes in sorted(direct_conv.UNROLLED_KERNELS.items())
                  for dtype in sorted(dtypes)]


@pytest.mark.parametrize(("kernel", "dtype"), UNROLLED_CASES)
@pytest.mark.parametrize(("shape", "filters", "padding", "with_bias", "relu"), [
    ((3, 1, 28, 28), 30, 0, True, False),   # SimpleConvNet's first layer: filters in pairs
    ((2, 1, 13, 17), 7, 1, False, True),    # an odd filter count (the last pair is one filter), odd widths
    ((1, 1, 6, 5), 1, 2, True, True),       # one filter, a grid of a few cells
])
def test_the_unrolled_one_channel_loop_matches_torch(torch, rng, kernel, dtype, shape, filters, padding, with_bias,
                                                     relu):
    x = rng.standard_normal(shape).astype(dtype)
    weight = rng.standard_normal((filters, 1, *kernel)).astype(dtype)
    bias = rng.standard_normal(filters).astype(dtype) if with_bias else None
    window = conv.conv_window(shape[2:], kernel, 1, padding, 1)
    assert direct_conv.unrolls(x.shape, x.dtype, window)
    out = direct_conv.conv2d_forward_direct(x, weight, bias, window, relu)
    expected = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(weight),
                                          None if bias is None else torch.from_numpy(bias), padding=padding)
    expected = (torch.relu(expected) if relu else expected).numpy()
    assert out.dtype == x.dtype and out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=0, atol=TOL[x.dtype.type] * max(1.0, np.abs(expected).max()))


@pytest.mark.parametrize(("kernel", "dtype"), UNROLLED_CASES)
@pytest.mark.parametrize("images", [1, 4, 5])
def test_the_unrolled_loop_sums_as_the_tap_by_tap_loop_bit_for_bit(rng, kernel, dtype, images):
    """Same products, same order (kernel rows, then taps), one FMA each: the two loops agree to the last bit.

    One image, an even count and an odd one, and an odd count of filters (both loops take pairs of each,
    the last pair cut short).
    """
    from colnn.kernels import direct_conv_loops

    x = rng.standard_normal((images, 1, 19, 23)).astype(dtype)
    weight = rng.standard_normal((5, 1, *kernel)).astype(dtype)
    bias = rng.standard_normal(5).astype(dtype)
    out_shape = (images, 5, 19 - kernel[0] + 1, 23 - kernel[1] + 1)
    unrolled, tap_by_tap = (np.full(out_shape, np.nan, dtype) for _ in range(2))
    direct_conv_loops.one_channel_conv(*kernel)(x, weight, bias, True, True, unrolled)
    direct_conv_loops.conv_valid_in_pairs(x, weight, bias, True, True, tap_by_tap)
    np.testing.assert_array_equal(unrolled, tap_by_tap)
    expected = naive_conv2d(x, weight, bias, (1, 1), (0, 0), (1, 1), 1)
    np.testing.assert_allclose(tap_by_tap, np.maximum(expected, 0), rtol=0,
                               atol=TOL[x.dtype.type] * max(1.0, np.abs(expected).max()))


def test_float64_blank_windows_give_exact_zeros_on_the_unrolled_loop(rng):
    """MNIST's blank border with a zero bias: every window of zeros gives exactly 0.0 (no 1e-17 left by rounding)."""
    x = np.zeros((2, 1, 28, 28))
    x[:, :, 8:20, 8:20] = rng.random((2, 1, 12, 12))
    weight = rng.standard_normal((6, 1, 3, 3))
    window = conv.conv_window((28, 28), (3, 3), 1, 1, 1)
    assert direct_conv.unrolls(x.shape, x.dtype, window)
    out = direct_conv.conv2d_forward_direct(x, weight, np.zeros(6), window)
    blank = np.ones((28, 28), bool)
    blank[7:21, 7:21] = False  # windows that reach the drawn square
    assert np.all(out[:, :, blank] == 0.0)
    expected = naive_conv2d(x, weight, np.zeros(6), (1, 1), (1, 1), (1, 1), 1)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)


def test_only_one_channel_and_the_listed_sizes_and_dtypes_unroll():
    window5 = conv.conv_window((28, 28), (5, 5), 1, 0, 1)
    window4 = conv.conv_window((28, 28), (4, 4), 1, 0, 1)
    assert direct_conv.unrolls((8, 1, 28, 28), np.dtype(np.float32), window5)
    assert direct_conv.unrolls((8, 1, 28, 28), np.dtype(np.float64), window5)
    assert not direct_conv.unrolls((8, 3, 28, 28), np.dtype(np.float32), window5)
    assert not direct_conv.unrolls((8, 1, 28, 28), np.dtype(np.float32), window4)


@pytest.mark.parametrize("channels", [1, 2])  # the unrolled loop (pairs of images) and the tap-by-tap one
def test_two_threads_share_out_every_image(torch, rng, channels):
    """An odd count of images (pairs, the last cut short), a batch big enough for two threads: each image right."""
    import colnn
    from colnn.kernels import threads

    x = rng.random((19, channels, 28, 28), dtype=np.float32)
    weight = (rng.standard_normal((8, channels, 5, 5)) / 5).astype(np.float32)
    window = conv.conv_window((28, 28), (5, 5), 1, 0, 1)
    assert x.shape[0] * 8 * 24 * 24 * 4 * 25 // 8 >= threads.SERIAL_BELOW_BYTES
    expected = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(weight)).numpy()
    before = colnn.get_num_threads()
    colnn.set_num_threads(2)
    try:
        out = direct_conv.conv2d_forward_direct(x, weight, None, window)
    finally:
        colnn.set_num_threads(before)
    np.testing.assert_allclose(out, expected, rtol=0, atol=2e-5 * np.abs(expected).max())
