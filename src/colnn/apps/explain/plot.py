"""Draw a :class:`colnn.apps.explain.Walk` as one figure, in the tutorial's colors.

Every array is a block of unit cells on one canvas, so a cell has the same size
in every panel: the input's planes, the im2col matrix, the rows, the reduced
values and the output. Each cell is filled with its channel's color (orange,
green, blue, as in the tutorial; then a cycle of further colors), padding is
grey, and the cell a row's maximum took has a dark edge and a darker fill.
The forward walk runs left to right; the backward walk, if any, runs right to
left beneath it, each gradient under the array it is the gradient of.

Imported only when a figure is asked for: it needs matplotlib.
"""

from __future__ import annotations

import math
import re
import textwrap
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ...core.window import Window
from .palette import CHANNEL_COLORS, FILTER_COLORS, PADDING_COLOR
from .records import BAND_TITLES, Step, cell_text
from .walk import Walk

__all__ = ["CHANNEL_COLORS", "FILTER_COLORS", "PADDING_COLOR", "UNIT_INCHES", "figure_size", "draw", "save_figure"]

EDGE_COLOR = "#ffffff"
CHOSEN_EDGE = "#1a1a1a"

UNIT_INCHES = 0.36  # side of one cell
MARGIN = 0.7
COLUMN_GAP = 1.8  # room for the arrow between two panels
GRID_GAP = 0.35  # between the planes of a 4-D array
IMAGE_GAP = 0.9  # between the images of a batch
GRID_LABEL = 0.6  # the "channel 1" line above each plane
HEADER = 2.3  # figure title and legend
BAND_LABEL = 0.9
BAND_GAP = 0.9
TITLE_LINE = 0.5
TITLE_CHARS = 30  # wrap panel titles and code to this many characters
CHAR_UNITS = 8.5 * 0.62 / 72 / UNIT_INCHES  # width of one 8.5 pt character, in cells
HEADLINE_POINTS = 12
ROW_LABEL_POINTS = 7.5
WINDOW_COLORS = ("#1a1a1a", "#7a1f1f", "#1f3f77", "#4d4d00")  # window outlines, cycled for neighbours
GRADIENT_BANDS = ("backward", "parameters")


def _channel_label(step: Step, image: int, channel: int, batch: int) -> str:
    kind = "filter" if step.palette == "filter" else "channel"
    prefix = f"{step.outer} {image + 1}, " if batch > 1 or step.outer != "image" else ""
    return f"{prefix}{kind} {channel + 1}"


def _row_label_width(step: Step) -> float:
    """Room in cells left of a matrix for its row labels (``w3``: window 3)."""
    if step.row_labels is None or step.array.ndim == 4:
        return 0.0
    return max(len(label) for label in step.row_labels) * CHAR_UNITS * ROW_LABEL_POINTS / 8.5 + 0.3


def _wrap_code(code: str) -> list[str]:
    """Break an expression before a chained ``.method(`` or after ``; `` so it fits a panel."""
    if len(code) <= TITLE_CHARS:
        return [code]
    pieces = re.split(r"(?=\.\w+\()|(?<=; )", code)
    lines = [""]
    for piece in pieces:
        if lines[-1] and len(lines[-1]) + len(piece) > TITLE_CHARS:
            lines.append("  ")
        lines[-1] += piece
    return [line.rstrip() for line in lines]


def _title_lines(step: Step) -> list[tuple[str, str]]:
    """``(text, style)`` lines above a panel: what it is, the code, the shape."""
    heading = f"{step.label}: {step.title}" if step.label else step.title.capitalize()
    lines = [(line, "heading") for line in textwrap.wrap(heading, TITLE_CHARS)]
    lines += [(line, "code") for line in _wrap_code(step.code)]
    lines.append((f"shape {step.shape}", "shape"))
    return lines


def _plane_slot(step: Step) -> tuple[float, float]:
    """Room taken by one labelled plane of a 4-D step: wide enough for its label too."""
    batch, channels, height, width = step.array.shape
    pad_h, pad_w = step.ring
    longest_label = max(len(_channel_label(step, image, channel, batch))
                        for image, channel in np.ndindex(batch, channels))
    return max(width + 2 * pad_w, longest_label * CHAR_UNITS), height + 2 * pad_h + GRID_LABEL


