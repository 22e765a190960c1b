"""The Dask path (colnn.ops.dask_ops) against the NumPy path on the same data.

NumPy is the oracle here (it is itself held to PyTorch by the other tests):
every op on a Dask array, whatever its chunks (smaller than a window, of one
cell), must give the NumPy result, bit for bit for max pooling, indices, unfold
and im2col, to rounding for sums. Then the halo edge cases by name, the
threaded scheduler, a two-process distributed cluster, Network.predict, and
the promises about threads and imports.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

da = pytest.importorskip("dask.array", reason="the Dask path needs dask (pip install colnn[dask])")
import dask  # noqa: E402

import colnn  # noqa: E402
from colnn.core.halo import AxisWindow, input_span, output_chunks, scatter_chunks, scatter_span  # noqa: E402  # noqa: E402  (the transposed direction)
from colnn.core.window import Window  # noqa: E402
from colnn.nn.network import simple_conv_net  # noqa: E402
from colnn.ops.reference.pooling import ReferencePool  # noqa: E402
from oracle import assert_close  # noqa: E402

HYPOTHESIS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def chunking(draw, size: int) -> tuple[int, ...]:
    """A random split of ``size`` cells into chunks, often of one cell."""
    chunks, left = [], size
    while left:
        chunk = draw(st.one_of(st.just(1), st.integers(1, left)))
        chunk = min(chunk, left)
        chunks.append(chunk)
        left -= chunk
    return tuple(chunks)


SPATIAL_MAX = {1: 16, 2: 11, 3: 6}  # largest size of a spatial axis: small arrays in every dimension


@st.composite
def chunked_input(draw, dtypes=(np.float32, np.float64, np.int32), ndims=(2,)):
    """``(x, chunks)``: a small ``(N, C, *spatial)`` array of 1, 2 or 3 spatial axes and a random chunking of it."""
    ndim = draw(st.sampled_from(ndims))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)),
             *(draw(st.integers(1, SPATIAL_MAX[ndim])) for _ in range(ndim)))
    dtype = draw(st.sampled_from(dtypes))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        x = rng.normal(size=shape).astype(dtype)
    else:
        x = rng.integers(-3, 4, size=shape).astype(dtype)  # ties, to test that the first maximum wins
    return x, tuple(draw(chunking(size)) for size in shape)


@st.composite
def geometry(draw, ndim: int = 2):
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(ndim))
    return {
        "kernel_size": kernel,
        "stride": tuple(draw(st.integers(1, 5)) for _ in range(ndim)),
        "padding": tuple(draw(st.integers(0, k // 2)) for k in kernel),
        "dilation": tuple(draw(st.integers(1, 2)) for _ in range(ndim)),
        "ceil_mode": draw(st.booleans()),
    }


@st.composite
def windowed_case(draw, dtypes=(np.float32, np.float64, np.int32), ndims=(1, 2, 3)):
    """``(x, chunks, args)``: a chunked input of 1, 2 or 3 spatial axes and a window geometry for it."""
    x, chunks = draw(chunked_input(dtypes, ndims))
    return x, chunks, draw(geometry(x.ndim - 2))


def op(name: str, x: np.ndarray):
    """The public function ``name`` for ``x``'s number of spatial axes: ``op("max_pool", x)`` is max_pool3d for 3-d."""
    return getattr(colnn, f"{name}{x.ndim - 2}d")


def builds(x: np.ndarray, args: dict) -> bool:
    """Whether the geometry gives a non-empty output (otherwise both paths raise)."""
    try:
        Window.build(x.shape[2:], args["kernel_size"], args["stride"], args.get("padding", 0),
                     args.get("dilation", 1), ceil_mode=args.get("ceil_mode", False))
    except ValueError:
        return False
    return True


def compute(array, scheduler: str = "synchronous"):
    return dask.compute(array, scheduler=scheduler)[0]


def assert_max_pool_equal(x: np.ndarray, chunks, args: dict, scheduler: str = "synchronous") -> None:
    max_pool = op("max_pool", x)
    expected, expected_indices = max_pool(x, return_indices=True, **args)
    out, indices = max_pool(da.from_array(x, chunks=chunks), return_indices=True, **args)
    assert isinstance(out, da.Array) and isinstance(indices, da.Array)
    out, indices = compute((out, indices), scheduler)
    assert out.dtype == expected.dtype and indices.dtype == np.int64
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(indices, expected_indices)


# --- the halo arithmetic -------------------------------------------------------


