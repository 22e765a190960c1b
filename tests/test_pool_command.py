"""``colnn pool`` end to end: INPUT (.npy, Zarr v2/v3, OME-Zarr) to an OME-Zarr pyramid equal to a NumPy loop.

The oracle is test_pool_methods' naive window loop; these tests check what
the command adds around the methods: reading each kind of input, axes put in
OME-NGFF order, codecs and shards that read back the same, the summary, the
progress bars, and a distributed run equal to the local one.
"""

from __future__ import annotations

import itertools
import json
import math
import sys

import numpy as np
import pytest

pytest.importorskip("dask.array", reason="colnn pool needs dask (pip install colnn[dask])")
zarr = pytest.importorskip("zarr", reason="colnn pool needs zarr (pip install colnn[dask])")

from colnn.apps.cli import main  # noqa: E402
from streams import without_compile_notice  # noqa: E402
from test_pool_methods import naive_pyramid  # noqa: E402


def pool(*argv) -> int:
    return main(["pool", *(str(arg) for arg in argv)])


def levels_of(path) -> list[np.ndarray]:
    group = zarr.open_group(str(path), mode="r")
    return [group[str(level)][:] for level in range(len(list(group.array_keys())))]


def check_levels(path, expected) -> None:
    got = levels_of(path)
    assert len(got) == len(expected)
    for level, (g, e) in enumerate(zip(got, expected)):
        assert g.dtype == e.dtype, level
        np.testing.assert_array_equal(g, e, err_msg=f"level {level}")


def test_a_uint16_volume_averages_into_a_uint16_pyramid(tmp_path, capsys):
    # The reliability issue's case: integer means, rounded half to even, each level from level 0.
    x = np.random.default_rng(0).integers(0, 65535, (3, 37, 30), dtype=np.uint16)
    np.save(tmp_path / "in.npy", x)
    assert pool(tmp_path / "in.npy", tmp_path / "out.zarr", "--kernel", "2", "--levels", "3", "--chunk", "8",
                "--ceil-mode", "--method", "avg") == 0
    check_levels(tmp_path / "out.zarr", naive_pyramid(x, 3, "avg", (1, 2), (2, 2), (2, 2), (0, 0), True))
    out = capsys.readouterr().out.splitlines()
    assert out[:4] == [f"{tmp_path / 'out.zarr'}/{level}: {shape}"
                       for level, shape in enumerate([(3, 37, 30), (3, 19, 15), (3, 10, 8), (3, 5, 4)])]
    assert out[4].startswith(f"colnn pool: {tmp_path / 'out.zarr'}: 4 levels (avg over yx, OME-NGFF 0.5")
    assert " written in " in out[4] and "peak memory" in out[4]


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_arrays_are_read_in_their_own_chunks(tmp_path, zarr_format):
    x = np.random.default_rng(1).normal(size=(2, 3, 24, 20)).astype(np.float32)
    zarr.create_array(str(tmp_path / "in.zarr"), shape=x.shape, chunks=(1, 1, 7, 9), dtype=x.dtype,
                      zarr_format=zarr_format)[:] = x
    assert pool(tmp_path / "in.zarr", tmp_path / "out.zarr", "--kernel", "3", "--stride", "2", "--padding", "1",
                "--method", "min", "--levels", "2", "--axes", "tcyx", "--chunk", "5") == 0
    check_levels(tmp_path / "out.zarr", naive_pyramid(x, 2, "min", (2, 3), (3, 3), (2, 2), (1, 1), False))


def test_axes_out_of_ome_order_are_written_in_it(tmp_path):
    x = np.random.default_rng(2).normal(size=(12, 3, 10)).astype(np.float32)  # y, c, x
    np.save(tmp_path / "in.npy", x)
    assert pool(tmp_path / "in.npy", tmp_path / "out.zarr", "--kernel", "2", "--axes", "ycx") == 0
    expected = naive_pyramid(x.transpose(1, 0, 2), 1, "max", (1, 2), (2, 2), (2, 2), (0, 0), False)
    check_levels(tmp_path / "out.zarr", expected)
    assert zarr.open_group(str(tmp_path / "out.zarr"), mode="r")["0"].metadata.dimension_names == ("c", "y", "x")


