"""The lazy path of the convolutions: ``conv1d/2d/3d`` and ``conv_transpose1d/2d/3d`` of Dask arrays.

The weights stay in memory and enter the graph once, as one key, so a
distributed worker receives them once whatever the number of chunks. Channels
are gathered into one chunk (each output channel reads all of them). A
convolution pads the array once (its padding is plain zeros) and runs each
chunk with its halo; a transposed convolution scatters its input's cells onto
its output, each output chunk reading the input cells whose windows reach it.
"""

from __future__ import annotations

from collections.abc import Callable

import dask
import dask.array as da
import numpy as np

from ...core.window import Window
from ..conv._base import ConvArgs, ConvTransposeArgs
from .graph import map_windows, pad_once, unbatch

__all__ = ["conv", "conv_transpose"]


def conv(input: da.Array, weight: np.ndarray, bias: np.ndarray | None, args: ConvArgs, strategy: str | None,
         forward: Callable) -> da.Array:
    """:func:`colnn.conv1d/2d/3d` of a Dask array with checked in-memory weights: lazy, equal to rounding.

    ``forward`` is :func:`colnn.ops.conv.conv.conv_forward`.
    """
    unbatched = input.ndim == args.ndim + 1
    x = input[np.newaxis] if unbatched else input
    dtype = np.result_type(x.dtype, weight, *(() if bias is None else (bias,)))
    weight = weight.astype(dtype, copy=False)
    bias = None if bias is None else bias.astype(dtype, copy=False)
    window = args.window(x.shape[2:], weight.shape[2:])
    x, padded = pad_once(x.rechunk({1: -1}), window, 0)
    parameters = dask.delayed((weight, bias), pure=True)

    def convolve(block: np.ndarray, local: Window, pieces: tuple, weights: tuple) -> np.ndarray:
        return forward(block.astype(dtype, copy=False), *weights, local, args.groups, strategy)[0]

    (out,) = map_windows(x, padded, convolve, dtypes=[dtype], channels=lambda c: weight.shape[0],
                         constants=[parameters])
    return unbatch(out, unbatched)


def conv_transpose(x: da.Array, weight: np.ndarray, bias: np.ndarray | None, args: ConvTransposeArgs,
                   window: Window, strategy: str | None, forward: Callable) -> da.Array:
    """:func:`colnn.conv_transpose1d/2d/3d` of a batched Dask array with checked weights: lazy, equal to rounding.

    ``window`` is the checked window (:meth:`ConvTransposeArgs.window`); ``forward``
    is :func:`colnn.ops.conv.transpose.conv_transpose_forward`.
    """
    dtype = np.result_type(x.dtype, weight, *(() if bias is None else (bias,)))
    weight = weight.astype(dtype, copy=False)
    bias = None if bias is None else bias.astype(dtype, copy=False)
    parameters = dask.delayed((weight, bias), pure=True)

    def scatter(block: np.ndarray, local: Window, pieces: tuple, weights: tuple) -> np.ndarray:
        return forward(block.astype(dtype, copy=False), *weights, local, args.groups, strategy)

    (out,) = map_windows(x.rechunk({1: -1}), window, scatter, dtypes=[dtype],
                         channels=lambda c: weight.shape[1] * args.groups, constants=[parameters], scatter=True)
    return out
