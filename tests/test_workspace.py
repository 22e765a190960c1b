"""colnn.nn.workspace: buffers reused only when nothing else references them; a network's results unchanged."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from colnn.nn import workspace as workspace_module
from colnn.nn.layers import Layer
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
    kept = {"view": lambda: buffer[1:], "reshape": lambda: buffer.reshape(2, 3), "list": lambda: [buffer]}[holder]()
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


def test_a_copy_starts_empty():
    space = Workspace()
    kept = space.empty("a", (5,), np.float32)
    del kept
    assert space.nbytes > 0
    assert copy.deepcopy(space).nbytes == 0


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
    for call in range(3):
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
