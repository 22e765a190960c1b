"""ONNX's backend node tests of the windowed operators, each mapped onto colnn's public functions.

ONNX ships a generator per operator (``onnx.backend.test.case.node.maxpool`` ...): its
``export_*`` static methods build a one-node model and pass it, with inputs and the
outputs ONNX's reference computed, to ``expect``. Here ``expect`` is intercepted, and
each case is translated into colnn's calls where the two APIs differ:

- ``pads`` (begin and end per axis) and ``auto_pad``: colnn's ``padding`` when they are
  symmetric and within half the window (PyTorch's rule, which colnn keeps), otherwise
  the input is padded explicitly (``-inf`` or the dtype's lowest for max, 0 for sums) and
  an average that excludes the padding (ONNX's default ``count_include_pad=0``) is the
  ratio of two averages over the padded input and over its mask of real cells (their
  divisors cancel);
- MaxPool's ``Indices`` count over the whole ``(N, C, *spatial)`` tensor, in row or
  column order (``storage_order``); colnn's over one plane, in row order;
- LpPool sums ``|x|^p`` (ONNX) where ``lp_pool`` sums ``x^p`` (PyTorch): the case runs on ``|x|``;
- ConvTranspose's asymmetric ``pads`` and ``output_shape`` crop or extend the unpadded result;
- Global pools are adaptive pools to size 1.

Features colnn lacks entirely would be named in :data:`UNSUPPORTED`; none is today.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

import colnn
from peers import Mismatches, assert_matches

onnx = pytest.importorskip("onnx", reason="ONNX's node tests need onnx (pip install colnn[bench])")
from onnx import helper  # noqa: E402

# The operators whose node tests run here, and the generator module of each.
GENERATORS = {
    "MaxPool": "maxpool", "AveragePool": "averagepool", "LpPool": "lppool", "Conv": "conv",
    "ConvTranspose": "convtranspose", "MaxUnpool": "maxunpool", "Col2Im": "col2im",
    "GlobalAveragePool": "globalaveragepool", "GlobalMaxPool": "globalmaxpool", "GlobalLpPool": "globallppool",
}

# ONNX cases of these operators that colnn cannot express at all, by name, with the reason.
UNSUPPORTED: dict[str, str] = {}


@dataclass
class Case:
    """One ``expect`` call: the node, its inputs and the outputs ONNX's reference computed."""

    name: str
    op_type: str
    inputs: list[np.ndarray]
    outputs: list[np.ndarray]
    attrs: dict[str, Any] = field(default_factory=dict)


def _generator(op_type: str) -> Any:
    try:
        return importlib.import_module(f"onnx.backend.test.case.node.{GENERATORS[op_type]}")
    except ModuleNotFoundError:
        return None  # this onnx has no node tests for the operator


def _exports() -> list[Any]:
    found = []
    for op_type in GENERATORS:
        module = _generator(op_type)
        if module is not None:
            found += [pytest.param(op_type, name, id=f"{op_type}-{name.removeprefix('export_')}")
                      for name in sorted(vars(getattr(module, op_type))) if name.startswith("export")]
    return found


def test_the_generators_cover_every_operator_but_global_lp_pool():
    # onnx 1.23 has no GlobalLpPool node test; should one appear, it runs (and maps below).
    assert {op_type for op_type in GENERATORS if _generator(op_type) is None} <= {"GlobalLpPool"}


def _collect(monkeypatch: pytest.MonkeyPatch, op_type: str, export: str) -> list[Case]:
    module = _generator(op_type)
    cases: list[Case] = []

    def expect(node: Any, inputs: list, outputs: list, name: str, **kwargs: Any) -> None:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        attrs = {key: value.decode() if isinstance(value, bytes) else value for key, value in attrs.items()}
        cases.append(Case(name, node.op_type, [np.asarray(a) for a in inputs], [np.asarray(a) for a in outputs], attrs))

    monkeypatch.setattr(module, "expect", expect)
    np.random.seed(0)  # the generators draw their inputs from NumPy's global generator
    getattr(getattr(module, op_type), export)()
    return cases


# --- ONNX's window attributes -------------------------------------------------


