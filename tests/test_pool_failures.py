"""``colnn pool`` refuses every bad input in one line before it writes, and a failure midway leaves nothing.

The class of the reliability issue (its items 3 and 5): each bad INPUT, flag
or OUTPUT is one ``colnn pool: error:`` line on stderr, exit 1, no OUTPUT and
no hidden partial folder beside it, and an OUTPUT that ``--overwrite`` would
replace still whole. A failure while writing (a damaged chunk of the input,
an exception in a task) and Ctrl-C leave the same: nothing.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("dask.array", reason="colnn pool needs dask (pip install colnn[dask])")
zarr = pytest.importorskip("zarr", reason="colnn pool needs zarr (pip install colnn[dask])")

from colnn.apps.cli import main  # noqa: E402
from colnn.apps.pool import writer  # noqa: E402
from streams import without_compile_notice  # noqa: E402


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def closed_port() -> int:
    """A local port that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_inputs(tmp):
    """Every kind of bad INPUT, each under its own name in ``tmp``."""
    np.save(tmp / "good.npy", np.random.default_rng(0).random((2, 16, 16), dtype=np.float32))
    np.save(tmp / "mask.npy", np.zeros((16, 16), bool))
    np.save(tmp / "wide.npy", np.full((16, 16), 2**62 + 1, np.int64))  # float64 would drop the low bit
    np.save(tmp / "uwide.npy", np.full((16, 16), 2**64 - 1, np.uint64))
    (tmp / "objects.npy").write_bytes(npy_bytes(np.array([{}, 1], dtype=object)))
    (tmp / "text.npy").write_text("1 2 3\n")
    (tmp / "truncated.npy").write_bytes(npy_bytes(np.ones((16, 16)))[:-10])
    (tmp / "empty.npy").write_bytes(b"")
    np.savez(tmp / "archive.npz", x=np.ones((4, 4)))
    np.save(tmp / "complex.npy", np.ones((8, 8), np.complex64))
    np.save(tmp / "strings.npy", np.array([["a", "b"], ["c", "d"]]))
    np.save(tmp / "line.npy", np.ones(16))
    np.save(tmp / "six.npy", np.ones((1,) * 6))
    np.save(tmp / "no_cells.npy", np.ones((0, 16)))
    group = zarr.open_group(str(tmp / "group.zarr"), mode="w")
    group.create_array("0", shape=(8, 8), dtype=np.uint8)
    (tmp / "plain_folder").mkdir()
    (tmp / "afile.txt").write_text("not an array")