def _block_size(step: Step) -> tuple[float, float]:
    """Width and height in cells of a step's drawing."""
    array = step.array
    if array.ndim == 4:
        batch, channels = array.shape[:2]
        slot_w, slot_h = _plane_slot(step)
        return batch * slot_w + (batch - 1) * IMAGE_GAP, channels * slot_h + (channels - 1) * GRID_GAP
    if array.ndim == 2:
        return array.shape[1] + _row_label_width(step), float(array.shape[0])
    return 1.0 + _row_label_width(step), float(array.shape[0])


@dataclass(frozen=True)
class _Layout:
    """Where everything goes, in cell units from the top left corner."""

    width: float
    height: float
    blocks: dict[str, tuple[float, float]]  # step key -> top left of its block
    titles: dict[str, tuple[float, float]]  # step key -> bottom centre of its title
    bands: dict[str, float]  # band -> top of its label


def _headline(walk: Walk) -> str:
    return f"colnn explain: {walk.headline}, on {walk.source}"


def _layout(walk: Walk) -> _Layout:
    drawn = [step for step in walk.steps if step.column is not None]
    columns = sorted({step.column for step in walk.steps if step.column is not None})
    column_width = {
        column: max(
            max(_block_size(step)[0], max(len(text) for text, _ in _title_lines(step)) * CHAR_UNITS)
            for step in drawn if step.column == column
        )
        for column in columns
    }
    column_left, x = {}, MARGIN
    for column in columns:
        column_left[column] = x
        x += column_width[column] + COLUMN_GAP
    blocks, titles, bands = {}, {}, {}
    y = MARGIN + HEADER
    for band in BAND_TITLES:
        members = [step for step in drawn if step.band == band]
        if not members:
            continue
        bands[band] = y
        title_height = max(len(_title_lines(step)) for step in members) * TITLE_LINE + 0.3
        top = y + BAND_LABEL + title_height
        for step in members:
            assert step.column is not None  # a drawn step
            width, _ = _block_size(step)
            centre = column_left[step.column] + column_width[step.column] / 2
            blocks[step.key] = (centre - width / 2, top)
            titles[step.key] = (centre, top - 0.25)
        y = top + max(_block_size(step)[1] for step in members) + BAND_GAP
    # A narrow walk with a long file name must still fit its headline.
    headline_width = len(_headline(walk)) * CHAR_UNITS * HEADLINE_POINTS / 8.5
    width = max(x - COLUMN_GAP, MARGIN + headline_width) + MARGIN
    return _Layout(width, y - BAND_GAP + MARGIN, blocks, titles, bands)


def _whole_inches(inches: float) -> float:
    """Round up to whole inches, so that the image is exactly ``inches * dpi`` pixels at any dpi."""
    return float(math.ceil(inches))


def figure_size(walk: Walk) -> tuple[float, float]:
    """The figure's ``(width, height)`` in inches: the PNG is this times the dpi, in pixels."""
    layout = _layout(walk)
    return _whole_inches(layout.width * UNIT_INCHES), _whole_inches(layout.height * UNIT_INCHES)


def _lighter(color: str, amount: float = 0.6) -> tuple[float, float, float]:
    red, green, blue = to_rgb(color)
    return red + (1 - red) * amount, green + (1 - green) * amount, blue + (1 - blue) * amount


def _darker(color: str, amount: float = 0.22) -> tuple[float, float, float]:
    red, green, blue = to_rgb(color)
    return red * (1 - amount), green * (1 - amount), blue * (1 - amount)


