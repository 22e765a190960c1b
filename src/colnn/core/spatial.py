"""Input checks for ops of any spatial dimensionality: rank, batch axis, non-empty axes.

A ``d``-dimensional op takes ``(N, C, *spatial)`` or one unbatched sample
``(C, *spatial)``; any other rank is a ValueError naming the argument.
"""

from __future__ import annotations

from typing import Any

from .checks import check_array, check_float_dtype

__all__ = ["check_spatial_input"]


def check_spatial_input(
    x: Any, name: str, spatial_ndim: int, *, floating: bool = False, like: Any = None, like_name: str = "input"
) -> tuple[Any, bool]:
    """``x`` as a batched ``(N, C, *spatial)`` array and whether it came unbatched.

    TypeError for non-numeric dtypes (and integers when ``floating``); ValueError
    for a rank other than ``spatial_ndim + 1`` or ``+ 2``, or an empty channel or
    spatial axis (the batch axis may be empty, as in PyTorch). Not copied; another
    Array API library's array (PyTorch, JAX, CuPy...) stays that library's array;
    with ``like``, it must be of ``like``'s library and device (TypeError/ValueError
    naming ``name`` and ``like_name``, see :func:`~colnn.core.checks.same_library`).
    """
    batched_rank, unbatched_rank = spatial_ndim + 2, spatial_ndim + 1
    # check_array owns the dtype, byte-order and ragged-input rules and their messages.
    array = check_array(x, name, ndims=None, batch_ndims=(batched_rank,), array_api=True, like=like,
                        like_name=like_name)
    if floating:
        check_float_dtype(array.dtype, name)
    if array.ndim not in (batched_rank, unbatched_rank):
        raise ValueError(
            f"{name} must be {unbatched_rank}-D (unbatched) or {batched_rank}-D (batched) for a "
            f"{spatial_ndim}-d op, got shape {tuple(array.shape)}"
        )
    unbatched = array.ndim == unbatched_rank
    if unbatched:
        array = array[None, ...]
    if 0 in array.shape[1:]:
        raise ValueError(f"{name} must have non-zero channel and spatial sizes, "
                         f"got shape {tuple(array.shape[1:]) if unbatched else tuple(array.shape)}")
    return array, unbatched
