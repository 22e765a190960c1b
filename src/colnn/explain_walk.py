"""The data behind ``colnn explain``: the tutorial's im2col walk as a list of steps.

The tutorial ("im2col in the pooling layer", after *Deep Learning from
Scratch*) shows how a 3-channel 4x4 input becomes a matrix whose rows each hold
one pooling window of one channel, so that 2x2 max pooling is one ``max`` per
row, and how the maxima are put back into ``(N, C, H, W)``.

:func:`pool_walk` and :func:`conv_walk` compute that walk as a :class:`Walk`
of :class:`Step` records with colnn's own ``im2col``/``col2im``, and check
that it ends where :func:`colnn.max_pool2d`, :func:`colnn.avg_pool2d` or
:func:`colnn.conv2d` (and, for the gradient, the layer's ``backward``) end.
Rendering is elsewhere: text in :mod:`colnn.explain`, the figure in
:mod:`colnn.explain_plot`.

Every step is computed in float64, as the tutorial's ``im2col`` does (it
fills a ``np.zeros`` buffer), so values print as the tutorial's do: ``2.``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .conv import conv2d
from .im2col import col2im, im2col
from .layers import AvgPool2d, Convolution, MaxPool2d
from .pooling import avg_pool2d, max_pool2d
from .shapes import Window, check_array

__all__ = [
    "Step",
    "Walk",
    "Limits",
    "LIMITS",
    "WalkTooLarge",
    "TUTORIAL_SOURCE",
    "tutorial_input",
    "default_weight",
    "load_array",
    "pool_walk",
    "conv_walk",
]

TUTORIAL_SOURCE = "the tutorial's example"
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
    column : the figure's column (steps in one column line up), None: not drawn
    channel : for each cell, the channel (or, with ``palette="filter"``, the
        filter) it belongs to; it picks the cell's color
    palette : ``"channel"`` or ``"filter"``
    padded : for each cell, whether it is padding
    chosen : for each cell, whether it is the one its row's maximum took
    ring : padding ``(pad_h, pad_w)`` to draw around each plane of a 4-D array
    """

    key: str
    label: str
    title: str
    code: str
    why: str
    array: np.ndarray
    band: str = "forward"
    column: int | None = None
    channel: np.ndarray | None = None
    palette: str = "channel"
    padded: np.ndarray | None = None
    chosen: np.ndarray | None = None
    ring: tuple[int, int] = (0, 0)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape


@dataclass(frozen=True, eq=False)
class Walk:
    """A whole walk: its settings, its steps in order, and notes for the reader.

    ``pad_value`` is what a padded cell holds (``-inf`` for max pooling, else 0).
    """

    headline: str
    source: str
    pad_value: float
    steps: tuple[Step, ...]
    notes: tuple[str, ...] = field(default=())

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


def _check_limit(what: str, value: int, limit: int) -> None:
    if value > limit:
        raise WalkTooLarge(
            f"too large to show legibly: {what} is {value}, the limit is {limit} ({LIMITS.describe()})"
        )


def _check_input_size(shape: tuple[int, ...]) -> None:
    n, c, h, w = shape
    _check_limit("the batch N", n, LIMITS.batch)
    _check_limit("the channel count C", c, LIMITS.channels)
    _check_limit("the plane's height H", h, LIMITS.plane)
    _check_limit("the plane's width W", w, LIMITS.plane)