def test_output_chunks_cover_every_window_once_and_follow_the_input():
    axis = AxisWindow(size=20, kernel=3, stride=2, pad=1, dilation=1, out=10)
    pieces = output_chunks(axis, (6, 6, 8))
    assert sum(pieces) == axis.out
    assert pieces == (4, 3, 3)  # windows start at -1, 1, 3, 5 | 7, 9, 11 | 13, 15, 17


def test_scatter_span_reads_the_windows_of_earlier_chunks_that_reach_a_piece():
    # A transposed convolution's windows are its input cells: 4 of them, stride 2, kernel 3, over 9 output cells.
    axis = AxisWindow(size=9, kernel=3, stride=2, pad=0, dilation=1, out=4)
    assert scatter_chunks(axis, (2, 2)) == (4, 5)  # cells 0-3 | 4-8: the second chunk's windows start at 4
    lo, hi, local = scatter_span(axis, 4, 9)
    assert (lo, hi) == (1, 4)  # window 1 (cells 2-4) reaches cell 4 from the first chunk
    assert local.pad == 2 and local.out == 3


def test_input_span_reads_the_halo_from_the_next_chunk():
    axis = AxisWindow(size=20, kernel=3, stride=2, pad=1, dilation=1, out=10)
    lo, hi, local = input_span(axis, 4, 7)  # windows starting at 7, 9 and 11
    assert (lo, hi) == (7, 7 + 3 * axis.stride + axis.halo)
    assert local.pad == 0 and local.out == 3


# --- any geometry, any chunking --------------------------------------------------


@HYPOTHESIS
@given(case=windowed_case())
def test_max_pool_equals_numpy_for_any_chunking(case):
    x, chunks, args = case
    assume(builds(x, args))
    assert_max_pool_equal(x, chunks, args)


@HYPOTHESIS
@given(case=windowed_case((np.float32, np.float64)), count_include_pad=st.booleans(),
       divisor_override=st.sampled_from([None, 3]))
def test_avg_pool_equals_numpy_for_any_chunking(case, count_include_pad, divisor_override):
    x, chunks, args = case
    args.pop("dilation")
    assume(builds(x, args))
    if x.ndim > 3:  # avg_pool1d has no divisor_override, as in PyTorch
        args["divisor_override"] = divisor_override
    avg_pool = op("avg_pool", x)
    expected = avg_pool(x, count_include_pad=count_include_pad, **args)
    out = compute(avg_pool(da.from_array(x, chunks=chunks), count_include_pad=count_include_pad, **args))
    assert out.dtype == expected.dtype
    assert_close(out, expected)


@HYPOTHESIS
@given(case=windowed_case((np.float32, np.float64)), norm_type=st.sampled_from([1, 2, 3.5]))
def test_lp_pool_equals_numpy_for_any_chunking(case, norm_type):
    x, chunks, args = case
    x = np.abs(x)  # a fractional power of a negative window sum is NaN on both paths
    args = {"kernel_size": args["kernel_size"], "stride": args["stride"], "ceil_mode": args["ceil_mode"]}
    assume(builds(x, args))
    lp_pool = op("lp_pool", x)
    expected = lp_pool(x, norm_type, **args)
    out = compute(lp_pool(da.from_array(x, chunks=chunks), norm_type, **args))
    assert out.dtype == expected.dtype
    assert_close(out, expected)


@HYPOTHESIS
@given(case=windowed_case((np.float32, np.float64)), out_channels=st.integers(1, 3))
def test_conv_equals_numpy_for_any_chunking(case, out_channels):
    x, chunks, args = case
    args.pop("ceil_mode")
    assume(builds(x, args))
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(out_channels, x.shape[1], *args.pop("kernel_size"))).astype(x.dtype)
    bias = rng.normal(size=out_channels).astype(x.dtype)
    conv = op("conv", x)
    expected = conv(x, weight, bias, **args)
    out = compute(conv(da.from_array(x, chunks=chunks), weight, bias, **args))
    assert out.dtype == expected.dtype
    assert_close(out, expected)