@pytest.mark.parametrize("layout", ["big-endian", "fortran"])
def test_npy_files_in_any_layout(tmp_path, layout):
    x = np.random.default_rng(8).normal(size=(2, 15, 13))
    stored = x.astype(">f8") if layout == "big-endian" else np.asfortranarray(x)
    np.save(tmp_path / "in.npy", stored)
    assert pool(tmp_path / "in.npy", tmp_path / "out.zarr", "--kernel", "2", "--chunk", "4", "--method", "avg") == 0
    check_levels(tmp_path / "out.zarr", naive_pyramid(x, 1, "avg", (1, 2), (2, 2), (2, 2), (0, 0), False))


@pytest.mark.parametrize("ngff", ["0.5", "0.4"])
def test_an_ome_zarr_image_is_pooled_from_its_level_0_with_its_axes_and_scale(tmp_path, ngff):
    x = np.random.default_rng(3).integers(0, 50, (6, 16, 12), dtype=np.uint8)
    np.save(tmp_path / "in.npy", x)
    assert pool(tmp_path / "in.npy", tmp_path / "first.zarr", "--kernel", "2", "--axes", "zyx", "--ngff", ngff,
                "--scale", "2,0.5,0.25", "--unit", "micrometer") == 0
    assert pool(tmp_path / "first.zarr", tmp_path / "second.zarr", "--kernel", "2", "--pool-axes", "zyx",
                "--method", "mode", "--levels", "2") == 0
    check_levels(tmp_path / "second.zarr", naive_pyramid(x, 2, "mode", (0, 1, 2), (2,) * 3, (2,) * 3, (0,) * 3, False))
    meta = zarr.open_group(str(tmp_path / "second.zarr"), mode="r").attrs["ome"]["multiscales"][0]
    assert [(a["name"], a.get("unit")) for a in meta["axes"]] == [("z", "micrometer"), ("y", "micrometer"),
                                                                   ("x", "micrometer")]
    assert meta["datasets"][1]["coordinateTransformations"][0]["scale"] == [4, 1, 0.5]


CODECS = {"zstd:5": "zstd", "blosc-lz4": "blosc", "blosc-zstd:3": "blosc", "gzip": "gzip", "none": None}


@pytest.mark.parametrize("codec, name", CODECS.items(), ids=CODECS.keys())
def test_codecs_read_back_the_same(tmp_path, codec, name):
    x = np.random.default_rng(4).integers(-900, 900, (20, 18), dtype=np.int16)
    np.save(tmp_path / "in.npy", x)
    assert pool(tmp_path / "in.npy", tmp_path / "out.zarr", "--kernel", "2", "--codec", codec, "--chunk", "8") == 0
    check_levels(tmp_path / "out.zarr", naive_pyramid(x, 1, "max", (0, 1), (2, 2), (2, 2), (0, 0), False))
    codecs = json.loads((tmp_path / "out.zarr" / "1" / "zarr.json").read_text())["codecs"]
    assert [c["name"] for c in codecs[1:]] == ([name] if name else [])


def test_shards_hold_several_chunks_in_one_file(tmp_path):
    x = np.random.default_rng(5).random((2, 40, 40)).astype(np.float32)
    np.save(tmp_path / "in.npy", x)
    assert pool(tmp_path / "in.npy", tmp_path / "out.zarr", "--kernel", "2", "--levels", "2",
                "--chunk", "5", "--shard", "20") == 0
    check_levels(tmp_path / "out.zarr", naive_pyramid(x, 2, "max", (1, 2), (2, 2), (2, 2), (0, 0), False))
    meta = json.loads((tmp_path / "out.zarr" / "0" / "zarr.json").read_text())
    assert meta["chunk_grid"]["configuration"]["chunk_shape"] == [1, 20, 20]
    assert meta["codecs"][0]["name"] == "sharding_indexed"
    assert meta["codecs"][0]["configuration"]["chunk_shape"] == [1, 5, 5]
    assert len([f for f in (tmp_path / "out.zarr" / "0").rglob("*") if f.is_file()]) == 1 + 2 * 2 * 2


