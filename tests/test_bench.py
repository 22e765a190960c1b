"""``colnn bench``: what its table and JSON say, read back as a user reads them.

The format tests run the command with fake timers (no real benchmarking, no
wall-clock assertion): colnn's calls "take" 2 ms, PyTorch NCHW's 6 ms, the
im2col strategy's repeats disagree (1, 2, 1 ms), everything else 4 ms. One
smoke test times for real, with one repeat.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

from colnn.apps import bench, bench_common, bench_env, bench_peers, bench_tutorial
from colnn.apps.cli import main

FAKE_SECONDS = {"colnn": [0.002] * 3, "torch NCHW": [0.006] * 3, "colnn im2col": [0.001, 0.002, 0.001]}
OTHER_SECONDS = [0.004] * 3
# bandwidth and SGEMM are measured before any implementation: 10 ms for 64 MiB, about 13 GB/s.
LIMIT_SECONDS = [0.01] * 3
TWO_BLAS = [
    {"internal_api": "openblas", "version": "0.3.31", "architecture": "SkylakeX", "threading_layer": "pthreads",
     "num_threads": 2, "filepath": "/site-packages/numpy.libs/libscipy_openblas64_.so"},
    {"internal_api": "openblas", "version": "0.3.30", "architecture": "Haswell", "threading_layer": "pthreads",
     "num_threads": 2, "filepath": "/site-packages/other/libopenblas.so"},
]


def table_rows(text: str, first_header: str) -> tuple[list[str], list[list[str]]]:
    """The header cells and the body rows (cells) of the Markdown table whose first column is ``first_header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    body = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        body.append([cell.strip() for cell in line.strip("|").split("|")])
    return header, body


@pytest.fixture(scope="module")
def faked_run(tmp_path_factory):
    """``colnn bench --quick --json`` with fake timers, two BLAS libraries and a load above the cores."""
    def fake_rounds(cases, repeat, settle_s, log=None):
        return {(case.name, impl): FAKE_SECONDS.get(impl, OTHER_SECONDS) for case in cases for impl in case.impls}

    def fake_interleaved(impls, repeat, settle_s=0.0):
        return {impl: FAKE_SECONDS.get(impl, OTHER_SECONDS) for impl in impls}

    report = tmp_path_factory.mktemp("bench") / "bench.json"
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(io.StringIO()):
        patch.setattr(bench, "time_call", lambda func, repeat: LIMIT_SECONDS)  # bandwidth and SGEMM
        patch.setattr(bench, "time_rounds", fake_rounds)
        patch.setattr(bench, "peak_added_mb", lambda func: None)
        patch.setattr(bench_peers, "time_interleaved", fake_interleaved)
        patch.setattr(bench_env, "blas_info", lambda: TWO_BLAS)
        patch.setattr(bench_env.os, "getloadavg", lambda: (99.0, 1.0, 1.0), raising=False)
        assert main(["bench", "--quick", "--json", str(report)]) == 0
    return out.getvalue(), json.loads(report.read_text())


def test_every_row_of_both_tables_names_its_shape(faked_run):
    table, result = faked_run
    _, rows = table_rows(table, "case")
    expected = {**{name: spec[0] for name, spec in bench.QUICK_POOL_SHAPES.items()},
                **{name: spec[0] for name, spec in bench.QUICK_CONV_SHAPES.items()}}
    assert len(rows) == len(result["rows"]) > 0
    for cells, row in zip(rows, result["rows"]):
        case, shape = cells[0], cells[1]
        assert re.match(r"^\(\d+(,\d+)+\)", shape), cells
        assert shape == row["shape"]
        case_id = case.split()[0]
        if case_id in expected:  # the 2-d cases: the shape of the input they were built from
            assert shape.startswith(str(expected[case_id]).replace(" ", "")), cells
    _, peer_rows = table_rows(table, "section")
    assert peer_rows and all(re.match(r"^\(\d+(,\d+)+\)", cells[2]) for cells in peer_rows)
    assert all(row["shape"] for row in result["peers"])


def test_the_header_has_one_blas_line_and_names_the_threading_layer(faked_run):
    import numba

    table, result = faked_run
    header = table.split("\n\n")[0].splitlines()
    blas = [line for line in header if "BLAS" in line]
    assert len(blas) == 1 and blas[0].startswith("BLAS")
    assert "SkylakeX" in blas[0] and "0.3.30" in blas[0]  # both libraries, on the one line
    layer = numba.threading_layer()  # launched by the run
    assert [line for line in header if "threading layer" in line] == [
        next(line for line in header if line.startswith("Numba:"))]
    assert f"threading layer {layer}" in table
    assert result["threads"]["threading_layer"] == layer
    assert result["machine"]["cpu_flags"] is None or isinstance(result["machine"]["cpu_flags"], list)


