"""The steps every walk shares: the input, im2col, back to (N, C, H, W), the gradient's way back.

Each builder returns a :class:`~colnn.apps.explain.walk.Step`; the walks of
:mod:`colnn.apps.explain.pool_walk` and :mod:`colnn.apps.explain.conv_walk`
put them in order around their own reduction or product.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...core.checks import check_array
from ...core.window import Window
from ...ops.unfold import col2im, im2col
from .records import Link, Step, window_labels
from .walk import Walk, finite


def cells(count: int) -> str:
    return f"{count} cell" if count == 1 else f"{count} cells"


def nchw_channels(shape: tuple[int, ...]) -> np.ndarray:
    """Channel index of every cell of an ``(N, C, H, W)`` array."""
    return np.broadcast_to(np.arange(shape[1])[None, :, None, None], shape)


def column_channels(shape: tuple[int, ...], kernel_area: int) -> np.ndarray:
    """Channel of every cell of an im2col matrix: its columns run (c, ky, kx)."""
    return np.broadcast_to(np.arange(shape[1])[None, :] // kernel_area, shape)


def row_channels(n_rows: int, channels: int, width: int | None = None) -> np.ndarray:
    """Channel of every cell of the one-row-per-window-per-channel matrix (or vector)."""
    per_row = np.arange(n_rows) % channels
    return per_row if width is None else np.repeat(per_row[:, None], width, axis=1)


def flat_index(shape: tuple[int, ...]) -> np.ndarray:
    """Each cell's own flat index: what a link into a step of this shape points at."""
    return np.arange(int(np.prod(shape))).reshape(shape)


def copy_link(key: str, index: np.ndarray) -> Link:
    """Each cell copies the one cell ``index`` (-1: none) of step ``key``."""
    return Link(key, np.asarray(index)[..., np.newaxis], copy=True)


def reshape_link(key: str, source_shape: tuple[int, ...], shape: tuple[int, ...]) -> Link:
    """A reshape: cell i holds the source's cell i."""
    return copy_link(key, flat_index(source_shape).reshape(shape))


def matmul_links(left_key: str, left: np.ndarray, right_key: str, right: np.ndarray) -> tuple[Link, Link]:
    """``left @ right``: cell ``[i, j]`` combines row i of ``left`` and column j of ``right``.

    ``left`` ``(I, K)`` and ``right`` ``(K, J)`` hold the flat indices of the operands' cells
    (a transposed operand is a transposed index array).
    """
    shape = (left.shape[0], right.shape[1], left.shape[1])
    return (Link(left_key, np.broadcast_to(left[:, None, :], shape), copy=False),
            Link(right_key, np.broadcast_to(right.T[None], shape), copy=False))


def im2col_sources(x_shape: tuple[int, ...], window: Window) -> np.ndarray:
    """For each cell of ``im2col(x)``, the flat index of the input cell it copies (-1: padding)."""
    return np.rint(im2col(flat_index(x_shape).astype(np.float64), window.kernel_h, window.kernel_w,
                          (window.stride_h, window.stride_w), (window.pad_h, window.pad_w),
                          pad_value=-1.0)).astype(np.int64)


def col2im_link(key: str, col_sources: np.ndarray, x_shape: tuple[int, ...]) -> Link:
    """col2im: each input cell sums the cells of ``key`` (im2col's layout) that copied it."""
    copies = [np.flatnonzero(col_sources.ravel() == cell) for cell in range(int(np.prod(x_shape)))]
    index = np.full((len(copies), max(1, max(len(found) for found in copies))), -1)
    for cell, found in enumerate(copies):
        index[cell, :len(found)] = found
    return Link(key, index.reshape(*x_shape, -1), copy=False)


def channel_labels(channels: int, kernel_area: int) -> tuple[str, ...]:
    """Column labels of an im2col matrix: its columns run channel by channel."""
    return tuple(f"ch{column // kernel_area + 1}" for column in range(channels * kernel_area))


