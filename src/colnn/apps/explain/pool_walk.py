"""The tutorial's walk for pooling: im2col, one row per window per channel, one max (or mean) per row."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ...core.checks import describe
from ...core.window import Window
from ...nn.pooling import AvgPool2d, MaxPool2d
from ...ops.pooling import avg_pool2d, max_pool2d
from ...ops.unfold import col2im, im2col
from .records import Link, Step, window_labels
from .steps import (
    GRADIENT_NOTE,
    batched,
    cells,
    channel_labels,
    col2im_step,
    column_channels,
    copy_link,
    finish,
    flat_index,
    grad_output_steps,
    im2col_step,
    input_step,
    padding_mask,
    reshape_link,
    row_channels,
    to_nchw_step,
    unused_note,
)
from .walk import TUTORIAL_SOURCE, Walk, check_input_size, check_matrix_size

__all__ = ["pool_walk"]

# What each pooling mode does to a row, and what the results are called.
_REDUCTIONS = {"max": ("max", "maxima"), "avg": ("mean", "means")}


def pool_walk(
    x: Any,
    kernel: int = 2,
    stride: int | None = None,
    pad: int = 0,
    mode: str = "max",
    backward: bool = False,
    source: str = TUTORIAL_SOURCE,
) -> Walk:
    """The tutorial's pooling walk: im2col, one row per window per channel, a reduction per row.

    Parameters
    ----------
    x : array ``(N, C, H, W)`` or ``(C, H, W)``
    kernel, stride, pad : square window settings; ``stride=None`` means ``kernel``
    mode : ``"max"`` or ``"avg"``
    backward : also walk the gradient back to the input
    source : where ``x`` came from, for the text

    Raises
    ------
    ValueError
        for bad settings (colnn's own checks) and :class:`WalkTooLarge`.
    """
    if mode not in _REDUCTIONS:
        raise ValueError(f"mode must be 'max' or 'avg', got {describe(mode)}")
    x, unbatched = batched(x)
    check_input_size(x.shape)
    stride = kernel if stride is None else stride
    window = Window.build(x.shape[2:], kernel, stride, pad, pooling=True,
                          kernel_name="kernel", stride_name="stride", padding_name="pad")
    # colnn's own answer is what the walk must reach.
    expected = (max_pool2d if mode == "max" else avg_pool2d)(x, kernel, stride, pad)
    assert isinstance(expected, np.ndarray)  # without return_indices: the output alone
    n, c = x.shape[:2]
    area = window.kernel_area
    check_matrix_size("the rows matrix", (n * window.out_h * window.out_w * c, area))
    check_matrix_size("the im2col matrix", (n * window.out_h * window.out_w, c * area))

    pad_value = -np.inf if mode == "max" else 0.0
    col = im2col(x, kernel, kernel, stride, pad, pad_value=pad_value)
    col_padded = padding_mask(x.shape, window)
    rows = col.reshape(-1, area)
    winners = np.argmax(rows, axis=1)
    chosen = np.zeros(rows.shape, dtype=bool)
    chosen[np.arange(rows.shape[0]), winners] = True
    verb, name = _REDUCTIONS[mode]
    reduced = getattr(rows, verb)(axis=1)
    # The input cells some window took: col2im of the one-hot choices.
    won = col2im(chosen.reshape(col.shape).astype(float), x.shape, kernel, kernel, stride, pad) > 0
    row_labels = window_labels(col.shape[0], c)
    whole_rows = Link("rows", flat_index(rows.shape), copy=False)
    steps = [
        replace(input_step(x, source, unbatched, window), chosen=won if mode == "max" else None),
        im2col_step(x, col, window, col_padded, pad_value),
        Step(
            key="rows", label="Step 1b", title="one row per window per channel",
            code=f"rows = col.reshape(-1, {area})",
            why=f"Cutting every row into its C = {c} channel pieces leaves {rows.shape[0]} rows of "
                f"kh*kw = {cells(area)}, ordered window by window and channel by channel within a window, "
                "each holding exactly the cells one output value looks at.",
            array=rows, column=2, channel=row_channels(rows.shape[0], c, area),
            padded=col_padded.reshape(-1, area), chosen=chosen if mode == "max" else None,
            sources=(reshape_link("col", col.shape, rows.shape),), row_labels=row_labels,
        ),
        Step(
            key="reduced", label="Step 2", title=f"the {verb} of each row",
            code=f"{name} = rows.{verb}(axis=1)",
            why=f"Taking the {verb} along axis 1 turns each row's {cells(area)} into one value, "
                f"one per window per channel: {rows.shape[0]} values.",
            array=reduced, column=3, channel=row_channels(rows.shape[0], c),
            sources=(whole_rows,), row_labels=row_labels,
        ),
    ]
    steps.append(to_nchw_step(steps[-1], name, "Step 3", window, n, "channel"))
    notes = [note for note in [unused_note(window)] if note]
    if mode == "max" and pad > 0:
        notes.append(
            "Padded cells hold -inf: colnn pads max pooling with -inf so that padding never wins "
            "(the tutorial's im2col pads with 0)."
        )
    if mode == "avg" and pad > 0:
        notes.append(
            f"Padded cells hold 0 and count in the divisor: every mean divides by kh*kw = {area}, "
            "even for a window that hangs over the edge (PyTorch's default count_include_pad=True)."
        )
    if backward:
        steps += grad_output_steps(steps[-1], steps[-2], name)
        steps += _pool_backward_steps(steps[-1], rows, winners, mode, window, x.shape)
        notes.append(GRADIENT_NOTE)
    walk = Walk(
        headline=f"{kernel}x{kernel} {'max' if mode == 'max' else 'average'} pooling, stride {stride}, pad {pad}",
        source=source, pad_value=pad_value, steps=tuple(steps), notes=tuple(notes), window=window,
    )
    layer = MaxPool2d(kernel, stride, pad) if mode == "max" else AvgPool2d(kernel, stride, pad)
    return finish(walk, x, expected, layer)


def _pool_backward_steps(
    grad_reduced: Step, rows: np.ndarray, winners: np.ndarray, mode: str, window: Window, x_shape: tuple[int, ...]
) -> list[Step]:
    """Back 3 on: from the gradient of the maxima (or means) to the input's."""
    n, c = x_shape[:2]
    n_rows, area = rows.shape
    grad_flat = grad_reduced.array
    gradient_name = "d" + _REDUCTIONS[mode][1]
    row_channel = row_channels(n_rows, c, area)
    labels = grad_reduced.row_labels
    steps: list[Step] = []
    if mode == "max":
        grad_rows = np.zeros_like(rows)
        grad_rows[np.arange(n_rows), winners] = grad_flat
        # Only a winner gets its row's gradient; the other cells hold a constant 0.
        to_winner = np.full(rows.shape, -1)
        to_winner[np.arange(n_rows), winners] = np.arange(n_rows)
        steps += [
            Step(
                key="argmax", label="Back 3", title="which cell won each row",
                code="winners = rows.argmax(axis=1)",
                why=f"Only the cell that gave a row its maximum affects the output, so its offset "
                    f"(0 to {area - 1}) is all backward needs: one per row.",
                array=winners, band="backward", column=2.5, channel=row_channels(n_rows, c),
                sources=(Link("rows", flat_index(rows.shape), copy=False),), row_labels=labels,
            ),
            Step(
                key="grad_rows", label="Back 4", title="the gradient scattered to the winners",
                code=f"drows = zeros(({n_rows}, {area})); drows[arange({n_rows}), winners] = {gradient_name}",
                why=f"Each row's gradient goes to its winning cell and the other {cells(area - 1)} get 0, "
                    f"giving the rows' shape {rows.shape}.",
                array=grad_rows, band="backward", column=2, channel=row_channel, chosen=grad_rows != 0,
                sources=(copy_link("grad_reduced", to_winner),), row_labels=labels,
            ),
        ]
    else:
        grad_rows = np.repeat(grad_flat[:, None] / area, area, axis=1)
        steps.append(Step(
            key="grad_rows", label="Back 3", title="the gradient shared by each row's cells",
            code=f"drows = repeat({gradient_name}[:, None] / {area}, {area}, axis=1)",
            why=f"A mean weighs each of its {cells(area)} by 1/{area}, so each cell of a row gets "
                f"1/{area} of the row's gradient: {rows.shape}.",
            array=grad_rows, band="backward", column=2, channel=row_channel, row_labels=labels,
            sources=(Link("grad_reduced", np.repeat(np.arange(n_rows)[:, None, None], area, axis=1), copy=False),),
        ))
    grad_col = grad_rows.reshape(n * window.out_h * window.out_w, -1)
    column_labels = channel_labels(c, area)
    steps += [
        Step(
            key="grad_col", label=f"Back {len(steps) + 3}", title="back to im2col's layout",
            code=f"dcol = drows.reshape({grad_col.shape[0]}, -1)",
            why=f"Undoing Step 1b joins each window's {c} channel pieces into one row again: {grad_col.shape}.",
            array=grad_col, band="backward", column=1, channel=column_channels(grad_col.shape, area),
            sources=(reshape_link("grad_rows", grad_rows.shape, grad_col.shape),),
            row_labels=window_labels(grad_col.shape[0]), column_labels=column_labels,
        ),
        col2im_step(grad_col, x_shape, window, f"Back {len(steps) + 4}"),
    ]
    return steps
