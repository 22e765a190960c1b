"""The ``colnn`` command without its extras: every command, in a subprocess where they cannot be imported.

A plain ``pip install colnn`` has numpy and numba only. Each subprocess below
installs a meta-path finder that refuses scikit-learn, tqdm, matplotlib and
torch (as if they were not installed) and then runs ``colnn`` with its
arguments; the command must stop with one line naming the extra before it
starts, or go on without an optional piece, and never print a traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from colnn.kernels.compile_notice import NOTICE

from colnn.apps.cli import build_parser, needed_packages
from colnn.apps.data import MNIST_FILES, write_idx
from colnn.nn.network import simple_conv_net

EXTRAS = ("sklearn", "tqdm", "matplotlib", "torch")

# Runs `colnn` with the modules named in argv[1] (comma-separated) refused on import.
HIDING_RUNNER = """
import sys

class Refuse:
    def __init__(self, names):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)", name=name)
        return None

hidden = [name for name in sys.argv[1].split(",") if name]
for name in list(sys.modules):
    if name.split(".")[0] in hidden:
        del sys.modules[name]
sys.meta_path.insert(0, Refuse(hidden))
from colnn.apps.cli import main
sys.exit(main(sys.argv[2:]))
"""

TINY_TRAIN = ["--epochs", "1", "--limit", "20", "--filter-num", "2", "--hidden-size", "8", "--no-augment"]


def run_without(hidden: tuple[str, ...], *argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", HIDING_RUNNER, ",".join(hidden), *argv],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


def write_tiny_mnist(folder: Path) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for split, count in (("train", 20), ("test", 6)):
        write_idx(folder / MNIST_FILES[f"{split}_images"], rng.integers(0, 256, size=(count, 8, 8), dtype=np.uint8))
        write_idx(folder / MNIST_FILES[f"{split}_labels"], rng.integers(0, 10, size=count, dtype=np.uint8))
    return folder


def assert_one_error_line(result: subprocess.CompletedProcess, command: str, package: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"colnn {command}: error: ")
    assert f"needs {package}, which is not installed" in result.stderr
    assert 'pip install "colnn[apps]"' in result.stderr
    assert result.stdout == ""  # refused before it started


@pytest.mark.parametrize("argv, package", [
    (["train"], "scikit-learn"),
    (["evaluate", "model.npz"], "scikit-learn"),
    (["train", "--data", "mnist"], "tqdm"),
    (["explain", "--png", "walk.png"], "matplotlib"),
    (["explain", "--svg", "walk.svg"], "matplotlib"),
])
def test_a_command_without_its_extras_stops_with_one_line(tmp_path, argv, package):
    write_tiny_mnist(tmp_path / "mnist")
    result = run_without(EXTRAS, *argv, cwd=tmp_path)
    assert_one_error_line(result, argv[0], package)
    assert not (tmp_path / "walk.png").exists() and not (tmp_path / "runs").exists()


def test_commands_that_need_no_extra_run_without_any(tmp_path):
    write_tiny_mnist(tmp_path / "mnist")
    simple_conv_net((1, 8, 8), filter_num=2, filter_size=3, pad=1, hidden_size=8).save(tmp_path / "model.npz")
    result = run_without(EXTRAS, "evaluate", "model.npz", "--data", "mnist", cwd=tmp_path)
    # On a cold Numba cache the only other line is the compile notice.
    assert result.returncode == 0 and "test accuracy" in result.stdout
    assert result.stderr.replace(NOTICE + "\n", "") == ""
    result = run_without(EXTRAS, "explain", cwd=tmp_path)
    assert result.returncode == 0 and "Step 1" in result.stdout and "Traceback" not in result.stderr


def test_train_without_matplotlib_keeps_the_model_and_metrics(tmp_path):
    result = run_without(("matplotlib",), "train", *TINY_TRAIN, "--out", "run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if "matplotlib" in line]
    assert len(warnings) == 1 and "curves.png" in warnings[0] and 'pip install "colnn[apps]"' in warnings[0]
    run = tmp_path / "run"
    assert (run / "model.npz").is_file() and not (run / "curves.png").exists()
    assert json.loads((run / "metrics.json").read_text())["epochs_completed"] == 1
    assert result.stdout.rstrip().endswith("wrote run/model.npz, metrics.json")


def test_bench_without_torch_says_so_and_runs(tmp_path):
    result = run_without(EXTRAS, "bench", "--quick", "--repeat", "1", "--json", "bench.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warnings == ["colnn bench: warning: torch is not installed, so the PyTorch columns of the table "
                        "will be left out; pip install torch==2.13.0 (a CPU build)"]
    assert "torch" not in json.loads((tmp_path / "bench.json").read_text())["versions"]


def test_every_command_declares_what_it_needs():
    """The class, not the examples: each sub-command's needs, given its options, come from one function."""
    parser = build_parser()
    cases = {
        ("train",): {"sklearn", "tqdm", "matplotlib"},
        ("train", "--data", "d"): {"tqdm", "matplotlib"},
        ("evaluate", "m.npz"): {"sklearn"},
        ("evaluate", "m.npz", "--data", "d"): set(),
        ("explain",): set(),
        ("explain", "--png", "a.png"): {"matplotlib"},
        ("bench",): {"torch"},
        ("bench", "--no-torch"): set(),
        ("pool", "in.npy", "out.zarr", "--kernel", "2"): {"dask", "zarr"},
        ("pool", "in.npy", "out.zarr", "--kernel", "2", "--scheduler", "tcp://127.0.0.1:8786"):
            {"dask", "zarr", "distributed"},
    }
    commands = set(parser._subparsers._group_actions[0].choices)
    assert {argv[0] for argv in cases} == commands
    for argv, modules in cases.items():
        assert {need.module for need in needed_packages(parser.parse_args(list(argv)))} == modules, argv
