"""colnn.nn.workspace: buffers reused only when nothing else references them; a network's results unchanged."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from colnn.nn import Layer
from colnn.nn import workspace as workspace_module
from colnn.nn.network import simple_conv_net
from colnn.nn.workspace import Workspace


def test_a_free_buffer_is_handed_out_again_and_a_held_one_never():
    space = Workspace()
    first = space.empty("a", (3, 4), np.float32)
    assert first.shape == (3, 4) and first.dtype == np.float32 and first.flags.c_contiguous
    second = space.empty("a", (3, 4), np.float32)
    assert second is not first  # `first` is still held here
    address = first.__array_interface__["data"][0]
    del first
    again = space.empty("a", (3, 4), np.float32)
    assert again.__array_interface__["data"][0] == address  # free again: the same memory


@pytest.mark.parametrize("holder", ["view", "reshape", "list"])
def test_a_view_or_any_other_reference_keeps_a_buffer_from_reuse(holder):
    space = Workspace()
    buffer = space.empty("k", (6,), np.float64)
    buffer[:] = 7.0
    holders = {"view": lambda b: b[1:], "reshape": lambda b: b.reshape(2, 3), "list": lambda b: [b]}
    kept = holders[holder](buffer)
    address = buffer.__array_interface__["data"][0]
    del buffer
    for _ in range(3):
        other = space.empty("k", (6,), np.float64)
        assert other.__array_interface__["data"][0] != address
        other[:] = -1.0
        del other
    assert np.all(np.asarray(kept if holder != "list" else kept[0]) == 7.0)


def test_keys_shapes_dtypes_copies_and_the_size_limit(monkeypatch):
    space = Workspace()
    a = space.empty("a", (2,), np.float32)
    b = space.empty("b", (2,), np.float32)
    assert a is not b
    del a, b
    assert space.empty("a", (2,), np.float64).dtype == np.float64  # the float32 one is replaced, not returned
    assert space.empty("a", (3,), np.float64).shape == (3,)
    held = [space.empty("c", (4,), np.int8) for _ in range(3)]
    assert len({h.__array_interface__["data"][0] for h in held}) == 3
    assert space.nbytes <= 2 * 8 * 3 + 2 * 4 + 2 * 4  # at most COPIES kept per key
    monkeypatch.setattr(workspace_module, "MAX_BUFFER_BYTES", 100)
    big = space.empty("d", (200,), np.uint8)
    del big
    assert "d" not in space._kept or not space._kept["d"]
    space.clear()
    assert space.nbytes == 0


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_a_copy_or_a_pickled_network_starts_with_an_empty_working_workspace(protocol):
    space = Workspace()
    kept = space.empty("a", (5,), np.float32)
    del kept
    assert space.nbytes > 0
    assert copy.deepcopy(space).nbytes == 0
    clone = pickle.loads(pickle.dumps(space, protocol))
    assert clone.nbytes == 0 and clone.empty("a", (2,), np.float32).shape == (2,)
    net = simple_conv_net((1, 12, 12), filter_num=16, hidden_size=8, seed=0, dtype=np.float32)
    x = np.random.default_rng(1).random((3, 1, 12, 12), dtype=np.float32)
    expected = net.predict(x)
    loaded = pickle.loads(pickle.dumps(net, protocol))
    np.testing.assert_array_equal(loaded.predict(x), expected)
    np.testing.assert_array_equal(loaded.predict(x), expected)


def test_clear_workspace_drops_the_networks_buffers():
    net = simple_conv_net((1, 12, 12), filter_num=16, hidden_size=8, seed=0, dtype=np.float32)
    x = np.random.default_rng(1).random((3, 1, 12, 12), dtype=np.float32)
    expected = net.predict(x)
    assert net._workspace.nbytes > 0
    net.clear_workspace()
    assert net._workspace.nbytes == 0
    np.testing.assert_array_equal(net.predict(x), expected)


def test_a_networks_repeated_predict_reuses_its_buffers_and_keeps_every_result():
    """Three predicts on different inputs: each equals a fresh network's; masks and outputs the caller
    took from an earlier call (a layer's mask, an activation a layer kept) keep their values."""

    class Keep(Layer):
        def forward(self, x):
            self.x = x
            return x

        def backward(self, dout):
            return dout

    rng = np.random.default_rng(0)
    net = simple_conv_net((1, 12, 12), filter_num=16, hidden_size=8, seed=0, dtype=np.float32)
    net = type(net)([net.layers[0], net.layers[1], Keep(), *net.layers[2:]], input_shape=net.input_shape)
    reference = copy.deepcopy(net)
    reference.fuse_epilogues = False
    kept = []
    for _ in range(3):
        x = rng.random((5, 1, 12, 12), dtype=np.float32)
        np.testing.assert_array_equal(net.predict(x), reference.predict(x))
        mask, activation = net.layers[1].mask, net.layers[2].x
        kept.append((mask, mask.copy(), activation, activation.copy()))
        del mask, activation
    for mask, mask_values, activation, activation_values in kept:
        np.testing.assert_array_equal(mask, mask_values)
        np.testing.assert_array_equal(activation, activation_values)
    # Without the references above, the buffers are written again: no new memory once warm.
    kept.clear()
    net.layers[2].x = None
    for _ in range(2):
        net.predict(x)
        net.layers[2].x = None
    address = net.layers[1].mask.__array_interface__["data"][0]
    before = net._workspace.nbytes
    for _ in range(2):
        net.predict(x)
        net.layers[2].x = None
    assert net._workspace.nbytes == before > 0
    assert net.layers[1].mask.__array_interface__["data"][0] == address  # two mask buffers, alternating


@pytest.mark.parametrize("bad", ["transposed", "dtype", "shape", "readonly"])
def test_a_convolution_output_buffer_of_the_wrong_layout_is_refused(bad):
    from colnn.ops.conv import conv2d_relu_forward, conv_window

    rng = np.random.default_rng(2)
    x = rng.random((2, 1, 10, 10), dtype=np.float32)
    weight = rng.random((16, 1, 3, 3), dtype=np.float32)
    window = conv_window((10, 10), (3, 3), 1, 0, 1)
    out = {"transposed": np.empty((16, 2, 8, 8), np.float32).transpose(1, 0, 2, 3),
           "dtype": np.empty((2, 16, 8, 8), np.float64), "shape": np.empty((2, 16, 8, 7), np.float32),
           "readonly": np.empty((2, 16, 8, 8), np.float32)}[bad]
    out.flags.writeable = bad != "readonly"
    with pytest.raises(ValueError, match="out must be a writeable C-contiguous float32 array of shape"):
        conv2d_relu_forward(x, weight, None, window, out=out)
