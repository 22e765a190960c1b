"""The book's ``SimpleConvNet`` before its layers: argument checks, shape arithmetic and the initial parameters.

:func:`colnn.nn.simple_conv_net` builds its layers on a :class:`SimpleConvSpec`;
``colnn.book``'s ``SimpleConvNet`` holds one and builds the layers on first use,
so that constructing the network (and loading its parameters, plotting ``W1``)
stays a NumPy import. This module imports NumPy and :mod:`colnn.core.checks` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from .checks import check_seed, describe

__all__ = ["SimpleConvSpec", "simple_conv_spec", "initial_std", "positive_int"]


def initial_std(weight_init_std: float | str, fan_in: int, name: str) -> float:
    """The std of a layer's initial weights: ``sqrt(2 / fan_in)`` for ``"he"``, else ``weight_init_std``.

    ValueError naming ``name`` unless ``"he"`` or a finite positive float.
    """
    if weight_init_std == "he":
        return float(np.sqrt(2.0 / fan_in))
    if isinstance(weight_init_std, str) or not np.isfinite(weight_init_std) or weight_init_std <= 0:
        raise ValueError(f"{name} must be 'he' or a positive float, got {describe(weight_init_std)}")
    return float(weight_init_std)


def positive_int(value: Any, name: str) -> int:
    """``value`` as an int; ValueError naming ``name`` unless a positive int (a bool is not)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {describe(value)}")
    return int(value)


class SimpleConvSpec(NamedTuple):
    """What builds a SimpleConvNet's layers: the checked sizes and the six initial parameter arrays.

    ``params`` are ``W1`` ``(filter_num, C, filter_size, filter_size)``, ``b1``,
    ``W2`` ``(filter_num * pool_h * pool_w, hidden_size)``, ``b2``, ``W3``
    ``(hidden_size, output_size)``, ``b3``, in that order: the arrays the layers take.
    """

    input_shape: tuple[int, int, int]
    stride: int
    pad: int
    pool_size: int
    params: tuple[np.ndarray, ...]


def simple_conv_spec(
    input_dim: Sequence[int], filter_num: int, filter_size: int, pad: int, stride: int, pool_size: int,
    hidden_size: int, output_size: int, weight_init_std: float | str,
    seed: int | np.random.Generator | np.random.RandomState | None, dtype: Any,
) -> SimpleConvSpec:
    """Check the arguments of :func:`colnn.nn.simple_conv_net` (which documents them) and draw its parameters.

    The weights are ``std * rng.standard_normal(shape)`` in ``dtype``, drawn
    ``W1``, ``W2``, ``W3`` in that order; biases are zeros.

    Raises
    ------
    ValueError
        For a size that is not a positive int, a negative ``pad``, a non-floating
        ``dtype``, an input too small for the convolution and pooling, or a bad
        ``weight_init_std`` or ``seed``.
    """
    if len(input_dim) != 3:
        raise ValueError(f"input_dim must be (C, H, W), got {describe(input_dim)}")
    channels, height, width = (positive_int(size, "input_dim") for size in input_dim)
    filter_num, filter_size, stride, pool_size, hidden_size, output_size = (
        positive_int(value, name) for value, name in [
            (filter_num, "filter_num"), (filter_size, "filter_size"), (stride, "stride"),
            (pool_size, "pool_size"), (hidden_size, "hidden_size"), (output_size, "output_size")])
    if isinstance(pad, bool) or not isinstance(pad, (int, np.integer)) or pad < 0:
        raise ValueError(f"pad must be a non-negative int, got {describe(pad)}")
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating dtype, got {dtype}")
    conv_h = (height + 2 * pad - filter_size) // stride + 1
    conv_w = (width + 2 * pad - filter_size) // stride + 1
    pool_h, pool_w = conv_h // pool_size, conv_w // pool_size
    if min(pool_h, pool_w) < 1:
        raise ValueError(f"input_dim {tuple(input_dim)} is too small for filter_size={filter_size}, pad={pad}, "
                         f"stride={stride} and pool_size={pool_size}")
    pooled = filter_num * pool_h * pool_w
    rng = (seed if isinstance(seed, (np.random.Generator, np.random.RandomState))
           else np.random.default_rng(check_seed(seed)))

    def weight(shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        std = initial_std(weight_init_std, fan_in, "weight_init_std")
        return (std * rng.standard_normal(shape)).astype(dtype, copy=False)  # the product is fresh: no copy

    params = (weight((filter_num, channels, filter_size, filter_size), channels * filter_size ** 2),
              np.zeros(filter_num, dtype),
              weight((pooled, hidden_size), pooled), np.zeros(hidden_size, dtype),
              weight((hidden_size, output_size), hidden_size), np.zeros(output_size, dtype))
    return SimpleConvSpec((channels, height, width), int(stride), int(pad), pool_size, params)
