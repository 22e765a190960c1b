"""``colnn bench`` runs and saves valid JSON (a smoke test: no timing is asserted)."""

from __future__ import annotations

import json

from colnn.apps import bench
from colnn.apps.cli import main


def test_bench_quick_writes_a_table_and_json(tmp_path, capsys):
    report = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--repeat", "1", "--json", str(report)]) == 0
    table = capsys.readouterr().out
    result = json.loads(report.read_text())
    assert result["quick"] and result["bandwidth_GBps"] > 0 and result["sgemm_GFLOPS"] > 0
    assert {"numpy", "numba", "colnn"} <= set(result["versions"])
    rows = result["rows"]
    cases = {row["case"] for row in rows}
    assert {"S1 max fwd (inference)", "S1 max bwd", "S1 avg fwd", "C1 conv fwd", "C2 conv bwd"} <= cases
    impls = {row["impl"] for row in rows}
    assert {"colnn", "colnn im2col", "tutorial"} <= impls  # run from the checkout: the tutorial is found
    for row in rows:
        assert 0 < row["min_ms"] <= row["median_ms"] <= row["max_ms"]
        assert row["ratio_limit"] > 0
        assert row["case"] in table
    backward = [row for row in rows if row["case"] == "S1 max bwd"]
    assert {"colnn", bench.COPY_IMPL} <= {row["impl"] for row in backward}
    assert all(row["ratio_copy"] > 0 for row in backward) and "/ x.copy()" in table
    if "torch" in result["versions"]:
        assert all(row["ratio_torch"] is not None for row in rows)


def test_tutorial_baseline_matches_colnn_where_it_is_right(rng):
    tutorial = bench.load_tutorial()
    x = rng.standard_normal((2, 3, 8, 8)).astype("float32")
    import colnn

    expected = colnn.max_pool2d(x, 2, 2)
    out = tutorial.Pooling(2, 2, 2).forward(x)
    assert out.dtype == "float64"  # the tutorial's im2col upcasts
    assert (out == expected).all()
