"""``colnn bench`` rows for the 1/2/3-d families, each against PyTorch in the same process.

3-d max and average pooling (video), adaptive average pooling to 1x1 (a ResNet
head) and to 7x7, adaptive max pooling to 7x7, max_unpool2d (SegNet's
decoder), 1-d max pooling (audio features), conv1d on audio and
conv_transpose2d of a decoder. "fwd+bwd" rows run a layer's forward and
backward (colnn's layer, PyTorch's autograd). Limits as for the 2-D cases:
memory traffic at the measured bandwidth for pooling, the GEMMs' FLOPs at the
measured SGEMM rate for the convolutions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

import numpy as np

from .bench_common import Case, conv_geometry, pool_geometry, shape_text

__all__ = ["FAMILY_SHAPES", "QUICK_FAMILY_SHAPES", "family_cases"]


class FamilyShapes(TypedDict):
    """A row's input shape, or for a convolution its input's and its weight's."""

    V3: tuple[int, ...]
    A1: tuple[int, ...]
    A7: tuple[int, ...]
    U2: tuple[int, ...]
    P1: tuple[int, ...]
    W1: tuple[tuple[int, ...], tuple[int, ...]]
    T2: tuple[tuple[int, ...], tuple[int, ...]]


FAMILY_SHAPES: FamilyShapes = {
    "V3": (8, 32, 16, 56, 56),          # max_pool3d(2): a video clip's feature map
    "A1": (64, 2048, 7, 7),             # adaptive_avg_pool2d(1): ResNet-50's head
    "A7": (32, 64, 56, 56),             # adaptive_{avg,max}_pool2d(7)
    "U2": (32, 64, 28, 28),             # max_unpool2d(2): SegNet's decoder
    "P1": (32, 64, 4096),               # max_pool1d(3, 2): a 1-d feature sequence
    "W1": ((8, 1, 16000), (32, 1, 80)),  # conv1d stride 4: one second of 16 kHz audio
    "T2": ((16, 64, 32, 32), (64, 32, 4, 4)),  # conv_transpose2d stride 2, padding 1: a decoder's upsampling
}
QUICK_FAMILY_SHAPES: FamilyShapes = {
    "V3": (2, 4, 8, 16, 16),
    "A1": (4, 64, 7, 7),
    "A7": (2, 8, 28, 28),
    "U2": (2, 8, 14, 14),
    "P1": (2, 8, 512),
    "W1": ((2, 1, 4000), (8, 1, 80)),
    "T2": ((2, 16, 8, 8), (16, 8, 4, 4)),
}


def _layer_step(layer: Any, x: np.ndarray, grad: np.ndarray, *extra: Any) -> Callable[[], Any]:
    """A colnn layer's forward and backward, as one call."""
    def step() -> Any:
        layer.forward(x, *extra)
        return layer.backward(grad)
    return step


def _torch_step(torch: Any, function: Callable, x: np.ndarray, grad: np.ndarray, *args: Any) -> Callable[[], Any]:
    """PyTorch's forward and autograd backward of ``function(x, *args)`` (the benchmark runs under no_grad)."""
    x_t, grad_t = torch.from_numpy(x), torch.from_numpy(grad)

    def step() -> Any:
        with torch.enable_grad():
            leaf = x_t.detach().requires_grad_()
            function(leaf, *args).backward(grad_t)
        return leaf.grad
    return step