class _Painter:
    """Draws cells on one axes whose units are cells and whose y axis points down."""

    def __init__(self, axes: Axes, pad_value: float) -> None:
        self.axes = axes
        self.pad_text = cell_text(pad_value)
        self.fade_zeros = False  # in a gradient, the zeros are where nothing flows
        self.font_size = 9.0  # one size per block, so that a column of values reads evenly

    def value_cell(self, x: float, y: float, value: float, fill: str, chosen: bool) -> None:
        self.cell(x, y, value, fill, chosen=chosen, faded=self.fade_zeros and value == 0)

    def fit_font(self, step: Step) -> None:
        """The largest of three sizes at which the block's longest value fits a cell."""
        longest = max([len(cell_text(v)) for v in np.ravel(step.array)] + [len(self.pad_text)])
        self.font_size = 9 if longest <= 3 else 7.5 if longest <= 5 else 6.5

    def cell(
        self, x: float, y: float, value: float | None, fill: str, *, chosen: bool = False, faded: bool = False
    ) -> None:
        face = _darker(fill) if chosen else _lighter(fill) if faded else fill
        self.axes.add_patch(Rectangle(
            (x, y), 1, 1, facecolor=face, edgecolor=CHOSEN_EDGE if chosen else EDGE_COLOR,
            linewidth=2.2 if chosen else 1.0, zorder=3 if chosen else 2,
        ))
        text = self.pad_text if value is None else cell_text(value)
        self.axes.text(
            x + 0.5, y + 0.52, text, ha="center", va="center", fontsize=self.font_size, zorder=4,
            color="#666666" if fill == PADDING_COLOR else "black", fontweight="bold" if chosen else "normal",
        )

    def block(self, step: Step, left: float, top: float) -> None:
        palette = FILTER_COLORS if step.palette == "filter" else CHANNEL_COLORS
        array = step.array
        if array.ndim == 4:
            self._planes(step, left, top, palette)
            return
        cells = array.reshape(array.shape[0], -1)  # a vector is drawn as a column
        shape = cells.shape
        label_width = _row_label_width(step)
        for row, label in enumerate(step.row_labels or ()):
            self.axes.text(left + label_width - 0.15, top + row + 0.52, label, ha="right", va="center",
                           fontsize=ROW_LABEL_POINTS, color="#333333")
        left += label_width
        channel = np.zeros(shape, int) if step.channel is None else np.reshape(step.channel, shape)
        padded = np.zeros(shape, bool) if step.padded is None else np.reshape(step.padded, shape)
        chosen = np.zeros(shape, bool) if step.chosen is None else np.reshape(step.chosen, shape)
        for row, column in np.ndindex(shape):
            fill = PADDING_COLOR if padded[row, column] else palette[channel[row, column] % len(palette)]
            if padded[row, column]:
                self.cell(left + column, top + row, None, fill)
            else:
                self.value_cell(left + column, top + row, float(cells[row, column]), fill, bool(chosen[row, column]))

    def _planes(self, step: Step, left: float, top: float, palette: tuple[str, ...]) -> None:
        batch, channels, height, width = step.array.shape
        pad_h, pad_w = step.ring
        slot_w, slot_h = _plane_slot(step)
        chosen = np.zeros(step.array.shape, bool) if step.chosen is None else step.chosen
        for image, channel in np.ndindex(batch, channels):
            x0 = left + image * (slot_w + IMAGE_GAP)
            y0 = top + channel * (slot_h + GRID_GAP)
            self.axes.text(x0, y0 + GRID_LABEL - 0.15, _channel_label(step, image, channel, batch),
                           fontsize=8, va="bottom", color="#333333")
            y0 += GRID_LABEL
            fill = palette[channel % len(palette)]
            for row, column in np.ndindex(height + 2 * pad_h, width + 2 * pad_w):
                inside_row, inside_column = row - pad_h, column - pad_w
                if 0 <= inside_row < height and 0 <= inside_column < width:
                    self.value_cell(x0 + column, y0 + row, step.array[image, channel, inside_row, inside_column],
                                    fill, bool(chosen[image, channel, inside_row, inside_column]))
                    if step.unused is not None and step.unused[image, channel, inside_row, inside_column]:
                        self._cross(x0 + column, y0 + row)
                else:
                    self.cell(x0 + column, y0 + row, None, PADDING_COLOR)
            if self.windows is not None:
                self._windows(self.windows, image, channel, x0 + pad_w, y0 + pad_h)

    windows: Window | None = None  # set for the input: draw its windows on every plane

    def _cross(self, x: float, y: float) -> None:
        """An input cell no window covers: crossed out, as the note says."""
        for start, end in (((x + 0.12, y + 0.12), (x + 0.88, y + 0.88)), ((x + 0.12, y + 0.88), (x + 0.88, y + 0.12))):
            self.axes.plot(*zip(start, end), color="#555555", linewidth=1.1, zorder=5)

    def _windows(self, window: Window, image: int, channel: int, x0: float, y0: float) -> None:
        """Outline windows on one plane, numbered as their im2col rows (w1, w2, ...).

        Windows side by side are all drawn on every plane. Overlapping ones would hide the
        numbers, so then only the first window and its neighbours to the right and below are
        drawn, on channel 1, in different insets and colours: they show the stride.
        """
        overlap = window.stride_h < window.kernel_h or window.stride_w < window.kernel_w
        if overlap and channel > 0:
            return
        shown = [(0, 0), (0, 1), (1, 0)] if overlap else list(np.ndindex(window.out_h, window.out_w))
        for out_y, out_x in shown:
            if out_y >= window.out_h or out_x >= window.out_w:
                continue
            number = (image * window.out_h + out_y) * window.out_w + out_x + 1
            style = (out_y % 2) * 2 + out_x % 2 if overlap else 0
            inset = 0.05 + 0.09 * style
            top, left = y0 + out_y * window.stride_h - window.pad_h, x0 + out_x * window.stride_w - window.pad_w
            color = WINDOW_COLORS[style]
            self.axes.add_patch(Rectangle(
                (left + inset, top + inset), window.kernel_w - 2 * inset, window.kernel_h - 2 * inset,
                fill=False, edgecolor=color, linewidth=1.4, linestyle="-" if style == 0 else "--", zorder=6,
            ))
            self.axes.text(left + inset + 0.04, top + inset + 0.03, f"w{number}", fontsize=5.5, color=color,
                           ha="left", va="top", zorder=6)


