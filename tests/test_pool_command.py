"""``colnn pool`` (colnn.apps.pool): each pyramid level is the previous one pooled by the NumPy path.

The oracle is colnn's NumPy pooling (held to PyTorch by tests/test_pooling.py)
applied level after level to the whole array in memory; the metadata is checked
against the OME-NGFF 0.4 ``multiscales`` rules a viewer relies on.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("dask.array", reason="colnn pool needs dask (pip install colnn[dask])")
zarr = pytest.importorskip("zarr", reason="colnn pool needs zarr (pip install colnn[dask])")

import colnn  # noqa: E402
from colnn.apps import pool  # noqa: E402
from colnn.apps.cli import main  # noqa: E402


def expected_levels(x: np.ndarray, levels: int, pool_function, **args) -> list[np.ndarray]:
    """Level 0 and each next level pooled over the last two axes, in memory."""
    out = [x]
    for _ in range(levels):
        lead = out[-1].shape[:-2]
        planes = out[-1].reshape(-1, 1, *out[-1].shape[-2:])
        pooled = pool_function(planes, **args)
        out.append(pooled.reshape(*lead, *pooled.shape[-2:]))
    return out


def test_npy_to_max_pyramid(tmp_path, capsys):
    x = np.random.default_rng(0).normal(size=(2, 37, 30)).astype(np.float32)
    np.save(tmp_path / "in.npy", x)
    assert main(["pool", str(tmp_path / "in.npy"), str(tmp_path / "out.zarr"), "--kernel", "2",
                 "--levels", "3", "--chunk", "8", "--ceil-mode"]) == 0
    group = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")
    for level, expected in enumerate(expected_levels(x, 3, colnn.max_pool2d, kernel_size=2, ceil_mode=True)):
        np.testing.assert_array_equal(group[str(level)][:], expected)
    assert "100%" in capsys.readouterr().out  # Dask's progress bar ran


def test_zarr_to_average_pyramid_with_named_axes(tmp_path):
    x = np.random.default_rng(1).normal(size=(2, 3, 24, 20))
    zarr.create_array(str(tmp_path / "in.zarr"), shape=x.shape, chunks=(1, 1, 7, 9), dtype=x.dtype)[:] = x
    assert main(["pool", str(tmp_path / "in.zarr"), str(tmp_path / "out.zarr"), "--kernel", "3", "--stride", "2",
                 "--padding", "1", "--mode", "avg", "--levels", "2", "--axes", "tcyx", "--chunk", "5"]) == 0
    group = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")
    expected = expected_levels(x, 2, colnn.avg_pool2d, kernel_size=3, stride=2, padding=1)
    for level in range(3):
        np.testing.assert_allclose(group[str(level)][:], expected[level], rtol=1e-12)


def test_axes_out_of_order_pool_the_named_axes(tmp_path):
    x = np.random.default_rng(2).normal(size=(12, 3, 10)).astype(np.float32)  # y, c, x
    np.save(tmp_path / "in.npy", x)
    main(["pool", str(tmp_path / "in.npy"), str(tmp_path / "out.zarr"), "--kernel", "2", "--axes", "ycx"])
    level1 = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")["1"][:]
    expected = colnn.max_pool2d(x.transpose(1, 0, 2), 2).transpose(1, 0, 2)
    np.testing.assert_array_equal(level1, expected)


def test_multiscales_metadata_follows_ome_ngff():
    meta = pool.multiscales_metadata("cyx", 2, kernel=2, stride=2, padding=0, mode="max", name="scan")
    assert meta["version"] == "0.4"
    assert [axis["type"] for axis in meta["axes"]] == ["channel", "space", "space"]
    assert [d["path"] for d in meta["datasets"]] == ["0", "1", "2"]
    scales = [d["coordinateTransformations"][0]["scale"] for d in meta["datasets"]]
    assert scales == [[1, 1, 1], [1, 2, 2], [1, 4, 4]]
    # A level-1 cell is the mean position of the 2x2 level-0 cells it pools: 0.5; level 2: 1.5.
    translations = [d["coordinateTransformations"][1]["translation"] for d in meta["datasets"]]
    assert translations == [[0, 0, 0], [0, 0.5, 0.5], [0, 1.5, 1.5]]


@pytest.mark.parametrize("axes", ["cy", "cyxx", "cyz", "qyx"])
def test_bad_axes_name_the_option(axes):
    with pytest.raises(ValueError, match="--axes"):
        pool.check_axes(axes, 3)


def test_distributed_scheduler(tmp_path, dask_cluster):
    x = np.random.default_rng(3).integers(0, 255, size=(40, 33)).astype(np.uint8)
    np.save(tmp_path / "in.npy", x)
    address = dask_cluster.scheduler.address
    assert main(["pool", str(tmp_path / "in.npy"), str(tmp_path / "out.zarr"), "--kernel", "2",
                 "--levels", "2", "--chunk", "16", "--scheduler", address]) == 0
    group = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")
    for level, expected in enumerate(expected_levels(x, 2, colnn.max_pool2d, kernel_size=2)):
        np.testing.assert_array_equal(group[str(level)][:], expected)


# --- nothing lost, one line: the class of bad invocations ------------------------------


@pytest.fixture
def small(tmp_path):
    path = tmp_path / "small.npy"
    np.save(path, np.random.default_rng(0).random((1, 1, 16, 16), dtype=np.float32))
    return path


def test_an_existing_output_is_kept_unless_overwrite(tmp_path, small, capsys):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("data")
    assert main(["pool", str(small), str(precious), "--kernel", "2"]) == 1
    assert (precious / "keep.txt").read_text() == "data"
    assert "exists and is not empty; pass --overwrite" in capsys.readouterr().err
    assert main(["pool", str(small), str(precious), "--kernel", "2", "--overwrite"]) == 0
    np.testing.assert_array_equal(zarr.open_group(str(precious), mode="r")["1"][:],
                                  colnn.max_pool2d(np.load(small), 2))


def test_an_input_inside_the_output_is_refused_even_with_overwrite(tmp_path, small, capsys):
    pyramid = tmp_path / "pyr.zarr"
    assert main(["pool", str(small), str(pyramid), "--kernel", "2"]) == 0
    level0 = zarr.open_group(str(pyramid), mode="r")["0"][:]
    capsys.readouterr()
    assert main(["pool", str(pyramid / "0"), str(pyramid), "--kernel", "2", "--overwrite"]) == 1
    assert "lies inside OUTPUT" in capsys.readouterr().err
    np.testing.assert_array_equal(zarr.open_group(str(pyramid), mode="r")["0"][:], level0)


BAD_RUNS = {
    "output is a file": (["{small}", "{tmp}/afile.txt", "--kernel", "2"], "is a file"),
    "missing input": (["{tmp}/missing.npy", "{tmp}/out.zarr", "--kernel", "2"], "no such file"),
    "text input": (["{tmp}/afile.txt", "{tmp}/out.zarr", "--kernel", "2"], "cannot be read"),
    "too many levels": (["{small}", "{tmp}/out.zarr", "--kernel", "2", "--levels", "20"], "level 5"),
    "padding too large": (["{small}", "{tmp}/out.zarr", "--kernel", "2", "--padding", "5"], "--padding"),
    "kernel larger than the image": (["{small}", "{tmp}/out.zarr", "--kernel", "999"], "output would be empty"),
    "axes that do not fit": (["{small}", "{tmp}/out.zarr", "--kernel", "2", "--axes", "xy"], "--axes"),
}


@pytest.mark.parametrize("argv, words", BAD_RUNS.values(), ids=BAD_RUNS.keys())
def test_bad_runs_are_one_line_and_write_nothing(tmp_path, small, capsys, argv, words):
    (tmp_path / "afile.txt").write_text("not an array")
    code = main(["pool", *(arg.format(small=small, tmp=tmp_path) for arg in argv)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and words in err and "Traceback" not in err
    assert not (tmp_path / "out.zarr").exists()
    assert (tmp_path / "afile.txt").read_text() == "not an array"