def chunk_files(level_folder) -> list:
    return [f for f in level_folder.rglob("*") if f.is_file() and f.name not in ("zarr.json", ".zarray", ".zattrs")]


@pytest.mark.parametrize("pool_axes", ["x", "y", "z", "zx"])
def test_pooling_some_axes_writes_whole_chunks_not_rows(tmp_path, pool_axes):
    # The tryout's case: pooling x alone wrote one file per row (32,771 files for a small volume). This volume
    # holds 72,000 cells, well under a default chunk (about 1 Mi cells): one file per level, whatever is pooled.
    x = np.random.default_rng(11).integers(0, 4000, (6, 40, 300), dtype=np.uint16)
    np.save(tmp_path / "in.npy", x)
    assert pool(tmp_path / "in.npy", tmp_path / "out.zarr", "--kernel", "2", "--levels", "3", "--axes", "zyx",
                "--pool-axes", pool_axes, "--method", "avg", "--ceil-mode") == 0
    pooled = tuple("zyx".index(letter) for letter in pool_axes)
    count = len(pooled)
    check_levels(tmp_path / "out.zarr", naive_pyramid(x, 3, "avg", pooled, (2,) * count, (2,) * count, (0,) * count,
                                                      True))
    for level in range(4):
        assert len(chunk_files(tmp_path / "out.zarr" / str(level))) == 1, level


def test_default_chunks_hold_about_a_mebi_cell_for_every_axis_choice():
    from colnn.apps.pool.ngff import AXIS_TYPES, Axis
    from colnn.apps.pool.plan import default_chunks

    for names, shape in [("zyx", (320, 4096, 4096)), ("tczyx", (3, 2, 64, 2048, 3000)), ("cyx", (3, 20000, 700))]:
        axes = [Axis(name, AXIS_TYPES[name]) for name in names]
        space = [index for index, axis in enumerate(axes) if axis.type == "space"]
        for count in range(1, len(space) + 1):
            for pooled in itertools.combinations(space, count):
                chunks = default_chunks(shape, axes, pooled)
                cells = math.prod(min(c, n) for c, n in zip(chunks, shape))
                assert 2 ** 19 <= cells <= 2 ** 21, (names, pooled, chunks)
                assert all(chunks[i] == 1 for i, axis in enumerate(axes) if axis.type != "space")


def test_zarr_v2_with_ngff_0_4(tmp_path):
    x = np.random.default_rng(6).integers(0, 9, (2, 9, 9), dtype=np.uint8)
    np.save(tmp_path / "in.npy", x)
    assert pool(tmp_path / "in.npy", tmp_path / "out.zarr", "--kernel", "2", "--ngff", "0.4", "--chunk", "4",
                "--method", "nearest", "--codec", "blosc-lz4") == 0
    check_levels(tmp_path / "out.zarr", naive_pyramid(x, 1, "nearest", (1, 2), (2, 2), (2, 2), (0, 0), False))
    meta = json.loads((tmp_path / "out.zarr" / "0" / ".zarray").read_text())
    assert meta["dimension_separator"] == "/" and meta["compressor"]["cname"] == "lz4"
    assert (tmp_path / "out.zarr" / "0" / "1" / "2" / "2").is_file()


