"""Fractional max pooling (Graham, 2014) in 2 and 3 dimensions, as ``torch.nn.functional.fractional_max_pool2d/3d``.

Each ``(n, c)`` plane gets one pseudo-random sample ``u`` in [0, 1) per axis
and its window starts are PyTorch's sequence, computed in the input's
floating type: with ``alpha = (in - k) / (out - 1)``,
``start[i] = int((i + u) * alpha) - int(u * alpha)`` for ``i < out - 1`` and
``start[out - 1] = in - k``. Each window is then reduced with PyTorch's rule
(first maximum; NaN wins with the last NaN). Samples are ordered per axis as
the spatial axes (``(h, w)`` is PyTorch's ``[1], [0]`` in 2-D: see :func:`_axis_samples`).

NumPy arrays run the compiled box loops (:mod:`colnn.kernels.box_pool`); the
reference is written on the Array API standard (the gather and PyTorch's max rule of
:mod:`colnn.ops.flat_index`): any library's arrays are pooled where they live.
Samples may be given in the input's library (or NumPy's); drawn by colnn, they
come from NumPy's generator and move to the input's device. A Dask array is
pooled lazily, plane by plane (:mod:`colnn.ops.dask.pooling`), its samples drawn
(or checked) first: they are ``N*C*ndim`` numbers. The arguments are
:class:`~colnn.ops.pooling._base.FractionalArgs`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...core.checks import check_rng, from_batched, stand_in
from ...core.indices import index_dtype
from ...core.namespace import is_dask_array
from ...core.spatial import check_spatial_input
from ...kernels import box_pool
from ..flat_index import gather_flat, scatter_add_flat, torch_max
from ..strategy import numpy_for_cpu_arrays, runs_kernels
from ..xp import as_namespace_of, device_of, namespace
from ._base import FractionalArgs

__all__ = ["fractional_max_pool2d", "fractional_max_pool3d", "fractional_max_pool", "check_samples",
           "fractional_samples", "fractional_max_forward", "fractional_max_backward"]


def check_samples(random_samples: Any, x: Any, ndim: int, unbatched: bool) -> Any:
    """``random_samples`` as a floating ``(N, C, ndim)`` array of batched ``x``'s namespace, in [0, 1).

    Errors name it.
    """
    samples = as_namespace_of(random_samples, x, "random_samples")
    xp = namespace(samples)
    if not xp.isdtype(samples.dtype, "real floating"):
        raise TypeError(f"random_samples must be a floating array, got dtype {samples.dtype}")
    batch = tuple(x.shape[:2])
    if unbatched and tuple(samples.shape) == (batch[1], ndim):
        samples = samples[None, ...]
    if tuple(samples.shape) != (*batch, ndim):
        raise ValueError(f"random_samples must have shape {(*batch, ndim)}, got {tuple(samples.shape)}")
    if not bool(xp.all((samples >= 0) & (samples < 1))):
        raise ValueError("random_samples must lie in [0, 1)")
    return samples


def fractional_samples(random_samples: Any, x: Any, ndim: int, unbatched: bool,
                       rng: np.random.Generator | None) -> Any:
    """The checked ``random_samples``, or ``(N, C, ndim)`` fresh ones from ``rng`` (NumPy's) on ``x``'s device."""
    if random_samples is not None:
        return check_samples(random_samples, x, ndim, unbatched)
    return as_namespace_of(check_rng(rng).random((*x.shape[:2], ndim)), x)


def _axis_samples(samples: Any) -> list[Any]:
    """Per spatial axis, in axis order. PyTorch keeps 2-D's samples as (w, h) and 3-D's as (t, h, w)."""
    if samples.shape[-1] == 2:
        return [samples[..., 1], samples[..., 0]]
    return [samples[..., axis] for axis in range(samples.shape[-1])]


def _starts(sample: Any, size: int, out: int, kernel: int, dtype: Any, index: Any) -> Any:
    """PyTorch's interval sequence for every plane, computed in ``dtype``: ``(N, C, out)`` of dtype ``index``."""
    xp, device = namespace(sample), device_of(sample)
    last = xp.full((*sample.shape, 1), size - kernel, dtype=index, device=device)
    if out == 1:
        return last
    u = xp.expand_dims(xp.astype(sample, dtype), axis=-1)
    alpha = xp.asarray(size - kernel, dtype=dtype, device=device) / xp.asarray(out - 1, dtype=dtype, device=device)
    position = xp.arange(out - 1, dtype=dtype, device=device)
    # Both products are >= 0, where the standard's float-to-int cast truncates as C++'s int() does.
    head = xp.astype((position + u) * alpha, index) - xp.astype(u * alpha, index)
    return xp.concat([head, last], axis=-1)


def fractional_max_forward(x: Any, kernel: tuple[int, ...], out_size: tuple[int, ...],
                           samples: Any, strategy: str | None = None) -> tuple[Any, Any]:
    """``(out, indices)`` of a validated batched array; indices (the index dtype) flat into each input volume.

    NumPy arrays of the kernels' dtypes run the compiled box loops of
    :mod:`colnn.kernels.box_pool`, each plane with its own windows.
    """
    if (runs_kernels(strategy, x, "pool") and isinstance(samples, np.ndarray)
            and box_pool.fits_box_max(x.shape[2:])):
        dtype = np.float64 if x.dtype == np.float64 else np.float32
        starts = [_starts(sample, size, out, k, dtype, np.int64)
                  for sample, size, out, k in zip(_axis_samples(samples), x.shape[2:], out_size, kernel)]
        return box_pool.box_max(x, box_pool.fractional_bounds(starts, kernel))
    xp, device = namespace(x), device_of(x)
    n, c, ndim = x.shape[0], x.shape[1], len(kernel)
    dtype = xp.float64 if x.dtype == xp.float64 else xp.float32
    index = index_dtype(xp, math.prod(x.shape[2:]))
    # Cell coordinates per axis, shaped to broadcast to (N, C, *out, *kernel).
    flat = xp.zeros((n, c) + (1,) * (2 * ndim), dtype=index, device=device)
    for axis, (sample, size, out, k) in enumerate(zip(_axis_samples(samples), x.shape[2:], out_size, kernel)):
        starts = _starts(sample, size, out, k, dtype, index)
        cells = xp.expand_dims(starts, axis=-1) + xp.arange(k, dtype=index, device=device)  # (N, C, out, k)
        shape = [n, c] + [1] * (2 * ndim)
        shape[2 + axis], shape[2 + ndim + axis] = out, k
        flat = flat * size + xp.reshape(cells, tuple(shape))
    area = math.prod(kernel)
    windows = xp.reshape(xp.broadcast_to(flat, (n, c, *out_size, *kernel)), (n, c, *out_size, area))
    out, choice = torch_max(gather_flat(x, windows), axis=-1)
    indices = xp.take_along_axis(windows, xp.expand_dims(choice, axis=-1), axis=-1)
    return out, indices[..., 0]


def fractional_max_backward(grad_output: Any, indices: Any, input_shape: tuple[int, ...],
                            strategy: str | None = None) -> Any:
    """Each output's gradient to its chosen cell; overlapping windows sum."""
    if runs_kernels(strategy, grad_output, "pool") and isinstance(indices, np.ndarray):
        return box_pool.cell_scatter_add(grad_output, indices, input_shape)
    return scatter_add_flat(grad_output, indices, input_shape)


@numpy_for_cpu_arrays
def fractional_max_pool(input: Any, args: FractionalArgs, random_samples: Any = None,
                        rng: np.random.Generator | None = None) -> Any:
    """The N-d body of :func:`fractional_max_pool2d`/:func:`fractional_max_pool3d` on checked ``args``."""
    rng = check_rng(rng)  # at the boundary, also when random_samples leaves it unused
    lazy = is_dask_array(input)
    x, unbatched = check_spatial_input(stand_in(input) if lazy else input, "input", args.ndim)
    out_size = args.out_size(x.shape[2:])
    samples = fractional_samples(random_samples, x, args.ndim, unbatched, rng)
    if lazy:
        from ..dask import pooling as dask_pooling

        batched = input[np.newaxis] if unbatched else input
        out, indices = dask_pooling.fractional_max_pool(batched, args, out_size, samples, fractional_max_forward)
    else:
        out, indices = fractional_max_forward(x, args.kernel_size, out_size, samples)
    out, indices = from_batched(out, unbatched), from_batched(indices, unbatched)
    return (out, indices) if args.return_indices else out


def fractional_max_pool2d(input: Any, kernel_size: Any, output_size: Any = None, output_ratio: Any = None,
                          return_indices: bool = False, *, random_samples: Any = None,
                          rng: np.random.Generator | None = None):
    """Fractional max pooling, as ``torch.nn.functional.fractional_max_pool2d`` (Graham, 2014).

    Parameters
    ----------
    input : ``(N, C, H, W)`` or ``(C, H, W)``, integer or floating (a Dask array: lazily)
    kernel_size : int or ``(kh, kw)``
    output_size, output_ratio : exactly one; ``out = int(in * ratio)`` for a ratio in (0, 1)
    return_indices : also return int64 indices flat into each ``H*W`` plane
    random_samples : ``(N, C, 2)`` in [0, 1) as PyTorch's ``_random_samples``; else drawn from
        ``rng`` (a ``numpy.random.Generator``; default a fresh one)

    Returns
    -------
    ``(N, C, out_h, out_w)`` (and indices) of the input's dtype.

    Raises
    ------
    ValueError naming ``kernel_size``/``output_size``/``output_ratio`` when the windows do not fit or both/none
    are given, ``random_samples`` of the wrong shape or outside [0, 1); TypeError for non-numeric input,
    a non-bool ``return_indices`` or an ``rng`` that is not a Generator.
    """
    args = FractionalArgs.check(2, kernel_size, output_size, output_ratio, return_indices)
    return fractional_max_pool(input, args, random_samples, rng)


def fractional_max_pool3d(input: Any, kernel_size: Any, output_size: Any = None, output_ratio: Any = None,
                          return_indices: bool = False, *, random_samples: Any = None,
                          rng: np.random.Generator | None = None):
    """3-D fractional max pooling, as ``torch.nn.functional.fractional_max_pool3d``; samples ``(N, C, 3)``.

    See :func:`fractional_max_pool2d`.
    """
    args = FractionalArgs.check(3, kernel_size, output_size, output_ratio, return_indices)
    return fractional_max_pool(input, args, random_samples, rng)
