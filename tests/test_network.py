"""Network: gradients against finite differences and torch, params naming, training step, save/load."""

from __future__ import annotations

import copy
import json
import zipfile

import numpy as np
import pytest

import colnn
from colnn.nn import Affine, AvgPool2d, Convolution, MaxPool2d, Pooling, Relu
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


@pytest.mark.parametrize("source", [np.random.RandomState, np.random.default_rng])
def test_a_random_source_given_as_seed_draws_the_weights_in_layer_order(source):
    # Oracle: the same source's standard_normal, drawn by hand in the layers' order, times each layer's std.
    net = simple_conv_net((1, 8, 8), filter_num=4, filter_size=3, hidden_size=6, weight_init_std=0.05,
                          seed=source(11), dtype=np.float64)
    rng = source(11)
    for key, shape in [("0.W", (4, 1, 3, 3)), ("3.W", (36, 6)), ("5.W", (6, 10))]:
        np.testing.assert_array_equal(net.params[key], 0.05 * rng.standard_normal(shape))
    assert not net.params["3.b"].any()


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
    with pytest.raises(ModelFileError, match=r"pickled\.npz"):
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
    with pytest.raises(ValueError, match=r"weight_init_std must be 'he' or a positive float, got -0\.1"):
        simple_conv_net((1, 8, 8), filter_size=3, weight_init_std=-0.1)
    with pytest.raises(ValueError, match=r"input_dim must be \(C, H, W\)"):
        simple_conv_net((8, 8))


# --- malformed model files: the class, not the examples --------------------------------


