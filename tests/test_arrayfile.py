"""core.arrayfile: .npy/.npz reading against numpy.save, and every malformed file as one named error."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from colnn.core.arrayfile import ArrayFileError, map_npy, read_npy, read_npz


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.mark.parametrize("array", [
    np.arange(12.0).reshape(3, 4),
    np.arange(6, dtype=">i4").reshape(2, 3),            # big-endian: returned in native order
    np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    np.array(3.5, np.float32),                           # 0-D
    np.zeros((0, 4), np.int16),                          # empty
    np.array("a string"),
])
def test_read_npy_equals_numpy_load(tmp_path, array):
    path = tmp_path / "a.npy"
    np.save(path, array)
    back = read_npy(path)
    expected = np.load(path)
    assert back.shape == expected.shape and np.array_equal(back, expected)
    assert back.dtype == expected.dtype.newbyteorder("=") and back.dtype.isnative
    assert back.flags.writeable


@pytest.mark.parametrize("array", [
    np.arange(12.0).reshape(3, 4),
    np.arange(6, dtype=">i4").reshape(2, 3),            # the map keeps the file's byte order
    np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    np.array(3.5, np.float32),
    np.zeros((0, 4), np.int16),
    np.ones((2, 3), bool),
])
def test_map_npy_equals_numpy_load_and_reads_nothing_up_front(tmp_path, array):
    path = tmp_path / "a.npy"
    np.save(path, array)
    header, mapped = map_npy(path)
    expected = np.load(path)
    assert header.shape == expected.shape and header.dtype == expected.dtype and mapped.dtype == expected.dtype
    assert np.array_equal(mapped, expected) and not mapped.flags.writeable
    assert header.offset + header.nbytes == path.stat().st_size


def test_read_npz_equals_numpy_load(tmp_path):
    arrays = {"W": np.ones((2, 3), np.float32), "b": np.arange(3, dtype=">f8"), "name": np.array("net")}
    for save in (np.savez, np.savez_compressed):
        path = tmp_path / f"{save.__name__}.npz"
        save(path, **arrays)
        back = read_npz(path)
        assert sorted(back) == sorted(arrays)
        for key, array in arrays.items():
            assert np.array_equal(back[key], array) and back[key].dtype.isnative


MALFORMED_NPY = {
    "text": (lambda p: p.write_text("1 2 3\n"), "it is text"),
    "empty": (lambda p: p.write_bytes(b""), "an empty file"),
    "an .npz": (lambda p: p.write_bytes(npz_bytes(x=np.ones(2))), "a zip archive (.npz)"),
    "objects": (lambda p: p.write_bytes(npy_bytes(np.array([{}, 1], dtype=object))), "Python objects"),
    "truncated data": (lambda p: p.write_bytes(npy_bytes(np.ones(8))[:-3]), "truncated"),
    "truncated header": (lambda p: p.write_bytes(npy_bytes(np.ones(8))[:20]), "reading array header"),
    "trailing data": (lambda p: p.write_bytes(npy_bytes(np.ones(8)) + b"\0"), "trailing data"),
    # A header that asks for 8 EB must be refused before anything is allocated.
    "huge shape": (lambda p: p.write_bytes(npy_bytes(np.ones(2)).replace(b"(2,)", b"(1152921504606846976,)")),
                   "truncated"),
    "bad header": (lambda p: p.write_bytes(npy_bytes(np.ones(2)).replace(b"'descr'", b"'dexcr'")), "correct keys"),
    "version 9": (lambda p: p.write_bytes(b"\x93NUMPY\x09\x00" + npy_bytes(np.ones(2))[8:]),
                  "version (9, 0) is not supported"),
    "directory": (lambda p: p.mkdir(), "is a directory"),
    "missing": (lambda p: None, "no such file"),
}


@pytest.mark.parametrize("read", [read_npy, map_npy])
@pytest.mark.parametrize("write, words", MALFORMED_NPY.values(), ids=MALFORMED_NPY.keys())
def test_every_malformed_npy_is_one_array_file_error(tmp_path, write, words, read):
    path = tmp_path / "x.npy"
    write(path)
    with pytest.raises(ArrayFileError) as error:
        read(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ") and words in message and "\n" not in message
    assert "allow_pickle" not in message and isinstance(error.value, ValueError)


def test_npz_members_are_checked_and_named(tmp_path):
    path = tmp_path / "a.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("good.npy", npy_bytes(np.ones(2)))
        archive.writestr("bad.npy", npy_bytes(np.array([None], dtype=object)))
    with pytest.raises(ArrayFileError, match=r"a\.npz: member 'bad\.npy': holds Python objects"):
        read_npz(path)


def test_a_corrupted_compressed_member_is_damaged(tmp_path):
    path = tmp_path / "a.npz"
    np.savez_compressed(path, x=np.arange(1000.0))
    raw = bytearray(path.read_bytes())
    raw[60:80] = bytes(20)  # inside the deflated data: a CRC or zlib error
    path.write_bytes(bytes(raw))
    with pytest.raises(ArrayFileError, match=r"a\.npz: "):
        read_npz(path)


def test_paths_must_be_paths():
    with pytest.raises(TypeError, match=r"path must be a str or os\.PathLike, got None"):
        read_npy(None)
