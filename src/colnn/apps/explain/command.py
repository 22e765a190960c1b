"""``colnn explain``: replay the tutorial's im2col walk, step by step, as text, a figure or a page.

Without arguments it prints the tutorial's example (2x2 max pooling of a
``(1, 3, 4, 4)`` input) as text; options change the window, the mode, the
input, add the backward pass or switch to convolution. ``--html``, ``--png``
and ``--svg`` write files instead (the figure in the format its suffix names),
each announced by one line; ``--text`` prints the walk as well. The walk itself is computed in
:mod:`colnn.apps.explain.pool_walk` and :mod:`colnn.apps.explain.conv_walk`; this module prints it and runs the
command, and :mod:`colnn.apps.explain.plot` (imported only for ``--png``/``--svg``, as it needs
matplotlib) draws it; :mod:`colnn.apps.explain.html` writes it as a page (``--html``).
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from ...core.arrayfile import write_whole
from ...core.checks import describe
from ...core.window import Window
from ..options import int_in, non_negative_int, positive_int
from .conv_walk import conv_walk
from .pool_walk import pool_walk
from .walk import LIMITS, TUTORIAL_SOURCE, Walk, load_array, tutorial_input

__all__ = ["explain", "render_text", "run_explain", "register"]


# --- text ------------------------------------------------------------------


TEXT_WIDTH = 100


def _format_array(array: np.ndarray) -> str:
    """NumPy's printed form; whole numbers as integers (the walk computes in float64 for exactness only)."""
    if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)) \
            and np.all(np.abs(array) < 2**53):
        array = array.astype(np.int64)
    with np.printoptions(precision=4, suppress=True, linewidth=TEXT_WIDTH, threshold=10_000):
        return repr(array)