@HYPOTHESIS
@given(case=windowed_case((np.float32, np.float64)), out_channels=st.integers(1, 3), choices=st.data())
def test_conv_transpose_equals_numpy_for_any_chunking(case, out_channels, choices):
    x, chunks, args = case
    args.pop("ceil_mode")
    # Any padding the output allows, and an output_padding below stride or dilation.
    args["padding"] = tuple(choices.draw(st.integers(0, 3)) for _ in args["stride"])
    args["output_padding"] = tuple(choices.draw(st.integers(0, max(s, d) - 1))
                                   for s, d in zip(args["stride"], args["dilation"]))
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(x.shape[1], out_channels, *args.pop("kernel_size"))).astype(x.dtype)
    bias = rng.normal(size=out_channels).astype(x.dtype)
    conv_transpose = op("conv_transpose", x)
    try:
        expected = conv_transpose(x, weight, bias, **args)
    except ValueError:  # an empty output: the Dask path raises the same at the boundary
        with pytest.raises(ValueError, match="empty"):
            conv_transpose(da.from_array(x, chunks=chunks), weight, bias, **args)
        return
    out = compute(conv_transpose(da.from_array(x, chunks=chunks), weight, bias, **args))
    assert out.dtype == expected.dtype
    assert_close(out, expected)


@HYPOTHESIS
@given(data=chunked_input(ndims=(1, 2, 3)), choices=st.data())
def test_adaptive_pooling_equals_numpy_for_any_chunking(data, choices):
    x, chunks = data
    output_size = tuple(choices.draw(st.one_of(st.none(), st.integers(1, size + 3))) for size in x.shape[2:])
    dx = da.from_array(x, chunks=chunks)
    adaptive_max = op("adaptive_max_pool", x)
    expected, expected_indices = adaptive_max(x, output_size, return_indices=True)
    out, indices = compute(adaptive_max(dx, output_size, return_indices=True))
    assert out.dtype == expected.dtype and indices.dtype == np.int64
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(indices, expected_indices)
    if x.dtype.kind == "f":
        adaptive_avg = op("adaptive_avg_pool", x)
        assert_close(compute(adaptive_avg(dx, output_size)), adaptive_avg(x, output_size))


@HYPOTHESIS
@given(case=windowed_case(ndims=(2,)))
def test_unfold_and_im2col_equal_numpy_for_any_chunking(case):
    x, chunks, args = case
    args.pop("ceil_mode")
    assume(builds(x, args))
    dx = da.from_array(x, chunks=chunks)
    np.testing.assert_array_equal(compute(colnn.unfold(dx, **args)), colnn.unfold(x, **args))
    (kernel_h, kernel_w), stride, pad, dilation = (args[k] for k in ("kernel_size", "stride", "padding", "dilation"))
    expected = colnn.im2col(x, kernel_h, kernel_w, stride, pad, dilation=dilation, pad_value=-np.inf)
    out = compute(colnn.im2col(dx, kernel_h, kernel_w, stride, pad, dilation=dilation, pad_value=-np.inf))
    np.testing.assert_array_equal(out, expected)


# --- named halo edge cases ---------------------------------------------------------


def test_stride_larger_than_kernel_skips_cells_between_windows():
    x = np.random.default_rng(1).normal(size=(1, 2, 17, 13)).astype(np.float32)
    assert_max_pool_equal(x, (1, 1, (4, 1, 5, 7), (2, 2, 9)), {"kernel_size": 2, "stride": 5})
    assert_max_pool_equal(x, (1, 1, 3, 1), {"kernel_size": (3, 1), "stride": (4, 3), "padding": (1, 0)})


def test_chunk_boundary_inside_the_padding():
    # Chunks of one cell at both borders: the padding that the first and last windows
    # reach spans several chunks, and no window may see a neighbour's cells as padding.
    x = np.random.default_rng(2).normal(size=(1, 1, 9, 9)) - 10  # all below 0: a padded 0 would win
    chunks = (1, 1, (1, 1, 5, 1, 1), (1, 7, 1))
    assert_max_pool_equal(x, chunks, {"kernel_size": 5, "stride": 1, "padding": 2})
    expected = colnn.avg_pool2d(x, 5, 1, 2, count_include_pad=False)
    np.testing.assert_allclose(compute(colnn.avg_pool2d(da.from_array(x, chunks=chunks), 5, 1, 2,
                                                        count_include_pad=False)), expected, rtol=1e-12)


def test_last_partial_window_with_ceil_mode():
    x = np.random.default_rng(3).normal(size=(1, 1, 10, 10)).astype(np.float32)
    chunks = (1, 1, (5, 5), (9, 1))
    args = {"kernel_size": 3, "stride": 3, "ceil_mode": True}
    assert colnn.max_pool2d(x, **args).shape[-1] == 4  # the 4th window holds one input cell
    assert_max_pool_equal(x, chunks, args)
    for include in (True, False):
        args["count_include_pad"] = include
        np.testing.assert_allclose(compute(colnn.avg_pool2d(da.from_array(x, chunks=chunks), padding=1, **args)),
                                   colnn.avg_pool2d(x, padding=1, **args), rtol=1e-6)


