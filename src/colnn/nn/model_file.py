"""A network's file: the architecture as JSON beside its arrays, read back without pickle.

:meth:`Network.save <colnn.nn.network.Network.save>` writes one ``.npz`` whose
``architecture`` entry describes the layers (their hyper-parameters, as
:func:`layer_config` gives them) and whose other entries are the parameters
and buffers, named ``"<layer index>.<name>"``. :func:`build_layer` rebuilds a
layer from its description and arrays. A layer's ``strategy`` is a runtime
choice, so it is deliberately not saved. Only exact classes are saved: a
subclass may compute something else, and would load back as its base.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np

from . import conv, pooling
from .activation import Relu, Sigmoid
from .base import Layer, WindowLayer
from .dense import Affine
from .dropout import Dropout
from .normalization import BatchNorm2d, BatchNormalization

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "ARCHITECTURE_KEY", "ModelFileError", "layer_config", "build_layer",
           "param_names", "read_architecture", "take_weight"]

FORMAT_NAME = "colnn.nn.network"
FORMAT_VERSION = 1
ARCHITECTURE_KEY = "architecture"


class ModelFileError(ValueError):
    """A model file is missing, unreadable or not a colnn network; the message names the file."""


# The windowed layers describe themselves (WindowLayer.config / from_config); the book's
# Pooling is a MaxPool2d with other argument names, and is saved as one.
_WINDOW_LAYERS: dict[str, type[WindowLayer]] = {
    name: getattr(module, name) for module in (conv, pooling) for name in module.__all__ if name != "Pooling"}
_SAVED_AS: dict[type, str] = {kind: name for name, kind in _WINDOW_LAYERS.items()}
_SAVED_AS[pooling.Pooling] = "MaxPool2d"


def layer_config(layer: Layer) -> dict[str, Any]:
    """The JSON-able description of ``layer`` (weights not included); TypeError for a layer no file holds."""
    kind = type(layer)
    if isinstance(layer, WindowLayer) and kind in _SAVED_AS:
        return {"type": _SAVED_AS[kind], **layer.config()}
    if kind in (Affine, Relu, Sigmoid):
        return {"type": kind.__name__}
    if type(layer) is Dropout:
        return {"type": "Dropout", "dropout_ratio": layer.dropout_ratio}
    if type(layer) is BatchNormalization:
        return {"type": "BatchNormalization", "momentum": layer.momentum, "eps": layer.eps}
    if type(layer) is BatchNorm2d:
        return {"type": "BatchNorm2d", "num_features": layer.num_features, "eps": layer.eps,
                "momentum": layer.momentum}
    raise TypeError(f"cannot save a layer of type {kind.__name__}; supported: Convolution, MaxPool2d, "
                    "Pooling, AvgPool2d, Affine, Relu, Sigmoid, Dropout, BatchNormalization, BatchNorm2d, "
                    "and the 1/2/3-d pooling and convolution layers")


def _batch_norm_2d(config: dict[str, Any], arrays: dict[str, np.ndarray]) -> BatchNorm2d:
    layer = BatchNorm2d(config["num_features"], config["eps"], config["momentum"], dtype=arrays["weight"].dtype)
    for name, array in arrays.items():
        setattr(layer, name, _feature_array(array, layer.num_features, name))
    return layer


def _feature_array(array: np.ndarray, size: int, name: str) -> np.ndarray:
    if array.shape != (size,):
        raise ValueError(f"{name} must have shape ({size},), got {array.shape}")
    return np.array(array, copy=True)


_BUILDERS: dict[str, Callable[[dict[str, Any], dict[str, np.ndarray]], Layer]] = {
    "Affine": lambda c, p: Affine(p["W"], p["b"]),
    "Relu": lambda c, p: Relu(),
    "Sigmoid": lambda c, p: Sigmoid(),
    "Dropout": lambda c, p: Dropout(c["dropout_ratio"]),
    "BatchNormalization": lambda c, p: BatchNormalization(p["gamma"], p["beta"], c["momentum"], p["running_mean"],
                                                          p["running_var"], eps=c["eps"]),
    "BatchNorm2d": _batch_norm_2d,
    **{name: kind.from_config for name, kind in _WINDOW_LAYERS.items()},
}
# Learnable parameters and then buffers (running estimates), as saved by Network.save.
_PARAM_NAMES = {"Affine": ("W", "b"),
                "BatchNormalization": ("gamma", "beta", "running_mean", "running_var"),
                "BatchNorm2d": ("weight", "bias", "running_mean", "running_var"),
                **dict.fromkeys(conv.__all__, ("W", "b"))}


def param_names(kind: str) -> tuple[str, ...]:
    """The arrays a layer of type ``kind`` is saved with (parameters, then buffers); ValueError for an unknown type."""
    if kind not in _BUILDERS:
        raise ValueError(f"unknown type {kind!r:.60}")
    return _PARAM_NAMES.get(kind, ())


def build_layer(kind: str, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> Layer:
    """The layer of type ``kind`` described by ``config``, with its ``arrays`` (:func:`param_names`)."""
    return _BUILDERS[kind](config, arrays)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"the architecture holds {name}, which is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not np.isfinite(number):
        raise ValueError(f"the architecture holds the number {text:.40}, too large for a float")
    return number


def _bounded_int(text: str) -> int:
    # Every size and step of a layer fits in int64; longer numbers are crafted.
    if len(text.lstrip("-")) > 18:
        raise ValueError(f"the architecture holds an integer of {len(text)} digits, too large for a layer setting")
    return int(text)


def read_architecture(entry: np.ndarray | None) -> dict[str, Any]:
    """The architecture dict of a model file's ``architecture`` entry, checked for format and version."""
    if entry is None:
        raise KeyError(f"no '{ARCHITECTURE_KEY}' entry")
    if entry.dtype.kind != "U" or entry.ndim != 0:
        raise ValueError(f"'{ARCHITECTURE_KEY}' must be a JSON string, got {entry.dtype} array of shape {entry.shape}")
    try:
        config = json.loads(str(entry), parse_constant=_reject_constant, parse_float=_finite_float,
                            parse_int=_bounded_int)
    except RecursionError:
        raise ValueError(f"'{ARCHITECTURE_KEY}' is nested too deeply to be a colnn architecture") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"'{ARCHITECTURE_KEY}' is not valid JSON ({error})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
        raise ValueError(f"'{ARCHITECTURE_KEY}' is not a {FORMAT_NAME} description")
    if config.get("version") != FORMAT_VERSION:
        raise ValueError(f"format version {config.get('version')!r:.40} is not supported (expected {FORMAT_VERSION})")
    return config


def take_weight(arrays: dict[str, np.ndarray], key: str, kind: str) -> np.ndarray:
    """Pop the parameter array ``key`` of a ``kind`` layer, if it is real floating and finite."""
    if key not in arrays:
        raise KeyError(f"the array '{key}' of the {kind} layer is missing")
    array = arrays.pop(key)
    if array.dtype.kind != "f":
        raise ValueError(f"the array '{key}' must be floating, got dtype {array.dtype}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"the array '{key}' holds NaN or inf")
    return array