def unused_note(window: Window) -> str | None:
    """Name the last input rows/columns that no window reaches (the floor in the output size)."""
    def left_over(size: int, kernel: int, stride: int, pad: int, out: int) -> list[int]:
        reach = (out - 1) * stride - pad + kernel  # one past the last covered index
        return list(range(max(reach, 0), size))

    rows = left_over(window.in_h, window.kernel_h, window.stride_h, window.pad_h, window.out_h)
    columns = left_over(window.in_w, window.kernel_w, window.stride_w, window.pad_w, window.out_w)
    parts = [f"{what} {', '.join(str(i + 1) for i in found)}"
             for what, found in (("row" if len(rows) == 1 else "rows", rows),
                                 ("column" if len(columns) == 1 else "columns", columns)) if found]
    if not parts:
        return None
    return (f"The input's {' and '.join(parts)} (marked with a cross) are in no window: the next window "
            f"would run past the edge, so im2col leaves them out and they affect nothing "
            f"(out = (size + 2*pad - kernel) // stride + 1 rounds down).")


def settings_code(window: Window) -> str:
    """The tutorial's positional ``filter_h, filter_w, stride, pad`` for ``im2col``/``col2im``."""
    stride = window.stride_h if window.stride_h == window.stride_w else (window.stride_h, window.stride_w)
    pad = window.pad_h if window.pad_h == window.pad_w else (window.pad_h, window.pad_w)
    return f"{window.kernel_h}, {window.kernel_w}, {stride}, {pad}"


def input_step(x: np.ndarray, source: str, unbatched: bool, window: Window, name: str = "x") -> Step:
    n, c, h, w = x.shape
    covered = col2im(np.ones((n * window.out_h * window.out_w, c * window.kernel_area)), x.shape,
                     window.kernel_h, window.kernel_w, (window.stride_h, window.stride_w),
                     (window.pad_h, window.pad_w)) > 0
    read_as = " (a (C, H, W) array, read as one image)" if unbatched else ""
    return Step(
        key="input", label="", title="the input", code=name,
        why=f"From {source}{read_as}: N = {n} image{'s' if n > 1 else ''} of C = {c} "
            f"channel{'s' if c > 1 else ''}, each {h}x{w}.",
        array=x, column=0, channel=nchw_channels(x.shape), ring=(window.pad_h, window.pad_w),
        unused=~covered if not covered.all() else None,
    )


def im2col_step(x: np.ndarray, col: np.ndarray, window: Window, padded: np.ndarray, pad_value: float) -> Step:
    n, c = x.shape[:2]
    pad_value_code = f", pad_value={pad_value:g}" if padded.any() and pad_value != 0 else ""
    return Step(
        key="col", label="Step 1", title="im2col: one row per window",
        code=f"col = im2col(x, {settings_code(window)}{pad_value_code})",
        why=f"Each of the N*out_h*out_w = {n}*{window.out_h}*{window.out_w} = {col.shape[0]} windows "
            f"becomes a row of its C*kh*kw = {c}*{window.kernel_h}*{window.kernel_w} = {cells(col.shape[1])}, "
            "channel after channel.",
        array=col, column=1, channel=column_channels(col.shape, window.kernel_area), padded=padded,
        sources=(copy_link("input", im2col_sources(x.shape, window)),),
        row_labels=window_labels(col.shape[0]), column_labels=channel_labels(c, window.kernel_area),
    )


def padding_mask(x_shape: tuple[int, ...], window: Window) -> np.ndarray:
    """Which cells of ``im2col(x)`` are padding: im2col of ones, padded with zeros."""
    return im2col(np.ones(x_shape), window.kernel_h, window.kernel_w,
                  (window.stride_h, window.stride_w), (window.pad_h, window.pad_w)) == 0


GRADIENT_NOTE = "The gradient arriving from the next layer is numbered 1, 2, 3, ... so each value can be followed."


def to_nchw_step(values: Step, name: str, label: str, window: Window, n: int, palette: str) -> Step:
    """The last forward step: values in (n, out_y, out_x, channel) order put back into ``(N, C', H', W')``."""
    channels = values.array.size // (n * window.out_h * window.out_w)
    order = flat_index(values.shape).reshape(n, window.out_h, window.out_w, channels).transpose(0, 3, 1, 2)
    output = values.array.ravel()[order]
    letter = "FN" if palette == "filter" else "C"
    return Step(
        key="output", label=label, title=f"back to (N, {letter}, H, W)",
        code=f"out = {name}.reshape({n}, {window.out_h}, {window.out_w}, {channels}).transpose(0, 3, 1, 2)",
        why=f"The values run (n, out_y, out_x, {letter}), so the reshape gives (N, out_h, out_w, {letter}) = "
            f"({n}, {window.out_h}, {window.out_w}, {channels}) and the transpose moves {letter} forward: "
            f"(N, {letter}, out_h, out_w) = {output.shape}.",
        array=output, column=4, channel=nchw_channels(output.shape), palette=palette,
        sources=(copy_link(values.key, order),), outer="image",
    )


