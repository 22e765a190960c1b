"""The records a walk is made of, and how their cells and rows are labelled: the bottom of ``colnn explain``.

A walk (:class:`colnn.apps.explain.walk.Walk`) is a sequence of :class:`Step`
arrays whose cells point back at earlier steps through :class:`Link` objects.
The builders (:mod:`.steps`, :mod:`.pool_walk`, :mod:`.conv_walk`) and the
renderers (:mod:`.command`'s text, :mod:`.plot`, :mod:`.html`) all import them
from here; this module imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Link", "Step", "BAND_TITLES", "cell_text", "window_labels", "window_of_label"]


@dataclass(frozen=True, eq=False)
class Link:
    """Where the cells of a step take their values from, in an earlier step.

    ``index[..., k]`` is the flat index of a cell of step ``key`` that the cell
    ``[...]`` reads, or -1 (padding, a constant, fewer sources than ``k``).
    ``copy``: the cell holds that one value unchanged (im2col, a reshape);
    otherwise it combines its sources (a max, a mean, a product, a sum).
    The page's trace-a-number follows these links.
    """

    key: str
    index: np.ndarray
    copy: bool


@dataclass(frozen=True, eq=False)
class Step:
    """One array of the walk, with what a reader needs to follow it.

    Attributes
    ----------
    key : stable name of the step (``"col"``, ``"rows"``, ``"grad_input"``, ...)
    label : its number in the walk (``"Step 1"``, ``"Back 2"``) or ``""`` for an input
    title : a few words on what the array is
    code : the NumPy/colnn expression that computes it
    why : one sentence on why the shape is what it is
    array : the values
    band : ``"forward"`` or ``"backward"``, the figure's row
    column : the figure's column (steps in one column line up; 2.5 sits between columns 2 and 3), None: not drawn
    channel : for each cell, the channel (or, with ``palette="filter"``, the
        filter) it belongs to; it picks the cell's color
    palette : ``"channel"`` or ``"filter"``
    padded : for each cell, whether it is padding
    chosen : for each cell, whether it is the one its row's maximum took
    ring : padding ``(pad_h, pad_w)`` to draw around each plane of a 4-D array
    sources : the earlier steps its cells come from (:class:`Link`)
    row_labels : for a matrix or vector, what each row is (``"w1"``: window 1)
    column_labels : for a matrix, what each column is (``"ch 1"``, ``"filter 2"``)
    unused : for the input, the cells no window covers
    outer : for a 4-D array, what its first axis counts (``"image"``, ``"filter"``)
    """

    key: str
    label: str
    title: str
    code: str
    why: str
    array: np.ndarray
    band: str = "forward"
    column: float | None = None
    channel: np.ndarray | None = None
    palette: str = "channel"
    padded: np.ndarray | None = None
    chosen: np.ndarray | None = None
    ring: tuple[int, int] = (0, 0)
    sources: tuple[Link, ...] = ()
    row_labels: tuple[str, ...] | None = None
    column_labels: tuple[str, ...] | None = None
    unused: np.ndarray | None = None
    outer: str = "image"

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape


# What each band of steps is, as the figure and the page title it.
BAND_TITLES = {
    "filters": "The filters W (Step 2 lays each one out as a column of W_col)",
    "forward": "Forward: left to right",
    "backward": "Backward: the gradient, right to left",
    "parameters": "Backward to the filters: dW and db",
}


def cell_text(value: float) -> str:
    """A cell's value as drawn in the figure and the page: whole numbers without a point, -inf as a short sign."""
    if np.isinf(value):
        return "\u2212\u221e" if value < 0 else "\u221e"
    if float(value).is_integer() and abs(value) < 1e5:
        return str(int(value))
    return f"{value:.3g}"



def window_labels(n_windows: int, channels: int | None = None) -> tuple[str, ...]:
    """Row labels: ``"w3"`` is window 3 (row 3 of im2col); with ``channels``, ``"w3 ch2"``."""
    if channels is None:
        return tuple(f"w{row + 1}" for row in range(n_windows))
    return tuple(f"w{row // channels + 1} ch{row % channels + 1}" for row in range(n_windows * channels))


def window_of_label(label: str) -> int | None:
    """The window (0-based, an im2col row) a :func:`window_labels` label names, or None."""
    head = label.split(" ")[0]
    return int(head[1:]) - 1 if head[:1] == "w" and head[1:].isdigit() else None