@dataclass(frozen=True)
class Window:
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]  # (begin, end) per spatial axis
    ceil_mode: bool

    @property
    def symmetric_padding(self) -> tuple[int, ...] | None:
        """colnn's ``padding`` if it expresses ``pads``: equal ends, at most half the window."""
        if all(begin == end and 2 * begin <= k for (begin, end), k in zip(self.pads, self.kernel)):
            return tuple(begin for begin, _ in self.pads)
        return None

    @property
    def dilation_argument(self) -> dict[str, Any]:
        """``dilation=`` only where it is not 1: the average and LP pools take it as a keyword."""
        return {"dilation": self.dilations} if any(d != 1 for d in self.dilations) else {}


def _window(case: Case, spatial: tuple[int, ...], kernel: tuple[int, ...] | None = None) -> Window:
    """ONNX's ``kernel_shape``, ``strides``, ``dilations``, ``pads``/``auto_pad`` and ``ceil_mode`` of a case."""
    attrs, n = case.attrs, len(spatial)
    kernel = tuple(attrs.get("kernel_shape", kernel))
    strides = tuple(attrs.get("strides", (1,) * n))
    dilations = tuple(attrs.get("dilations", (1,) * n))
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = []
        for size, k, s, d in zip(spatial, kernel, strides, dilations):
            total = max(0, (math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size)
            small = total // 2
            pads.append((small, total - small) if auto_pad == "SAME_UPPER" else (total - small, small))
    else:
        flat = attrs.get("pads", (0,) * (2 * n)) if auto_pad == "NOTSET" else (0,) * (2 * n)
        pads = list(zip(flat[:n], flat[n:]))
    return Window(kernel, strides, dilations, tuple(pads), bool(attrs.get("ceil_mode", 0)))


def _pad(x: np.ndarray, window: Window, value: Any) -> np.ndarray:
    assert not window.ceil_mode, "explicit padding would move ceil_mode's last window: map this case by hand"
    return np.pad(x, [(0, 0), (0, 0), *window.pads], constant_values=value)


def _lowest(dtype: np.dtype) -> Any:
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _global_indices(plane_indices: np.ndarray, padded: tuple[int, ...], window: Window, spatial: tuple[int, ...],
                    storage_order: int) -> np.ndarray:
    """colnn's row-major indices into one (padded) plane as ONNX's into the whole tensor."""
    coordinates = np.unravel_index(plane_indices, padded)
    coordinates = tuple(c - begin for c, (begin, _) in zip(coordinates, window.pads))
    flat = np.ravel_multi_index(coordinates, spatial, order="F" if storage_order else "C")
    n, c = plane_indices.shape[:2]
    planes = np.arange(n * c, dtype=np.int64).reshape(n, c, *(1,) * len(spatial))
    return flat + planes * math.prod(spatial)


# --- each operator in colnn's terms -------------------------------------------


def _max_pool(case: Case) -> list[np.ndarray]:
    x = case.inputs[0]
    spatial = x.shape[2:]
    window = _window(case, spatial)
    padding = window.symmetric_padding
    x_in = x if padding is not None else _pad(x, window, _lowest(x.dtype))
    pool = getattr(colnn, f"max_pool{len(spatial)}d")
    values, indices = pool(x_in, window.kernel, window.strides, padding or 0, window.dilations, window.ceil_mode,
                           return_indices=True)
    if len(case.outputs) == 1:
        return [values]
    return [values, _global_indices(indices, x_in.shape[2:], window if padding is None else _no_pads(window),
                                    spatial, case.attrs.get("storage_order", 0))]


def _no_pads(window: Window) -> Window:
    return Window(window.kernel, window.strides, window.dilations, tuple((0, 0) for _ in window.pads),
                  window.ceil_mode)


def _average_pool(case: Case) -> list[np.ndarray]:
    x = case.inputs[0]
    window = _window(case, x.shape[2:])
    count_include_pad = bool(case.attrs.get("count_include_pad", 0))
    pool = getattr(colnn, f"avg_pool{x.ndim - 2}d")
    padding = window.symmetric_padding

    def average(data: np.ndarray, pad: Any, include: bool) -> np.ndarray:
        return pool(data, window.kernel, window.strides, pad, window.ceil_mode, include, **window.dilation_argument)

    if padding is not None:
        return [average(x, padding, count_include_pad)]
    padded = _pad(x, window, 0)
    if count_include_pad:
        return [average(padded, 0, True)]
    # Both averages divide by the same window sizes: their ratio is sum over count.
    real_cells = _pad(np.ones_like(x), window, 0)
    return [average(padded, 0, True) / average(real_cells, 0, True)]


def _lp_pool(case: Case) -> list[np.ndarray]:
    x = np.abs(case.inputs[0])  # ONNX: (sum |x|^p)^(1/p); PyTorch's lp_pool: (sum x^p)^(1/p)
    window = _window(case, x.shape[2:])
    x_in = x if not any(any(pad) for pad in window.pads) else _pad(x, window, 0)
    pool = getattr(colnn, f"lp_pool{x.ndim - 2}d")
    return [pool(x_in, float(case.attrs.get("p", 2)), window.kernel, window.strides, window.ceil_mode,
                 **window.dilation_argument)]


def _conv(case: Case) -> list[np.ndarray]:
    x, weight = case.inputs[:2]
    bias = case.inputs[2] if len(case.inputs) > 2 else None
    window = _window(case, x.shape[2:], weight.shape[2:])
    padding = window.symmetric_padding
    x_in = x if padding is not None else _pad(x, window, 0)
    conv = getattr(colnn, f"conv{x.ndim - 2}d")
    return [conv(x_in, weight, bias, window.strides, padding or 0, window.dilations, case.attrs.get("group", 1))]


def _conv_transpose(case: Case) -> list[np.ndarray]:
    x, weight = case.inputs[:2]
    bias = case.inputs[2] if len(case.inputs) > 2 else None
    n = x.ndim - 2
    attrs = case.attrs
    strides = tuple(attrs.get("strides", (1,) * n))
    dilations = tuple(attrs.get("dilations", (1,) * n))
    output_padding = tuple(attrs.get("output_padding", (0,) * n))
    full = [s * (size - 1) + (k - 1) * d + 1
            for s, size, k, d in zip(strides, x.shape[2:], weight.shape[2:], dilations)]
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if "output_shape" in attrs or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        wanted = attrs.get("output_shape") or [size * s for size, s in zip(x.shape[2:], strides)]
        totals = [f + op - w for f, op, w in zip(full, output_padding, wanted)]
        # ONNX's split: SAME_UPPER puts the smaller half first, otherwise last (Python's floor division).
        pads = [(t // 2, t - t // 2) if auto_pad == "SAME_UPPER" else (t - t // 2, t // 2) for t in totals]
    else:
        flat = attrs.get("pads", (0,) * (2 * n))
        pads = list(zip(flat[:n], flat[n:]))
    conv_transpose = getattr(colnn, f"conv_transpose{n}d")
    groups = attrs.get("group", 1)
    # colnn's padding p with output_padding o crops p cells first and p - o last.
    expressible = [begin >= 0 and 0 <= op + begin - end < max(s, d)
                   for (begin, end), op, s, d in zip(pads, output_padding, strides, dilations)]
    if all(expressible):
        return [conv_transpose(x, weight, bias, strides, tuple(b for b, _ in pads),
                               tuple(op + b - e for (b, e), op in zip(pads, output_padding)), groups, dilations)]
    # Otherwise: the unpadded result, cropped by positive pads and extended (by the bias) by negative ones.
    unpadded = conv_transpose(x, weight, bias, strides, 0, 0, groups, dilations)
    out_channels = weight.shape[1] * groups
    extra = np.zeros(out_channels, x.dtype) if bias is None else bias
    sizes = [f + op - b - e for f, op, (b, e) in zip(full, output_padding, pads)]
    result = np.broadcast_to(extra.reshape(1, -1, *(1,) * n), (x.shape[0], out_channels, *sizes)).copy()
    source = tuple(slice(max(b, 0), min(f, b + size)) for f, (b, _), size in zip(full, pads, sizes))
    target = tuple(slice(max(-b, 0), max(-b, 0) + (s.stop - s.start)) for (b, _), s in zip(pads, source))
    result[(..., *target)] = unpadded[(..., *source)]
    return [result]


def _max_unpool(case: Case) -> list[np.ndarray]:
    x, indices = case.inputs[:2]
    n = x.ndim - 2
    window = _window(case, x.shape[2:])
    padding = window.symmetric_padding
    assert padding is not None, "MaxUnpool with asymmetric pads: map this case by hand"
    # ONNX's indices count over the whole tensor of the inferred size (PyTorch's default output
    # size), colnn's over one plane; ONNX's output_shape then extends that result with zeros.
    inferred = tuple((size - 1) * s + k - 2 * p for size, s, k, p in
                     zip(x.shape[2:], window.strides, window.kernel, padding))
    planes = np.arange(x.shape[0] * x.shape[1], dtype=np.int64).reshape(x.shape[0], x.shape[1], *(1,) * n)
    plane_indices = indices - planes * math.prod(inferred)
    unpooled = getattr(colnn, f"max_unpool{n}d")(x, plane_indices, window.kernel, window.strides, padding)
    if len(case.inputs) < 3:
        return [unpooled]
    extended = np.zeros(tuple(int(size) for size in case.inputs[2]), unpooled.dtype)
    extended[tuple(slice(0, size) for size in unpooled.shape)] = unpooled
    return [extended]


def _col2im(case: Case) -> list[np.ndarray]:
    cols, image_shape, block_shape = case.inputs
    window = _window(case, tuple(int(s) for s in image_shape), tuple(int(k) for k in block_shape))
    padding = window.symmetric_padding
    assert padding is not None, "Col2Im with asymmetric pads: map this case by hand"
    return [colnn.fold(cols, tuple(int(s) for s in image_shape), window.kernel, window.dilations, padding,
                       window.strides)]


def _global(kind: str) -> Callable[[Case], list[np.ndarray]]:
    def run(case: Case) -> list[np.ndarray]:
        x = case.inputs[0]
        n = x.ndim - 2
        if kind == "lp":
            p = float(case.attrs.get("p", 2))
            return [getattr(colnn, f"lp_pool{n}d")(np.abs(x), p, x.shape[2:])]
        return [getattr(colnn, f"adaptive_{kind}_pool{n}d")(x, 1)]
    return run


# Each operator's translation, and whether its outputs are selected/moved values (bit-exact) or sums.
MAPPINGS: dict[str, tuple[Callable[[Case], list[np.ndarray]], bool]] = {
    "MaxPool": (_max_pool, True),
    "AveragePool": (_average_pool, False),
    "LpPool": (_lp_pool, False),
    "Conv": (_conv, False),
    "ConvTranspose": (_conv_transpose, False),
    "MaxUnpool": (_max_unpool, True),
    "Col2Im": (_col2im, True),
    "GlobalAveragePool": (_global("avg"), False),
    "GlobalMaxPool": (_global("max"), True),
    "GlobalLpPool": (_global("lp"), False),
}


# Cases whose input and expected output ONNX's generator writes out by hand to 4 decimals, the
# output computed from the unrounded input: the absolute tolerance is half a unit of the output's
# last digit plus the most the input's rounding (half a unit per cell) moves an average, 1e-4
# in all. A wrong divisor (4 real cells instead of 9) is off by 0.2 or more.
ROUNDED = {"test_averagepool_2d_ceil_last_window_starts_on_pad": 1e-4}


def _check_case(case: Case) -> None:
    run, exact = MAPPINGS[case.op_type]
    outputs = run(case)
    assert len(outputs) == len(case.outputs), f"{len(outputs)} outputs, ONNX gives {len(case.outputs)}"
    for index, (actual, expected) in enumerate(zip(outputs, case.outputs)):
        if case.name in ROUNDED:
            assert actual.dtype == expected.dtype and actual.shape == expected.shape, f"output {index}"
            np.testing.assert_allclose(actual, expected, rtol=0, atol=ROUNDED[case.name], err_msg=f"output {index}")
        else:
            assert_matches(actual, expected, exact or index > 0, f"output {index}")


@pytest.mark.parametrize(("op_type", "export"), _exports())
def test_onnx_node_tests_match(monkeypatch, op_type, export):
    cases = _collect(monkeypatch, op_type, export)
    assert cases, f"{export} produced no case"
    mismatches = Mismatches(f"{op_type}.{export}")
    for case in cases:
        if case.name in UNSUPPORTED:
            continue
        mismatches.check(f"{case.name} (attributes {case.attrs})", lambda case=case: _check_case(case))
    mismatches.assert_none()