def _pool_family_cases(shapes: FamilyShapes, torch: Any, bandwidth: float) -> list[Case]:
    """The pooling rows beyond the 2-D core: 3-d, adaptive, unpooling and 1-d, forward and layer fwd+bwd."""
    from .. import adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool3d, max_pool1d, max_pool2d, max_unpool2d
    from ..nn import AdaptiveAvgPool2d, AdaptiveMaxPool2d, MaxPool3d, MaxUnpool2d

    rng = np.random.default_rng(3)
    functional: Any = None if torch is None else torch.nn.functional
    cases = []

    def case(name: str, geometry: str, moved_bytes: float, x: np.ndarray, colnn: Callable, reference: Callable | None,
             peer: Callable | None) -> None:
        row = Case(name, geometry, moved_bytes / bandwidth * 1e3, x.nbytes / 2**20)
        row.impls["colnn"] = colnn
        if reference is not None:
            row.impls["colnn im2col"] = reference
        if peer is not None:
            row.impls["torch NCHW"] = peer
        cases.append(row)

    video = rng.random(shapes["V3"], dtype=np.float32)
    grad = rng.random((*video.shape[:2], *(size // 2 for size in video.shape[2:])), dtype=np.float32)
    video_t = None if torch is None else torch.from_numpy(video)
    geometry = pool_geometry(video.shape, 2, 2, 0)
    # Forward reads the input and writes the output and int64 offsets; backward reads both, writes the input's size.
    case("V3 MaxPool3d fwd+bwd", geometry, video.nbytes * (2 + 3 / 8) + grad.nbytes * 2, video,
         _layer_step(MaxPool3d(2), video, grad), None,
         None if torch is None else _torch_step(torch, functional.max_pool3d, video, grad, 2))
    case("V3 avg_pool3d fwd", geometry, video.nbytes * 9 / 8, video, lambda: avg_pool3d(video, 2),
         lambda: avg_pool3d(video, 2, strategy="im2col"),
         None if torch is None else (lambda: functional.avg_pool3d(video_t, 2)))

    maps = rng.random(shapes["A7"], dtype=np.float32)
    grad = rng.random((*maps.shape[:2], 7, 7), dtype=np.float32)
    geometry = f"{shape_text(maps.shape)} to 7x7"
    maps_t = None if torch is None else torch.from_numpy(maps)
    case("A7 adaptive avg 7x7 fwd", geometry, maps.nbytes + grad.nbytes, maps, lambda: adaptive_avg_pool2d(maps, 7),
         lambda: adaptive_avg_pool2d(maps, 7, strategy="im2col"),
         None if torch is None else (lambda: functional.adaptive_avg_pool2d(maps_t, 7)))
    case("A7 AdaptiveAvgPool2d fwd+bwd", geometry, 2 * (maps.nbytes + grad.nbytes), maps,
         _layer_step(AdaptiveAvgPool2d(7), maps, grad), None,
         None if torch is None else _torch_step(torch, functional.adaptive_avg_pool2d, maps, grad, 7))
    case("A7 adaptive max 7x7 fwd", geometry, maps.nbytes + 3 * grad.nbytes, maps, lambda: adaptive_max_pool2d(maps, 7),
         lambda: adaptive_max_pool2d(maps, 7, strategy="im2col"),
         None if torch is None else (lambda: functional.adaptive_max_pool2d(maps_t, 7)))
    case("A7 AdaptiveMaxPool2d fwd+bwd", geometry, 2 * (maps.nbytes + 3 * grad.nbytes), maps,
         _layer_step(AdaptiveMaxPool2d(7), maps, grad), None,
         None if torch is None else _torch_step(torch, functional.adaptive_max_pool2d, maps, grad, 7))

    codes = rng.random(shapes["U2"], dtype=np.float32)
    _, indices = max_pool2d(rng.random((*codes.shape[:2], *(2 * size for size in codes.shape[2:])),
                                       dtype=np.float32), 2, return_indices=True)
    grad = rng.random((*codes.shape[:2], *(2 * size for size in codes.shape[2:])), dtype=np.float32)
    codes_t, indices_t = (None, None) if torch is None else (torch.from_numpy(codes), torch.from_numpy(indices))
    geometry = pool_geometry(codes.shape, 2, 2, 0)
    # Forward reads the values and int64 indices and writes 4x the values; backward gathers them back.
    case("U2 max_unpool2d fwd", geometry, codes.nbytes * 7, codes, lambda: max_unpool2d(codes, indices, 2),
         lambda: max_unpool2d(codes, indices, 2, strategy="im2col"),
         None if torch is None else (lambda: functional.max_unpool2d(codes_t, indices_t, 2)))
    case("U2 MaxUnpool2d fwd+bwd", geometry, codes.nbytes * 11, codes,
         _layer_step(MaxUnpool2d(2), codes, grad, indices), None,
         None if torch is None else _torch_step(torch, functional.max_unpool2d, codes, grad, indices_t, 2))

    sequence = rng.random(shapes["P1"], dtype=np.float32)
    sequence_t = None if torch is None else torch.from_numpy(sequence)
    case("P1 max_pool1d fwd", f"{shape_text(sequence.shape)} k3 s2 p0", sequence.nbytes * 3 / 2, sequence,
         lambda: max_pool1d(sequence, 3, 2), lambda: max_pool1d(sequence, 3, 2, strategy="im2col"),
         None if torch is None else (lambda: functional.max_pool1d(sequence_t, 3, 2)))
    return cases


def family_cases(quick: bool, torch: Any, bandwidth: float, sgemm: float) -> list[Case]:
    """The cases, as :class:`colnn.apps.bench_common.Case` objects."""
    from .. import adaptive_avg_pool2d, conv1d, conv_transpose2d, max_pool3d

    shapes = QUICK_FAMILY_SHAPES if quick else FAMILY_SHAPES
    rng = np.random.default_rng(2)
    functional: Any = None if torch is None else torch.nn.functional
    cases = []

    video = rng.random(shapes["V3"], dtype=np.float32)
    case = Case("V3 max_pool3d fwd", pool_geometry(video.shape, 2, 2, 0), (video.nbytes * 9 / 8) / bandwidth * 1e3,
                video.nbytes / 2**20)
    case.impls["colnn"] = lambda: max_pool3d(video, 2)
    case.impls["colnn im2col"] = lambda: max_pool3d(video, 2, strategy="im2col")
    if functional is not None:
        video_t = torch.from_numpy(video)
        case.impls["torch NCHW"] = lambda: functional.max_pool3d(video_t, 2)
    cases.append(case)

    head = rng.random(shapes["A1"], dtype=np.float32)
    case = Case("A1 adaptive avg 1x1", f"{shape_text(head.shape)} to 1x1", head.nbytes / bandwidth * 1e3,
                head.nbytes / 2**20)
    case.impls["colnn"] = lambda: adaptive_avg_pool2d(head, 1)
    if functional is not None:
        head_t = torch.from_numpy(head)
        case.impls["torch NCHW"] = lambda: functional.adaptive_avg_pool2d(head_t, 1)
    cases.append(case)
    cases += _pool_family_cases(shapes, torch, bandwidth)

    x_shape, w_shape = shapes["W1"]
    audio = rng.random(x_shape, dtype=np.float32)
    filters = rng.random(w_shape, dtype=np.float32) - 0.5
    out_len = (x_shape[2] - w_shape[2]) // 4 + 1
    flop = 2.0 * x_shape[0] * w_shape[0] * out_len * w_shape[1] * w_shape[2]
    case = Case("W1 conv1d fwd", conv_geometry(x_shape, w_shape, 4, 0), flop / sgemm * 1e3, audio.nbytes / 2**20)
    case.impls["colnn"] = lambda: conv1d(audio, filters, stride=4)
    case.impls["colnn im2col"] = lambda: conv1d(audio, filters, stride=4, strategy="im2col")
    if functional is not None:
        audio_t, filters_t = torch.from_numpy(audio), torch.from_numpy(filters)
        case.impls["torch NCHW"] = lambda: functional.conv1d(audio_t, filters_t, stride=4)
    cases.append(case)

    x_shape, w_shape = shapes["T2"]
    codes = rng.random(x_shape, dtype=np.float32)
    kernel = rng.random(w_shape, dtype=np.float32) - 0.5
    flop = 2.0 * codes.size * w_shape[1] * w_shape[2] * w_shape[3]
    case = Case("T2 conv_transpose2d fwd", conv_geometry(x_shape, w_shape, 2, 1), flop / sgemm * 1e3,
                codes.nbytes / 2**20)
    case.impls["colnn"] = lambda: conv_transpose2d(codes, kernel, stride=2, padding=1)
    case.impls["colnn im2col"] = lambda: conv_transpose2d(codes, kernel, stride=2, padding=1, strategy="im2col")
    if functional is not None:
        codes_t, kernel_t = torch.from_numpy(codes), torch.from_numpy(kernel)
        case.impls["torch NCHW"] = lambda: functional.conv_transpose2d(codes_t, kernel_t, stride=2, padding=1)
    cases.append(case)
    return cases