def _check_matrix_size(name: str, shape: tuple[int, ...]) -> None:
    _check_limit(f"the row count of {name} {shape}", shape[0], LIMITS.matrix_rows)
    _check_limit(f"the column count of {name} {shape}", shape[1], LIMITS.matrix_columns)


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

    Raises
    ------
    ValueError
        with a one-line reason when the file is missing, is not a ``.npy``
        array, or holds the wrong kind of array.
    """
    try:
        loaded = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ValueError(f"{name}: no such file: {path}") from None
    except (OSError, ValueError, EOFError) as error:
        raise ValueError(f"{name}: cannot read {path} as a .npy array ({error})") from None
    if not isinstance(loaded, np.ndarray):
        loaded.close()
        raise ValueError(f"{name}: {path} is an .npz archive; save a single array with numpy.save")
    try:
        array = check_array(loaded, f"{name} ({path})", ndims=ndims)
    except TypeError as error:
        raise ValueError(str(error)) from None
    return _finite(array, f"{name} ({path})")


def _finite(array: np.ndarray, name: str) -> np.ndarray:
    """``array`` as float64, if it holds no NaN or inf (the walk's checks compare values exactly)."""
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must hold finite numbers only (no NaN or inf)")
    return array.astype(np.float64)


# --- building walks --------------------------------------------------------


def _cells(count: int) -> str:
    return f"{count} cell" if count == 1 else f"{count} cells"


def _nchw_channels(shape: tuple[int, ...]) -> np.ndarray:
    """Channel index of every cell of an ``(N, C, H, W)`` array."""
    return np.broadcast_to(np.arange(shape[1])[None, :, None, None], shape)


def _column_channels(shape: tuple[int, ...], kernel_area: int) -> np.ndarray:
    """Channel of every cell of an im2col matrix: its columns run (c, ky, kx)."""
    return np.broadcast_to(np.arange(shape[1])[None, :] // kernel_area, shape)


def _row_channels(n_rows: int, channels: int, width: int | None = None) -> np.ndarray:
    """Channel of every cell of the one-row-per-window-per-channel matrix (or vector)."""
    per_row = np.arange(n_rows) % channels
    return per_row if width is None else np.repeat(per_row[:, None], width, axis=1)


def _settings_code(window: Window) -> str:
    """The tutorial's positional ``filter_h, filter_w, stride, pad`` for ``im2col``/``col2im``."""
    stride = window.stride_h if window.stride_h == window.stride_w else (window.stride_h, window.stride_w)
    pad = window.pad_h if window.pad_h == window.pad_w else (window.pad_h, window.pad_w)
    return f"{window.kernel_h}, {window.kernel_w}, {stride}, {pad}"


def _input_step(x: np.ndarray, source: str, unbatched: bool, window: Window, name: str = "x") -> Step:
    n, c, h, w = x.shape
    read_as = " (a (C, H, W) array, read as one image)" if unbatched else ""
    return Step(
        key="input", label="", title="the input", code=name,
        why=f"From {source}{read_as}: N = {n} image{'s' if n > 1 else ''} of C = {c} "
            f"channel{'s' if c > 1 else ''}, each {h}x{w}.",
        array=x, column=0, channel=_nchw_channels(x.shape), ring=(window.pad_h, window.pad_w),
    )


def _im2col_step(x: np.ndarray, col: np.ndarray, window: Window, padded: np.ndarray, pad_value: float) -> Step:
    n, c = x.shape[:2]
    pad_value_code = f", pad_value={pad_value:g}" if padded.any() and pad_value != 0 else ""
    return Step(
        key="col", label="Step 1", title="im2col: one row per window",
        code=f"col = im2col(x, {_settings_code(window)}{pad_value_code})",
        why=f"Each of the N*out_h*out_w = {n}*{window.out_h}*{window.out_w} = {col.shape[0]} windows "
            f"becomes a row of its C*kh*kw = {c}*{window.kernel_h}*{window.kernel_w} = {_cells(col.shape[1])}, "
            "channel after channel.",
        array=col, column=1, channel=_column_channels(col.shape, window.kernel_area), padded=padded,
    )


def _padding_mask(x_shape: tuple[int, ...], window: Window) -> np.ndarray:
    """Which cells of ``im2col(x)`` are padding: im2col of ones, padded with zeros."""
    return im2col(np.ones(x_shape), window.kernel_h, window.kernel_w,
                  (window.stride_h, window.stride_w), (window.pad_h, window.pad_w)) == 0


GRADIENT_NOTE = "The gradient arriving from the next layer is numbered 1, 2, 3, ... so each value can be followed."


def _to_nchw_step(values: np.ndarray, name: str, label: str, window: Window, n: int, palette: str) -> Step:
    """The last forward step: values in (n, out_y, out_x, channel) order put back into ``(N, C', H', W')``."""
    channels = values.size // (n * window.out_h * window.out_w)
    output = values.reshape(n, window.out_h, window.out_w, channels).transpose(0, 3, 1, 2)
    letter = "FN" if palette == "filter" else "C"
    return Step(
        key="output", label=label, title=f"back to (N, {letter}, H, W)",
        code=f"out = {name}.reshape({n}, {window.out_h}, {window.out_w}, {channels}).transpose(0, 3, 1, 2)",
        why=f"The values run (n, out_y, out_x, {letter}), so the reshape gives (N, out_h, out_w, {letter}) = "
            f"({n}, {window.out_h}, {window.out_w}, {channels}) and the transpose moves {letter} forward: "
            f"(N, {letter}, out_h, out_w) = {output.shape}.",
        array=output, column=4, channel=_nchw_channels(output.shape), palette=palette,
    )


def _grad_output_steps(output: Step, before: Step, name: str) -> list[Step]:
    """Back 1 and 2: ``dout``, numbered 1, 2, 3, ..., then as the gradient of ``before`` (called ``name``)."""
    shape = output.shape
    grad_output = np.arange(1.0, output.array.size + 1).reshape(shape)
    as_rows = grad_output.transpose(0, 2, 3, 1).reshape(before.shape)
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
        ),
    ]


