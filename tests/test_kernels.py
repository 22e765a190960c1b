"""The compiled fast path (colnn.kernels): what the conformance tests cannot see.

The reference strategy (the tutorial's im2col path) is the oracle here: it is
an independent implementation, checked against PyTorch by the conformance
tests, and unlike PyTorch it takes every integer dtype. Then the fast path's
own promises: compact offsets, bounded chunked convolution, thread control, and
an import that compiles nothing while later processes load the compiled
kernels from the on-disk cache.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import colnn
from colnn.kernels import conv_chunked
from colnn.kernels import threads as kernels
from colnn.kernels.pool import NumbaStrategy
from colnn.ops import conv
from colnn.ops.pooling import max_pool_forward, pool_window
from colnn.ops.reference.pooling import ReferencePool
from colnn.ops.strategy import runs_kernels

FAST = NumbaStrategy()
REFERENCE = ReferencePool()
DTYPES = ["float16", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]
HYPOTHESIS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter; return its stdout."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


@st.composite
def pooling_case(draw):
    """An input with ties, NaN, infinities and lowest values, and a valid pooling window over it."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 12)), draw(st.integers(1, 12)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(0, 4, size=shape).astype(dtype)
    lowest = -np.inf if dtype.kind == "f" else np.iinfo(dtype).min
    x[rng.random(shape) < 0.15] = lowest
    if dtype.kind == "f":
        x[rng.random(shape) < 0.1] = np.nan
        x[rng.random(shape) < 0.05] = np.inf
    try:
        window = pool_window(
            x, kernel, (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
            (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2))),
            (draw(st.integers(1, 3)), draw(st.integers(1, 3))), draw(st.booleans()),
        )
    except ValueError:  # an empty output
        window = pool_window(x, 1, 1, 0, 1, False)
    return x, window


@HYPOTHESIS
@given(pooling_case())
def test_max_pooling_equals_reference_bit_for_bit(case):
    x, window = case
    out, offset = FAST.max_forward(x, window)
    expected_out, expected_offset = REFERENCE.max_forward(x, window)
    assert out.dtype == x.dtype
    np.testing.assert_array_equal(out, expected_out)  # NaN == NaN here
    np.testing.assert_array_equal(offset, expected_offset)
    np.testing.assert_array_equal(FAST.max_values(x, window), expected_out)
    if x.dtype.kind == "f":
        grad = np.random.default_rng(0).standard_normal(out.shape).astype(x.dtype)
        grad_input = FAST.max_backward(grad, offset, x.shape, window)
        expected_grad = REFERENCE.max_backward(grad, expected_offset, x.shape, window)
        # Where windows overlap the sums run in another order (PyTorch's, tested below);
        # float16 is summed in float32 and rounded once.
        tolerance = {"float16": 2e-3, "float32": 1e-6, "float64": 1e-14}[x.dtype.name]
        np.testing.assert_allclose(grad_input, expected_grad, rtol=tolerance, atol=tolerance)


def test_overlapping_max_gradients_sum_in_pytorchs_order(torch, rng):
    """Each cell's gradients are added in output order, as PyTorch does: bit-exact float32 sums."""
    x = rng.integers(0, 3, size=(2, 4, 17, 15)).astype(np.float32)  # ties: cells chosen by many windows
    grad = rng.standard_normal((2, 4, 15, 13)).astype(np.float32)
    x_torch = torch.from_numpy(x).requires_grad_()
    out = torch.nn.functional.max_pool2d(x_torch, 3, 1)
    (expected,) = torch.autograd.grad(out, x_torch, torch.from_numpy(grad))
    layer = colnn.MaxPool2d(3, 1)
    layer.forward(x)
    np.testing.assert_array_equal(layer.backward(grad), expected.numpy())


