"""The peers of ``colnn bench`` compute what colnn computes (no timing is asserted).

ONNX Runtime, JAX and PyTorch are optional: each test skips cleanly without its peer.
"""

from __future__ import annotations

import numpy as np
import pytest

import colnn
from colnn.apps import bench_peers
from colnn.nn.network import Network, simple_conv_net

POOLS = [((2, 3, 9, 8), 2, 2, 0), ((2, 3, 11, 11), 3, 2, 1)]


@pytest.fixture
def ort():
    pytest.importorskip("onnx", reason="ONNX Runtime peer needs onnx")
    return pytest.importorskip("onnxruntime", reason="ONNX Runtime peer not installed")


@pytest.fixture
def jax():
    return pytest.importorskip("jax", reason="JAX peer not installed")


@pytest.mark.parametrize("shape, kernel, stride, pad", POOLS)
def test_onnxruntime_pooling_equals_colnn(ort, rng, shape, kernel, stride, pad):
    x = rng.standard_normal(shape).astype(np.float32)
    expected_max = colnn.max_pool2d(x, kernel, stride, pad)
    expected_avg = colnn.avg_pool2d(x, kernel, stride, pad)
    np.testing.assert_array_equal(bench_peers.ort_pool("max", x, expected_max.shape, kernel, stride, pad, 1)(),
                                  expected_max)
    np.testing.assert_allclose(bench_peers.ort_pool("avg", x, expected_avg.shape, kernel, stride, pad, 1)(),
                               expected_avg, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape, kernel, stride, pad", POOLS)
def test_jax_pooling_equals_colnn(jax, rng, shape, kernel, stride, pad):
    x = rng.standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(bench_peers.jax_pool("max", x, kernel, stride, pad)()),
                                  colnn.max_pool2d(x, kernel, stride, pad))
    np.testing.assert_allclose(np.asarray(bench_peers.jax_pool("avg", x, kernel, stride, pad)()),
                               colnn.avg_pool2d(x, kernel, stride, pad), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("pad", [0, 1])
def test_convolution_peers_equal_colnn(rng, pad):
    x = rng.standard_normal((3, 2, 10, 9)).astype(np.float32)
    weight = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    expected = colnn.conv2d(x, weight, bias, padding=pad, strategy="im2col")
    peers = []
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401

        peers.append(bench_peers.ort_conv(x, weight, bias, expected.shape, pad, 1))
    except ImportError:
        pass
    try:
        import jax  # noqa: F401

        peers.append(bench_peers.jax_conv(x, weight, bias, pad))
    except ImportError:
        pass
    if not peers:
        pytest.skip("neither ONNX Runtime nor JAX is installed")
    for peer in peers:
        np.testing.assert_allclose(np.asarray(peer()), expected, rtol=1e-5, atol=1e-5)


def test_exported_simple_conv_net_predicts_what_colnn_predicts(ort, rng):
    network = simple_conv_net((1, 12, 12), filter_num=4, filter_size=3, pad=1, hidden_size=8, seed=3)
    for param in network.params.values():
        param += rng.normal(0, 0.1, param.shape).astype(param.dtype)
    x = rng.random((5, 1, 12, 12), dtype=np.float32)
    session = bench_peers.ort_session(bench_peers.export_onnx(network, 5), 1)
    np.testing.assert_allclose(session.run(None, {"x": x})[0], network.predict(x), rtol=1e-4, atol=1e-5)


def test_export_refuses_a_layer_it_cannot_export(ort):
    network = Network([colnn.AvgPool2d(2), colnn.Affine(np.ones((4, 2), np.float32), np.zeros(2, np.float32))],
                            input_shape=(1, 4, 4))
    with pytest.raises(TypeError, match="layer 0"):
        bench_peers.export_onnx(network, 1)


def test_training_steps_follow_the_same_trajectory(torch):
    steps = bench_peers.step_pair((6, 1, 28, 28), 5, torch, seed=1)
    losses = {name: [step() for _ in range(3)] for name, step in steps.items()}
    # Same weights, batch and optimizer: the same losses step after step, to float32 rounding.
    np.testing.assert_allclose(losses["colnn"], losses["torch"], rtol=1e-4)
    assert losses["colnn"][2] < losses["colnn"][0]


def test_predict_pair_agrees(ort):
    impls = bench_peers.predict_pair(7, 1)
    np.testing.assert_allclose(impls["onnxruntime"](), impls["colnn"](), rtol=1e-4, atol=1e-5)


def test_run_peers_quick_gives_a_ratio_per_row():
    rows = bench_peers.run_peers(quick=True, repeat=1)
    assert {row["section"] for row in rows} == {"forward ops", "training step", "predict"}
    for row in rows:
        assert row["median_ms"] > 0 and row["ratio_to_colnn"] > 0
        if row["impl"] == "colnn":
            assert row["ratio_to_colnn"] == 1.0
        assert row["shape"].startswith("(") and row["min_ms"] <= row["median_ms"] <= row["max_ms"]
    assert "| ÷ colnn |" in bench_peers.format_peers(rows)


def test_peer_rows_whose_repeats_disagree_are_marked_and_warned_about(monkeypatch):
    # Fake timer: colnn's repeats agree, ONNX Runtime's and JAX's lie 3x apart.
    monkeypatch.setattr(bench_peers, "time_interleaved", lambda impls, repeat, settle_s=0.0: {
        impl: [0.002] * 3 if impl == "colnn" else [0.001, 0.003, 0.002] for impl in impls})
    rows = bench_peers.run_peers(quick=True, only=["S1 max"])
    assert [row["noisy"] for row in rows] == [row["impl"] != "colnn" for row in rows]
    table = bench_peers.format_peers(rows)
    marked = [line for line in table.splitlines() if line.startswith("| forward ops") and "*" in line]
    assert len(marked) == len(rows) - 1
    assert "WARNING" in table and "unreliable" in table
    assert table.count("above 1: colnn is faster") == 1
    assert "above 1: colnn is faster" not in bench_peers.format_peers(rows, legend=False)


def test_run_peers_keeps_only_the_matching_cases():
    rows = bench_peers.run_peers(quick=True, repeat=1, only=["S1 max"], settle_s=0.001)
    assert rows and {row["case"] for row in rows} == {"S1 max fwd"}
    assert rows[0]["impl"] == "colnn"