def _col2im_step(grad_col: np.ndarray, x_shape: tuple[int, ...], window: Window, label: str) -> Step:
    grad_input = col2im(grad_col, x_shape, window.kernel_h, window.kernel_w,
                        (window.stride_h, window.stride_w), (window.pad_h, window.pad_w))
    return Step(
        key="grad_input", label=label, title="col2im: back to the input's shape",
        code=f"dx = col2im(dcol, {x_shape}, {_settings_code(window)})",
        why="col2im adds each cell of dcol to the input cell it was copied from (summing where windows "
            f"overlap, dropping padding), giving dx of the input's shape {x_shape}.",
        array=grad_input, band="backward", column=0, channel=_nchw_channels(x_shape),
    )


def _check_agrees(walked: np.ndarray, expected: np.ndarray, what: str) -> None:
    """The walk must end where colnn's own layer ends; anything else is a bug here."""
    if walked.shape != expected.shape or not np.allclose(walked, expected, rtol=1e-12, atol=1e-12):
        raise AssertionError(f"the walk's {what} differs from colnn's:\n{walked}\nvs\n{expected}")


def _finish(walk: Walk, x: np.ndarray, expected_output: np.ndarray, layer: Any) -> Walk:
    """Check the walk against colnn's function and, if it has one, the layer's backward."""
    _check_agrees(walk.forward_result, expected_output, "output")
    if any(step.key == "grad_input" for step in walk.steps):
        layer.forward(x)
        _check_agrees(walk.step("grad_input").array, layer.backward(walk.step("grad_output").array), "gradient")
    return walk


