"""``colnn pool``'s OME-Zarr metadata, held to the peers: ome-zarr-models validates it, and ome-zarr-py and
ngff-zarr read every level back, with its scale and translation, without a warning.

The scale and translation are checked against where each level's first cell
lies in level-0 coordinates, worked out from the windows: the centre of the
level-0 cells it covers (``nearest``: the cell it picks).
"""

from __future__ import annotations

import contextlib
import logging
import warnings

import numpy as np
import pytest

pytest.importorskip("dask.array", reason="colnn pool needs dask (pip install colnn[dask])")
zarr = pytest.importorskip("zarr", reason="colnn pool needs zarr (pip install colnn[dask])")
models = pytest.importorskip("ome_zarr_models", reason="the metadata checks need colnn[imaging]")
pytest.importorskip("ome_zarr", reason="the reader checks need colnn[imaging]")
pytest.importorskip("ngff_zarr", reason="the reader checks need colnn[imaging]")

from colnn.apps.cli import main  # noqa: E402


def write(tmp_path, *options, shape=(2, 20, 18), dtype=np.uint16, name="out.zarr"):
    x = np.random.default_rng(0).integers(0, 1000, shape).astype(dtype)
    np.save(tmp_path / "in.npy", x)
    assert main(["pool", str(tmp_path / "in.npy"), str(tmp_path / name), *map(str, options)]) == 0
    return x, tmp_path / name


@contextlib.contextmanager
def complaints():
    """Every warning, and every log record of WARNING and above, raised inside the block, as text.

    ome-zarr-py reports a version mismatch through ``logging`` (``ome_zarr.io``),
    ngff-zarr and zarr through ``warnings``: both are kept, whatever pytest's
    own capture does with them.
    """
    found: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            found.append(f"{record.name}: {record.getMessage()}")

    handler = Keep(logging.WARNING)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield found
    finally:
        root.removeHandler(handler)
    found.extend(f"{warning.category.__name__}: {warning.message}" for warning in caught)


def read_with_peers(path, version="0.5"):
    """Each level as ome-zarr-py and as ngff-zarr read it, with ngff-zarr's scale and translation.

    ome-zarr-py is told the version, as its users do for a 0.4 image (it
    expects 0.5 by default). Fails on any warning or warning log of the peers.
    """
    import ngff_zarr
    from ome_zarr.format import format_from_version
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    with complaints() as found:
        image = next(iter(Reader(parse_url(str(path), fmt=format_from_version(version)))()))
        ome = [np.asarray(level) for level in image.data]
        multiscales = ngff_zarr.from_ngff_zarr(str(path))
        ngff = [(np.asarray(level.data), level.scale, level.translation) for level in multiscales.images]
    assert found == [], found
    return ome, ngff


def test_the_complaint_check_hears_a_version_mismatch(tmp_path):
    # The check must be able to fail: ome-zarr-py, expecting 0.5, logs a mismatch on a 0.4 image.
    from ome_zarr.io import parse_url

    _, path = write(tmp_path, "--kernel", "2", "--ngff", "0.4")
    with complaints() as found:
        parse_url(str(path))
    assert any("version mismatch" in line for line in found), found


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_peers_validate_and_read_every_level(tmp_path, version):
    x, path = write(tmp_path, "--kernel", "2", "--levels", "2", "--chunk", "8", "--ngff", version,
                    "--scale", "0.5,0.5", "--unit", "micrometer", "--method", "max")
    group = zarr.open_group(str(path), mode="r")
    if version == "0.5":
        from ome_zarr_models.v05.image import Image
    else:
        from ome_zarr_models.v04.image import Image
    image = Image.from_zarr(group)
    assert [d.path for d in image.ome_attributes.multiscales[0].datasets] == ["0", "1", "2"]
    ome, ngff = read_with_peers(path, version)
    for level in range(3):
        ours = group[str(level)][:]
        np.testing.assert_array_equal(ome[level], ours)
        np.testing.assert_array_equal(ngff[level][0], ours)
    np.testing.assert_array_equal(ome[0], x)
    # Level 2's first cell stands for level-0 cells 0..3 of size 0.5: its centre is at 0.75.
    assert ngff[2][1] == {"c": 1.0, "y": 2.0, "x": 2.0} and ngff[2][2] == {"c": 0.0, "y": 0.75, "x": 0.75}


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_codec_none_writes_uncompressed_chunks_that_peers_read(tmp_path, version):
    # Zarr v2 takes no compressor as None, not as the empty list that means none in v3.
    x, path = write(tmp_path, "--kernel", "2", "--codec", "none", "--ngff", version, "--chunk", "8")
    group = zarr.open_group(str(path), mode="r")
    assert group["0"].compressors == () and group["1"].compressors == ()
    first_chunk = path / "0" / ("0/0/0" if version == "0.4" else "c/0/0/0")
    assert first_chunk.read_bytes() == x[:1, :8, :8].tobytes()  # the raw cells: no codec, no header
    ome, ngff = read_with_peers(path, version)
    np.testing.assert_array_equal(ome[0], x)
    np.testing.assert_array_equal(ngff[1][0], group["1"][:])