@pytest.mark.parametrize(("kernel", "stride", "padding"), [(3, 2, 1), (2, 2, 0), (3, 1, 1), (2, 1, 0)])
def test_max_values_are_pytorchs_bit_for_bit_with_signed_zeros_and_nan_payloads(torch, rng, kernel, stride, padding):
    """Ties between -0.0 and +0.0, and NaN of different bits, resolved by the row-major scan."""
    negative_nan = np.float32(np.nan) * -1
    cells = np.array([0.0, -0.0, -1.0, np.nan, negative_nan], dtype=np.float32)
    x = cells[rng.choice(len(cells), size=(2, 3, 11, 12), p=[0.35, 0.35, 0.2, 0.05, 0.05])]
    expected = torch.nn.functional.max_pool2d(torch.from_numpy(x), kernel, stride, padding).numpy()
    for out in (colnn.max_pool2d(x, kernel, stride, padding),
                colnn.max_pool2d(x, kernel, stride, padding, return_indices=True)[0]):
        np.testing.assert_array_equal(out.view(np.uint32), expected.view(np.uint32))


@pytest.mark.parametrize("shape", [(2, 3, 8, 6), (2, 3, 7, 9), (1, 1, 2, 2)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_2x2_stride_2_fast_kernels_equal_reference(shape, dtype, rng):
    """The dedicated 2x2/stride-2 kernels, including odd sizes whose last row/column no window covers."""
    x = rng.integers(-2, 3, size=shape).astype(dtype)
    x[rng.random(shape) < 0.1] = np.nan
    window = pool_window(x, 2, 2, 0, 1, False)
    grad = rng.standard_normal((*shape[:2], window.out_h, window.out_w)).astype(dtype)
    divisor = window.avg_divisor(True, None)
    out, offset = FAST.max_forward(x, window)
    np.testing.assert_array_equal(out, REFERENCE.max_forward(x, window)[0])
    np.testing.assert_array_equal(FAST.max_backward(grad, offset, shape, window),
                                  REFERENCE.max_backward(grad, offset, shape, window))
    finite = np.nan_to_num(x)
    np.testing.assert_allclose(FAST.avg_forward(finite, window, divisor),
                               REFERENCE.avg_forward(finite, window, divisor))
    np.testing.assert_allclose(FAST.avg_backward(grad, shape, window, divisor),
                               REFERENCE.avg_backward(grad, shape, window, divisor))


@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("size", [(3, 3), (4, 5), (7, 6), (12, 131), (13, 130), (1, 2)])
@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int16"])
def test_3x3_stride_2_forward_equals_reference_at_every_border(padding, size, ceil_mode, dtype, rng):
    """The separable 3x3/stride-2 kernel: first and last windows clipped by padding or ceil_mode, ties, NaN, lowest.

    Widths past 64 windows run its scratch rows over more than one vector block.
    """
    if padding == 0 and min(size) < 3:
        pytest.skip("no window fits without padding")
    shape = (2, 3, *size)
    x = rng.integers(-1, 2, size=shape).astype(dtype)
    lowest = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    x[rng.random(shape) < 0.2] = lowest
    if x.dtype.kind == "f":
        x[rng.random(shape) < 0.05] = np.nan
    window = pool_window(x, 3, 2, padding, 1, ceil_mode)
    out, offset = FAST.max_forward(x, window)
    expected_out, expected_offset = REFERENCE.max_forward(x, window)
    np.testing.assert_array_equal(out, expected_out)
    np.testing.assert_array_equal(offset, expected_offset)
    np.testing.assert_array_equal(FAST.max_values(x, window), expected_out)


@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("size", [(3, 3), (4, 5), (7, 6), (12, 131), (13, 130), (1, 2)])
@pytest.mark.parametrize(("ceil_mode", "count_include_pad", "divisor_override"),
                         [(False, True, None), (True, True, None), (True, False, None), (False, False, 5)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_3x3_stride_2_average_is_pytorchs_bit_for_bit_at_every_border(
        torch, rng, padding, size, ceil_mode, count_include_pad, divisor_override, dtype):
    """The separable 3x3/stride-2 average kernel adds each window's cells in PyTorch's row-major order: equal sums
    bit for bit (not merely close), clipped border windows, -0.0, infinities and NaN included."""
    if padding == 0 and min(size) < 3:
        pytest.skip("no window fits without padding")
    x = rng.standard_normal((2, 3, *size)).astype(dtype) * 1e3
    for step, value in ((7, -0.0), (29, np.inf), (31, -np.inf), (37, np.nan)):
        x.flat[rng.integers(0, step)::step] = value
    expected = torch.nn.functional.avg_pool2d(torch.from_numpy(x), 3, 2, padding, ceil_mode, count_include_pad,
                                              divisor_override).numpy()
    got = colnn.avg_pool2d(x, 3, 2, padding, ceil_mode, count_include_pad, divisor_override)
    bits = np.uint32 if dtype == np.float32 else np.uint64
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    number = ~np.isnan(expected)
    np.testing.assert_array_equal(got[number].view(bits), expected[number].view(bits))


def _gradient_with_edge_values(rng, shape, dtype):
    """A gradient with -0.0, infinities, NaN of both signs and a signalling NaN (PyTorch's sum quiets it)."""
    grad = rng.standard_normal(shape).astype(dtype)
    bits = np.uint32 if dtype == np.float32 else np.uint64
    signalling = np.array(0x7F800001 if dtype == np.float32 else 0x7FF0000000000001, dtype=bits).view(dtype)
    for step, value in ((5, -0.0), (7, np.inf), (11, -np.inf), (13, np.nan), (17, -np.nan), (19, signalling)):
        grad.flat[rng.integers(0, step)::step] = value
    return grad


@pytest.mark.parametrize(("kernel", "stride", "padding"), [(3, 2, 1), (3, 2, 0), (2, 2, 0)])
@pytest.mark.parametrize("size", [(11, 12), (12, 11), (13, 13), (16, 14), (1, 2), (3, 3)])
@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_write_once_max_backward_is_pytorchs_bit_for_bit(torch, rng, kernel, stride, padding, size, ceil_mode, dtype):
    """The 2x2/stride-2 and 3x3/stride-2 backward kernels that write each gradient cell once (no zero-fill
    and scatter): PyTorch's autograd bit for bit, -0.0, infinities and overlapping windows' sums included."""
    if min(size) + 2 * padding < kernel:
        pytest.skip("no window fits")
    x = rng.integers(0, 3, size=(2, 3, *size)).astype(dtype)  # ties: cells chosen by two or four windows
    x[rng.random(x.shape) < 0.1] = np.nan
    x_torch = torch.from_numpy(x).requires_grad_()
    out = torch.nn.functional.max_pool2d(x_torch, kernel, stride, padding, ceil_mode=ceil_mode)
    grad = _gradient_with_edge_values(rng, tuple(out.shape), dtype)
    (expected,) = torch.autograd.grad(out, x_torch, torch.from_numpy(grad))
    layer = colnn.MaxPool2d(kernel, stride, padding, ceil_mode=ceil_mode)
    layer.forward(x)
    got = layer.backward(grad)
    expected = expected.numpy()
    bits = np.uint32 if dtype == np.float32 else np.uint64
    assert got.dtype == dtype
    # Which of two NaN a sum returns is the compiler's choice (LLVM may swap an addition's operands), so NaN
    # is compared as NaN; every other cell, -0.0 against +0.0 included, bit for bit.
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    number = ~np.isnan(expected)
    np.testing.assert_array_equal(got[number].view(bits), expected[number].view(bits))


@pytest.mark.parametrize(("kernel", "stride", "padding"), [(3, 2, 1), (2, 2, 0)])
def test_write_once_max_backward_of_an_empty_batch(kernel, stride, padding):
    layer = colnn.MaxPool2d(kernel, stride, padding)
    out = layer.forward(np.zeros((0, 3, 12, 12), np.float32))
    assert layer.backward(out).shape == (0, 3, 12, 12)


@pytest.mark.parametrize(("kernel", "dtype"), [(2, np.uint8), (16, np.uint8), (17, np.uint16), ((1, 300), np.uint16)])
def test_offsets_are_compact(kernel, dtype, rng):
    x = rng.standard_normal((1, 2, 40, 600)).astype(np.float32)
    window = pool_window(x, kernel, 1, 0, 1, False)
    out, offset = FAST.max_forward(x, window)
    assert offset.dtype == dtype and offset.shape == out.shape
    np.testing.assert_array_equal(window.flat_indices(offset), colnn.max_pool2d(x, kernel, 1, return_indices=True)[1])


def test_inputs_the_kernels_do_not_take_go_to_the_reference(rng):
    x = rng.standard_normal((2, 3, 6, 6))
    window = pool_window(x, 3, 2, 1, 1, False)
    big_endian = x.astype(">f8")
    assert not runs_kernels(None, big_endian, "pool")  # colnn.ops.strategy sends it to the reference
    out, _ = max_pool_forward(big_endian, window)
    assert out.dtype == np.dtype("=f8")  # outputs are in native byte order (issue 10, item 6)
    np.testing.assert_array_equal(out, REFERENCE.max_forward(x, window)[0])
    strided = x[:, :, ::2, ::-1]  # not contiguous: copied, not refused
    window = pool_window(strided, 2, 1, 0, 1, False)
    np.testing.assert_array_equal(FAST.max_forward(strided, window)[0], REFERENCE.max_forward(strided, window)[0])


# --- convolution --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weight_shape", "stride", "padding", "dilation", "groups"),
    [((6, 4, 3, 3), 1, 1, 1, 1), ((6, 2, 3, 2), 2, (2, 0), (1, 2), 2), ((3, 4, 5, 5), (1, 3), 2, 1, 1),
     ((4, 4, 1, 1), 1, 0, 1, 1)],
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_chunked_convolution_equals_unchunked_and_reference(weight_shape, stride, padding, dilation, groups, dtype,
                                                             rng):
    x = rng.standard_normal((5, 4, 9, 10)).astype(dtype)
    weight = rng.standard_normal(weight_shape).astype(dtype)
    bias = rng.standard_normal(weight_shape[0]).astype(dtype)
    window = conv.conv_window(x.shape[2:], weight.shape[2:], stride, padding, dilation)
    reference_out, col = conv.conv2d_forward(x, weight, bias, window, groups, strategy="im2col")
    grad = rng.standard_normal(reference_out.shape).astype(dtype)
    expected = conv.conv2d_backward(grad, x.shape, col, weight, window, groups, strategy="im2col")
    tolerance = {"rtol": 1e-5, "atol": 1e-4} if dtype == "float32" else {"rtol": 1e-12, "atol": 1e-12}
    for budget in (1, 3 * 10**4, 1 << 30):  # one image per chunk, two, everything at once
        out = conv_chunked.conv2d_forward_chunked(x, weight, bias, window, groups, budget)
        assert out.dtype == x.dtype
        np.testing.assert_allclose(out, reference_out, **tolerance)
        for got, want in zip(conv_chunked.conv2d_backward_chunked(grad, x, weight, window, groups, budget), expected):
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_allclose(got, want, **tolerance)


def test_convolution_split_over_threads_equals_one_thread_and_restores_blas(rng):
    """Each thread takes a share of the batch with single-threaded BLAS; afterwards BLAS is as it was."""
    from threadpoolctl import threadpool_info

    blas_threads = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    x = rng.standard_normal((5, 4, 9, 9))
    weight = rng.standard_normal((6, 2, 3, 3))
    layer = colnn.Convolution(weight, rng.standard_normal(6), pad=1, groups=2)
    before = colnn.get_num_threads()
    results = []
    try:
        for threads in (1, before):
            colnn.set_num_threads(threads)
            out = layer.forward(x)
            results.append((out, layer.backward(np.ones_like(out)), layer.dW, layer.db))
    finally:
        colnn.set_num_threads(before)
    for one_thread, many in zip(*results):
        np.testing.assert_allclose(many, one_thread, rtol=1e-12, atol=1e-12)
    assert [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"] == blas_threads


def test_column_budget_is_settable_and_bounds_the_chunk():
    previous = conv.set_column_budget(1000)
    try:
        assert conv.get_column_budget() == 1000
        assert conv_chunked.chunk_images(32, 400, conv.get_column_budget()) == 2
        assert conv_chunked.chunk_images(32, 4000, conv.get_column_budget()) == 1  # one image at least
        with pytest.raises(ValueError, match="nbytes"):
            conv.set_column_budget(0)
    finally:
        conv.set_column_budget(previous)


def test_convolution_rejects_unknown_strategy():
    with pytest.raises(ValueError, match="strategy"):
        colnn.conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)), strategy="fft")


def test_float16_convolution_falls_back_to_the_reference(rng):
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float16)
    weight = rng.standard_normal((2, 3, 3, 3)).astype(np.float16)
    out = colnn.conv2d(x, weight)
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, colnn.conv2d(x, weight, strategy="im2col"))


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
@pytest.mark.parametrize(("kernel", "stride", "padding", "dilation"), [
    (3, 1, 1, 1), ((2, 3), (2, 1), (1, 0), (1, 2)),
    # through the stride's phases (im2col_loops._reads_phases)
    ((1, 8), (1, 4), (0, 3), 1), (4, 2, 1, 1), ((2, 5), (1, 3), (1, 2), (1, 2)), ((3, 4), (2, 3), 0, 1)])
