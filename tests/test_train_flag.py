"""``train_flg`` is a flag like ``ceil_mode``: anything but a bool is a TypeError naming it, at every entry point.

``bool("no")`` is True, so reading any object as the flag would silently switch a
network into training (dropout masks drawn, running statistics updated).
"""

from __future__ import annotations

import numpy as np
import pytest

import colnn
from colnn.book.multi_layer_net_extend import MultiLayerNetExtend
from colnn.nn import deep_conv_net, simple_conv_net

IMAGES = np.random.default_rng(0).random((2, 1, 28, 28)).astype(np.float32)
LABELS = np.array([1, 2])

ENTRY_POINTS = {
    "Dropout.forward": lambda flag: colnn.Dropout(0.5).forward(np.ones((2, 3)), train_flg=flag),
    "BatchNorm2d.forward": lambda flag: colnn.BatchNorm2d(1).forward(IMAGES, train_flg=flag),
    "BatchNormalization.forward": lambda flag: colnn.BatchNormalization(np.ones(4), np.zeros(4)).forward(
        np.ones((2, 4)), train_flg=flag),
    "Network.predict": lambda flag: deep_conv_net((1, 28, 28)).predict(IMAGES, train_flg=flag),
    "Network.loss": lambda flag: simple_conv_net((1, 28, 28)).loss(IMAGES, LABELS, train_flg=flag),
    "book MultiLayerNetExtend.predict": lambda flag: MultiLayerNetExtend(
        4, [5], 3, use_dropout=True, use_batchnorm=True).predict(np.ones((2, 4)), train_flg=flag),
    "book MultiLayerNetExtend.loss": lambda flag: MultiLayerNetExtend(
        4, [5], 3, use_dropout=True, use_batchnorm=True).loss(np.ones((2, 4)), np.array([0, 1]), train_flg=flag),
}


@pytest.mark.parametrize("flag", ["no", "False", None, 1, 0.0])
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_a_train_flg_that_is_not_a_bool_is_refused(entry, flag):
    with pytest.raises(TypeError, match=rf"^train_flg must be True or False, got {flag!r}$".replace("(", r"\(")):
        ENTRY_POINTS[entry](flag)


@pytest.mark.parametrize("flag", [True, False, np.bool_(False)])
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_a_bool_train_flg_is_taken(entry, flag):
    ENTRY_POINTS[entry](flag)  # raises nothing
