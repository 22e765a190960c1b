"""The dtype of the index arrays colnn makes on an Array API namespace.

PyTorch's indices are int64, and so are NumPy's, ``array_api_strict``'s and
JAX's with ``jax_enable_x64``. JAX's default (x64 off) has no 64-bit types:
asking for int64 there warns and truncates, and ``jax.numpy.argmax`` itself
answers int32. colnn follows the namespace: its indices are the namespace's
default index dtype (``__array_namespace_info__().default_dtypes()["indexing"]``
of the Array API standard, 2023.12), int64 wherever the library has it, and an
index that would not fit that dtype is refused with a ValueError naming the size,
never wrapped around.
"""

from __future__ import annotations

from typing import Any

__all__ = ["index_dtype", "x64_hint"]


def index_dtype(xp: Any, extent: int = 0, name: str = "input") -> Any:
    """The default index dtype of namespace ``xp``, checked to hold every index below ``extent``.

    Parameters
    ----------
    xp : an Array API namespace (``array_api_compat.array_namespace(x)``)
    extent : how many cells the indices address (the largest index is ``extent``, kept
        free for "one past the end")
    name : what the indices address, for the error message

    Returns
    -------
    ``xp``'s index dtype: int64, or int32 on JAX without ``jax_enable_x64``.

    Raises
    ------
    ValueError naming ``name`` and ``extent`` when ``extent`` exceeds the dtype's maximum.
    """
    dtype = xp.__array_namespace_info__().default_dtypes()["indexing"]
    largest = int(xp.iinfo(dtype).max)
    if extent > largest:
        hint = x64_hint(xp)
        raise ValueError(f"{name} of {extent} cells needs indices beyond {largest}, the largest of "
                         f"{xp.__name__}'s index dtype {dtype}{hint}")
    return dtype


def x64_hint(xp: Any) -> str:
    """How to get 64-bit types, for a message about namespace ``xp`` lacking them (JAX's only; empty else)."""
    return " (enable JAX's 64-bit types: jax.config.update('jax_enable_x64', True))" if "jax" in xp.__name__ else ""