def _title(axes: Axes, step: Step, centre: float, bottom: float) -> None:
    styles: dict[str, dict[str, Any]] = {
        "heading": {"fontsize": 9, "fontweight": "bold"},
        "code": {"fontsize": 8.5, "family": "monospace", "color": "#1f3f77"},
        "shape": {"fontsize": 8.5, "color": "#444444"},
    }
    # Bottom-aligned, so that every panel's shape line sits just above its block.
    lines = _title_lines(step)
    for index, (text, style) in enumerate(reversed(lines)):
        axes.text(centre, bottom - index * TITLE_LINE, text, ha="center", va="bottom", **styles[style])


def _arrows(axes: Axes, walk: Walk, layout: _Layout) -> None:
    """Join consecutive drawn steps of each band, in the walk's order, where the second is made in that band."""
    for band in layout.bands:
        members = [step for step in walk.steps if step.band == band and step.column is not None]
        keys = {step.key for step in members}
        for source, target in pairwise(members):
            if not any(link.key in keys for link in target.sources):
                continue  # made from another band's arrays (W_col from W, dW from col and dout)
            (source_x, top), (target_x, _) = layout.blocks[source.key], layout.blocks[target.key]
            source_w, source_h = _block_size(source)
            target_w, target_h = _block_size(target)
            y = top + min(source_h, target_h, 6.0) / 2
            if source_x < target_x:
                start, end = source_x + source_w + 0.15, target_x - 0.15
            else:
                start, end = source_x - 0.15, target_x + target_w + 0.15
            axes.annotate("", xy=(end, y), xytext=(start, y),
                          arrowprops={"arrowstyle": "-|>", "color": "#555555", "linewidth": 1.4})