def test_nan_and_all_lowest_windows_keep_pytorch_indices():
    x = np.full((1, 1, 6, 6), -np.inf, dtype=np.float32)
    x[0, 0, 4, 1] = np.nan
    assert_max_pool_equal(x, (1, 1, 1, 2), {"kernel_size": 3, "stride": 2, "padding": 1})


def test_adaptive_chunks_end_on_bin_boundaries_or_the_axis_is_one_chunk():
    x = da.ones((1, 1, 12, 7), chunks=(1, 1, (4, 5, 3), 2), dtype=np.float32)
    # 12 cells into 4 bins of 3: boundaries move to multiples of 3; 7 cells into 3 bins share none.
    out = colnn.adaptive_avg_pool2d(x, (4, 3))
    assert out.chunks[2:] == ((1, 2, 1), (3,))
    # 12 cells into 8 overlapping bins share a boundary every 3 cells (2 bins); 7 into 7 keep the chunks.
    assert colnn.adaptive_max_pool2d(x, (8, 7)).chunks[2:] == ((2, 4, 2), (2, 2, 2, 1))


def test_chunks_along_n_and_c_map_straight_through():
    x = np.ones((4, 6, 8, 8), dtype=np.float32)
    out = colnn.max_pool2d(da.from_array(x, chunks=(1, 2, 8, 8)), 2)
    assert out.chunks[:2] == ((1, 1, 1, 1), (2, 2, 2))
    unfolded = colnn.unfold(da.from_array(x, chunks=(1, 2, 8, 8)), 2, stride=2)
    assert unfolded.chunks[:2] == ((1, 1, 1, 1), (8, 8, 8))


def test_chunks_that_do_not_fit_the_geometry_are_taken_without_warnings():
    x = np.random.default_rng(10).normal(size=(2, 2, 13, 9)).astype(np.float32)
    dx = da.from_array(x, chunks=(1, 1, 1, (2, 5, 2)))  # smaller than a window, and of one cell
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        results = compute((colnn.max_pool2d(dx, 4, 3, 2), colnn.unfold(dx, 3, stride=2), colnn.im2col(dx, 2, 3)))
    np.testing.assert_array_equal(results[0], colnn.max_pool2d(x, 4, 3, 2))
    np.testing.assert_array_equal(results[1], colnn.unfold(x, 3, stride=2))
    np.testing.assert_array_equal(results[2], colnn.im2col(x, 2, 3))


def test_unbatched_input_stays_unbatched():
    x = np.random.default_rng(4).normal(size=(2, 7, 7))
    out = colnn.max_pool2d(da.from_array(x, chunks=(1, 3, 3)), 3, 2, 1)
    assert out.shape == (2, 4, 4)
    np.testing.assert_array_equal(compute(out), colnn.max_pool2d(x, 3, 2, 1))
    sample = x.reshape(2, 49)  # one (C, L) sample for the 1-d ops
    dsample = da.from_array(sample, chunks=(1, 10))
    for call in (lambda s: colnn.adaptive_max_pool1d(s, 5, return_indices=True),
                 lambda s: (colnn.conv_transpose1d(s, np.ones((2, 1, 3)), stride=2),),
                 lambda s: (colnn.lp_pool1d(abs(s), 2, 4, ceil_mode=True),)):
        for result, expected in zip(compute(call(dsample)), call(sample)):
            assert result.shape == expected.shape
            np.testing.assert_allclose(result, expected, rtol=1e-12)


# --- the boundary ----------------------------------------------------------------------


def test_nothing_is_computed_before_compute(monkeypatch):
    calls = []
    reference = ReferencePool.max_values

    def counting(self, x, window):
        calls.append(x.shape)
        return reference(self, x, window)

    monkeypatch.setattr(ReferencePool, "max_values", counting)
    out = colnn.max_pool2d(da.ones((1, 1, 8, 8), chunks=4), 2, strategy="im2col")
    assert calls == []
    compute(out)
    assert len(calls) == 4