def test_compiled_im2col_col2im_unfold_fold_equal_the_reference_bit_for_bit(dtype, kernel, stride, padding,
                                                                          dilation, rng):
    """Same values, and the same summation order in col2im/fold (random floats would show another)."""
    x = (rng.standard_normal((3, 2, 7, 8)) * 100).astype(dtype)
    args = {"kernel_size": kernel, "dilation": dilation, "padding": padding, "stride": stride}
    blocks = colnn.unfold(x, **args)
    np.testing.assert_array_equal(blocks, colnn.unfold(x, **args, strategy="im2col"))
    grad_blocks = (rng.standard_normal(blocks.shape) * 100).astype(dtype)
    np.testing.assert_array_equal(colnn.fold(grad_blocks, x.shape[2:], **args),
                                  colnn.fold(grad_blocks, x.shape[2:], **args, strategy="im2col"))
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    book = {"stride": stride, "pad": padding, "dilation": dilation}
    col = colnn.im2col(x, kh, kw, **book, pad_value=-7)
    np.testing.assert_array_equal(col, colnn.im2col(x, kh, kw, **book, pad_value=-7, strategy="im2col"))
    grad_col = (rng.standard_normal(col.shape) * 100).astype(dtype)
    np.testing.assert_array_equal(colnn.col2im(grad_col, x.shape, kh, kw, **book),
                                  colnn.col2im(grad_col, x.shape, kh, kw, **book, strategy="im2col"))