def test_a_sharded_volume_pooled_in_3d_validates_and_reads(tmp_path):
    from ome_zarr_models.v05.image import Image

    _, path = write(tmp_path, "--kernel", "2", "--pool-axes", "zyx", "--axes", "zyx", "--levels", "2",
                    "--chunk", "4", "--shard", "8", "--method", "mode", shape=(16, 16, 12), dtype=np.uint8)
    Image.from_zarr(zarr.open_group(str(path), mode="r"))
    ome, ngff = read_with_peers(path)
    assert [level.shape for level in ome] == [(16, 16, 12), (8, 8, 6), (4, 4, 3)]
    np.testing.assert_array_equal(ngff[2][0], ome[2])


def centre_of_first_cell(levels, kernel, stride, padding, nearest=False):
    """In level-0 cells, where level ``levels``'s first cell lies, window by window down to level 0."""
    # Cell i of level l stands for an interval of level-0 positions; track the first cell's centre and the
    # spacing of level l's cells: cell i of level l+1 sits at offset (k-1)/2 - p (nearest: (k-1)//2 - p).
    offset = ((kernel - 1) // 2 if nearest else (kernel - 1) / 2) - padding
    centre, spacing = 0.0, 1.0
    for _ in range(levels):
        centre += spacing * offset
        spacing *= stride
    return centre, spacing


@pytest.mark.parametrize("method", ["avg", "nearest"])
@pytest.mark.parametrize("kernel, stride, padding", [(2, 2, 0), (3, 2, 1), (4, 3, 2)])
def test_each_level_sits_where_its_windows_are(tmp_path, method, kernel, stride, padding):
    _, path = write(tmp_path, "--kernel", kernel, "--stride", stride, "--padding", padding, "--levels", "2",
                    "--method", method, "--scale", "0.25,0.1", "--chunk", "16", shape=(2, 40, 40))
    datasets = zarr.open_group(str(path), mode="r").attrs["ome"]["multiscales"][0]["datasets"]
    for level in range(3):
        scale, translation = (t[t["type"]] for t in datasets[level]["coordinateTransformations"])
        centre, spacing = centre_of_first_cell(level, kernel, stride, padding, nearest=method == "nearest")
        assert scale == pytest.approx([1.0, 0.25 * spacing, 0.1 * spacing])
        assert translation == pytest.approx([0.0, 0.25 * centre, 0.1 * centre])


def test_the_method_and_colnn_are_recorded(tmp_path):
    import colnn

    _, path = write(tmp_path, "--kernel", "2", "--method", "avg", "--ceil-mode")
    multiscale = zarr.open_group(str(path), mode="r").attrs["ome"]["multiscales"][0]
    assert multiscale["type"] == "avg"
    meta = multiscale["metadata"]
    assert meta["method"] == "colnn.avg_pool2d" and meta["version"] == colnn.__version__
    assert meta["kwargs"]["kernel_size"] == [2, 2] and meta["kwargs"]["ceil_mode"] is True
    assert zarr.open_group(str(path), mode="r")["1"].metadata.dimension_names == ("c", "y", "x")


def test_the_validator_refuses_a_broken_multiscales(tmp_path):
    # The validation must be able to fail: a level whose scale has one number too few is not OME-NGFF.
    from ome_zarr_models.v05.image import Image

    _, path = write(tmp_path, "--kernel", "2")
    group = zarr.open_group(str(path), mode="r+")
    ome = group.attrs["ome"]
    ome["multiscales"][0]["datasets"][1]["coordinateTransformations"][0]["scale"] = [1.0, 2.0]
    group.attrs["ome"] = ome
    with pytest.raises(ValueError, match="dimensionality"):  # pydantic's ValidationError is a ValueError
        Image.from_zarr(zarr.open_group(str(path), mode="r"))


def test_scale_and_translation_are_written_as_short_decimals(tmp_path):
    # 0.3 * 3 and 0.3 * 1.5 in float arithmetic are 0.8999999999999999 and 0.44999999999999996.
    _, path = write(tmp_path, "--kernel", "4", "--stride", "3", "--scale", "0.3,0.3,0.3", "--levels", "2")
    text = (path / "zarr.json").read_text()
    assert "9999" not in text, text
    datasets = zarr.open_group(str(path), mode="r").attrs["ome"]["multiscales"][0]["datasets"]
    assert datasets[1]["coordinateTransformations"] == [{"type": "scale", "scale": [0.3, 0.9, 0.9]},
                                                        {"type": "translation", "translation": [0.0, 0.45, 0.45]}]
    assert datasets[2]["coordinateTransformations"][1]["translation"] == [0.0, 1.8, 1.8]  # 0.45 + 0.9 * 1.5
    _, ngff = read_with_peers(path)
    assert ngff[1][2] == {"c": 0.0, "y": 0.45, "x": 0.45}