def _header(axes: Axes, walk: Walk, layout: _Layout) -> None:
    axes.text(MARGIN, MARGIN + 0.2, _headline(walk), fontsize=HEADLINE_POINTS, fontweight="bold", va="top")
    swatches: list[tuple[str, str, str | bool]] = []  # label, colour, style (False: a plain swatch)
    for step in walk.steps:
        if step.array.ndim == 4 and step.column is not None:
            palette = FILTER_COLORS if step.palette == "filter" else CHANNEL_COLORS
            kind = "filter" if step.palette == "filter" else "channel"
            for index in range(step.array.shape[1]):
                swatch = (f"{kind} {index + 1}", palette[index % len(palette)], False)
                if swatch not in swatches:
                    swatches.append(swatch)
    if any(step.padded is not None and step.padded.any() for step in walk.steps):
        swatches.append(("padding", PADDING_COLOR, False))
    if any(step.chosen is not None and step.band == "forward" for step in walk.steps):
        swatches.append(("the max of its row", CHANNEL_COLORS[0], "chosen"))
    if any(step.band in GRADIENT_BANDS for step in walk.steps):
        swatches.append(("pale: zero gradient", CHANNEL_COLORS[0], "pale"))
    if any(step.unused is not None for step in walk.steps):
        swatches.append(("crossed: in no window", CHANNEL_COLORS[0], "crossed"))
    if walk.window is not None:
        swatches.append(("w3: window 3 = row 3 of im2col", "#ffffff", "window"))
    x, y = MARGIN, MARGIN + 1.1
    for label, color, style in swatches:
        face = _darker(color) if style == "chosen" else _lighter(color) if style == "pale" else color
        axes.add_patch(Rectangle(
            (x, y), 0.7, 0.7, facecolor=face, edgecolor=CHOSEN_EDGE if style in ("chosen", "window") else "#999999",
            linewidth=2.0 if style == "chosen" else 1.3 if style == "window" else 0.6,
        ))
        if style == "crossed":
            axes.plot([x + 0.1, x + 0.6], [y + 0.1, y + 0.6], [x + 0.1, x + 0.6], [y + 0.6, y + 0.1],
                      color="#555555", linewidth=1.0)
        axes.text(x + 0.95, y + 0.38, label, fontsize=9, va="center")
        x += 1.6 + len(label) * CHAR_UNITS
    for band, top in layout.bands.items():
        axes.text(MARGIN, top + 0.2, BAND_TITLES[band], fontsize=10.5, fontweight="bold", va="top", color="#333333")


def draw(walk: Walk) -> Figure:
    """The whole walk as one matplotlib figure of :func:`figure_size` (no pyplot, no window)."""
    layout = _layout(walk)
    width, height = figure_size(walk)
    figure = Figure(figsize=(width, height))
    axes = figure.add_axes((0, 0, 1, 1))
    # One data unit is one cell on both axes; what rounding up added is shared by the margins.
    extra_x, extra_y = width / UNIT_INCHES - layout.width, height / UNIT_INCHES - layout.height
    axes.set_xlim(-extra_x / 2, layout.width + extra_x / 2)
    axes.set_ylim(layout.height + extra_y / 2, -extra_y / 2)
    axes.axis("off")
    painter = _Painter(axes, walk.pad_value)
    for step in walk.steps:
        if step.column is None:
            continue
        painter.fade_zeros = step.key.startswith("grad_")  # a gradient, not e.g. the winners' offsets
        painter.windows = walk.window if step.key == "input" else None
        painter.fit_font(step)
        painter.block(step, *layout.blocks[step.key])
        _title(axes, step, *layout.titles[step.key])
    _arrows(axes, walk, layout)
    _header(axes, walk, layout)
    return figure


def save_figure(walk: Walk, path: str | Path, *, dpi: int = 100, format: str | None = None) -> None:
    """Write the figure to ``path``; ``format`` (``"png"``, ``"svg"``, ``"jpg"``: any of matplotlib's)
    defaults to the file's suffix.

    SVG text stays text (searchable, small), and the file is deterministic.
    """
    figure = draw(walk)
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "colnn"}):
        figure.savefig(path, dpi=dpi, format=format, facecolor="white", metadata=_metadata(format, path))


def _metadata(format: str | None, path: str | Path) -> dict[str, str | None] | None:
    """Drop the date and version stamps so a re-run writes the same bytes; None for formats without metadata
    (matplotlib refuses any for JPEG, TIFF, WebP...)."""
    kind = (format or Path(path).suffix.lstrip(".") or "png").lower()
    stamps: dict[str, dict[str, str | None]] = {
        "svg": {"Date": None, "Creator": None},
        "png": {"Software": None},
        "pdf": {"CreationDate": None, "Creator": None, "Producer": None},
    }
    return stamps.get(kind)