BAD_RUNS = {
    # INPUT
    "missing input": ("missing.npy", [], "no such file"),
    "text named .npy": ("text.npy", [], "it is text, not a NumPy array file"),
    "truncated .npy": ("truncated.npy", [], "truncated"),
    "empty .npy": ("empty.npy", [], "an empty file"),
    "object .npy": ("objects.npy", [], "holds Python objects"),
    "an .npz": ("archive.npz", [], "a zip archive (.npz)"),
    "complex dtype": ("complex.npy", [], "dtype complex64 cannot be pooled"),
    "string dtype": ("strings.npy", [], "cannot be pooled"),
    "one axis": ("line.npy", [], "2 to 5 axes"),
    "six axes": ("six.npy", [], "2 to 5 axes"),
    "no cells": ("no_cells.npy", [], "has no cells"),
    "a Zarr group": ("group.zarr", [], "a Zarr group without OME-NGFF multiscales; give one of its arrays"),
    "a plain folder": ("plain_folder", [], "plain_folder: a folder that is not a .npy file, a Zarr array or an "
                                           "OME-Zarr image (no zarr.json, .zarray or .zgroup in it)"),
    "mean of a bool mask": ("mask.npy", ["--method", "avg"], "a mean of a mask is not a mask"),
    "mean of int64": ("wide.npy", ["--method", "avg"], "avg of int64: the mean is accumulated in float64"),
    "mean of uint64": ("uwide.npy", ["--method", "avg"], "avg of uint64: the mean is accumulated in float64"),
    # flags
    "too many levels": ("good.npy", ["--levels", "20"], "--levels 20: INPUT allows at most 4; level 5"),
    "padding too large": ("good.npy", ["--padding", "5"], "--padding"),
    "kernel larger than the image": ("good.npy", ["--kernel", "999"], "output would be empty"),
    "kernel per axis, miscounted": ("good.npy", ["--kernel", "2,2,2"], "--kernel must be one int"),
    "axes that do not fit": ("good.npy", ["--axes", "xy"], "--axes"),
    "axes with one space axis": ("good.npy", ["--axes", "tcx"], "2 or 3 space axes"),
    "pooling a channel axis": ("good.npy", ["--pool-axes", "cy"], "--pool-axes must name"),
    "pooling an absent axis": ("good.npy", ["--pool-axes", "zyx"], "space axes 'yx' once each (INPUT's axes read as"),
    "kernel per axis for one pooled axis": ("good.npy", ["--kernel", "2,3", "--pool-axes", "x"],
                                            "--kernel must be one int >= 1, got '2,3'"),
    "bad codec": ("good.npy", ["--codec", "lzma"], "--codec must be one of"),
    "bad codec level": ("good.npy", ["--codec", "zstd:99"], "the level must be an int"),
    "shard in Zarr v2": ("good.npy", ["--shard", "16", "--ngff", "0.4"], "--shard needs Zarr v3"),
    "shard not a multiple": ("good.npy", ["--chunk", "4", "--shard", "6"], "must be a multiple of --chunk"),
    "bad scale": ("good.npy", ["--scale", "1,0,1"], "--scale must be positive"),
    "scale miscounted": ("good.npy", ["--scale", "1,1,1,1"], "--scale must be positive"),
    # all axes are space axes: one count, said once
    "scale miscounted, all space": ("good.npy", ["--axes", "zyx", "--scale", "1,1"], "one per axis (3), got '1,1'"),
    "bad unit": ("good.npy", ["--unit", "pixel"], "--unit must be an OME-NGFF space unit"),
    "unreachable scheduler": ("good.npy", ["--scheduler", "tcp://127.0.0.1:{port}"], "cannot connect"),
    "malformed scheduler": ("good.npy", ["--scheduler", "tcp://nowhere"], "--scheduler must be an address"),
    # OUTPUT
    "output is a file": ("good.npy", ["--output", "afile.txt"], "is a file"),
    "output folder missing": ("good.npy", ["--output", "no/such/out.zarr"], "does not exist"),
    "output folder a file": ("good.npy", ["--output", "afile.txt/out.zarr"], "afile.txt is a file, not a folder"),
    "overwrite a plain folder": ("good.npy", ["--output", "plain_folder", "--overwrite"],
                                 "plain_folder is a folder that is neither empty nor a Zarr group or array"),
}


def run_bad(tmp, capsys, name, extra, output="out.zarr", overwrite=False):
    extra = [arg.format(port=closed_port()) for arg in extra]
    if "--output" in extra:
        output = extra.pop(extra.index("--output") + 1)
        extra.remove("--output")
    argv = ["pool", str(tmp / name), str(tmp / output), "--kernel", "2", *extra]
    if "--overwrite" in extra:
        (tmp / output / "notes.txt").write_text("not a Zarr group")
    started = time.perf_counter()
    code = main(argv + (["--overwrite"] if overwrite else []))
    return code, capsys.readouterr().err, time.perf_counter() - started


def leftovers(tmp) -> list[str]:
    return sorted(path.name for path in tmp.iterdir() if ".partial" in path.name or ".old" in path.name)


@pytest.mark.parametrize("name, extra, words", BAD_RUNS.values(), ids=BAD_RUNS.keys())
def test_bad_runs_are_one_line_and_write_nothing(tmp_path, capsys, name, extra, words):
    make_inputs(tmp_path)
    code, err, seconds = run_bad(tmp_path, capsys, name, extra)
    assert code == 1 and err.count("\n") == 1 and err.startswith("colnn pool: error: "), err
    assert words in err and "Traceback" not in err and "allow_pickle" not in err, err
    assert not (tmp_path / "out.zarr").exists() and leftovers(tmp_path) == []
    assert (tmp_path / "afile.txt").read_text() == "not an array"
    assert [p.name for p in (tmp_path / "plain_folder").iterdir()] in ([], ["notes.txt"])
    assert seconds < 10  # an unreachable scheduler fails at once, not after Dask's 30 s of retries