def render_text(walk: Walk) -> str:
    """The walk for a terminal: a header, then each step's code, shape, reason and array."""
    lines = [f"colnn explain: {walk.headline}, on {walk.source}", ""]
    lines += [textwrap.fill(f"Note: {note}", TEXT_WIDTH, subsequent_indent="      ") for note in walk.notes]
    if walk.notes:
        lines.append("")
    for step in walk.steps:
        heading = f"{step.label}: {step.title}" if step.label else step.title.capitalize()
        lines += [
            heading,
            f"    {step.code}    shape {step.shape}",
            textwrap.fill(step.why, TEXT_WIDTH, initial_indent="    ", subsequent_indent="    "),
            _format_array(step.array),
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


# --- the walk from settings ------------------------------------------------


def explain(
    x: Any = None,
    *,
    op: str = "pool",
    kernel: int | None = None,
    stride: int | None = None,
    pad: int = 0,
    mode: str | None = None,
    weight: Any = None,
    backward: bool = False,
    source: str | None = None,
) -> Walk:
    """The walk ``colnn explain`` shows for these settings; in Jupyter it displays as the page.

    Parameters
    ----------
    x : array ``(N, C, H, W)`` or ``(C, H, W)``; None: the tutorial's ``(1, 3, 4, 4)`` example
    op : ``"pool"`` or ``"conv"``
    kernel : square window; None: 2 (or, for ``"conv"`` with ``weight``, the weight's size)
    stride : None: the kernel for pooling, 1 for convolution
    pad, backward : as in :func:`pool_walk` and :func:`conv_walk`
    mode : ``"max"`` (default) or ``"avg"``, pooling only
    weight : ``(FN, C, FH, FW)`` filters, convolution only
    source : where ``x`` came from, for the text

    Raises
    ------
    ValueError
        for a setting the op does not take, and as :func:`pool_walk` and :func:`conv_walk` do.

    Examples
    --------
    >>> walk = explain()  # the tutorial's 2x2 max pooling; a notebook cell shows the page
    >>> walk.forward_result.shape
    (1, 3, 2, 2)
    """
    if x is None:
        x, source = tutorial_input(), source or TUTORIAL_SOURCE
    source = source or "your array"
    if op == "pool":
        if weight is not None:
            raise ValueError("weight is for op='conv'")
        return pool_walk(x, kernel or 2, stride, pad, mode or "max", backward, source)
    if op != "conv":
        raise ValueError(f"op must be 'pool' or 'conv', got {describe(op)}")
    if mode is not None:
        raise ValueError("mode is for op='pool'")
    return conv_walk(x, weight, kernel or 2, 1 if stride is None else stride, pad, backward, source)


# --- command line ----------------------------------------------------------


def _walk_from_args(args: argparse.Namespace) -> Walk:
    if args.input is None:
        x, source = tutorial_input(), TUTORIAL_SOURCE
    else:
        x, source = load_array(args.input, "--input", (3, 4)), str(args.input)
    if args.op == "pool":
        if args.weight is not None:
            raise ValueError("--weight is for --op conv")
        kernel = args.kernel or 2
        # Checked here too, so that an error names the flags rather than pool_walk's arguments.
        Window.build(x.shape[-2:], kernel, args.stride, args.pad, pooling=True,
                     kernel_name="--kernel", stride_name="--stride", padding_name="--pad")
        return explain(x, kernel=kernel, stride=args.stride, pad=args.pad, mode=args.mode,
                       backward=args.backward, source=source)
    if args.mode is not None:
        raise ValueError("--mode is for --op pool")
    weight = None if args.weight is None else load_array(args.weight, "--weight", (4,))
    if weight is not None and args.kernel is not None and weight.shape[2:] != (args.kernel, args.kernel):
        raise ValueError(f"--kernel {args.kernel} disagrees with the weight's (FH, FW) = {weight.shape[2:]}")
    stride = 1 if args.stride is None else args.stride
    kernel = (args.kernel or 2, args.kernel or 2) if weight is None else weight.shape[2:]
    Window.build(x.shape[-2:], kernel, stride, args.pad, kernel_name="--kernel" if weight is None else
                 "--weight's (FH, FW)", stride_name="--stride", padding_name="--pad")
    return explain(x, op="conv", kernel=args.kernel, stride=stride, pad=args.pad, weight=weight,
                   backward=args.backward, source=source)


# The format each figure flag writes when its file name has no suffix.
FIGURE_FLAGS = (("png", "--png"), ("svg", "--svg"))


def _figure_format(path: str, flag: str, default: str) -> str:
    """The format ``flag``'s file is written in: the one its suffix names (matplotlib's), else ``default``.

    Raises ValueError, naming the flag and the file, for a suffix matplotlib cannot write.
    """
    from matplotlib.backend_bases import FigureCanvasBase

    suffix = Path(path).suffix.lstrip(".").lower()
    if not suffix:
        return default
    known = FigureCanvasBase.get_supported_filetypes()
    if suffix not in known:
        raise ValueError(f"{flag} {path}: matplotlib cannot write a .{suffix} figure; name the file with one of "
                         f"{', '.join('.' + kind for kind in sorted(known))}, or no suffix for {default.upper()}")
    return suffix


def _check_output(path: str, flag: str) -> None:
    """Refuse, before anything is written, an output path that is a folder or lies in none that can be written."""
    target = Path(path)
    folder = target.parent
    if target.is_dir():
        raise ValueError(f"{flag} {path}: is a folder; give a file name")
    if not folder.is_dir():
        raise ValueError(f"{flag} {path}: cannot write there: no folder {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path}: cannot write there: the folder {folder} is not writable")


def run_explain(args: argparse.Namespace) -> int:
    """``colnn explain``: write the page and figures asked for, each announced by one line naming its file;
    print the text walk when no file is asked for, or with ``--text``.

    Every setting, input and output path is checked before anything is written.
    Returns 0, or 1 after a one-line error on stderr.
    """
    try:
        figures = [(path, flag, _figure_format(path, flag, default))
                   for default, flag in FIGURE_FLAGS if (path := getattr(args, default)) is not None]
        outputs = [(path, flag) for path, flag in ((args.html, "--html"), *((p, f) for p, f, _ in figures))
                   if path is not None]
        for path, flag in outputs:
            _check_output(path, flag)
        walk = _walk_from_args(args)
    except (ValueError, TypeError) as error:
        return _error(error)
    if args.text or not outputs:
        sys.stdout.write(render_text(walk))
    if args.html is not None:
        from .html import save_html

        try:
            save_html(walk, args.html)
        except OSError as error:
            return _error(f"--html {args.html}: cannot write it ({error.strerror or error})")
        print(f"page written to {args.html}")
    for path, flag, kind in figures:
        from .plot import save_figure  # matplotlib: imported only when a figure is asked for

        def write(partial: Path, kind: str = kind) -> None:
            save_figure(walk, partial, dpi=args.dpi, format=kind)

        try:
            write_whole(path, write)
        except (OSError, ValueError, RuntimeError) as error:  # RuntimeError: a backend's own failure (pgf: LaTeX)
            reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
            return _error(f"{flag} {path}: cannot write it ({reason})")
        print(f"figure written to {path}")
    return 0


def _error(message: Any) -> int:
    print(f"colnn explain: error: {message}", file=sys.stderr)
    return 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``colnn explain`` to the ``colnn`` command."""
    parser = subparsers.add_parser(
        "explain",
        help="replay the tutorial's im2col walk (pooling or convolution), as text and a figure",
        description=(
            "Walk through im2col-based pooling or convolution step by step: each step's array, "
            "shape and why the shape changed. Without arguments it replays the tutorial's "
            f"2x2 max pooling of a (1, 3, 4, 4) input. Inputs are limited to {LIMITS.describe()}."
        ),
    )
    parser.add_argument("--op", choices=("pool", "conv"), default="pool", help="pooling (default) or convolution")
    parser.add_argument("--mode", choices=("max", "avg"), default=None, help="pooling mode (default: max)")
    parser.add_argument("--kernel", type=positive_int, default=None,
                        help="square window size (default: 2, or the weight's size for --op conv)")
    parser.add_argument("--stride", type=positive_int, default=None,
                        help="window step (default: the kernel for pooling, 1 for convolution)")
    parser.add_argument("--pad", type=non_negative_int, default=0, help="padding on every side (default: 0)")
    parser.add_argument("--input", metavar="FILE.npy", default=None,
                        help="your own (C, H, W) or (N, C, H, W) array instead of the tutorial's")
    parser.add_argument("--weight", metavar="FILE.npy", default=None,
                        help="filters (FN, C, FH, FW) for --op conv (default: two simple 0/1 filters)")
    parser.add_argument("--backward", action="store_true", help="also walk the gradient back to the input")
    parser.add_argument("--png", metavar="FILE", default=None,
                        help="draw the walk as an image, in the format FILE's suffix names (.png, .jpg, .pdf, "
                             ".svg: any that matplotlib writes), PNG when it has none")
    parser.add_argument("--svg", metavar="FILE", default=None,
                        help="draw the walk as an SVG image (or the format FILE's suffix names, as for --png)")
    parser.add_argument("--html", metavar="FILE", default=None,
                        help="write the walk as one self-contained interactive HTML page (no network needed)")
    parser.add_argument("--text", action="store_true",
                        help="also print the text walk when writing --html, --png or --svg (printed anyway "
                             "when no file is asked for)")
    parser.add_argument("--dpi", type=int_in(10, 600), default=100,
                        help="resolution of a raster figure in dots per inch (default: 100; one cell is 0.36 inch)")
    parser.set_defaults(run=run_explain)
