"""Network: gradients against finite differences and torch, params naming, training step, save/load."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from colnn.nn.layers import Affine, AvgPool2d, Convolution, MaxPool2d, Pooling, Relu
from colnn.nn.network import ModelFileError, Network, simple_conv_net
from colnn.nn.optim import SGD


def small_float64_net(seed: int = 0) -> Network:
    """conv(2->3, 3x3, pad 1) -> relu -> pool 2 -> affine(27->5) -> relu -> affine(5->4), float64, nonzero biases."""
    net = simple_conv_net((2, 6, 6), filter_num=3, filter_size=3, pad=1, hidden_size=5, output_size=4,
                          weight_init_std=0.5, seed=seed, dtype=np.float64)
    rng = np.random.default_rng(seed + 100)
    for name, param in net.params.items():
        if name.endswith(".b"):
            param[...] = rng.normal(scale=0.1, size=param.shape)
    return net


@pytest.fixture
def batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.normal(size=(3, 2, 6, 6)), np.array([0, 3, 1])


def test_gradient_matches_central_differences(batch):
    x, t = batch
    net = small_float64_net()
    analytic = net.gradient(x, t)
    assert sorted(analytic) == sorted(net.params)
    step = 1e-6
    for name, param in net.params.items():
        numeric = np.empty_like(param)
        for index in np.ndindex(param.shape):
            saved = param[index]
            param[index] = saved + step
            loss_plus = net.loss(x, t)
            param[index] = saved - step
            loss_minus = net.loss(x, t)
            param[index] = saved
            numeric[index] = (loss_plus - loss_minus) / (2 * step)
        np.testing.assert_allclose(analytic[name], numeric, rtol=1e-5, atol=1e-8, err_msg=name)


def test_loss_and_gradient_match_torch_autograd(batch, torch):
    x, t = batch
    net = small_float64_net(seed=3)
    params = {name: torch.tensor(array, requires_grad=True) for name, array in net.params.items()}
    hidden = torch.nn.functional.conv2d(torch.tensor(x), params["0.W"], params["0.b"], padding=1)
    hidden = torch.nn.functional.max_pool2d(torch.relu(hidden), 2).flatten(1)
    hidden = torch.relu(hidden @ params["3.W"] + params["3.b"])
    scores = hidden @ params["5.W"] + params["5.b"]
    torch_loss = torch.nn.functional.cross_entropy(scores, torch.tensor(t))
    torch_loss.backward()

    np.testing.assert_allclose(net.predict(x), scores.detach().numpy(), rtol=1e-12, atol=1e-12)
    loss, grads = net.loss_and_gradient(x, t)
    assert loss == pytest.approx(torch_loss.item(), rel=1e-12)
    for name, tensor in params.items():
        np.testing.assert_allclose(grads[name], tensor.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


def test_params_are_named_by_layer_index_and_are_the_layers_arrays():
    net = simple_conv_net((1, 8, 8), filter_num=4, filter_size=3, pad=1, hidden_size=10, output_size=7)
    shapes = {name: array.shape for name, array in net.params.items()}
    # 8x8 -> conv pad 1 keeps 8x8 -> pool 2 gives 4x4, so 4 * 4 * 4 = 64 features.
    assert shapes == {"0.W": (4, 1, 3, 3), "0.b": (4,), "3.W": (64, 10), "3.b": (10,),
                      "5.W": (10, 7), "5.b": (7,)}
    assert net.params["0.W"] is net.layers[0].W
    assert net.params["5.b"] is net.layers[5].b
    assert all(array.dtype == np.float32 for array in net.params.values())
    assert [type(layer) for layer in net.layers] == [Convolution, Relu, MaxPool2d, Affine, Relu, Affine]


def test_he_initialisation_std_and_seed():
    net = simple_conv_net((1, 8, 8), filter_num=64, filter_size=3, pad=1, hidden_size=200, seed=5)
    # He: std = sqrt(2 / fan_in); fan_in of the first affine layer is 64 * 4 * 4.
    assert net.params["3.W"].std() == pytest.approx(np.sqrt(2 / 1024), rel=0.02)
    assert net.params["0.W"].std() == pytest.approx(np.sqrt(2 / 9), rel=0.1)
    fixed = simple_conv_net((1, 8, 8), filter_num=8, filter_size=3, weight_init_std=0.01, seed=5)
    assert fixed.params["3.W"].std() == pytest.approx(0.01, rel=0.05)
    same = simple_conv_net((1, 8, 8), filter_num=64, filter_size=3, pad=1, hidden_size=200, seed=5)
    other = simple_conv_net((1, 8, 8), filter_num=64, filter_size=3, pad=1, hidden_size=200, seed=6)
    assert np.array_equal(net.params["3.W"], same.params["3.W"])
    assert not np.array_equal(net.params["3.W"], other.params["3.W"])


def test_one_sgd_step_lowers_the_loss_on_a_fixed_batch(batch):
    x, t = batch
    net = small_float64_net()
    before = net.loss(x, t)
    SGD(lr=0.05).update(net.params, net.gradient(x, t))
    assert net.loss(x, t) < before


def test_predict_casts_to_the_network_dtype_without_touching_the_input():
    net = simple_conv_net((1, 8, 8), filter_num=2, filter_size=3, hidden_size=4)
    x = np.random.default_rng(0).random((5, 1, 8, 8))
    copy = x.copy()
    scores = net.predict(x)
    assert scores.dtype == np.float32 and scores.shape == (5, 10)
    assert np.array_equal(x, copy)
    np.testing.assert_allclose(scores, net.predict(x.astype(np.float32)), rtol=0, atol=0)


def test_accuracy_counts_argmax_hits_over_uneven_batches():
    # One affine layer with the identity: the predicted class is the argmax of the input.
    net = Network([Affine(np.eye(3), np.zeros(3))])
    x = np.array([[1, 0, 0], [0, 2, 0], [0, 0, 3], [5, 1, 1], [0, 0, 1], [1, 9, 0], [2, 0, 1.0]])
    t = np.array([0, 1, 0, 0, 2, 2, 1])  # hits at rows 0, 1, 3, 4
    assert net.accuracy(x, t, batch_size=3) == pytest.approx(4 / 7)
    assert net.accuracy(x, np.eye(3)[t], batch_size=100) == pytest.approx(4 / 7)
    with pytest.raises(ValueError, match="batch_size"):
        net.accuracy(x, t, batch_size=0)
    with pytest.raises(ValueError, match="same non-zero number"):
        net.accuracy(x, t[:3])


def test_save_load_round_trip_gives_identical_predictions(tmp_path):
    net = simple_conv_net((1, 8, 8), filter_num=5, filter_size=3, pad=1, hidden_size=12, seed=1)
    path = tmp_path / "model.weights"  # any name: nothing is appended
    net.save(path)
    assert path.exists() and not (tmp_path / "model.weights.npz").exists()
    loaded = Network.load(path)
    x = np.random.default_rng(2).random((6, 1, 8, 8)).astype(np.float32)
    assert np.array_equal(loaded.predict(x), net.predict(x))
    assert loaded.input_shape == (1, 8, 8)
    assert {k: (v.dtype, v.shape) for k, v in loaded.params.items()} == {
        k: (v.dtype, v.shape) for k, v in net.params.items()}
    with np.load(path, allow_pickle=False) as npz:  # no pickled objects inside
        architecture = json.loads(str(npz["architecture"]))
    assert [layer["type"] for layer in architecture["layers"]] == [
        "Convolution", "Relu", "MaxPool2d", "Affine", "Relu", "Affine"]
    loaded.params["0.W"][...] = 0  # the copies are independent
    assert not np.array_equal(net.params["0.W"], loaded.params["0.W"])


def test_save_load_keeps_every_layer_setting(tmp_path):
    rng = np.random.default_rng(0)
    layers = [
        Convolution(rng.normal(size=(4, 1, 3, 3)), rng.normal(size=4), stride=2, pad=(1, 2), dilation=(1, 2), groups=2),
        AvgPool2d(2, stride=1, padding=1, ceil_mode=True, count_include_pad=False),
        Relu(),
        Pooling(2, 1, stride=(1, 2)),
    ]
    x = rng.normal(size=(2, 2, 9, 9))
    features = Network(layers).predict(x).reshape(2, -1).shape[1]
    net = Network([*layers, Affine(rng.normal(size=(features, 3)), rng.normal(size=3))])
    net.save(tmp_path / "m.npz")
    loaded = Network.load(tmp_path / "m.npz")
    assert np.array_equal(loaded.predict(x), net.predict(x))
    assert loaded.architecture() == net.architecture()
    assert loaded.input_shape is None


def _write_npz(path, **arrays):
    with open(path, "wb") as file:
        np.savez(file, **arrays)


def test_load_errors_name_the_file(tmp_path):
    net = Network([Affine(np.ones((2, 2)), np.zeros(2))])
    good = tmp_path / "good.npz"
    net.save(good)
    architecture = json.loads(str(np.load(good)["architecture"]))
    cases = {
        "missing.npz": None,
        "text.npz": "this is not a zip file",
        "no_arch.npz": {"0.W": np.ones((2, 2)), "0.b": np.zeros(2)},
        "no_weight.npz": {"architecture": np.array(json.dumps(architecture)), "0.W": np.ones((2, 2))},
        "extra.npz": {"architecture": np.array(json.dumps(architecture)), "0.W": np.ones((2, 2)),
                      "0.b": np.zeros(2), "7.W": np.ones(1)},
        "version.npz": {"architecture": np.array(json.dumps({**architecture, "version": 99}))},
        "kind.npz": {"architecture": np.array(json.dumps({**architecture, "layers": [{"type": "Dropout"}]}))},
        "shape.npz": {"architecture": np.array(json.dumps(architecture)), "0.W": np.ones((2, 2)), "0.b": np.zeros(3)},
    }
    for name, content in cases.items():
        path = tmp_path / name
        if isinstance(content, str):
            path.write_text(content)
        elif content is not None:
            _write_npz(path, **content)
        with pytest.raises(ModelFileError) as error:
            Network.load(path)
        message = str(error.value)
        assert str(path) in message and "\n" not in message, name


def test_load_refuses_pickled_objects(tmp_path):
    path = tmp_path / "pickled.npz"
    _write_npz(path, architecture=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(ModelFileError, match="pickled.npz"):
        Network.load(path)
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == ["architecture.npy"]


def test_save_refuses_layers_it_cannot_rebuild(tmp_path):
    class Leaky(Relu):  # a subclass computes something else: saving it as a Relu would be wrong
        pass

    path = tmp_path / "leaky.npz"
    with pytest.raises(TypeError, match="cannot save a layer of type Leaky"):
        Network([Leaky()]).save(path)
    assert not path.exists()


def test_constructor_and_builder_errors():
    with pytest.raises(ValueError, match="at least one layer"):
        Network([])
    with pytest.raises(TypeError, match=r"layers\[1\]"):
        Network([Relu(), "relu"])
    with pytest.raises(ValueError, match="too small"):
        simple_conv_net((1, 4, 4), filter_size=5)
    with pytest.raises(ValueError, match="filter_num must be a positive int, got 0"):
        simple_conv_net((1, 8, 8), filter_num=0)
    with pytest.raises(ValueError, match="pad must be a non-negative int, got -1"):
        simple_conv_net((1, 8, 8), pad=-1)
    with pytest.raises(ValueError, match="dtype must be a floating dtype"):
        simple_conv_net((1, 8, 8), filter_size=3, dtype=np.int32)
    with pytest.raises(ValueError, match="weight_init_std must be 'he' or a positive float, got -0.1"):
        simple_conv_net((1, 8, 8), filter_size=3, weight_init_std=-0.1)
    with pytest.raises(ValueError, match=r"input_dim must be \(C, H, W\)"):
        simple_conv_net((8, 8))


def test_a_network_given_one_unbatched_sample_says_what_shape_it_expects():
    net = simple_conv_net((1, 8, 8), filter_num=2, filter_size=3, pad=1, hidden_size=4, output_size=3)
    with pytest.raises(ValueError, match=r"x must be a batch of shape \(N, 1, 8, 8\).*got shape \(1, 8, 8\).*x\[np.newaxis\]"):
        net.predict(np.zeros((1, 8, 8)))
    assert net.predict(np.zeros((1, 1, 8, 8))).shape == (1, 3)