def _tiny_model_arrays(tmp_path) -> tuple[dict, dict]:
    """The arrays of a saved conv net for (1, 8, 8) images, and its architecture as a dict."""
    net = simple_conv_net((1, 8, 8), filter_num=2, filter_size=3, pad=1, hidden_size=5)
    net.save(tmp_path / "good.npz")
    with np.load(tmp_path / "good.npz", allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    return arrays, json.loads(str(arrays["architecture"]))


def _with_architecture(arrays: dict, architecture: dict | str) -> dict:
    text = architecture if isinstance(architecture, str) else json.dumps(architecture)
    return {**arrays, "architecture": np.array(text)}


def _edited(architecture: dict, edit) -> dict:
    copy = json.loads(json.dumps(architecture))
    edit(copy)
    return copy


def _raw(path, content: bytes) -> None:
    path.write_bytes(content)


def _npy(path, array) -> None:
    # Through an open file: np.save given a path would add the suffix .npy to it.
    with open(path, "wb") as file:
        np.save(file, array)


MALFORMED = {
    # name: (how to write the file from (path, arrays, architecture), words the message must hold)
    ".npy array": (lambda p, a, arch: _npy(p, np.ones(3)), "a single .npy array"),
    "text": (lambda p, a, arch: p.write_text('{"layers": []}'), "it is text"),
    "empty file": (lambda p, a, arch: _raw(p, b""), "empty file"),
    "binary junk": (lambda p, a, arch: _raw(p, bytes(range(256))), "not a NumPy array file"),
    "truncated zip": (lambda p, a, arch: (_write_npz(p, **a), _raw(p, p.read_bytes()[:-40])), "damaged"),
    "half a zip": (lambda p, a, arch: (_write_npz(p, **a), _raw(p, p.read_bytes()[:len(p.read_bytes()) // 2])),
                   "damaged"),
    "empty zip": (lambda p, a, arch: zipfile.ZipFile(p, "w").close(), "no 'architecture' entry"),
    "zip member not .npy": (lambda p, a, arch: zipfile.ZipFile(p, "w").writestr("readme.txt", "hi"),
                            "'readme.txt' is not an .npy array"),
    "pickled member": (lambda p, a, arch: _write_npz(p, **{**a, "0.b": np.array([{}, {}], dtype=object)}),
                       "Python objects"),
    "truncated member": (lambda p, a, arch: zipfile.ZipFile(p, "w").writestr(
        "architecture.npy", _npy_bytes(np.ones(10))[:-8]), "truncated"),
    "architecture not a string": (lambda p, a, arch: _write_npz(p, **{**a, "architecture": np.array(3.0)}),
                                  "must be a JSON string"),
    "architecture not JSON": (lambda p, a, arch: _write_npz(p, **_with_architecture(a, "{layers")), "not valid JSON"),
    "JSON list": (lambda p, a, arch: _write_npz(p, **_with_architecture(a, "[1, 2]")), "is not a colnn.nn.network"),
    "Infinity": (lambda p, a, arch: _write_npz(p, **_with_architecture(
        a, json.dumps(arch).replace('"groups": 1', '"groups": Infinity'))), "Infinity"),
    "NaN": (lambda p, a, arch: _write_npz(p, **_with_architecture(
        a, json.dumps(arch).replace('"groups": 1', '"groups": NaN'))), "NaN"),
    "-Infinity in input_shape": (lambda p, a, arch: _write_npz(p, **_with_architecture(
        a, json.dumps(arch).replace('"input_shape": [1', '"input_shape": [-Infinity'))), "-Infinity"),
    "deep nesting": (lambda p, a, arch: _write_npz(p, **_with_architecture(a, "[" * 100_000 + "]" * 100_000)),
                     "nested too deeply"),
    "deep nesting in a layer": (lambda p, a, arch: _write_npz(p, **_with_architecture(
        a, json.dumps(arch).replace('"groups": 1', '"groups": ' + "[" * 50_000 + "]" * 50_000))), "nested too deeply"),
    "huge integer": (lambda p, a, arch: _write_npz(p, **_with_architecture(
        a, json.dumps(arch).replace('"groups": 1', '"groups": 1' + "0" * 5000))), "integer of 5001 digits"),
    "integer beyond int64": (lambda p, a, arch: _write_npz(p, **_with_architecture(
        a, _edited(arch, lambda c: c["layers"][0].update(stride=[2**64, 1])))), "too large"),
    "huge float": (lambda p, a, arch: _write_npz(p, **_with_architecture(
        a, json.dumps(arch).replace('"groups": 1', '"groups": 1e400'))), "too large"),
    "huge kernel": (lambda p, a, arch: _write_npz(p, **_with_architecture(
        a, _edited(arch, lambda c: c["layers"][2].update(kernel_size=[2**40, 2**40])))), "kernel_size"),
    "layers not a list": (lambda p, a, arch: _write_npz(p, **_with_architecture(a, {**arch, "layers": "conv"})),
                          "'layers' must be a non-empty list"),
    "no layers": (lambda p, a, arch: _write_npz(p, **_with_architecture(a, {**arch, "layers": []})),
                  "'layers' must be a non-empty list"),
    "layer not an object": (lambda p, a, arch: _write_npz(p, **_with_architecture(a, {**arch, "layers": [1]})),
                            "layer 0 has unknown type"),
    "layer type not a string": (lambda p, a, arch: _write_npz(p, **_with_architecture(
        a, _edited(arch, lambda c: c["layers"][1].update(type=["Relu"])))), "layer 1 has unknown type"),
    "stride a string": (lambda p, a, arch: _write_npz(p, **_with_architecture(
        a, _edited(arch, lambda c: c["layers"][0].update(stride="x")))), "stride"),
    "missing setting": (lambda p, a, arch: _write_npz(p, **_with_architecture(
        a, _edited(arch, lambda c: c["layers"][2].pop("ceil_mode")))), "ceil_mode"),
    "input_shape wrong type": (lambda p, a, arch: _write_npz(p, **_with_architecture(a, {**arch, "input_shape": "x"})),
                               "input_shape"),
    "input_shape floats": (lambda p, a, arch: _write_npz(p, **_with_architecture(
        a, {**arch, "input_shape": [1.5, 8, 8]})), "input_shape"),
    "missing array": (lambda p, a, arch: _write_npz(p, **{k: v for k, v in a.items() if k != "3.W"}),
                      "'3.W' of the Affine layer is missing"),
    "extra array": (lambda p, a, arch: _write_npz(p, **a, extra=np.ones(2)), "not used by the architecture"),
    "weight of the wrong rank": (lambda p, a, arch: _write_npz(p, **{**a, "0.W": np.ones((2, 1, 3), np.float32)}),
                                 "4-D"),
    "weights that do not fit": (lambda p, a, arch: _write_npz(p, **{**a, "3.W": np.ones((7, 5), np.float32)}),
                                "do not fit together"),
    "string weights": (lambda p, a, arch: _write_npz(p, **{**a, "0.b": np.array(["a", "b"])}), "must be floating"),
    "integer weights": (lambda p, a, arch: _write_npz(p, **{**a, "0.b": np.array([1, 2])}), "must be floating"),
    "NaN weights": (lambda p, a, arch: _write_npz(p, **{**a, "5.W": np.full((5, 10), np.nan, np.float32)}),
                    "NaN or inf"),
    "a directory": (lambda p, a, arch: p.mkdir(), "is a directory"),
    "no file": (lambda p, a, arch: None, "no such file"),
}


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize("write, words", MALFORMED.values(), ids=MALFORMED.keys())
def test_every_malformed_model_file_is_one_model_file_error(tmp_path, write, words):
    arrays, architecture = _tiny_model_arrays(tmp_path)
    path = tmp_path / "model.npz"
    write(path, arrays, architecture)
    with pytest.raises(ModelFileError) as error:
        Network.load(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ") and words in message and "\n" not in message
    assert "allow_pickle" not in message
    assert error.value.__cause__ is None and error.value.__suppress_context__


def test_load_needs_a_path():
    with pytest.raises(TypeError, match=r"path must be a str or os\.PathLike, got 3"):
        Network.load(3)


def test_a_failed_save_leaves_the_earlier_file_whole(tmp_path, monkeypatch):
    net = simple_conv_net((1, 8, 8), filter_num=2, filter_size=3, pad=1, hidden_size=5)
    path = tmp_path / "model.npz"
    net.save(path)
    before = path.read_bytes()

    def full_disk(file, **arrays):
        file.write(b"PK\x03\x04 half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(OSError, match="No space left"):
        net.save(path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


def test_the_books_layers_round_trip_through_a_model_file(tmp_path):
    from colnn.nn import BatchNormalization, Dropout, Sigmoid

    rng = np.random.default_rng(0)
    net = Network([Affine(rng.normal(size=(12, 6)), np.zeros(6)), Sigmoid(),
                   BatchNormalization(np.full(6, 2.0), np.ones(6), momentum=0.8, eps=1e-5),
                   Dropout(0.3, seed=1), Affine(rng.normal(size=(6, 4)), np.zeros(4))])
    x, t = rng.normal(size=(5, 12)), rng.integers(0, 4, 5)
    net.loss_and_gradient(x, t)  # training mode: dropout draws, the running estimates move
    net.save(tmp_path / "book.npz")
    back = Network.load(tmp_path / "book.npz")
    assert [type(layer).__name__ for layer in back.layers] == ["Affine", "Sigmoid", "BatchNormalization",
                                                               "Dropout", "Affine"]
    assert back.layers[3].dropout_ratio == 0.3 and (back.layers[2].momentum, back.layers[2].eps) == (0.8, 1e-5)
    assert np.array_equal(back.layers[2].running_var, net.layers[2].running_var)
    assert np.any(net.layers[2].running_mean != 0)
    # predict evaluates: dropout scales by 0.7 instead of drawing, so both nets agree exactly, every time.
    np.testing.assert_array_equal(back.predict(x), net.predict(x))
    np.testing.assert_array_equal(net.predict(x), net.predict(x))


def test_a_network_given_one_unbatched_sample_says_what_shape_it_expects():
    net = simple_conv_net((1, 8, 8), filter_num=2, filter_size=3, pad=1, hidden_size=4, output_size=3)
    message = r"x must be a batch of shape \(N, 1, 8, 8\).*got shape \(1, 8, 8\).*x\[np.newaxis\]"
    with pytest.raises(ValueError, match=message):
        net.predict(np.zeros((1, 8, 8)))
    assert net.predict(np.zeros((1, 1, 8, 8))).shape == (1, 3)


# --- another library's arrays at the boundary ---------------------------------------------

LIBRARIES = {
    "torch": lambda torch, a: torch.asarray(a),
    "torch_requires_grad": lambda torch, a: (torch.tensor(a, requires_grad=True) if a.dtype.kind == "f"
                                             else torch.asarray(a)),
    "jax": lambda jnp, a: jnp.asarray(a),
    "array_api_strict": lambda xs, a: xs.asarray(a),
}
ENTRY_POINTS = {
    "predict": lambda net, x, t: net.predict(x),
    "loss": lambda net, x, t: net.loss(x, t),
    "accuracy": lambda net, x, t: net.accuracy(x, t, batch_size=2),
    "gradient": lambda net, x, t: net.gradient(x, t),
    "loss_and_gradient": lambda net, x, t: net.loss_and_gradient(x, t),
}


def _library(name):
    module = {"torch": "torch", "torch_requires_grad": "torch", "jax": "jax.numpy"}.get(name, name)
    lib = pytest.importorskip(module, reason=f"needs {module.split('.')[0]}")
    return lambda array: LIBRARIES[name](lib, array)


def _values(array):
    """The library's own way to NumPy (not colnn's)."""
    return array.detach().numpy() if hasattr(array, "detach") else np.asarray(array)


def _as_numpy_tree(value):
    if isinstance(value, tuple):
        return tuple(_as_numpy_tree(item) for item in value)
    if isinstance(value, dict):
        return {key: _as_numpy_tree(item) for key, item in value.items()}
    if isinstance(value, float):
        return value
    assert isinstance(value, np.ndarray), f"a Network answers in NumPy, got {type(value)}"
    return value


@pytest.mark.parametrize("one_hot", [False, True], ids=["labels", "one_hot"])
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("library", sorted(LIBRARIES))
def test_every_entry_point_takes_another_librarys_cpu_arrays(batch, library, entry, one_hot):
    """x and t of PyTorch (requiring grad too), JAX or array_api_strict: NumPy answers equal to the NumPy call's."""
    to_library = _library(library)
    x, t = batch
    t = np.eye(4)[t] if one_hot else t
    x_library, t_library = to_library(x), to_library(t)
    # The oracle sees the values the library holds (JAX without x64 holds float32 and int32).
    expected = ENTRY_POINTS[entry](small_float64_net(), _values(x_library), _values(t_library))
    got = ENTRY_POINTS[entry](small_float64_net(), x_library, t_library)
    got, expected = _as_numpy_tree(got), _as_numpy_tree(expected)
    flat_got = got if isinstance(got, tuple) else (got,)
    flat_expected = expected if isinstance(expected, tuple) else (expected,)
    for value, oracle in zip(flat_got, flat_expected):
        if isinstance(oracle, dict):
            assert sorted(value) == sorted(oracle)
            for key in oracle:
                np.testing.assert_allclose(value[key], oracle[key], rtol=1e-12, atol=1e-12)
        else:
            np.testing.assert_allclose(value, oracle, rtol=1e-12, atol=1e-12)


def test_the_book_nets_and_fit_take_another_librarys_arrays(batch):
    from colnn.apps.data import Dataset
    from colnn.apps.train import fit
    from colnn.book import SimpleConvNet

    torch = pytest.importorskip("torch")
    x, t = batch
    book, oracle = (SimpleConvNet((2, 6, 6), hidden_size=5, output_size=4, weight_init_std=0.5, seed=3)
                    for _ in range(2))
    x_torch = torch.tensor(x, requires_grad=True)
    for method in ("loss", "accuracy", "gradient"):
        got, expected = getattr(book, method)(x_torch, torch.asarray(t)), getattr(oracle, method)(x, t)
        if method == "gradient":
            for key in expected:
                np.testing.assert_allclose(got[key], expected[key], rtol=1e-12)
        else:
            np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_allclose(book.predict(x_torch), oracle.predict(x), rtol=1e-12)
    nets = small_float64_net(), small_float64_net()
    data = Dataset(x, t, x, t, "numpy", num_classes=4)
    torch_data = Dataset(x_torch, torch.asarray(t), torch.asarray(x), torch.asarray(t), "torch", num_classes=4)
    history = fit(nets[0], SGD(lr=0.1), torch_data, epochs=2, batch_size=2, seed=1)
    expected_history = fit(nets[1], SGD(lr=0.1), data, epochs=2, batch_size=2, seed=1)
    assert history.loss == expected_history.loss and history.accuracy == expected_history.accuracy


class _FakeCudaArray:
    """Just enough of an Array API array living in GPU memory (DLPack device type 2, kDLCUDA)."""

    shape, ndim, dtype = (3, 2, 6, 6), 4, np.float64

    def __array_namespace__(self, api_version=None):
        return np

    def __dlpack_device__(self):
        return 2, 0

    def __len__(self):
        return self.shape[0]


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_an_array_off_the_cpu_is_refused_naming_it(batch, entry, monkeypatch):
    import array_api_compat

    monkeypatch.setattr(array_api_compat, "device", lambda array: "cuda:0")
    with pytest.raises(TypeError, match=r"^x is a .*_FakeCudaArray on device cuda:0; a Network computes with NumPy"):
        ENTRY_POINTS[entry](small_float64_net(), _FakeCudaArray(), batch[1])


@pytest.mark.parametrize("make", [
    lambda torch: torch.ones((2, 3, 6, 6), dtype=torch.bfloat16),  # DLPack has no bfloat16 for NumPy
    lambda torch: torch.ones((2, 3, 6, 6), dtype=torch.complex64).conj(),  # a conjugate view: BufferError
    lambda torch: torch.ones((2, 3, 6, 6), device="meta"),  # no DLPack device number at all
], ids=["bfloat16", "conj", "meta"])
@pytest.mark.parametrize("entry", ["predict", "loss"])
def test_a_tensor_dlpack_cannot_export_is_a_type_error_naming_it(torch, batch, entry, make):
    x = make(torch)
    with pytest.raises(TypeError, match=r"^x is a torch\.Tensor .*(dtype torch\.\w+|device meta).*"
                                        r"a Network computes with NumPy on the CPU"):
        ENTRY_POINTS[entry](small_float64_net(), x, batch[1])


def test_a_layer_with_parameters_of_another_library_is_refused_at_construction(torch):
    from colnn.nn import BatchNorm2d

    numpy_affine = Affine(np.ones((4, 3)), np.zeros(3))
    with pytest.raises(TypeError, match=r"^layers\[1\] \(Affine\) holds W as a torch\.Tensor; "
                                        r"a Network keeps NumPy parameters"):
        Network([numpy_affine, Affine(torch.ones((3, 2)), torch.zeros(2))])
    with pytest.raises(TypeError, match=r"^layers\[0\] \(BatchNorm2d\) holds weight as a torch\.Tensor"):
        Network([BatchNorm2d(3, like=torch.ones(1))])
    Network([numpy_affine])  # NumPy layers still build


@pytest.mark.parametrize("build", ["simple_conv_net", "deep_conv_net"])
@pytest.mark.parametrize("seed, error", [(-1, ValueError), (1.5, TypeError), ("0", TypeError), (True, TypeError)])
def test_a_bad_seed_is_refused_naming_it(build, seed, error):
    import importlib

    from colnn.nn import network

    deep_conv_net = importlib.import_module("colnn.nn.deep_conv_net")

    factory = getattr(network, build, None) or getattr(deep_conv_net, build)
    with pytest.raises(error, match=r"seed must be (an int or None|>= 0), got"):
        factory(seed=seed)


def test_gradient_skips_only_the_first_layers_input_gradient():
    # Oracle: every layer's full backward by hand; the network leaves out the first layer's dx only.
    from colnn.nn.network import simple_conv_net

    rng = np.random.default_rng(5)
    x = rng.random((6, 1, 12, 12), dtype=np.float32)
    t = rng.integers(0, 10, 6)
    net = simple_conv_net((1, 12, 12), filter_num=4, hidden_size=8, seed=1)
    grads = net.gradient(x, t)
    net.loss(x, t, train_flg=True)
    dout = net.loss_layer.backward(1.0)
    for layer in reversed(net.layers):
        dout = layer.backward(dout)
    assert dout.shape == x.shape
    expected = net._by_name(lambda layer: layer.grads)
    assert grads.keys() == expected.keys()
    for key in grads:
        np.testing.assert_array_equal(grads[key], expected[key])


# --- threads ------------------------------------------------------------------------------------


def test_predict_keeps_no_state_so_another_threads_backward_is_undisturbed():
    import threading

    net = simple_conv_net((1, 10, 10), filter_num=3, filter_size=3, hidden_size=8, output_size=4, seed=1)
    twin = copy.deepcopy(net)
    rng = np.random.default_rng(3)
    x, t, other = rng.standard_normal((4, 1, 10, 10)), np.array([0, 1, 2, 3]), rng.standard_normal((6, 1, 10, 10))
    expected = twin.gradient(x, t)
    # The book's loop by hand: loss keeps each layer's state, a predict from another thread comes in between.
    net.loss(x, t, train_flg=True)
    thread = threading.Thread(target=net.predict, args=(other,))
    thread.start()
    thread.join()
    dout = net.loss_layer.backward(1.0)
    for layer in reversed(net.layers):
        dout = layer.backward(dout)
    for key, grad in net._by_name(lambda layer: layer.grads).items():
        np.testing.assert_array_equal(grad, expected[key])


def test_a_backward_in_another_thread_than_its_forward_names_the_layer_and_the_way_out():
    import threading

    layer = colnn.MaxPool2d(2)
    out = layer.forward(np.ones((1, 1, 4, 4)))
    errors = []
    thread = threading.Thread(target=lambda: errors.append(_raised(lambda: layer.backward(np.ones(out.shape)))))
    thread.start()
    thread.join()
    assert isinstance(errors[0], RuntimeError)
    assert "MaxPool2d.backward" in str(errors[0]) and "copy.deepcopy" in str(errors[0])
    layer.backward(np.ones(out.shape))  # the forward's own thread still can


def _raised(call):
    try:
        call()
    except Exception as error:
        return error
    return None


def test_a_copied_network_has_its_own_lock_and_trains_alone():
    import pickle

    net = simple_conv_net((1, 8, 8), filter_num=2, filter_size=3, hidden_size=4, output_size=3, seed=2)
    for twin in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        assert twin._lock is not net._lock
        x, t = np.ones((2, 1, 8, 8)), np.array([0, 2])
        np.testing.assert_array_equal(twin.gradient(x, t)["0.W"], net.gradient(x, t)["0.W"])
        twin.params["0.W"][...] = 0
        assert net.params["0.W"].any()