@pytest.mark.parametrize(
    ("call", "error", "names"),
    [
        (lambda x: colnn.max_pool2d(x, 0), ValueError, "kernel_size"),
        (lambda x: colnn.max_pool2d(x, 2, padding=2), ValueError, "padding"),
        (lambda x: colnn.avg_pool2d(x.astype(np.int32), 2), TypeError, "input"),
        (lambda x: colnn.avg_pool2d(x, 2, divisor_override=0), ValueError, "divisor_override"),
        (lambda x: colnn.conv2d(x, np.ones((1, 2, 3, 3))), ValueError, "channels"),
        (lambda x: colnn.max_pool2d(x[0, 0], 2), ValueError, "input"),
        (lambda x: colnn.max_pool3d(x.reshape(1, 3, 2, 4, 8), (1, 0, 1)), ValueError, "kernel_size"),
        (lambda x: colnn.avg_pool1d(x[0], 2, padding=2), ValueError, "padding"),
        (lambda x: colnn.lp_pool2d(x, 0, 2), ValueError, "norm_type"),
        (lambda x: colnn.conv3d(x.reshape(1, 3, 2, 4, 8), np.ones((1, 2, 1, 1, 1))), ValueError, "channels"),
        (lambda x: colnn.conv_transpose1d(x[0, :, 0], np.ones((3, 1, 2)), stride=2, output_padding=2), ValueError,
         "output_padding"),
        (lambda x: colnn.adaptive_max_pool2d(x, (0, 2)), ValueError, "output_size"),
        (lambda x: colnn.adaptive_avg_pool1d(x[0].astype(np.int32), 2), TypeError, "input"),
    ],
)
def test_bad_arguments_raise_as_on_numpy(call, error, names):
    x = da.ones((1, 3, 8, 8), chunks=4)
    with pytest.raises(error, match=names):
        call(x)
    with pytest.raises(error, match=names):
        call(np.ones((1, 3, 8, 8)))


def test_building_a_graph_loads_nothing_even_when_the_dtype_widens():
    import tracemalloc

    weight = np.ones((1, 2, 3, 3))  # float64: the result is float64

    def graphs(x):
        return [colnn.conv_transpose2d(x, weight, stride=2), colnn.conv2d(x, weight[:, :1], padding=1),
                colnn.max_pool2d(x, 3, 2, 1), colnn.adaptive_avg_pool2d(x, 7)]

    graphs(da.zeros((1, 1, 8, 8), dtype=np.float32))  # first calls import modules: not measured
    tracemalloc.start()
    try:
        built = graphs(da.zeros((1, 1, 2048, 2048), chunks=512, dtype=np.float32))  # 16 MiB, 32 MiB as float64
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert all(isinstance(graph, da.Array) for graph in built)
    assert peak < 4 * 2**20


def test_import_colnn_does_not_import_dask():
    code = "import sys, colnn; print(sorted(m for m in ('dask', 'distributed', 'zarr') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


# --- schedulers and threads --------------------------------------------------------------


def test_threaded_scheduler_gives_the_same_result():
    x = np.random.default_rng(5).normal(size=(3, 2, 30, 30)).astype(np.float32)
    assert_max_pool_equal(x, (1, 1, 7, 9), {"kernel_size": 3, "stride": 2, "padding": 1}, scheduler="threads")


def test_a_task_runs_the_kernels_on_one_thread(monkeypatch):
    numba = pytest.importorskip("numba")
    seen = []
    reference = ReferencePool.max_values

    def recording(self, x, window):
        seen.append(numba.get_num_threads())
        return reference(self, x, window)

    monkeypatch.setattr(ReferencePool, "max_values", recording)
    compute(colnn.max_pool2d(da.ones((1, 1, 8, 8), chunks=4), 2, strategy="im2col"), "threads")
    assert seen == [1, 1, 1, 1]


def test_numba_loops_release_the_gil():
    pytest.importorskip("numba")
    from colnn.kernels import avg_pool_loops, im2col_loops, max_pool_k3s2_loops, max_pool_loops

    for module in (max_pool_loops, max_pool_k3s2_loops, avg_pool_loops, im2col_loops):
        for name in module.__all__:
            function = getattr(module, name)
            if hasattr(function, "targetoptions"):
                assert function.targetoptions.get("nogil"), f"{module.__name__}.{name}"


# --- Network.predict ------------------------------------------------------------------------


def small_net():
    return simple_conv_net(input_dim=(1, 8, 8), filter_num=4, filter_size=3, hidden_size=8, output_size=5, seed=1)


