"""The book's ``common/util.py``: ``smooth_curve``, ``shuffle_dataset``, ``conv_output_size``, ``im2col``, ``col2im``.

``im2col`` and ``col2im`` call colnn's own (:func:`colnn.im2col`,
:func:`colnn.col2im`, whose ops are imported at the first call, so that
importing this module, or ``colnn.book.layers``, stays a NumPy import): the
book's signatures ``im2col(input_data, filter_h, filter_w, stride=1, pad=0)``
and ``col2im(col, input_shape, filter_h, filter_w, stride=1, pad=0)`` and the
book's layout (rows ``(n, out_y, out_x)``, columns ``(c, ky, kx)``), compiled;
unlike the book's they keep the input's dtype (the book's return float64
whatever they are given).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["smooth_curve", "shuffle_dataset", "conv_output_size", "im2col", "col2im"]

# smooth_curve's window: 11 points of a Kaiser window with beta 2 (the book's choice).
_WINDOW_LEN = 11
_KAISER_BETA = 2


def smooth_curve(x: Any) -> np.ndarray:
    """A loss curve smoothed for plotting, as the book's (chapter 6's comparisons).

    The curve is extended at both ends by its mirror image, convolved with a
    normalised 11-point Kaiser window (beta 2) and cut back to ``len(x)``
    points; ``x`` needs at least 11 of them.

    Raises
    ------
    ValueError
        When ``x`` is not one-dimensional or has fewer than 11 points.
    """
    x = np.asarray(x)
    if x.ndim != 1 or len(x) < _WINDOW_LEN:
        raise ValueError(f"x must be a 1-D curve of at least {_WINDOW_LEN} points, got shape {x.shape}")
    half = _WINDOW_LEN // 2
    extended = np.r_[x[_WINDOW_LEN - 1:0:-1], x, x[-1:-_WINDOW_LEN:-1]]
    window = np.kaiser(_WINDOW_LEN, _KAISER_BETA)
    smoothed = np.convolve(window / window.sum(), extended, mode="valid")
    return smoothed[half:len(smoothed) - half]


def shuffle_dataset(x: Any, t: Any) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``t`` shuffled by one permutation of their first axis, drawn from NumPy's global random state.

    As the book: ``np.random.seed`` before the call gives the same order; the
    caller's arrays are left as they are (the results are copies).

    Raises
    ------
    ValueError
        When ``x`` and ``t`` hold different numbers of samples.
    """
    x, t = np.asarray(x), np.asarray(t)
    if x.ndim == 0 or t.ndim == 0 or len(x) != len(t):
        raise ValueError(f"x and t must hold the same number of samples, got shapes {x.shape} and {t.shape}")
    permutation = np.random.permutation(x.shape[0])
    return x[permutation], t[permutation]


def conv_output_size(input_size: int, filter_size: int, stride: int = 1, pad: int = 0) -> float:
    """``(input_size + 2*pad - filter_size) / stride + 1``: the book's formula, a true division.

    An integral result is a valid geometry; the layers use its floor
    (``conv_output_size(28, 5)`` is ``24.0``, ``conv_output_size(7, 2, 2)`` is ``3.5``,
    so 3 windows).
    """
    return (input_size + 2 * pad - filter_size) / stride + 1


def im2col(input_data: Any, filter_h: int, filter_w: int, stride: Any = 1, pad: Any = 0, **options: Any) -> Any:
    """The book's ``im2col``: :func:`colnn.im2col` (``(N, C, H, W)`` -> ``(N*out_h*out_w, C*filter_h*filter_w)``).

    ``options`` are colnn's keyword-only ones (``dilation``, ``pad_value``,
    ``strategy``); the arguments, results and errors are :func:`colnn.im2col`'s.
    """
    from colnn.ops.unfold import im2col as colnn_im2col

    return colnn_im2col(input_data, filter_h, filter_w, stride, pad, **options)


def col2im(col: Any, input_shape: tuple[int, ...], filter_h: int, filter_w: int, stride: Any = 1, pad: Any = 0,
           **options: Any) -> Any:
    """The book's ``col2im``: :func:`colnn.col2im`, the adjoint of :func:`im2col`, overlapping cells summed.

    ``options`` are colnn's keyword-only ones (``dilation``, ``strategy``); the
    arguments, results and errors are :func:`colnn.col2im`'s.
    """
    from colnn.ops.unfold import col2im as colnn_col2im

    return colnn_col2im(col, input_shape, filter_h, filter_w, stride, pad, **options)