def test_ratios_are_other_time_over_colnn_time_under_one_header_everywhere(faked_run):
    table, result = faked_run
    main_header, rows = table_rows(table, "case")
    peer_header, peer_rows = table_rows(table, "section")
    for cell in main_header + peer_header:
        assert "/" not in cell and "peer" not in cell.lower(), cell
        if "÷" in cell:
            assert cell == "÷ colnn"
    assert "÷ colnn" in main_header and "÷ colnn" in peer_header
    assert {"x limit", "x copy"} <= set(main_header)
    # The convention is said once, for both tables.
    assert table.count("Ratios:") == 1 and "above 1: colnn is faster" in table
    ratio = main_header.index("÷ colnn")
    by_impl = {cells[2]: cells[ratio] for cells in rows if cells[0] == "S1 avg fwd"}
    if "torch NCHW" in by_impl:  # 6 ms against colnn's 2 ms: colnn is 3x faster
        assert by_impl["torch NCHW"] == "3.00"
    assert by_impl["colnn"] == "1.00" and by_impl["colnn im2col"] == "0.50"
    peer_ratio = peer_header.index("÷ colnn")
    for cells in peer_rows:
        assert cells[peer_ratio] == {"colnn": "1.00"}.get(cells[3], "2.00")  # the fake peers take 4 ms
    for row in result["rows"]:
        colnn_ms = next(other["median_ms"] for other in result["rows"]
                        if other["case"] == row["case"] and other["impl"] == "colnn")
        assert row["ratio_to_colnn"] == pytest.approx(row["median_ms"] / colnn_ms)
    assert "ratio_torch" not in result["rows"][0]
    assert "X ÷ colnn" in result["conventions"]["ratios"]


def test_a_limit_below_the_floor_prints_a_dash(faked_run):
    table, result = faked_run
    header, rows = table_rows(table, "case")
    limit = header.index("x limit")
    below = above = 0
    for cells, row in zip(rows, result["rows"]):
        if row["limit_ms"] < bench.LIMIT_FLOOR_MS:
            below += 1
            assert cells[limit] == "-" and row["ratio_limit"] is None
        else:
            above += 1
            assert float(cells[limit]) == pytest.approx(row["median_ms"] / row["limit_ms"], abs=0.006)
    assert below and above  # quick S2 (64 KiB) falls below 20 us at about 13 GB/s, S1 does not
    assert "'-': the limit took under 20 us" in table


def test_disagreeing_repeats_and_a_busy_machine_print_warnings(faked_run):
    table, result = faked_run
    header, rows = table_rows(table, "case")
    spread = header.index("min-max ms")
    for cells, row in zip(rows, result["rows"]):
        noisy = cells[2] == "colnn im2col"  # its fake repeats are 1, 2, 1 ms
        assert row["noisy"] is noisy and cells[spread].endswith("*") is noisy
    assert result["noisy"] is True and result["load_average"] == 99.0
    warnings = [line for line in table.splitlines() if line.startswith("WARNING")]
    assert any("marked *" in line and "unreliable" in line for line in warnings)
    assert any("load average 99.00" in line for line in warnings)


def test_a_quiet_run_prints_no_warning():
    row = {"noisy": False}
    assert bench_common.noise_warnings([row, row], 0.5, 2) == []
    assert bench_common.noise_warnings([row], None, None) == []  # no load average on this platform
    assert bench_common.summarize_times([0.001, 0.0013])["noisy"] is False
    assert bench_common.summarize_times([0.001, 0.00131])["noisy"] is True


@pytest.mark.parametrize("repeat", [1, 2, 7, 9])
def test_rounds_take_every_case_and_implementation_in_turn(monkeypatch, repeat):
    """Each implementation gets ``repeat`` timed calls over the rounds, after a pause, cases interleaved in time."""
    events = []
    monkeypatch.setattr(bench.time, "sleep", lambda seconds: events.append(("pause", seconds)))

    def timer(name):
        def func():
            events.append(("call", name))
        return func

    cases = []
    for case_name in ("A", "B"):
        case = bench_common.Case(case_name, "(1,)", None, 0.0)
        case.impls = {impl: timer(f"{case_name}/{impl}") for impl in ("colnn", "torch")}
        cases.append(case)
    seconds = bench.time_rounds(cases, repeat, 0.25)
    assert set(seconds) == {(case, impl) for case in "AB" for impl in ("colnn", "torch")}
    assert all(len(times) == repeat for times in seconds.values())
    rounds = min(bench.ROUNDS, repeat)
    runs = [[name for kind, name in group] for group in _split_at_pauses(events)]
    assert len(runs) == rounds * 4
    assert all(len(set(run)) == 1 for run in runs)  # one implementation between two pauses
    # per round: case A's two implementations, then case B's; the implementations' order alternates
    order = [run[0] for run in runs]
    for index in range(rounds):
        first, second = ("colnn", "torch") if index % 2 == 0 else ("torch", "colnn")
        assert order[4 * index:4 * index + 4] == [f"A/{first}", f"A/{second}", f"B/{first}", f"B/{second}"]
    assert all(kind == "call" or pause == 0.25 for kind, pause in events)


def _split_at_pauses(events):
    groups, current = [], None
    for event in events:
        if event[0] == "pause":
            current = []
            groups.append(current)
        else:
            current.append(event)
    return groups


