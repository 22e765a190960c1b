"""colnn.book's networks and Trainer, used as chapters 6-8 use them.

Oracles: the book's shape formulas and order of random draws, the book's
DeepConvNet forward written out in NumPy here, central differences, the book's
Trainer loop (a stub network records what it is given), and pickles written
with the standard library as the book's ``save_params`` writes them.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from colnn.book.deep_convnet import DeepConvNet
from colnn.book.multi_layer_net import MultiLayerNet
from colnn.book.multi_layer_net_extend import MultiLayerNetExtend
from colnn.book.optimizer import SGD, AdaGrad, Adam, Momentum
from colnn.book.simple_convnet import SimpleConvNet
from colnn.book.trainer import Trainer
from colnn.nn import ModelFileError, Network

SMALL_CONV = {"filter_num": 3, "filter_size": 3, "pad": 0, "stride": 1}


def test_simple_conv_net_draws_the_books_weights_in_the_books_order():
    np.random.seed(3)
    net = SimpleConvNet(input_dim=(1, 10, 10), conv_param=SMALL_CONV, hidden_size=5, output_size=4,
                        weight_init_std=0.01)
    np.random.seed(3)
    expected = {"W1": 0.01 * np.random.randn(3, 1, 3, 3), "W2": 0.01 * np.random.randn(3 * 4 * 4, 5),
                "W3": 0.01 * np.random.randn(5, 4)}
    for key, value in expected.items():
        np.testing.assert_array_equal(net.params[key], value)
    assert list(net.params) == ["W1", "b1", "W2", "b2", "W3", "b3"] and not net.params["b2"].any()
    assert list(net.layers) == ["Conv1", "Relu1", "Pool1", "Affine1", "Relu2", "Affine2"]
    seeded = SimpleConvNet(input_dim=(1, 10, 10), conv_param=SMALL_CONV, hidden_size=5, output_size=4, seed=3)
    np.testing.assert_array_equal(seeded.params["W3"], expected["W3"])


def test_simple_conv_net_draws_its_weights_once_from_the_books_random_state(monkeypatch):
    # Only the book's draws: colnn's own initialisation (a default_rng) would draw every weight a second time.
    def refused(*args, **kwargs):
        raise AssertionError("a second set of weights was drawn")

    monkeypatch.setattr(np.random, "default_rng", refused)
    np.random.seed(4)
    net = SimpleConvNet(input_dim=(1, 10, 10), conv_param=SMALL_CONV, hidden_size=5, output_size=4,
                        weight_init_std=0.2, dtype=np.float32)
    np.random.seed(4)
    for key, shape in [("W1", (3, 1, 3, 3)), ("W2", (48, 5)), ("W3", (5, 4))]:
        np.testing.assert_array_equal(net.params[key], (0.2 * np.random.randn(*shape)).astype(np.float32))
    assert net.params["W1"].dtype == np.float32


@pytest.mark.parametrize("std", [0.0, -0.5])
def test_simple_conv_net_keeps_the_books_product_for_a_std_colnn_refuses(std):
    np.random.seed(2)
    net = SimpleConvNet(input_dim=(1, 10, 10), conv_param=SMALL_CONV, hidden_size=5, output_size=4,
                        weight_init_std=std)
    np.random.seed(2)
    np.testing.assert_array_equal(net.params["W1"], std * np.random.randn(3, 1, 3, 3))


def test_simple_conv_net_gradient_check_as_in_chapter_7():
    """gradient_check.py: one 10x10 image, the label as a (1, 1) column."""
    np.random.seed(0)
    net = SimpleConvNet(input_dim=(1, 6, 6), conv_param=SMALL_CONV, hidden_size=4, output_size=3,
                        weight_init_std=0.3)
    x, t = np.random.rand(1, 1, 6, 6), np.array([1]).reshape((1, 1))
    numerical, backprop = net.numerical_gradient(x, t), net.gradient(x, t)
    assert list(numerical) == list(backprop) == list(net.params)
    for key in backprop:
        np.testing.assert_allclose(backprop[key], numerical[key], rtol=1e-5, atol=1e-9, err_msg=key)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_simple_conv_net_numerical_gradient_is_every_perturbed_loss_through_the_whole_network(dtype):
    """The numerical gradient restarts each perturbed loss at the perturbed layer: the book's definition (the
    whole forward, here net.loss for every perturbation, written out as central differences) bit for bit."""
    rng = np.random.default_rng(5)
    net = SimpleConvNet(input_dim=(2, 7, 9), conv_param={"filter_num": 4, "filter_size": 3, "pad": 1, "stride": 2},
                        hidden_size=6, output_size=5, weight_init_std=0.3, seed=2, dtype=dtype)
    x, t = rng.random((3, 2, 7, 9)), np.array([4, 0, 2])
    numerical = net.numerical_gradient(x, t)
    for key, param in net.params.items():
        expected = np.zeros_like(param)
        for index in np.ndindex(param.shape):
            kept = param[index]
            param[index] = kept + 1e-4
            above = net.loss(x, t)
            param[index] = kept - 1e-4
            below = net.loss(x, t)
            param[index] = kept
            expected[index] = (above - below) / 2e-4
        np.testing.assert_array_equal(numerical[key], expected, err_msg=key)


def test_simple_conv_net_trains_with_trainer_and_saves_the_books_pickle(tmp_path, capsys):
    """train_convnet.py in small: the optimizer's in-place steps reach the layers; params.pkl is the book's."""
    np.random.seed(1)
    rng = np.random.default_rng(1)
    t = rng.integers(0, 2, 60).astype(np.uint8)
    x = 0.1 * rng.random((60, 1, 8, 8))
    x[t == 1, :, :3] += 1.0  # class 1: a bright band at the top; class 0: at the bottom
    x[t == 0, :, 5:] += 1.0
    net = SimpleConvNet(input_dim=(1, 8, 8), conv_param=SMALL_CONV, hidden_size=10, output_size=2,
                        weight_init_std=0.1)
    trainer = Trainer(net, x, t, x[:20], t[:20], epochs=10, mini_batch_size=20, optimizer="Adam",
                      optimizer_param={"lr": 0.01}, evaluate_sample_num_per_epoch=20)
    trainer.train()
    assert len(trainer.train_loss_list) == 30 and len(trainer.test_acc_list) == 10
    assert np.mean(trainer.train_loss_list[-5:]) < 0.8 * np.mean(trainer.train_loss_list[:5])
    output = capsys.readouterr().out.splitlines()
    assert output[0].startswith("train loss:") and output[1].startswith("=== epoch:1, train acc:")
    assert output[-2:] == ["=============== Final Test Accuracy ===============",
                           f"test acc:{net.accuracy(x[:20], t[:20])}"]
    net.save_params(tmp_path / "params.pkl")
    with open(tmp_path / "params.pkl", "rb") as file:
        by_the_book = pickle.load(file)  # what the book's load_params does
    assert by_the_book.keys() == net.params.keys()
    fresh = SimpleConvNet(input_dim=(1, 8, 8), conv_param=SMALL_CONV, hidden_size=10, output_size=2)
    fresh.load_params(tmp_path / "params.pkl")
    np.testing.assert_array_equal(fresh.predict(x), net.predict(x))


def book_deep_forward(params, x):
    """The book's DeepConvNet evaluation written out: conv/relu, pools after every second conv, affine layers."""
    def conv(h, w, b, pad):
        h = np.pad(h, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        windows = np.lib.stride_tricks.sliding_window_view(h, (3, 3), axis=(2, 3))
        return np.einsum("nchwij,fcij->nfhw", windows, w) + b[None, :, None, None]

    def pool(h):
        n, c, height, width = h.shape
        return h[:, :, :height // 2 * 2, :width // 2 * 2].reshape(n, c, height // 2, 2, width // 2, 2).max(axis=(3, 5))

    h = x
    for index, pad in enumerate((1, 1, 1, 2, 1, 1), start=1):
        h = np.maximum(conv(h, params[f"W{index}"], params[f"b{index}"], pad), 0)
        if index % 2 == 0:
            h = pool(h)
    h = np.maximum(h.reshape(len(h), -1) @ params["W7"] + params["b7"], 0) * 0.5  # dropout scales in evaluation
    return (h @ params["W8"] + params["b8"]) * 0.5


def test_deep_conv_net_reads_a_pretrained_pickle_and_predicts_as_the_book(tmp_path):
    rng = np.random.default_rng(2)
    shapes = DeepConvNet(seed=0).params
    params = {key: rng.normal(size=value.shape) * (0.3 if key.startswith("W") else 0.1)
              for key, value in shapes.items()}
    with open(tmp_path / "deep_convnet_params.pkl", "wb") as file:
        pickle.dump(params, file)  # the book's save_params
    net = DeepConvNet()
    net.load_params(tmp_path / "deep_convnet_params.pkl")
    x = rng.random((2, 1, 28, 28))
    np.testing.assert_allclose(net.predict(x, train_flg=False), book_deep_forward(params, x), rtol=1e-10)
    assert net.accuracy(x, np.zeros(2, int)) in (0.0, 0.5, 1.0)
    assert [type(layer).__name__ for layer in net.layers].count("Dropout") == 2 and len(net.layers) == 20
    # half_float_network.py rounds the weights to float16 in place: the layers see it.
    for param in net.params.values():
        param[...] = param.astype(np.float16)
    rounded = {key: value.astype(np.float16).astype(np.float64) for key, value in params.items()}
    np.testing.assert_allclose(net.predict(x.astype(np.float16)), book_deep_forward(rounded, x.astype(np.float16)),
                               rtol=1e-10)


def test_deep_conv_net_uses_he_scales_and_drops_out_in_its_loss():
    np.random.seed(4)
    net = DeepConvNet()
    np.random.seed(4)
    fans = [9, 144, 144, 288, 288, 576]
    expected_w1 = np.sqrt(2.0 / fans[0]) * np.random.randn(16, 1, 3, 3)
    np.testing.assert_array_equal(net.params["W1"], expected_w1)
    assert net.params["W7"].shape == (64 * 4 * 4, 50)
    x, t = np.random.default_rng(5).random((4, 1, 28, 28)), np.array([0, 1, 2, 3])
    np.testing.assert_array_equal(net.predict(x), net.predict(x))  # evaluation: deterministic
    np.random.seed(6)
    first = net.loss(x, t)
    np.random.seed(6)
    assert net.loss(x, t) == first  # dropout masks come from the global state
    assert net.loss(x, t) != first


def test_save_and_load_params_round_trip_through_npz_and_refuse_other_shapes(tmp_path):
    net = SimpleConvNet(input_dim=(1, 8, 8), conv_param=SMALL_CONV, hidden_size=6, output_size=3, seed=0)
    net.save_params(tmp_path / "p.npz")
    assert isinstance(Network.load(tmp_path / "p.npz"), Network)  # `colnn evaluate` reads it
    other = SimpleConvNet(input_dim=(1, 8, 8), conv_param=SMALL_CONV, hidden_size=6, output_size=3, seed=1)
    other.load_params(tmp_path / "p.npz")
    assert all(np.array_equal(other.params[key], net.params[key]) for key in net.params)
    np.savez(tmp_path / "plain.npz", **{key: value + 1 for key, value in net.params.items()})
    other.load_params(tmp_path / "plain.npz")
    np.testing.assert_array_equal(other.params["W3"], net.params["W3"] + 1)
    wider = SimpleConvNet(input_dim=(1, 8, 8), conv_param=SMALL_CONV, hidden_size=7, output_size=3, seed=0)
    before = {key: value.copy() for key, value in wider.params.items()}
    with open(tmp_path / "p.pkl", "wb") as file:
        pickle.dump(dict(net.params), file)
    with pytest.raises(ValueError, match=r"p\.pkl: parameter 'W2' is array of dtype float64, shape \(27, 6\); "
                                         r"this SimpleConvNet needs shape \(27, 7\)"):
        wider.load_params(tmp_path / "p.pkl")
    assert all(np.array_equal(wider.params[key], before[key]) for key in before)  # nothing copied
    with pytest.raises(ValueError, match=r"lacks the parameters \['b3'\]"):
        with open(tmp_path / "short.pkl", "wb") as file:
            pickle.dump({key: value for key, value in net.params.items() if key != "b3"}, file)
        net.load_params(tmp_path / "short.pkl")
    with pytest.raises(ModelFileError, match=r"not a readable \.npz"):
        (tmp_path / "bad.npz").write_bytes(b"not a zip")
        net.load_params(tmp_path / "bad.npz")


def test_multi_layer_net_weight_decay_in_loss_and_gradient():
    np.random.seed(7)
    net = MultiLayerNet(input_size=6, hidden_size_list=[5, 4], output_size=3, weight_decay_lambda=0.1)
    x, t = np.random.rand(4, 6), np.array([0, 2, 1, 1])
    plain = MultiLayerNet(input_size=6, hidden_size_list=[5, 4], output_size=3)
    for key in net.params:
        plain.params[key][...] = net.params[key]
    penalty = 0.5 * 0.1 * sum(np.sum(net.params[f"W{i}"] ** 2) for i in (1, 2, 3))
    assert net.loss(x, t) == pytest.approx(plain.loss(x, t) + penalty, rel=1e-14)
    numerical, backprop = net.numerical_gradient(x, t), net.gradient(x, t)
    for key in backprop:
        np.testing.assert_allclose(backprop[key], numerical[key], rtol=1e-5, atol=1e-9, err_msg=key)
    assert list(net.layers) == ["Affine1", "Activation_function1", "Affine2", "Activation_function2", "Affine3"]


def test_multi_layer_net_is_the_books_forward_for_arrays_lists_and_float32():
    """The layer-by-layer loop (NumPy batches) and colnn's Network (anything else) give the book's scores."""
    np.random.seed(12)
    net = MultiLayerNetExtend(input_size=5, hidden_size_list=[4], output_size=3, use_batchnorm=True)
    x = np.random.rand(3, 5).astype(np.float32)
    t = np.array([2, 0, 1])
    # The book's forward written out: affine, batch norm (batch statistics, 10e-7), ReLU, affine.
    h = x.astype(np.float64) @ net.params["W1"] + net.params["b1"]
    h = (h - h.mean(axis=0)) / np.sqrt(h.var(axis=0) + 10e-7) * net.params["gamma1"] + net.params["beta1"]
    scores = np.maximum(h, 0) @ net.params["W2"] + net.params["b2"]
    np.testing.assert_allclose(net.predict(x, train_flg=True), scores, rtol=1e-12)
    y = np.exp(scores - scores.max(axis=1, keepdims=True))
    y /= y.sum(axis=1, keepdims=True)
    expected = -np.mean(np.log(y[np.arange(3), t] + 1e-7))
    assert net.loss(x, t, train_flg=True) == pytest.approx(expected, rel=1e-12)
    assert net.loss(x.tolist(), t.tolist(), train_flg=True) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="features per sample"):
        net.loss(np.ones((3, 4)), t)


def test_multi_layer_net_scales_of_he_and_xavier():
    np.random.seed(8)
    he = MultiLayerNet(input_size=50, hidden_size_list=[20], output_size=3, weight_init_std="relu")
    xavier = MultiLayerNet(input_size=50, hidden_size_list=[20], output_size=3, weight_init_std="Xavier",
                           activation="sigmoid")
    np.random.seed(8)
    np.testing.assert_array_equal(he.params["W1"], np.sqrt(2.0 / 50) * np.random.randn(50, 20))
    np.testing.assert_array_equal(he.params["W2"], np.sqrt(2.0 / 20) * np.random.randn(20, 3))
    np.testing.assert_array_equal(xavier.params["W1"], np.sqrt(1.0 / 50) * np.random.randn(50, 20))
    with pytest.raises(ValueError, match="activation must be 'relu' or 'sigmoid', got 'tanh'"):
        MultiLayerNet(4, [3], 2, activation="tanh")


def test_batch_norm_network_gradient_check_as_in_chapter_6():
    """batch_norm_gradient_check.py's pattern, on a batch where batch normalisation matters."""
    np.random.seed(9)
    net = MultiLayerNetExtend(input_size=5, hidden_size_list=[4, 3], output_size=3, use_batchnorm=True)
    x, t = np.random.rand(6, 5), np.eye(3)[[0, 1, 2, 0, 1, 2]]
    numerical, backprop = net.numerical_gradient(x, t), net.gradient(x, t)
    assert list(backprop) == ["W1", "b1", "gamma1", "beta1", "W2", "b2", "gamma2", "beta2", "W3", "b3"]
    for key in backprop:
        np.testing.assert_allclose(backprop[key], numerical[key], rtol=1e-4, atol=1e-8, err_msg=key)
    assert list(net.layers)[:4] == ["Affine1", "BatchNorm1", "Activation_function1", "Affine2"]


def test_chapter_6_optimizer_comparison_for_a_few_iterations():
    """optimizer_compare_mnist.py's loop: four networks, one batch each iteration, every loss falls."""
    rng = np.random.default_rng(10)
    x = rng.random((64, 20))
    t = (x[:, :10].sum(axis=1) > x[:, 10:].sum(axis=1)).astype(np.uint8)
    np.random.seed(10)
    optimizers = {"SGD": SGD(lr=0.1), "Momentum": Momentum(), "AdaGrad": AdaGrad(lr=0.1), "Adam": Adam()}
    networks = {key: MultiLayerNet(input_size=20, hidden_size_list=[16, 16], output_size=2) for key in optimizers}
    losses = {key: [] for key in optimizers}
    for _ in range(30):
        mask = np.random.choice(64, 16)
        for key in optimizers:
            grads = networks[key].gradient(x[mask], t[mask])
            optimizers[key].update(networks[key].params, grads)
            losses[key].append(networks[key].loss(x[mask], t[mask]))
    for key, curve in losses.items():
        assert np.mean(curve[-5:]) < np.mean(curve[:5]), key


def test_dropout_network_trains_in_train_mode_and_evaluates_without_dropout():
    np.random.seed(11)
    net = MultiLayerNetExtend(input_size=8, hidden_size_list=[6], output_size=2, use_dropout=True,
                              dropout_ration=0.5)
    x, t = np.random.rand(5, 8), np.array([0, 1, 0, 1, 1])
    np.testing.assert_array_equal(net.predict(x), net.predict(x))
    np.random.seed(12)
    trained = net.loss(x, t, train_flg=True)
    np.random.seed(12)
    mask = np.random.rand(5, 6) > 0.5
    hidden = np.maximum(x @ net.params["W1"] + net.params["b1"], 0) * mask
    scores = hidden @ net.params["W2"] + net.params["b2"]
    probs = np.exp(scores - scores.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    assert trained == pytest.approx(-np.mean(np.log(probs[np.arange(5), t] + 1e-7)), rel=1e-12)


class RecordingNetwork:
    """Just the protocol Trainer uses; records the batches it is given."""

    def __init__(self):
        self.params = {"w": np.zeros(1)}
        self.batches, self.evaluated = [], []

    def gradient(self, x, t):
        self.batches.append(x.copy())
        return {"w": np.ones(1)}

    def loss(self, x, t):
        return float(self.params["w"][0])

    def accuracy(self, x, t):
        self.evaluated.append(len(x))
        return 0.5


def test_trainer_follows_the_books_loop(capsys):
    x, t = np.arange(10.0)[:, None], np.zeros(10, int)
    net = RecordingNetwork()
    np.random.seed(13)
    expected = [np.random.choice(10, 4) for _ in range(7)]
    np.random.seed(13)
    trainer = Trainer(net, x, t, x[:6], t[:6], epochs=3, mini_batch_size=4, optimizer="sgd",
                      optimizer_param={"lr": 0.5}, evaluate_sample_num_per_epoch=3)
    trainer.train()
    assert trainer.max_iter == 7  # int(3 * 10 / 4)
    for batch, indices in zip(net.batches, expected):  # a random batch each iteration, with replacement
        np.testing.assert_array_equal(batch[:, 0], indices)
    # The loss is taken after the step (each SGD step moves w by -0.5).
    assert trainer.train_loss_list == [-0.5 * (i + 1) for i in range(7)]
    # Accuracies at iterations 0, 2.5*k: 0, 5 -- on the first 3 samples; then all 6 test samples at the end.
    assert len(trainer.train_acc_list) == len(trainer.test_acc_list) == 2 and net.evaluated == [3, 3, 3, 3, 6]
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["train loss:-0.5", "=== epoch:1, train acc:0.5, test acc:0.5 ==="]
    with pytest.raises(ValueError, match="optimizer must be one of"):
        Trainer(net, x, t, x, t, optimizer="LBFGS")