def _batched(x: Any) -> tuple[np.ndarray, bool]:
    """``x`` as a float64 ``(N, C, H, W)`` batch of at least one image, and whether it was ``(C, H, W)``."""
    array = _finite(check_array(x, "input"), "input")
    if array.size == 0:
        raise ValueError(f"input must hold at least one image, got shape {array.shape}")
    return (array[np.newaxis], True) if array.ndim == 3 else (array, False)


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
        raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}")
    x, unbatched = _batched(x)
    _check_input_size(x.shape)
    stride = kernel if stride is None else stride
    # colnn validates the settings first; its answer is what the walk must reach.
    expected = (max_pool2d if mode == "max" else avg_pool2d)(x, kernel, stride, pad)
    window = Window.build(x.shape[2:], kernel, stride, pad, pooling=True)
    n, c = x.shape[:2]
    area = window.kernel_area
    _check_matrix_size("the rows matrix", (n * window.out_h * window.out_w * c, area))
    _check_matrix_size("the im2col matrix", (n * window.out_h * window.out_w, c * area))

    pad_value = -np.inf if mode == "max" else 0.0
    col = im2col(x, kernel, kernel, stride, pad, pad_value=pad_value)
    col_padded = _padding_mask(x.shape, window)
    rows = col.reshape(-1, area)
    winners = np.argmax(rows, axis=1)
    chosen = np.zeros(rows.shape, dtype=bool)
    chosen[np.arange(rows.shape[0]), winners] = True
    verb, name = _REDUCTIONS[mode]
    reduced = getattr(rows, verb)(axis=1)
    # The input cells some window took: col2im of the one-hot choices.
    won = col2im(chosen.reshape(col.shape).astype(float), x.shape, kernel, kernel, stride, pad) > 0
    steps = [
        replace(_input_step(x, source, unbatched, window), chosen=won if mode == "max" else None),
        _im2col_step(x, col, window, col_padded, pad_value),
        Step(
            key="rows", label="Step 1b", title="one row per window per channel",
            code=f"rows = col.reshape(-1, {area})",
            why=f"Cutting every row into its C = {c} channel pieces leaves {rows.shape[0]} rows of "
                f"kh*kw = {_cells(area)}, ordered window by window and channel by channel within a window, "
                "each holding exactly the cells one output value looks at.",
            array=rows, column=2, channel=_row_channels(rows.shape[0], c, area),
            padded=col_padded.reshape(-1, area), chosen=chosen if mode == "max" else None,
        ),
        Step(
            key="reduced", label="Step 2", title=f"the {verb} of each row",
            code=f"{name} = rows.{verb}(axis=1)",
            why=f"Taking the {verb} along axis 1 turns each row's {_cells(area)} into one value, "
                f"one per window per channel: {rows.shape[0]} values.",
            array=reduced, column=3, channel=_row_channels(rows.shape[0], c),
        ),
        _to_nchw_step(reduced, name, "Step 3", window, n, "channel"),
    ]
    notes = []
    if mode == "max" and pad > 0:
        notes.append(
            "Padded cells hold -inf: colnn pads max pooling with -inf so that padding never wins "
            "(the tutorial's im2col pads with 0)."
        )
    if backward:
        steps += _grad_output_steps(steps[-1], steps[-2], name)
        steps += _pool_backward_steps(steps[-1], rows, winners, mode, window, x.shape)
        notes.append(GRADIENT_NOTE)
    walk = Walk(
        headline=f"{kernel}x{kernel} {'max' if mode == 'max' else 'average'} pooling, stride {stride}, pad {pad}",
        source=source, pad_value=pad_value, steps=tuple(steps), notes=tuple(notes),
    )
    layer = MaxPool2d(kernel, stride, pad) if mode == "max" else AvgPool2d(kernel, stride, pad)
    return _finish(walk, x, expected, layer)


def _pool_backward_steps(
    grad_reduced: Step, rows: np.ndarray, winners: np.ndarray, mode: str, window: Window, x_shape: tuple[int, ...]
) -> list[Step]:
    """Back 3 on: from the gradient of the maxima (or means) to the input's."""
    n, c = x_shape[:2]
    n_rows, area = rows.shape
    grad_flat = grad_reduced.array
    gradient_name = "d" + _REDUCTIONS[mode][1]
    row_channel = _row_channels(n_rows, c, area)
    steps: list[Step] = []
    if mode == "max":
        grad_rows = np.zeros_like(rows)
        grad_rows[np.arange(n_rows), winners] = grad_flat
        steps += [
            Step(
                key="argmax", label="Back 3", title="which cell won each row",
                code="winners = rows.argmax(axis=1)",
                why=f"Only the cell that gave a row its maximum affects the output, so its offset "
                    f"(0 to {area - 1}) is all backward needs: one per row.",
                array=winners, band="backward",
            ),
            Step(
                key="grad_rows", label="Back 4", title="the gradient scattered to the winners",
                code=f"drows = zeros(({n_rows}, {area})); drows[arange({n_rows}), winners] = {gradient_name}",
                why=f"Each row's gradient goes to its winning cell and the other {_cells(area - 1)} get 0, "
                    f"giving the rows' shape {rows.shape}.",
                array=grad_rows, band="backward", column=2, channel=row_channel, chosen=grad_rows != 0,
            ),
        ]
    else:
        grad_rows = np.repeat(grad_flat[:, None] / area, area, axis=1)
        steps.append(Step(
            key="grad_rows", label="Back 3", title="the gradient shared by each row's cells",
            code=f"drows = repeat({gradient_name}[:, None] / {area}, {area}, axis=1)",
            why=f"A mean weighs each of its {_cells(area)} by 1/{area}, so each cell of a row gets "
                f"1/{area} of the row's gradient: {rows.shape}.",
            array=grad_rows, band="backward", column=2, channel=row_channel,
        ))
    grad_col = grad_rows.reshape(n * window.out_h * window.out_w, -1)
    steps += [
        Step(
            key="grad_col", label=f"Back {len(steps) + 3}", title="back to im2col's layout",
            code=f"dcol = drows.reshape({grad_col.shape[0]}, -1)",
            why=f"Undoing Step 1b joins each window's {c} channel pieces into one row again: {grad_col.shape}.",
            array=grad_col, band="backward", column=1, channel=_column_channels(grad_col.shape, area),
        ),
        _col2im_step(grad_col, x_shape, window, f"Back {len(steps) + 4}"),
    ]
    return steps


