"""The data behind ``colnn explain``: the tutorial's im2col walk as a list of steps.

The tutorial ("im2col in the pooling layer", after *Deep Learning from
Scratch*) shows how a 3-channel 4x4 input becomes a matrix whose rows each hold
one pooling window of one channel, so that 2x2 max pooling is one ``max`` per
row, and how the maxima are put back into ``(N, C, H, W)``.

This module holds the :class:`Walk` (its steps, :class:`Step` and
:class:`Link`, are the records of :mod:`colnn.apps.explain.records`), the
size limits and the inputs. The walks themselves are built in
:mod:`colnn.apps.explain.pool_walk` and :mod:`colnn.apps.explain.conv_walk`
from the shared steps of :mod:`colnn.apps.explain.steps`; rendering is in
:mod:`colnn.apps.explain.command` (text) and :mod:`colnn.apps.explain.plot`
(the figure).

Every step is computed in float64, as the tutorial's ``im2col`` does (it
fills a ``np.zeros`` buffer), so values print as the tutorial's do: ``2.``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...core.arrayfile import ArrayFileError, read_npy
from ...core.checks import check_array
from ...core.window import Window
from .html import render_html
from .records import BAND_TITLES, Link, Step, cell_text

__all__ = [
    "BAND_TITLES",
    "Link",
    "Step",
    "cell_text",
    "Walk",
    "Limits",
    "LIMITS",
    "WalkTooLarge",
    "TUTORIAL_SOURCE",
    "tutorial_input",
    "default_weight",
    "load_array",
]

TUTORIAL_SOURCE = "the tutorial's example"


@dataclass(frozen=True, eq=False)
class Walk:
    """A whole walk: its settings, its steps in order, and notes for the reader.

    ``pad_value`` is what a padded cell holds (``-inf`` for max pooling, else 0);
    ``window`` is the geometry of the windows (one row of im2col each).
    In Jupyter a walk shows as the interactive page of :mod:`.html`.
    """

    headline: str
    source: str
    pad_value: float
    steps: tuple[Step, ...]
    notes: tuple[str, ...] = field(default=())
    window: Window | None = None

    def _repr_html_(self) -> str:
        return render_html(self, inline=True)

    def step(self, key: str) -> Step:
        """The step called ``key``; KeyError lists the keys there are."""
        for candidate in self.steps:
            if candidate.key == key:
                return candidate
        raise KeyError(f"no step {key!r}; steps are {[s.key for s in self.steps]}")

    @property
    def forward_result(self) -> np.ndarray:
        """The last forward array: the layer's output ``(N, C', out_h, out_w)``."""
        return [s for s in self.steps if s.band == "forward"][-1].array


# --- limits ----------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """The largest walk that still reads well in a terminal and in one figure.

    The matrix limits bind first: e.g. a 3-channel 8x8 input pools 2x2 with
    stride 2 into 16*3 = 48 rows, but with stride 1 into 147 rows (refused).
    """

    batch: int = 2
    channels: int = 4
    plane: int = 10
    filters: int = 4
    matrix_rows: int = 48
    matrix_columns: int = 36

    def describe(self) -> str:
        return (
            f"N <= {self.batch}, C <= {self.channels}, H and W <= {self.plane}, "
            f"at most {self.matrix_rows} rows and {self.matrix_columns} columns in each matrix, "
            f"at most {self.filters} filters"
        )


LIMITS = Limits()


class WalkTooLarge(ValueError):
    """The walk would have more cells than :data:`LIMITS` allows to show."""


def check_limit(what: str, value: int, limit: int) -> None:
    if value > limit:
        raise WalkTooLarge(
            f"too large to show legibly: {what} is {value}, the limit is {limit} ({LIMITS.describe()})"
        )


def check_input_size(shape: tuple[int, ...]) -> None:
    n, c, h, w = shape
    check_limit("the batch N", n, LIMITS.batch)
    check_limit("the channel count C", c, LIMITS.channels)
    check_limit("the plane's height H", h, LIMITS.plane)
    check_limit("the plane's width W", w, LIMITS.plane)


def check_matrix_size(name: str, shape: tuple[int, ...]) -> None:
    check_limit(f"the row count of {name} {shape}", shape[0], LIMITS.matrix_rows)
    check_limit(f"the column count of {name} {shape}", shape[1], LIMITS.matrix_columns)


# --- inputs ----------------------------------------------------------------


def tutorial_input() -> np.ndarray:
    """The tutorial's input ``x``, ``(1, 3, 4, 4)`` integers, copied from its text."""
    return np.array([[
        [[1, 2, 3, 0], [0, 1, 2, 4], [1, 0, 4, 2], [3, 2, 0, 1]],
        [[3, 0, 6, 5], [4, 2, 4, 3], [3, 0, 1, 0], [2, 3, 3, 1]],
        [[4, 2, 1, 2], [0, 1, 0, 4], [3, 0, 6, 2], [4, 2, 4, 5]],
    ]])


def default_weight(channels: int, kernel: int) -> np.ndarray:
    """Two filters ``(2, channels, kernel, kernel)`` whose products are easy to check by eye.

    Filter 1 is all ones (the sum of a window over every channel); filter 2 is
    ones on channel 1 only (the sum of channel 1's part of the window).
    """
    weight = np.zeros((2, channels, kernel, kernel))
    weight[0] = 1.0
    weight[1, 0] = 1.0
    return weight


def load_array(path: str | Path, name: str, ndims: tuple[int, ...]) -> np.ndarray:
    """Read a finite real array of an allowed rank from a ``.npy`` file, as float64.

    The file is read by :func:`colnn.core.arrayfile.read_npy`, which never
    unpickles anything.

    Raises
    ------
    ValueError
        with a one-line reason, starting with ``name`` and naming the file, when
        the file is missing, a directory, is not a ``.npy`` array (an ``.npz``
        archive, text, empty, truncated, Python objects), or holds the wrong
        kind of array.
    """
    try:
        loaded = read_npy(path)
    except ArrayFileError as error:
        raise ValueError(f"{name}: cannot read {error}") from None
    try:
        array = check_array(loaded, f"{name} ({path})", ndims=ndims)
    except TypeError as error:
        raise ValueError(str(error)) from None
    return finite(array, f"{name} ({path})")


def finite(array: np.ndarray, name: str) -> np.ndarray:
    """``array`` as float64, if it holds no NaN or inf (the walk's checks compare values exactly)."""
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must hold finite numbers only (no NaN or inf)")
    return array.astype(np.float64)