def test_progress_bars_on_a_terminal_only(tmp_path, capsys, monkeypatch):
    np.save(tmp_path / "in.npy", np.zeros((16, 16), np.float32))
    assert pool(tmp_path / "in.npy", tmp_path / "quiet.zarr", "--kernel", "2", "--chunk", "4") == 0
    assert without_compile_notice(capsys.readouterr().err) == ""
    pytest.importorskip("tqdm", reason="the bars are tqdm's (pip install colnn[apps])")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert pool(tmp_path / "in.npy", tmp_path / "bars.zarr", "--kernel", "2", "--levels", "2", "--chunk", "4") == 0
    err = capsys.readouterr().err
    # A bar per level, counting Dask blocks (here rows of 4 chunks of 4x4): 4, then 2, then 1.
    assert "level 0: 100%" in err and "4/4" in err and "level 1: 100%" in err and "2/2" in err
    assert "level 2: 100%" in err and "1/1" in err


def test_slabs_along_an_unpooled_axis_join_up(tmp_path, monkeypatch):
    from colnn.apps.pool import command

    monkeypatch.setattr(command, "SLAB_BLOCKS", 1)  # a Dask graph per plane of level 0
    x = np.random.default_rng(9).integers(0, 255, (5, 2, 19, 17), dtype=np.uint8)
    np.save(tmp_path / "in.npy", x)
    assert pool(tmp_path / "in.npy", tmp_path / "out.zarr", "--kernel", "2", "--levels", "2", "--axes", "tcyx",
                "--chunk", "32", "--method", "mode", "--ceil-mode") == 0
    check_levels(tmp_path / "out.zarr", naive_pyramid(x, 2, "mode", (2, 3), (2, 2), (2, 2), (0, 0), True))


def test_a_distributed_run_equals_the_local_one(tmp_path, dask_cluster):
    x = np.random.default_rng(7).integers(0, 4000, (2, 40, 33), dtype=np.uint16)
    np.save(tmp_path / "in.npy", x)
    options = ["--kernel", "2", "--levels", "2", "--chunk", "16", "--method", "avg", "--ceil-mode"]
    assert pool(tmp_path / "in.npy", tmp_path / "local.zarr", *options) == 0
    assert pool(tmp_path / "in.npy", tmp_path / "cluster.zarr", *options,
                "--scheduler", dask_cluster.scheduler.address) == 0
    local = levels_of(tmp_path / "local.zarr")
    check_levels(tmp_path / "cluster.zarr", local)
    check_levels(tmp_path / "local.zarr", naive_pyramid(x, 2, "avg", (1, 2), (2, 2), (2, 2), (0, 0), True))