def grad_output_steps(output: Step, before: Step, name: str) -> list[Step]:
    """Back 1 and 2: ``dout``, numbered 1, 2, 3, ..., then as the gradient of ``before`` (called ``name``)."""
    shape = output.shape
    grad_output = np.arange(1.0, output.array.size + 1).reshape(shape)
    order = flat_index(shape).transpose(0, 2, 3, 1).reshape(before.shape)
    as_rows = grad_output.ravel()[order]
    rows_code = "-1" if as_rows.ndim == 1 else f"-1, {shape[1]}"
    return [
        Step(
            key="grad_output", label="Back 1", title="the gradient from the next layer",
            code=f"dout = arange(1, {grad_output.size + 1}).reshape{shape}",
            why=f"Backward starts from dout, the loss's gradient w.r.t. the output, of the output's shape {shape}.",
            array=grad_output, band="backward", column=4, channel=output.channel, palette=output.palette,
        ),
        Step(
            key=f"grad_{before.key}", label="Back 2", title=f"the gradient of {name}",
            code=f"d{name} = dout.transpose(0, 2, 3, 1).reshape({rows_code})",
            why=f"Undoing {output.label} puts dout back in the order of {name}: {as_rows.shape}.",
            array=as_rows, band="backward", column=before.column, channel=before.channel, palette=before.palette,
            sources=(copy_link("grad_output", order),), row_labels=before.row_labels,
            column_labels=before.column_labels,
        ),
    ]


def col2im_step(grad_col: np.ndarray, x_shape: tuple[int, ...], window: Window, label: str) -> Step:
    """The last backward step: dcol summed back onto the input's cells."""
    n, c, h, w = x_shape
    grad_input = col2im(grad_col, (n, c, h, w), window.kernel_h, window.kernel_w,
                        (window.stride_h, window.stride_w), (window.pad_h, window.pad_w))
    return Step(
        key="grad_input", label=label, title="col2im: back to the input's shape",
        code=f"dx = col2im(dcol, {x_shape}, {settings_code(window)})",
        why="col2im adds each cell of dcol to the input cell it was copied from (summing where windows "
            f"overlap, dropping padding), giving dx of the input's shape {x_shape}.",
        array=grad_input, band="backward", column=0, channel=nchw_channels(x_shape),
        sources=(col2im_link("grad_col", im2col_sources(x_shape, window), x_shape),),
    )


def check_agrees(walked: np.ndarray, expected: np.ndarray, what: str) -> None:
    """The walk must end where colnn's own layer ends; anything else is a bug here."""
    if walked.shape != expected.shape or not np.allclose(walked, expected, rtol=1e-12, atol=1e-12):
        raise AssertionError(f"the walk's {what} differs from colnn's:\n{walked}\nvs\n{expected}")


def finish(walk: Walk, x: np.ndarray, expected_output: np.ndarray, layer: Any) -> Walk:
    """Check the walk against colnn's function and, if it has one, the layer's backward."""
    check_agrees(walk.forward_result, expected_output, "output")
    if any(step.key == "grad_input" for step in walk.steps):
        layer.forward(x)
        check_agrees(walk.step("grad_input").array, layer.backward(walk.step("grad_output").array), "gradient")
    if any(step.key == "grad_weight" for step in walk.steps):
        check_agrees(walk.step("grad_weight").array, layer.dW, "filters' gradient")
        check_agrees(walk.step("grad_bias").array, layer.db, "bias's gradient")
    return walk


def batched(x: Any) -> tuple[np.ndarray, bool]:
    """``x`` as a float64 ``(N, C, H, W)`` batch of at least one image, and whether it was ``(C, H, W)``."""
    array = finite(check_array(x, "input"), "input")
    if array.size == 0:
        raise ValueError(f"input must hold at least one image, got shape {array.shape}")
    return (array[np.newaxis], True) if array.ndim == 3 else (array, False)