@pytest.mark.slow  # the whole quick benchmark, every row: about a minute of both cores
def test_bench_quick_writes_a_table_and_json(tmp_path, capsys):
    """For real, one repeat: every case runs and lands in the table and the JSON."""
    report = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--repeat", "1", "--no-peers", "--json", str(report)]) == 0
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
        assert row["ratio_limit"] is None or row["ratio_limit"] > 0
        assert row["ratio_to_colnn"] > 0 and row["case"] in table
    backward = [row for row in rows if row["case"] == "S1 max bwd"]
    assert {"colnn", bench.COPY_IMPL} <= {row["impl"] for row in backward}
    assert all(row["copy_ms"] > 0 for row in backward)


def test_tutorial_baseline_matches_colnn_where_it_is_right(rng):
    tutorial = bench.load_tutorial()
    x = rng.standard_normal((2, 3, 8, 8)).astype("float32")
    import colnn

    expected = colnn.max_pool2d(x, 2, 2)
    out = tutorial.Pooling(2, 2, 2).forward(x)
    assert out.dtype == "float64"  # the tutorial's im2col upcasts
    assert (out == expected).all()


# --- the tutorial's rows: found from a checkout, said when left out, a bad --tutorial refused ----------

CHECKOUT_TUTORIAL = Path(__file__).resolve().parents[1] / "benchmarks" / "tutorial.py"


def fake_checkout(root: Path, tutorial: str = "class Pooling:\n    pass\n") -> Path:
    """A folder laid out as a colnn checkout: src/colnn/__init__.py and benchmarks/tutorial.py."""
    (root / "src" / "colnn").mkdir(parents=True)
    (root / "src" / "colnn" / "__init__.py").write_text("")
    (root / "benchmarks").mkdir()
    (root / "benchmarks" / "tutorial.py").write_text(tutorial)
    return root / "benchmarks" / "tutorial.py"


def test_the_tutorial_is_found_from_the_package_wherever_bench_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the checkout: the package's own checkout is found
    assert bench_tutorial.find_tutorial() == CHECKOUT_TUTORIAL
    assert bench.load_tutorial().__file__ == str(CHECKOUT_TUTORIAL)


def test_the_tutorial_is_found_from_anywhere_inside_a_checkout(tmp_path):
    expected = fake_checkout(tmp_path / "clone")
    deep = tmp_path / "clone" / "docs" / "notes"
    deep.mkdir(parents=True)
    assert bench_tutorial.find_tutorial([deep]) == expected
    assert bench_tutorial.find_tutorial([tmp_path / "clone"]) == expected


def test_a_benchmarks_folder_outside_a_colnn_checkout_is_never_run(tmp_path, monkeypatch):
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "tutorial.py").write_text("raise SystemExit('must not run')\n")
    monkeypatch.setattr(bench_tutorial, "PACKAGE_DIR", tmp_path / "site-packages" / "colnn")
    monkeypatch.chdir(tmp_path)
    assert bench_tutorial.find_tutorial() is None and bench.load_tutorial() is None


@pytest.fixture
def canned_benchmark(faked_run, monkeypatch):
    """``bench.run_benchmark`` replaced by the faked run's result; records the tutorial it was given."""
    given = {}

    def run_benchmark(**kwargs):
        given.update(kwargs)
        return {key: value for key, value in faked_run[1].items() if key != "peers"}

    monkeypatch.setattr(bench, "run_benchmark", run_benchmark)
    return given


def test_bench_says_in_one_line_why_the_tutorial_rows_are_left_out(tmp_path, monkeypatch, capsys, canned_benchmark):
    monkeypatch.setattr(bench_tutorial, "PACKAGE_DIR", tmp_path / "site-packages" / "colnn")  # as from a wheel
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--quick", "--no-peers", "--no-torch"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "tutorial" in line]
    assert canned_benchmark["tutorial"] is None
    assert len(notes) == 1 and notes[0].startswith("colnn bench: warning: the tutorial rows are left out")
    assert str(tmp_path) in notes[0] and "--tutorial FILE" in notes[0]


def test_bench_takes_the_tutorial_given(tmp_path, capsys, canned_benchmark):
    path = tmp_path / "mine.py"
    path.write_text(CHECKOUT_TUTORIAL.read_text())
    assert main(["bench", "--quick", "--no-peers", "--no-torch", "--tutorial", str(path)]) == 0
    assert canned_benchmark["tutorial"].__file__ == str(path)
    assert "tutorial" not in capsys.readouterr().err


@pytest.mark.parametrize("name, text, words", [
    ("notes.txt", "class Pooling: pass\n", "not a Python file (.py)"),
    ("missing.py", None, "no such file"),
    ("broken.py", "def (:\n", "fails when run (SyntaxError"),
    ("raises.py", "import no_such_module_anywhere\n", "fails when run (ModuleNotFoundError"),
    ("other.py", "x = 1\n", "defines no Pooling class"),
])
def test_a_bad_tutorial_is_refused_in_one_line_before_any_timing(tmp_path, capsys, canned_benchmark,
                                                                 name, text, words):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    report = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--tutorial", str(path), "--json", str(report)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"colnn bench: error: --tutorial {path}: ") and words in err
    assert canned_benchmark == {} and not report.exists()