# --- threads, import and cache ---------------------------------------------------


def test_set_num_threads_limits_and_validates(rng):
    before = kernels.get_num_threads()
    x = rng.standard_normal((3, 5, 10, 10)).astype(np.float32)
    expected = colnn.max_pool2d(x, 3, 2, 1)
    try:
        colnn.set_num_threads(1)
        assert colnn.get_num_threads() == 1
        np.testing.assert_array_equal(colnn.max_pool2d(x, 3, 2, 1), expected)
        for bad, error in ((0, ValueError), (10**6, ValueError), (1.5, TypeError), (True, TypeError)):
            with pytest.raises(error, match="NUMBA_NUM_THREADS"):
                colnn.set_num_threads(bad)
    finally:
        colnn.set_num_threads(before)


def test_small_inputs_run_on_the_calling_thread_alone(monkeypatch):
    import numba

    monkeypatch.setattr(kernels, "SERIAL_BELOW_BYTES", 1000)
    before = numba.get_num_threads()
    seen = {}
    for nbytes in (999, 1000):
        with kernels.threads_for(nbytes):
            seen[nbytes] = numba.get_num_threads()
    assert seen == {999: 1, 1000: before}
    assert numba.get_num_threads() == before


def test_import_neither_loads_numba_nor_compiles():
    out = run_python("""
        import sys, colnn
        kernels = ("numba", "colnn.kernels.max_pool_loops", "colnn.kernels.max_pool_k3s2_loops",
                   "colnn.kernels.avg_pool_loops", "colnn.kernels.im2col_loops")
        print(sorted(name for name in kernels if name in sys.modules))
    """)
    assert out.strip() == "[]"