def old_pyramid(path):
    """A Zarr group (what --overwrite may replace) holding a file of the user's."""
    zarr.open_group(str(path), mode="w")
    (path / "keep.txt").write_text("data")
    return path


def kept(path) -> bool:
    return sorted(p.name for p in path.iterdir()) == ["keep.txt", "zarr.json"]


@pytest.mark.parametrize("case", ["text named .npy", "too many levels", "mean of a bool mask"])
def test_a_failed_overwrite_keeps_the_old_output(tmp_path, capsys, case):
    make_inputs(tmp_path)
    precious = old_pyramid(tmp_path / "out.zarr")
    name, extra, words = BAD_RUNS[case]
    code, err, _ = run_bad(tmp_path, capsys, name, extra, overwrite=True)
    assert code == 1 and words in err
    assert kept(precious) and leftovers(tmp_path) == []


def test_an_existing_output_is_kept_unless_overwrite(tmp_path, capsys):
    make_inputs(tmp_path)
    precious = old_pyramid(tmp_path / "precious")
    assert main(["pool", str(tmp_path / "good.npy"), str(precious), "--kernel", "2"]) == 1
    assert (precious / "keep.txt").read_text() == "data"
    assert "exists and is not empty; pass --overwrite" in capsys.readouterr().err
    assert main(["pool", str(tmp_path / "good.npy"), str(precious), "--kernel", "2", "--overwrite"]) == 0
    assert not (precious / "keep.txt").exists() and leftovers(tmp_path) == []
    np.testing.assert_array_equal(zarr.open_group(str(precious), mode="r")["0"][:], np.load(tmp_path / "good.npy"))


def test_an_input_inside_the_output_is_refused_even_with_overwrite(tmp_path, capsys):
    make_inputs(tmp_path)
    pyramid = tmp_path / "pyr.zarr"
    assert main(["pool", str(tmp_path / "good.npy"), str(pyramid), "--kernel", "2"]) == 0
    capsys.readouterr()
    assert main(["pool", str(pyramid / "0"), str(pyramid), "--kernel", "2", "--overwrite"]) == 1
    assert "lies inside OUTPUT" in capsys.readouterr().err
    assert main(["pool", str(pyramid), str(pyramid / "sub"), "--kernel", "2"]) == 1
    assert "lies inside INPUT" in capsys.readouterr().err
    np.testing.assert_array_equal(zarr.open_group(str(pyramid), mode="r")["0"][:], np.load(tmp_path / "good.npy"))


def damaged_zarr(tmp):
    """A Zarr array whose last chunk file holds garbage: found only when that chunk is decoded."""
    array = zarr.create_array(str(tmp / "damaged.zarr"), shape=(32, 32), chunks=(8, 8), dtype=np.uint16)
    array[:] = np.arange(32 * 32, dtype=np.uint16).reshape(32, 32)
    (tmp / "damaged.zarr" / "c" / "3" / "3").write_bytes(b"garbage, not zstd")
    return tmp / "damaged.zarr"


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_failure_midway_leaves_no_partial_output(tmp_path, capsys, overwrite):
    source = damaged_zarr(tmp_path)
    output = tmp_path / "out.zarr"
    if overwrite:
        old_pyramid(output)
    argv = ["pool", str(source), str(output), "--kernel", "2", "--levels", "2", "--chunk", "8"]
    assert main(argv + (["--overwrite"] if overwrite else [])) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"colnn pool: error: reading INPUT {source} failed ("), err
    assert "nothing was written" in err and "writing" not in err.split("nothing")[0], err
    assert leftovers(tmp_path) == []
    assert kept(output) if overwrite else not output.exists()