def conv_walk(
    x: Any,
    weight: Any = None,
    kernel: int = 2,
    stride: int = 1,
    pad: int = 0,
    backward: bool = False,
    source: str = TUTORIAL_SOURCE,
) -> Walk:
    """The same walk for convolution: im2col, the weight matrix, one product, the reshape.

    Parameters
    ----------
    x : array ``(N, C, H, W)`` or ``(C, H, W)``
    weight : array ``(FN, C, FH, FW)``; None: :func:`default_weight` with ``kernel``
    stride, pad : square window settings
    backward : also walk the gradient back to the input
    source : where ``x`` came from, for the text
    """
    x, unbatched = _batched(x)
    _check_input_size(x.shape)
    n, c = x.shape[:2]
    if weight is None:
        weight = default_weight(c, kernel)
    weight = _finite(check_array(weight, "weight", ndims=(4,)), "weight")
    expected = conv2d(x, weight, None, stride, pad)
    filters, _, kernel_h, kernel_w = weight.shape
    window = Window.build(x.shape[2:], (kernel_h, kernel_w), stride, pad)
    _check_limit("the filter count FN", filters, LIMITS.filters)
    _check_matrix_size("the im2col matrix", (n * window.out_h * window.out_w, c * window.kernel_area))

    col = im2col(x, kernel_h, kernel_w, stride, pad)
    weight_col = weight.reshape(filters, -1).T
    product = col @ weight_col
    filter_of_column = np.broadcast_to(np.arange(filters)[None, :], product.shape)
    steps = [
        _input_step(x, source, unbatched, window),
        Step(
            key="weight", label="", title="the filters", code="W",
            why=f"FN = {filters} filters, each C*kh*kw = {c}*{kernel_h}*{kernel_w}: one weight per cell of a window.",
            array=weight,
        ),
        _im2col_step(x, col, window, _padding_mask(x.shape, window), 0.0),
        Step(
            key="weight_col", label="Step 2", title="one column per filter",
            code=f"W_col = W.reshape({filters}, -1).T",
            why=f"Flattening each filter in im2col's (c, ky, kx) order makes it a column of {weight_col.shape[0]} "
                f"weights that lines up with a row of col: {weight_col.shape}.",
            array=weight_col, column=2, channel=_column_channels(weight_col.T.shape, window.kernel_area).T,
        ),
        Step(
            key="product", label="Step 3", title="every window times every filter",
            code="out_col = col @ W_col",
            why=f"One matrix product takes the dot product of each of the {product.shape[0]} windows with each "
                f"of the {filters} filters: a row per window, a column per filter, {product.shape}.",
            array=product, column=3, channel=filter_of_column, palette="filter",
        ),
        _to_nchw_step(product, "out_col", "Step 4", window, n, "filter"),
    ]
    notes = []
    if backward:
        steps += _grad_output_steps(steps[-1], steps[-2], "out_col")
        grad_col = steps[-1].array @ weight_col.T
        steps += [
            Step(
                key="grad_col", label="Back 3", title="the gradient of col",
                code="dcol = dout_col @ W_col.T",
                why="Through out_col = col @ W_col, each cell of col gets the sum over filters of dout times "
                    f"that filter's weight for the cell: im2col's shape {grad_col.shape}.",
                array=grad_col, band="backward", column=1,
                channel=_column_channels(grad_col.shape, window.kernel_area),
            ),
            _col2im_step(grad_col, x.shape, window, "Back 4"),
        ]
        notes.append(GRADIENT_NOTE)
    walk = Walk(
        headline=f"{kernel_h}x{kernel_w} convolution with {filters} filters, stride {stride}, pad {pad}",
        source=source, pad_value=0.0, steps=tuple(steps), notes=tuple(notes),
    )
    return _finish(walk, x, expected, Convolution(weight, np.zeros(filters), stride, pad))
