"""``colnn bench`` rows for the convolution family beyond the 2-D core, each against PyTorch in the same process.

The convolution rows of issue 25's table that :mod:`colnn.apps.bench_family`
does not time already: forward + backward of conv1d on audio (W1) and of the
decoder's conv_transpose2d (T2), conv1d with 64 channels (K1), conv3d (D3) and
conv2d with 256 channels on 14x14 (C4), forward and forward + backward. A
forward + backward row runs a layer's ``forward`` and ``backward`` (``dx``,
``dW``, ``db``) against PyTorch's autograd on tensors that need every gradient.
The limit is compute: the GEMMs' FLOPs at the measured SGEMM rate (three GEMMs'
worth for forward + backward).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .bench_common import Case, shape_text

__all__ = ["CONV_ROW_SHAPES", "QUICK_CONV_ROW_SHAPES", "conv_row_cases"]

# name: (input, weight, keyword arguments, which passes)
CONV_ROW_SHAPES = {
    "W1": ((8, 1, 16000), (32, 1, 80), {"stride": 4}, ("f+b",)),  # one second of 16 kHz audio
    "K1": ((16, 64, 4000), (64, 64, 3), {"padding": 1}, ("fwd", "f+b")),  # a 1-d feature extractor
    "T2": ((16, 64, 32, 32), (64, 32, 4, 4), {"stride": 2, "padding": 1}, ("f+b",)),  # a decoder's upsampling
    "D3": ((4, 16, 16, 32, 32), (32, 16, 3, 3, 3), {"padding": 1}, ("fwd", "f+b")),  # a video or volume layer
    "C4": ((32, 256, 14, 14), (256, 256, 3, 3), {"padding": 1}, ("fwd", "f+b")),  # ResNet's fourth stage
}
QUICK_CONV_ROW_SHAPES = {
    "W1": ((2, 1, 4000), (8, 1, 80), {"stride": 4}, ("f+b",)),
    "K1": ((2, 8, 500), (8, 8, 3), {"padding": 1}, ("fwd", "f+b")),
    "T2": ((2, 16, 8, 8), (16, 8, 4, 4), {"stride": 2, "padding": 1}, ("f+b",)),
    "D3": ((1, 4, 4, 8, 8), (8, 4, 3, 3, 3), {"padding": 1}, ("fwd", "f+b")),
    "C4": ((2, 32, 14, 14), (32, 32, 3, 3), {"padding": 1}, ("fwd", "f+b")),
}
_OPS = {"W1": "conv1d", "K1": "conv1d", "T2": "conv_transpose2d", "D3": "conv3d", "C4": "conv2d"}


def _layer_class(op: str) -> Any:
    from .. import nn

    if op.startswith("conv_transpose"):
        return getattr(nn, f"ConvTranspose{op[-2:-1]}d")
    return getattr(nn, f"Conv{op[-2:-1]}d")


def _colnn_pass(layer: Any, x: np.ndarray, grad: np.ndarray, backward: bool) -> Callable[[], Any]:
    if not backward:
        return lambda: layer.forward(x)

    def forward_backward() -> Any:
        layer.forward(x)
        return layer.backward(grad)

    return forward_backward


def _torch_pass(torch: Any, op: str, arrays: tuple[np.ndarray, ...], kwargs: dict, backward: bool) -> Callable[[], Any]:
    function = getattr(torch.nn.functional, op)
    x, weight, bias, grad = (torch.from_numpy(a) for a in arrays)
    if not backward:
        def forward() -> Any:
            with torch.no_grad():
                return function(x, weight, bias, **kwargs)

        return forward
    leaves = [a.clone().requires_grad_(True) for a in (x, weight, bias)]

    def forward_backward() -> Any:
        for leaf in leaves:
            leaf.grad = None
        with torch.enable_grad():  # the bench times torch's forward rows under no_grad
            function(*leaves, **kwargs).backward(grad)
        return leaves[0].grad

    return forward_backward


def conv_row_cases(quick: bool, torch: Any, sgemm: float) -> list[Case]:
    """The cases, as :class:`colnn.apps.bench_common.Case` objects (``torch`` None: colnn's rows alone)."""
    rng = np.random.default_rng(3)
    cases = []
    for name, (x_shape, w_shape, kwargs, passes) in (QUICK_CONV_ROW_SHAPES if quick else CONV_ROW_SHAPES).items():
        op = _OPS[name]
        x = rng.random(x_shape, dtype=np.float32)
        weight = rng.random(w_shape, dtype=np.float32) - 0.5
        transposed = op.startswith("conv_transpose")
        out_channels = w_shape[1] if transposed else w_shape[0]
        bias = rng.random(out_channels, dtype=np.float32)
        layer = _layer_class(op)(weight, bias, **kwargs)
        out = layer.forward(x)
        grad = rng.random(out.shape, dtype=np.float32)
        # Every output (of the convolution, or for a transposed one every input cell) is one dot product.
        products = x.size * int(np.prod(w_shape[1:])) if transposed else out.size * int(np.prod(w_shape[1:]))
        geometry = f"{shape_text(x_shape)} * {shape_text(w_shape)} " + " ".join(
            f"{key}={value}" for key, value in kwargs.items())
        for which in passes:
            backward = which == "f+b"
            flop = 2.0 * products * (3 if backward else 1)
            case = Case(f"{name} {op} {which}", geometry, flop / sgemm * 1e3, x.nbytes / 2**20)
            case.impls["colnn"] = _colnn_pass(layer, x, grad, backward)
            if torch is not None:
                case.impls["torch NCHW"] = _torch_pass(torch, op, (x, weight, bias, grad), kwargs, backward)
            cases.append(case)
    return cases