def test_a_fresh_process_loads_the_kernels_from_the_disk_cache():
    code = """
        import json, numpy as np, colnn
        from colnn.kernels import max_pool_loops as kernels_pool
        colnn.max_pool2d(np.ones((1, 2, 4, 4), np.float32), 2)
        stats = kernels_pool.max_pool_k2s2_values.stats
        print(json.dumps({"hits": sum(stats.cache_hits.values()), "misses": sum(stats.cache_misses.values())}))
    """
    run_python(code)  # compiles (or loads) and writes the cache
    stats = json.loads(run_python(code))
    assert stats == {"hits": 1, "misses": 0}


def test_a_forked_child_can_still_convolve_in_parallel():
    """The pool's threads do not survive fork; the child must not wait on them."""
    code = """
        import multiprocessing, numpy as np, colnn
        from colnn.kernels import threads as kernels
        kernels.SERIAL_BELOW_BYTES = 0
        x, w = np.ones((4, 3, 8, 8)), np.ones((2, 3, 3, 3))
        colnn.conv2d(x, w)  # the parent starts its pool
        with multiprocessing.get_context("fork").Pool(1) as pool:
            print(pool.apply_async(colnn.conv2d, (x, w)).get(timeout=120).sum() == colnn.conv2d(x, w).sum())
    """
    assert run_python(code).strip().endswith("True")


