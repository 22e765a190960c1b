"""Tests of the figure of ``colnn explain`` (``plot.py``): what a newcomer reading it needs.

The figure is inspected as matplotlib objects (texts, patches and their
positions in cell units) of :func:`draw`, against what the window geometry
says should be there.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from colnn.apps.explain import conv_walk, pool_walk, tutorial_input

pytest.importorskip("matplotlib")
from matplotlib.patches import Rectangle

from colnn.apps.explain.plot import _block_size, _layout, draw


def texts(walk: Any) -> list[Any]:
    return draw(walk).axes[0].texts


def strings(walk: Any) -> list[str]:
    return [text.get_text() for text in texts(walk)]


def test_windows_are_outlined_and_numbered_on_the_input() -> None:
    walk = pool_walk(tutorial_input())  # four 2x2 windows side by side, on three planes
    axes = draw(walk).axes[0]
    outlines = [patch for patch in axes.patches if isinstance(patch, Rectangle) and not patch.get_fill()]
    assert len(outlines) == 4 * 3
    assert sorted({round(p.get_width(), 2) for p in outlines}) == [2 - 2 * 0.05]
    labels = [t.get_text() for t in axes.texts]
    for window in ("w1", "w2", "w3", "w4"):
        assert labels.count(window) == 3 + 1  # once per plane, once beside its row of col


def test_rows_of_col_and_rows_are_labelled_with_their_window() -> None:
    walk = pool_walk(tutorial_input())
    layout = _layout(walk)
    left, top = layout.blocks["rows"]
    beside = {round(t.get_position()[1] - top - 0.52): t.get_text() for t in texts(walk)
              if t.get_position()[0] < left + 3 and t.get_position()[0] > left - 0.01 and t.get_ha() == "right"}
    # Row r of rows is window r // C of channel r % C (C = 3).
    assert [beside[row] for row in range(12)] == [f"w{row // 3 + 1} ch{row % 3 + 1}" for row in range(12)]


def test_convolution_draws_the_filters_and_their_gradients() -> None:
    drawn = strings(conv_walk(tutorial_input(), backward=True))
    assert "filter 2, channel 3" in drawn  # W's planes
    assert "dW_col = col.T @ dout_col" in drawn and "db = dout_col.sum(axis=0)" in drawn


def test_backward_legend_says_pale_is_zero_gradient() -> None:
    assert "pale: zero gradient" in strings(pool_walk(tutorial_input(), backward=True))
    assert "pale: zero gradient" not in strings(pool_walk(tutorial_input()))


def test_which_cell_won_each_row_is_a_panel() -> None:
    walk = pool_walk(tutorial_input(), backward=True)
    winners = walk.step("argmax")
    assert winners.column is not None
    left, top = _layout(walk).blocks["argmax"]
    inside = [t.get_text() for t in texts(walk)
              if left <= t.get_position()[0] <= left + 3 and top <= t.get_position()[1] <= top + 12]
    # The offsets the panel shows are the rows' argmax, from NumPy on the rows.
    for offset in np.argmax(walk.step("rows").array, axis=1):
        assert str(offset) in inside


def test_unused_cells_are_crossed_out() -> None:
    x = np.arange(1 * 5 * 5.0).reshape(1, 1, 5, 5)
    axes = draw(pool_walk(x)).axes[0]
    crosses = [line for line in axes.lines if len(line.get_xdata()) == 2]
    assert len(crosses) == 2 * 9 + 2  # two strokes per cell of the last row and column, and the legend's
    assert "crossed: in no window" in [t.get_text() for t in axes.texts]


def block_font_sizes(walk: Any, key: str) -> set[float]:
    """The sizes of the values drawn in one step's block (centred texts inside it)."""
    left, top = _layout(walk).blocks[key]
    width, height = _block_size(walk.step(key))
    return {t.get_fontsize() for t in texts(walk)
            if left <= t.get_position()[0] <= left + width and top <= t.get_position()[1] <= top + height
            and t.get_ha() == "center"}


def test_average_pooling_values_share_one_font_size() -> None:
    walk = pool_walk(tutorial_input(), mode="avg")  # means 1, 2.25, 4.5, ...
    assert len(block_font_sizes(walk, "reduced")) == 1


def test_minus_infinity_is_drawn_large() -> None:
    walk = pool_walk(tutorial_input(), kernel=3, stride=1, pad=1)
    padding = [t for t in texts(walk) if t.get_text() == "\u2212\u221e"]
    assert padding and min(t.get_fontsize() for t in padding) >= 9
    assert "-inf" not in strings(walk)
