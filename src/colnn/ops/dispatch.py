"""The one place where a public op sends a Dask array to its Dask path.

A public function decorated with :func:`dask_dispatch` runs as written on
anything else; given a ``dask.array.Array`` as its first argument it calls the
function of the same name in :mod:`colnn.ops.dask_ops` with the arguments
bound to the public signature, defaults filled in, in the signature's order
(one dict), and that returns a lazy Dask array. Dask is never imported here: an input can only be a Dask array if
the caller has imported ``dask.array`` already.
"""

from __future__ import annotations

import functools
import inspect
import sys
from typing import Any, Callable, TypeVar

__all__ = ["dask_dispatch", "is_dask_array", "map_batches"]

F = TypeVar("F", bound=Callable[..., Any])


def is_dask_array(value: Any) -> bool:
    """Whether ``value`` is a ``dask.array.Array`` (without importing Dask)."""
    dask_array = sys.modules.get("dask.array")
    return dask_array is not None and isinstance(value, dask_array.Array)


def dask_dispatch(func: F) -> F:
    """Route calls whose first argument is a Dask array to ``colnn.ops.dask_ops.<name>``."""
    signature = inspect.signature(func)
    first = next(iter(signature.parameters))

    @functools.wraps(func)
    def public(*args: Any, **kwargs: Any) -> Any:
        data = args[0] if args else kwargs.get(first)
        if is_dask_array(data):
            from . import dask_ops  # imports Dask, which the caller has done already

            bound = signature.bind(*args, **kwargs)  # a wrong argument is the same TypeError as on NumPy
            bound.apply_defaults()
            return getattr(dask_ops, func.__name__)(bound.arguments)
        return func(*args, **kwargs)

    return public  # type: ignore[return-value]


def map_batches(x: Any, function: Callable[[Any], Any]) -> Any:
    """``function`` over each chunk of samples of the Dask array ``x``, lazily.

    See :func:`colnn.ops.dask_ops.map_batches`; Dask is imported only here, when it is called.
    """
    from . import dask_ops

    return dask_ops.map_batches(x, function)