def test_in_parallel_covers_the_batch_once_in_share_order(monkeypatch):
    monkeypatch.setattr(conv_chunked, "get_num_threads", lambda: 3)
    seen = []
    results = conv_chunked.in_parallel(10, 1 << 30, lambda share, parts: seen.append((share, parts)) or share.start)
    shares = sorted((share.start, share.stop) for share, _ in seen)
    assert shares[0][0] == 0 and shares[-1][1] == 10 and len(shares) == 3
    assert all(stop == start for (_, stop), (start, _) in itertools.pairwise(shares))
    assert {parts for _, parts in seen} == {3}
    assert results == [start for start, _ in shares]


def test_in_parallel_with_a_shared_queue_does_not_wait_for_workers_that_find_it_empty(monkeypatch):
    monkeypatch.setattr(conv_chunked, "get_num_threads", lambda: 2)
    caller = threading.get_ident()
    for _ in range(5):
        queue, done = iter(range(50)), []

        def work(share, parts, queue=queue, done=done):
            for item in queue:  # each item once, whichever thread takes it
                done.append(item)
            return threading.get_ident() == caller

        results = conv_chunked.in_parallel(50, 1 << 30, work, shared_queue=True)
        assert sorted(done) == list(range(50))
        assert results[0] is True and results[1] in (False, None)  # None: cancelled before it started


def test_in_parallel_raises_the_calling_threads_error_after_the_workers_finish(monkeypatch):
    monkeypatch.setattr(conv_chunked, "get_num_threads", lambda: 2)
    started, finished, caller = [], [], threading.get_ident()

    def work(share, parts):
        if threading.get_ident() == caller:
            time.sleep(0.02)  # time for the worker to start
            raise RuntimeError("boom")
        started.append(share)
        time.sleep(0.05)
        finished.append(share)

    with pytest.raises(RuntimeError, match="boom"):
        conv_chunked.in_parallel(4, 1 << 30, work, shared_queue=True)
    assert finished == started  # a worker that started ran to its end before the error came out