def test_ctrl_c_midway_is_interrupted_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    np.save(tmp_path / "in.npy", np.zeros((64, 64), np.uint8))
    written = []
    real = writer._store_block

    def store_then_interrupt(block, target, bar, offset, block_info=None):  # Dask passes block_info by name
        written.append(real(block, target, bar, offset, block_info))
        if len(written) == 5:
            raise KeyboardInterrupt
        return written[-1]

    monkeypatch.setattr(writer, "_store_block", store_then_interrupt)
    code = main(["pool", str(tmp_path / "in.npy"), str(tmp_path / "out.zarr"), "--kernel", "2", "--chunk", "8"])
    assert code == 130 and without_compile_notice(capsys.readouterr().err) == "colnn pool: interrupted\n"
    assert len(written) >= 5 and not (tmp_path / "out.zarr").exists() and leftovers(tmp_path) == []


def chunk_written(tmp) -> bool:
    """Whether a chunk of level 0 is on disk in the hidden folder (the pooling is under way)."""
    return any(path.is_file() for folder in tmp.glob(".*.partial") for path in (folder / "0" / "c").rglob("*"))


def interrupt_a_run(tmp, planes: int, started, signum=signal.SIGINT) -> tuple[int, str]:
    """Run ``colnn pool`` in a child process, send it ``signum`` once ``started(tmp)``; its status and stderr."""
    np.save(tmp / "in.npy", np.random.default_rng(0).integers(0, 9, (planes, 512, 512), dtype=np.uint16))
    child = subprocess.Popen([sys.executable, "-m", "colnn", "pool", str(tmp / "in.npy"), str(tmp / "out.zarr"),
                              "--kernel", "3", "--levels", "3", "--method", "mode", "--chunk", "128"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not started(tmp) and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert started(tmp), "the run ended before the moment to interrupt it"
    child.send_signal(signum)
    _, err = child.communicate(timeout=60)
    return child.returncode, err


# Ctrl-C, and SIGTERM (kill, timeout, a batch system ending a job): the same cleanup, the shell's status for each.
SIGNALS = {"SIGINT": (signal.SIGINT, 130, "interrupted"), "SIGTERM": (signal.SIGTERM, 143, "terminated")}


@pytest.mark.parametrize("when", ["creating the arrays", "pooling"])
@pytest.mark.parametrize("signum, status, word", SIGNALS.values(), ids=SIGNALS.keys())
def test_a_real_signal_midway_exits_with_its_status_and_leaves_nothing(tmp_path, when, signum, status, word):
    # The signal itself, in a child process: once the hidden folder exists (Zarr writing metadata on its own
    # thread), or once level 0's first chunk is written.
    started = leftovers if when == "creating the arrays" else chunk_written
    for planes in (32, 128):
        code, err = interrupt_a_run(tmp_path, planes, started, signum)
        if code != 0:
            break
        # On a loaded machine this process may wake only after the child has finished: then the pyramid
        # must be whole, and a larger input gives the signal time to land.
        assert (tmp_path / "out.zarr" / "3" / "zarr.json").is_file() and leftovers(tmp_path) == []
        shutil.rmtree(tmp_path / "out.zarr")
    assert code == status and without_compile_notice(err) == f"colnn pool: {word}\n", err
    assert not (tmp_path / "out.zarr").exists() and leftovers(tmp_path) == []


def dead_pid() -> int:
    """The PID of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_partial_folders_of_killed_runs_are_removed_by_the_next_run(tmp_path, capsys):
    # SIGKILL cannot be caught: its run leaves its hidden folder, named with its PID, which the next run removes.
    np.save(tmp_path / "in.npy", np.zeros((16, 16), np.uint8))
    killed = tmp_path / f".out.zarr.colnn-pool-{dead_pid()}-0123abcd.partial"
    running = tmp_path / f".out.zarr.colnn-pool-{os.getppid()}-4567cdef.partial"  # a live run's: kept
    replaced = tmp_path / f".out.zarr.colnn-pool-{dead_pid()}-89ab0123.old"  # a replaced OUTPUT: kept
    other = tmp_path / f".other.zarr.colnn-pool-{dead_pid()}-cdef4567.partial"  # another OUTPUT's: kept
    for folder in (killed, running, replaced, other):
        (folder / "0").mkdir(parents=True)
    assert main(["pool", str(tmp_path / "in.npy"), str(tmp_path / "out.zarr"), "--kernel", "2"]) == 0
    err = without_compile_notice(capsys.readouterr().err)
    assert err == f"colnn pool: removed 1 partial folder(s) of {tmp_path / 'out.zarr'} left by a killed run " \
                  f"({killed.name})\n", err
    assert not killed.exists() and running.is_dir() and replaced.is_dir() and other.is_dir()


def test_a_real_sigkill_leaves_a_folder_that_the_next_run_removes(tmp_path, capsys):
    code, _ = interrupt_a_run(tmp_path, 128, chunk_written, signal.SIGKILL)
    assert code == -signal.SIGKILL and len(leftovers(tmp_path)) == 1
    assert main(["pool", str(tmp_path / "in.npy"), str(tmp_path / "out.zarr"), "--kernel", "3", "--levels", "1",
                 "--chunk", "256"]) == 0
    assert "removed 1 partial folder(s)" in capsys.readouterr().err
    assert leftovers(tmp_path) == [] and (tmp_path / "out.zarr" / "1" / "zarr.json").is_file()


@pytest.mark.parametrize("pyramid", ["zarr.json", ".zgroup", ".zarray", "empty"])
def test_overwrite_replaces_a_zarr_node_or_an_empty_folder(tmp_path, capsys, pyramid):
    np.save(tmp_path / "in.npy", np.ones((8, 8), np.uint8))
    output = tmp_path / "out.zarr"
    output.mkdir()
    if pyramid != "empty":
        (output / pyramid).write_text("{}")
    assert main(["pool", str(tmp_path / "in.npy"), str(output), "--kernel", "2", "--overwrite"]) == 0, \
        capsys.readouterr().err
    np.testing.assert_array_equal(zarr.open_group(str(output), mode="r")["0"][:], np.ones((8, 8), np.uint8))


def test_an_unwritable_folder_is_named_not_the_hidden_folder(tmp_path, capsys, monkeypatch):
    # As root, os.access says yes to /sys; the hidden folder's mkdir is what fails: OUTPUT's folder is named.
    np.save(tmp_path / "in.npy", np.ones((8, 8), np.uint8))
    output = tmp_path / "out.zarr"

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(writer.Path, "mkdir", refuse)
    assert main(["pool", str(tmp_path / "in.npy"), str(output), "--kernel", "2"]) == 1
    err = capsys.readouterr().err
    assert err == f"colnn pool: error: OUTPUT {output}: cannot write in its folder {tmp_path} (Permission denied)\n"
    assert leftovers(tmp_path) == [] and not output.exists()


@pytest.mark.parametrize("overwrite", [False, True])
def test_an_output_written_by_someone_else_during_the_run_is_kept(tmp_path, capsys, monkeypatch, overwrite):
    # A user's folder created at OUTPUT after the start checks must survive the final swap.
    np.save(tmp_path / "in.npy", np.zeros((64, 64), np.uint8))
    output = tmp_path / "out.zarr"
    real = writer._store_block

    def store_then_someone_writes(block, target, bar, offset, block_info=None):
        if not output.exists():
            output.mkdir()
            (output / "notes.txt").write_text("precious")
        return real(block, target, bar, offset, block_info)

    monkeypatch.setattr(writer, "_store_block", store_then_someone_writes)
    argv = ["pool", str(tmp_path / "in.npy"), str(output), "--kernel", "2", "--chunk", "8"]
    assert main(argv + (["--overwrite"] if overwrite else [])) == 1
    err = without_compile_notice(capsys.readouterr().err)
    assert err.count("\n") == 1 and err.startswith(f"colnn pool: error: OUTPUT {output} "), err
    assert "pyramid was discarded" in err or "pyramid discarded" in err, err
    assert (output / "notes.txt").read_text() == "precious" and sorted(os.listdir(output)) == ["notes.txt"]
    assert leftovers(tmp_path) == []


def test_a_padding_too_large_is_blamed_on_padding_not_levels(tmp_path, capsys):
    np.save(tmp_path / "in.npy", np.zeros((16, 16), np.uint8))
    assert main(["pool", str(tmp_path / "in.npy"), str(tmp_path / "o.zarr"), "--kernel", "2", "--padding", "2"]) == 1
    err = capsys.readouterr().err
    assert "--padding" in err and "--levels" not in err, err
