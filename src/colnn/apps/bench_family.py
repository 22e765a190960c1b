"""``colnn bench`` rows for the 1/2/3-d families, each against PyTorch in the same process.

3-d max pooling (video), adaptive average pooling to 1x1 (a ResNet head),
conv1d on audio and conv_transpose2d of a decoder. Limits as for the 2-D
cases: memory traffic at the measured bandwidth for pooling, the GEMMs' FLOPs
at the measured SGEMM rate for the convolutions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .bench_common import Case, conv_geometry, pool_geometry, shape_text

__all__ = ["FAMILY_SHAPES", "QUICK_FAMILY_SHAPES", "family_cases"]

FAMILY_SHAPES = {
    "V3": (8, 32, 16, 56, 56),          # max_pool3d(2): a video clip's feature map
    "A1": (64, 2048, 7, 7),             # adaptive_avg_pool2d(1): ResNet-50's head
    "W1": ((8, 1, 16000), (32, 1, 80)),  # conv1d stride 4: one second of 16 kHz audio
    "T2": ((16, 64, 32, 32), (64, 32, 4, 4)),  # conv_transpose2d stride 2, padding 1: a decoder's upsampling
}
QUICK_FAMILY_SHAPES = {
    "V3": (2, 4, 8, 16, 16),
    "A1": (4, 64, 7, 7),
    "W1": ((2, 1, 4000), (8, 1, 80)),
    "T2": ((2, 16, 8, 8), (16, 8, 4, 4)),
}


def family_cases(quick: bool, torch: Any, bandwidth: float, sgemm: float) -> list[Case]:
    """The cases, as :class:`colnn.apps.bench_common.Case` objects."""
    from .. import adaptive_avg_pool2d, conv1d, conv_transpose2d, max_pool3d

    shapes = QUICK_FAMILY_SHAPES if quick else FAMILY_SHAPES
    rng = np.random.default_rng(2)
    functional = None if torch is None else torch.nn.functional
    cases = []

    video = rng.random(shapes["V3"], dtype=np.float32)
    case = Case("V3 max_pool3d fwd", pool_geometry(video.shape, 2, 2, 0), (video.nbytes * 9 / 8) / bandwidth * 1e3, video.nbytes / 2**20)
    case.impls["colnn"] = lambda: max_pool3d(video, 2)
    case.impls["colnn im2col"] = lambda: max_pool3d(video, 2, strategy="im2col")
    if functional is not None:
        video_t = torch.from_numpy(video)
        case.impls["torch NCHW"] = lambda: functional.max_pool3d(video_t, 2)
    cases.append(case)

    head = rng.random(shapes["A1"], dtype=np.float32)
    case = Case("A1 adaptive avg 1x1", f"{shape_text(head.shape)} to 1x1", head.nbytes / bandwidth * 1e3, head.nbytes / 2**20)
    case.impls["colnn"] = lambda: adaptive_avg_pool2d(head, 1)
    if functional is not None:
        head_t = torch.from_numpy(head)
        case.impls["torch NCHW"] = lambda: functional.adaptive_avg_pool2d(head_t, 1)
    cases.append(case)

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
    case = Case("T2 conv_transpose2d fwd", conv_geometry(x_shape, w_shape, 2, 1), flop / sgemm * 1e3, codes.nbytes / 2**20)
    case.impls["colnn"] = lambda: conv_transpose2d(codes, kernel, stride=2, padding=1)
    case.impls["colnn im2col"] = lambda: conv_transpose2d(codes, kernel, stride=2, padding=1, strategy="im2col")
    if functional is not None:
        codes_t, kernel_t = torch.from_numpy(codes), torch.from_numpy(kernel)
        case.impls["torch NCHW"] = lambda: functional.conv_transpose2d(codes_t, kernel_t, stride=2, padding=1)
    cases.append(case)
    return cases
