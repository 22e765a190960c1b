"""What every ``colnn bench`` module shares: the cases' shapes, the :class:`Case` record, and the table's cells.

:mod:`colnn.apps.bench` (the main table), :mod:`colnn.apps.bench_family` (the
1/2/3-d rows) and :mod:`colnn.apps.bench_peers` (ONNX Runtime, JAX, the
training step) all build :class:`Case` objects on the shapes below and print
their rows with the same conventions: the ratio "÷ colnn" (a row's time over
colnn's), the noise mark and its warnings. They import this module; it imports
none of them.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["POOL_SHAPES", "CONV_SHAPES", "QUICK_POOL_SHAPES", "QUICK_CONV_SHAPES", "COPY_IMPL", "LIMIT_FLOOR_MS",
           "NOISE_RATIO", "COLNN_RATIO", "LIMIT_RATIO", "COPY_RATIO", "COLNN_RATIO_NOTE", "RATIO_LEGEND",
           "SHAPE_LEGEND", "Case", "shape_text", "pool_geometry", "conv_geometry", "summarize_times", "spread_cell",
           "noise_warnings"]

# Shapes of the issue (float32): pooling (input shape, kernel, stride, padding) and
# convolution (input shape, weight shape, padding).
POOL_SHAPES = {
    "S1": ((64, 64, 56, 56), 2, 2, 0),
    "S2": ((32, 64, 112, 112), 3, 2, 1),
    "S3": ((256, 32, 24, 24), 2, 2, 0),
    "S4": ((8, 3, 1024, 1024), 2, 2, 0),
}
CONV_SHAPES = {
    "C1": ((32, 64, 56, 56), (64, 64, 3, 3), 1),
    "C2": ((64, 1, 28, 28), (30, 1, 5, 5), 0),
}
# --quick: the same kinds of case, small enough for a test.
QUICK_POOL_SHAPES = {"S1": ((4, 8, 56, 56), 2, 2, 0), "S2": ((2, 8, 32, 32), 3, 2, 1)}
QUICK_CONV_SHAPES = {"C1": ((2, 8, 16, 16), (8, 8, 3, 3), 1), "C2": ((4, 1, 28, 28), (6, 1, 5, 5), 0)}

# The floor of a backward pass that returns a fresh array of the input's size.
COPY_IMPL = "x.copy()"
# Below 20 us a limit is a few cache lines and timer jitter: a ratio to it says nothing.
LIMIT_FLOOR_MS = 0.02
# Repeats of one row further apart than this (max / min): something else ran on the cores.
NOISE_RATIO = 1.3
# The column names of the two kinds of ratio, and the one statement of what they mean (printed header, JSON).
COLNN_RATIO, LIMIT_RATIO, COPY_RATIO = "÷ colnn", "x limit", "x copy"
COLNN_RATIO_NOTE = f"Ratios: 'X {COLNN_RATIO}' is X's median time over colnn's (above 1: colnn is faster)."
RATIO_LEGEND = COLNN_RATIO_NOTE + (
    f" '{LIMIT_RATIO}' is a time over the limit's time, 1.0 is the limit (below 1: the data stayed in cache): "
    "for pooling the bytes read + written at the measured bandwidth, for convolution the direct method's "
    f"FLOPs at the SGEMM rate; '{COPY_RATIO}' is a time over that of x.copy() of the input into fresh memory "
    "(backward's floor: its gradient is such an array). '-': the limit took under "
    f"{LIMIT_FLOOR_MS * 1e3:.0f} us, too short to compare against.")
SHAPE_LEGEND = ("Shapes: input (N,C,H,W) with kernel k, stride s, padding p; a convolution's "
                "input * weight (out,in,kh,kw).")


def shape_text(shape: tuple[int, ...]) -> str:
    """``(64,64,56,56)``: a shape without spaces, so that table cells stay narrow."""
    return "(" + ",".join(str(size) for size in shape) + ")"


def pool_geometry(shape: tuple[int, ...], kernel: int, stride: int, pad: int) -> str:
    """A pooling case's geometry as the table prints it: ``(64,64,56,56) k2 s2 p0``."""
    return f"{shape_text(shape)} k{kernel} s{stride} p{pad}"


def conv_geometry(x_shape: tuple[int, ...], w_shape: tuple[int, ...], stride: int, pad: int) -> str:
    """A convolution case's geometry: ``(32,64,56,56) * (64,64,3,3) s1 p1``."""
    return f"{shape_text(x_shape)} * {shape_text(w_shape)} s{stride} p{pad}"


def summarize_times(seconds: list[float]) -> dict[str, Any]:
    """Median, min and max in milliseconds of one row's repeats, and whether they disagree (``noisy``)."""
    return {"median_ms": 1e3 * statistics.median(seconds), "min_ms": 1e3 * min(seconds),
            "max_ms": 1e3 * max(seconds), "noisy": max(seconds) > NOISE_RATIO * min(seconds)}


def spread_cell(row: dict[str, Any]) -> str:
    """A row's min-max as printed, marked ``*`` where its repeats disagree (``noisy``)."""
    return f"{row['min_ms']:.2f}-{row['max_ms']:.2f}{'*' if row['noisy'] else ''}"


def noise_warnings(rows: list[dict[str, Any]], load: float | None, cores: int | None) -> list[str]:
    """Warning lines under a table: rows marked noisy, and a load average above the number of cores."""
    lines = []
    noisy = sum(bool(row["noisy"]) for row in rows)
    if noisy:
        lines.append(f"WARNING: {noisy} of {len(rows)} rows (marked *) had repeats more than {NOISE_RATIO}x apart "
                     "(max / min): their ratios are unreliable; rerun on a quiet machine or with more --repeat.")
    if load is not None and cores and load > cores:
        lines.append(f"WARNING: load average {load:.2f} above the {cores} cores: other work shared them, "
                     "so every ratio is unreliable.")
    return lines


@dataclass
class Case:
    """A benchmark case: what it computes, on what shape, its limit, and the implementations to time."""

    name: str
    shape: str
    limit_ms: float | None
    input_mb: float
    impls: dict[str, Callable[[], Any]] = field(default_factory=dict)