def test_predict_is_lazy_and_equals_numpy_batch_by_batch():
    net = small_net()
    x = np.random.default_rng(6).normal(size=(10, 1, 8, 8)).astype(np.float32)
    scores = net.predict(da.from_array(x, chunks=(4, 1, 8, 8)))
    assert isinstance(scores, da.Array) and scores.chunks == ((4, 4, 2), (5,))
    expected = np.concatenate([net.predict(x[start:start + 4]) for start in range(0, 10, 4)])
    np.testing.assert_array_equal(compute(scores), expected)
    np.testing.assert_allclose(compute(scores), net.predict(x), rtol=1e-5, atol=1e-6)


def keys_holding(array, net) -> list:
    """Keys of ``array``'s graph whose value is ``net`` or its ``predict`` (a literal, not a task)."""
    graph = dict(array.__dask_graph__())
    literals = {key: getattr(value, "value", value) for key, value in graph.items()}
    return [key for key, literal in literals.items() if getattr(literal, "__self__", literal) is net]


def test_predict_graph_holds_the_network_once():
    net = small_net()
    scores = net.predict(da.zeros((12, 1, 8, 8), chunks=(2, 1, 8, 8), dtype=np.float32))
    assert len(keys_holding(scores, net)) == 1 and len(scores.chunks[0]) == 6


def test_conv2d_graph_holds_the_weights_once():
    weight = np.ones((2, 3, 3, 3))
    out = colnn.conv2d(da.ones((4, 3, 16, 16), chunks=(1, 1, 4, 4)), weight, padding=1)
    graph = dict(out.__dask_graph__())
    holding = [key for key, value in graph.items()
               if isinstance(getattr(value, "value", None), tuple) and value.value[0] is weight]
    assert len(holding) == 1 and out.npartitions == 4 * 4 * 4


def test_accuracy_over_a_dask_array_equals_numpy():
    net = small_net()
    x = np.random.default_rng(7).normal(size=(9, 1, 8, 8)).astype(np.float32)
    labels = net.predict(x).argmax(axis=1)
    labels[::3] = (labels[::3] + 1) % 5
    assert net.accuracy(da.from_array(x, chunks=(4, 1, 8, 8)), labels) == net.accuracy(x, labels)


# --- a distributed cluster of two worker processes (conftest's dask_cluster) ----------------


def test_distributed_cluster_gives_the_numpy_results(dask_cluster):
    rng = np.random.default_rng(8)
    x = rng.normal(size=(2, 3, 20, 20)).astype(np.float32)
    dx = da.from_array(x, chunks=(1, 3, 6, 7))
    weight = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    out, indices, average, convolved = dask_cluster.compute([
        *colnn.max_pool2d(dx, 3, 2, 1, return_indices=True), colnn.avg_pool2d(dx, 2, ceil_mode=True),
        colnn.conv2d(dx, weight, padding=1),
    ], sync=True)
    volume, kernel = x.reshape(2, 3, 4, 5, 20), rng.normal(size=(3, 2, 2, 2, 3)).astype(np.float32)
    transposed, adaptive = dask_cluster.compute([
        colnn.conv_transpose3d(da.from_array(volume, chunks=(1, 3, 2, 3, 7)), kernel, stride=2),
        colnn.adaptive_max_pool3d(da.from_array(volume, chunks=(1, 3, 2, 3, 7)), (2, 3, 10)),
    ], sync=True)
    np.testing.assert_allclose(transposed, colnn.conv_transpose3d(volume, kernel, stride=2), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_array_equal(adaptive, colnn.adaptive_max_pool3d(volume, (2, 3, 10)))
    expected, expected_indices = colnn.max_pool2d(x, 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(average, colnn.avg_pool2d(x, 2, ceil_mode=True), rtol=1e-6)
    # The workers lack this process's test fixtures (Winograd for any channel count), so they
    # may take the direct path where this process takes Winograd: equal to float32 rounding.
    np.testing.assert_allclose(convolved, colnn.conv2d(x, weight, padding=1), rtol=1e-4, atol=1e-4)


def test_distributed_predict_sends_the_network_as_one_key(dask_cluster):
    net = small_net()
    x = np.random.default_rng(9).normal(size=(16, 1, 8, 8)).astype(np.float32)
    scores = net.predict(da.from_array(x, chunks=(2, 1, 8, 8)))
    assert len(keys_holding(scores, net)) == 1
    # Winograd or not differs between this process (test fixtures) and the workers: rounding.
    np.testing.assert_allclose(dask_cluster.compute(scores, sync=True), net.predict(x), rtol=1e-4, atol=1e-5)