def test_a_usual_pyramid_loads_no_numba_and_no_network_code(tmp_path):
    """Tiling windows are pooled by NumPy: a short run pays for no Numba start-up and no colnn.nn or colnn.ops."""
    import subprocess

    np.save(tmp_path / "in.npy", np.arange(2 * 16 * 12, dtype=np.uint16).reshape(2, 16, 12))
    runner = ("import sys\nfrom colnn.apps.cli import main\nstatus = main(sys.argv[1:])\n"
              "print(status, *sorted(name for name in sys.modules if name.split('.')[0] in "
              "('numba', 'torch', 'jax', 'distributed') or name.startswith(('colnn.nn', 'colnn.ops'))))")
    for method in ("max", "avg", "min"):
        result = subprocess.run([sys.executable, "-c", runner, "pool", "in.npy", f"{method}.zarr", "--kernel", "2",
                                 "--levels", "2", "--chunk", "4", "--method", method],
                                capture_output=True, text=True, cwd=tmp_path, timeout=600)
        assert result.stdout.splitlines()[-1] == "0", (method, result.stdout, result.stderr)
        assert result.stderr == "", result.stderr  # no compile notice either: nothing compiles
    # A window that does not tile its blocks goes through colnn's compiled pooling: that loads Numba.
    result = subprocess.run([sys.executable, "-c", runner, "pool", "in.npy", "overlap.zarr", "--kernel", "3",
                             "--stride", "2"], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.stdout.splitlines()[-1].split()[0] == "0" and "numba" in result.stdout.split()


def test_per_axis_lists_follow_the_order_of_pool_axes(tmp_path):
    # --pool-axes xz --kernel 1,3: x gets 1, z gets 3, whatever the array's axis order (czyx).
    x = np.random.default_rng(20).integers(0, 255, (2, 9, 37, 53), dtype=np.uint8)
    np.save(tmp_path / "c4.npy", x)
    assert pool(tmp_path / "c4.npy", tmp_path / "out.zarr", "--axes", "czyx", "--pool-axes", "xz",
                "--kernel", "1,3", "--chunk", "8,4") == 0
    levels = levels_of(tmp_path / "out.zarr")
    np.testing.assert_array_equal(levels[1], x.reshape(2, 3, 3, 37, 53).max(axis=2))  # z in threes, x as is
    group = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")
    assert group["0"].chunks == (1, 4, 1, 8)  # --chunk 8,4: x 8, z 4
    multiscale = group.attrs["ome"]["multiscales"][0]
    transforms = multiscale["datasets"][1]["coordinateTransformations"]
    assert transforms[0]["scale"] == [1.0, 3.0, 1.0, 1.0] and transforms[1]["translation"] == [0.0, 1.0, 0.0, 0.0]
    kwargs = multiscale["metadata"]["kwargs"]  # written in the array's order, with that order named
    assert kwargs["axes"] == "zx" and kwargs["kernel_size"] == [3, 1]


def test_stride_and_padding_lists_follow_the_order_of_pool_axes(tmp_path):
    x = np.random.default_rng(21).integers(0, 255, (37, 53), dtype=np.uint8)
    np.save(tmp_path / "in.npy", x)
    # --pool-axes xy --kernel 2 --stride 1,2: x steps by 1, y by 2.
    assert pool(tmp_path / "in.npy", tmp_path / "a.zarr", "--pool-axes", "xy", "--kernel", "2", "--stride", "1,2") == 0
    windows = np.lib.stride_tricks.sliding_window_view(x, (2, 2))  # (y, x, 2, 2): every 2x2 window
    np.testing.assert_array_equal(levels_of(tmp_path / "a.zarr")[1], windows[::2, ::1].max(axis=(2, 3)))
    # --kernel 3,2 --padding 1,0: x windows of 3 padded by 1, y windows of 2 unpadded (max: padding never wins).
    assert pool(tmp_path / "in.npy", tmp_path / "b.zarr", "--pool-axes", "xy", "--kernel", "3,2",
                "--padding", "1,0") == 0
    padded = np.pad(x, ((0, 0), (1, 1)))  # zeros: below or equal to every uint8
    windows = np.lib.stride_tricks.sliding_window_view(padded, (2, 3))
    np.testing.assert_array_equal(levels_of(tmp_path / "b.zarr")[1], windows[::2, ::3].max(axis=(2, 3)))


def test_a_per_axis_list_of_the_wrong_length_names_the_order(tmp_path, capsys):
    np.save(tmp_path / "in.npy", np.zeros((8, 8), np.uint8))
    assert pool(tmp_path / "in.npy", tmp_path / "out.zarr", "--pool-axes", "xy", "--kernel", "1,2,2") == 1
    assert "one per letter of --pool-axes, in its order" in capsys.readouterr().err


def test_ceil_mode_means_are_the_means_of_level_0_cells(tmp_path):
    # The tryout's case: level 2's last cell covers level-0 cells 4..6 of each row (0, 0, 3): mean 1, not 2.
    x = np.array([[0, 0, 0, 0, 0, 0, 3]] * 2, np.uint8)
    np.save(tmp_path / "r.npy", x)
    assert pool(tmp_path / "r.npy", tmp_path / "r.zarr", "--kernel", "2", "--levels", "2", "--ceil-mode",
                "--method", "avg") == 0
    levels = levels_of(tmp_path / "r.zarr")
    np.testing.assert_array_equal(levels[2], [[np.rint(x[:, :4].mean()), np.rint(x[:, 4:].mean())]])
