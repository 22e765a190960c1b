"""Slow, plain reference implementations written straight from the definitions.

They share no code with colnn: independent oracles for the tests when torch
is absent, and for cases torch cannot express (the book's im2col and Pooling, loaded from
benchmarks/tutorial.py as the tutorial wrote them).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np

# The tutorial's input and the arrays it prints (from the seed text).
TUTORIAL_X = np.array(
    [[[[1, 2, 3, 0], [0, 1, 2, 4], [1, 0, 4, 2], [3, 2, 0, 1]],
      [[3, 0, 6, 5], [4, 2, 4, 3], [3, 0, 1, 0], [2, 3, 3, 1]],
      [[4, 2, 1, 2], [0, 1, 0, 4], [3, 0, 6, 2], [4, 2, 4, 5]]]]
)
TUTORIAL_STEP1 = np.array(
    [[1., 2., 0., 1., 3., 0., 4., 2., 4., 2., 0., 1.],
     [3., 0., 2., 4., 6., 5., 4., 3., 1., 2., 0., 4.],
     [1., 0., 3., 2., 3., 0., 2., 3., 3., 0., 4., 2.],
     [4., 2., 0., 1., 1., 0., 3., 1., 6., 2., 4., 5.]]
)
TUTORIAL_STEP1_ROWS = np.array(
    [[1., 2., 0., 1.], [3., 0., 4., 2.], [4., 2., 0., 1.], [3., 0., 2., 4.],
     [6., 5., 4., 3.], [1., 2., 0., 4.], [1., 0., 3., 2.], [3., 0., 2., 3.],
     [3., 0., 4., 2.], [4., 2., 0., 1.], [1., 0., 3., 1.], [6., 2., 4., 5.]]
)
TUTORIAL_STEP2 = np.array([2., 4., 4., 4., 6., 4., 3., 3., 4., 4., 3., 6.])
TUTORIAL_OUT = np.array(
    [[[[2., 4.], [3., 4.]], [[4., 6.], [3., 3.]], [[4., 4.], [4., 6.]]]]
)


def out_size(size: int, k: int, s: int, p: int, d: int = 1, ceil: bool = False) -> int:
    span = (size + 2 * p - d * (k - 1) - 1) / s
    out = (math.ceil(span) if ceil else math.floor(span)) + 1
    if ceil and (out - 1) * s >= size + p:
        out -= 1
    return out


def naive_max_pool2d(x, k, s, p, d=(1, 1), ceil=False):
    """PyTorch's CPU rule, one window cell at a time: returns (out, flat indices)."""
    n_, c_, h, w = x.shape
    oh, ow = out_size(h, k[0], s[0], p[0], d[0], ceil), out_size(w, k[1], s[1], p[1], d[1], ceil)
    out = np.zeros((n_, c_, oh, ow), dtype=x.dtype)
    idx = np.zeros((n_, c_, oh, ow), dtype=np.int64)
    lowest = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    for n in range(n_):
        for c in range(c_):
            for oy in range(oh):
                for ox in range(ow):
                    y0, x0 = oy * s[0] - p[0], ox * s[1] - p[1]
                    # PyTorch starts from the lowest value at the first cell with
                    # row and column >= 0, then takes any greater value or any NaN.
                    first_y, first_x = y0, x0
                    while first_y < 0:
                        first_y += d[0]
                    while first_x < 0:
                        first_x += d[1]
                    best, best_at = lowest, first_y * w + first_x
                    for ky in range(k[0]):
                        for kx in range(k[1]):
                            iy, ix = y0 + ky * d[0], x0 + kx * d[1]
                            if not (0 <= iy < h and 0 <= ix < w):
                                continue
                            v = x[n, c, iy, ix]
                            if v > best or v != v:
                                best, best_at = v, iy * w + ix
                    out[n, c, oy, ox], idx[n, c, oy, ox] = best, best_at
    return out, idx


def naive_avg_pool2d(x, k, s, p, ceil=False, count_include_pad=True, divisor_override=None):
    n_, c_, h, w = x.shape
    oh, ow = out_size(h, k[0], s[0], p[0], 1, ceil), out_size(w, k[1], s[1], p[1], 1, ceil)
    out = np.zeros((n_, c_, oh, ow), dtype=np.float64)
    for oy in range(oh):
        for ox in range(ow):
            y0, x0 = oy * s[0] - p[0], ox * s[1] - p[1]
            y1, x1 = min(y0 + k[0], h + p[0]), min(x0 + k[1], w + p[1])
            padded_area = (y1 - y0) * (x1 - x0)
            ya, xa, yb, xb = max(y0, 0), max(x0, 0), min(y1, h), min(x1, w)
            if ya >= yb or xa >= xb:
                continue
            total = x[:, :, ya:yb, xa:xb].astype(np.float64).sum(axis=(2, 3))
            divisor = divisor_override or (padded_area if count_include_pad else (yb - ya) * (xb - xa))
            out[:, :, oy, ox] = total / divisor
    return out


def naive_conv2d(x, weight, bias, s, p, d, groups):
    n_, c_, h, w = x.shape
    fn, cg, fh, fw = weight.shape
    oh, ow = out_size(h, fh, s[0], p[0], d[0]), out_size(w, fw, s[1], p[1], d[1])
    xp = np.zeros((n_, c_, h + 2 * p[0], w + 2 * p[1]))
    xp[:, :, p[0]:p[0] + h, p[1]:p[1] + w] = x
    out = np.zeros((n_, fn, oh, ow))
    per_group = fn // groups
    for f in range(fn):
        g = f // per_group
        for oy in range(oh):
            for ox in range(ow):
                patch = xp[:, g * cg:(g + 1) * cg,
                           oy * s[0]:oy * s[0] + d[0] * (fh - 1) + 1:d[0],
                           ox * s[1]:ox * s[1] + d[1] * (fw - 1) + 1:d[1]]
                out[:, f, oy, ox] = (patch * weight[f]).sum(axis=(1, 2, 3))
        if bias is not None:
            out[:, f] += bias[f]
    return out


def _load_tutorial():
    """``benchmarks/tutorial.py``: the tutorial's code as it wrote it, kept once in the repository."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "tutorial.py"
    spec = importlib.util.spec_from_file_location("colnn_tutorial_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TUTORIAL = _load_tutorial()
book_im2col = TUTORIAL.im2col  # the book's im2col (float64 out, whatever the input)


def numerical_gradient(f, x, eps=1e-6):
    """Central differences of scalar f at float64 x."""
    x = x.astype(np.float64).copy()
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        orig = x[i]
        x[i] = orig + eps
        plus = f(x)
        x[i] = orig - eps
        minus = f(x)
        x[i] = orig
        grad[i] = (plus - minus) / (2 * eps)
    return grad
