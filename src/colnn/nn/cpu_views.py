"""Layers on other libraries' CPU arrays: their forward and backward on NumPy views, through DLPack (issue 25).

The layers' counterpart of :func:`colnn.ops.strategy.numpy_for_cpu_arrays`. A
layer called on PyTorch tensors or JAX arrays in CPU memory, with parameters
(and batch normalisation's running estimates) of the same library, computes on
NumPy views of them (:func:`colnn.core.namespace.cpu_numpy_view`, no copy) and
so takes the compiled kernels and the fused NumPy passes; what comes back is of
the caller's library (:func:`colnn.core.namespace.as_library_of`: a PyTorch
tensor sharing the result's memory, a JAX array one copy of it):

- the output, the input gradient, and every public array the call sets on the
  layer (``dW``/``db`` and the other gradients, ``mask``, ``y``, batch
  normalisation's new running estimates); the state a forward keeps for its
  backward (private attributes) stays NumPy, and :meth:`Layer.backward` reads it;
- the caller's arrays are read, never written (a PyTorch tensor that requires
  grad is read detached, as on the Array API path): parameters are swapped for
  their views on a shallow copy of the layer, never on the layer itself, so a
  thread predicting with the layer meanwhile sees it as it was, and a call that
  raises on the views leaves the layer as it was.

Everything else runs as called, on the Array API path where the arrays live:
NumPy (one ``isinstance`` check), a layer built with
``strategy="im2col"`` (the reference, as asked), arrays on a GPU, dtypes NumPy
lacks (bfloat16), arrays of two libraries or of one with NumPy (a NumPy
``W`` with a PyTorch ``x`` is the TypeError it always was). Where the views
raise TypeError or ValueError in a forward, the call runs again as called, so
that the error names the caller's types. A backward after a forward on views
takes ``dout`` of the forward's library (viewed), NumPy, or a list or scalar,
as the Array API path does; one of another library or device is the same
error as there; a ``dout`` of the forward's library that NumPy cannot view
(bfloat16) is read in float32, which holds its values exactly.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from ..core.namespace import (
    as_library_of,
    cpu_numpy_view,
    cpu_numpy_views,
    foreign_namespace,
    is_foreign_array,
    library_name,
    library_token,
    same_library,
    type_name,
)

__all__ = ["forward_on_views", "infer_on_views", "backward_on_views", "as_caller_array"]

Method = TypeVar("Method", bound=Callable[..., Any])

_MISSING = object()

# library_token of the CPU arrays seen, by type and DLPack device: JAX makes each new one
# in about a millisecond (a jnp.empty), more than a small layer's whole call.
_TOKENS: dict[tuple[type, Any], Any] = {}


def _token_of(x: Any) -> Any:
    """An empty array of ``x``'s library and device (:func:`library_token`), made once per type and device."""
    key = (type(x), tuple(x.__dlpack_device__()))
    token = _TOKENS.get(key)
    if token is None:
        token = _TOKENS[key] = library_token(x)
    return token


def _layer_arrays(layer: Any) -> dict[str, Any]:
    """The arrays a layer holds under attributes of their names: parameters and running estimates."""
    return {**layer.params, **getattr(layer, "buffers", {})}


def _array_views(layer: Any, values: tuple[Any, ...]) -> tuple[Any, dict[int, np.ndarray], dict[str, Any]] | None:
    """``(the first foreign argument, views of the arguments by id, views of the layer's arrays by name)``,
    or None where the call runs as called (see the module's docstring)."""
    foreign = [value for value in values if is_foreign_array(value)]
    if not foreign or any(isinstance(value, np.ndarray) for value in values):
        return None
    if getattr(layer, "strategy", None) == "im2col":
        return None
    held = _layer_arrays(layer)
    library = library_name(foreign[0])
    if any(library_name(value) != library for value in (*foreign, *held.values())):
        return None
    views = cpu_numpy_views({id(value): value for value in foreign})
    held_views = cpu_numpy_views(held)
    return None if views is None or held_views is None else (foreign[0], views, held_views)


def _shadow(layer: Any, held_views: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """A shallow copy of ``layer`` holding the views of its arrays, and its attributes as they start."""
    shadow = copy.copy(layer)
    for name, view in held_views.items():
        setattr(shadow, name, view)
    return shadow, dict(vars(shadow))


def _take_state(layer: Any, shadow: Any, start: dict[str, Any], like: Any, shared: tuple[np.ndarray, ...]) -> None:
    """What the call set on ``shadow`` onto ``layer``: public arrays in ``like``'s library, private state as it is."""
    for name, value in vars(shadow).items():
        if start.get(name, _MISSING) is value:
            continue
        if isinstance(value, np.ndarray) and not name.startswith("_"):
            value = as_library_of(value, like, shared)
        setattr(layer, name, value)


def _back(result: Any, like: Any, shared: tuple[np.ndarray, ...]) -> Any:
    return as_library_of(result, like, shared) if isinstance(result, np.ndarray) else result


def _run_on_views(method: Callable[..., Any], layer: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                  keep: bool) -> Any:
    """``method(layer, *args, **kwargs)`` on views where it can run on them; ``keep``: a forward's state is kept."""
    # A NumPy input (a network's every call) runs as called: one isinstance check.
    found = None if args and isinstance(args[0], np.ndarray) else _array_views(layer, (*args, *kwargs.values()))
    if found is not None:
        like, views, held_views = found
        shadow, start = _shadow(layer, held_views)
        try:
            result = method(shadow, *(views.get(id(value), value) for value in args),
                            **{name: views.get(id(value), value) for name, value in kwargs.items()})
        except (TypeError, ValueError):
            found = None  # the same check on the caller's arrays below: a message naming their types
        else:
            shared = (*views.values(), *held_views.values())
            if keep:
                _take_state(layer, shadow, start, like, shared)
                layer._views_like = _token_of(like)
            return _back(result, like, shared)
    result = method(layer, *args, **kwargs)
    if keep:
        layer._views_like = None  # the state kept is of the caller's library
    return result


def forward_on_views(method: Method) -> Method:
    """A layer's ``forward`` run on NumPy views of another library's CPU arrays; the state it keeps, NumPy."""

    @functools.wraps(method)
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        return _run_on_views(method, self, args, kwargs, keep=True)

    return run  # type: ignore[return-value]


def infer_on_views(method: Method) -> Method:
    """A layer's ``infer`` (keeping nothing: safe from several threads) run on NumPy views of another library's
    CPU arrays."""

    @functools.wraps(method)
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        return _run_on_views(method, self, args, kwargs, keep=False)

    return run  # type: ignore[return-value]


def _numpy_gradient(value: Any, like: Any) -> Any:
    """A backward's argument for the NumPy state of a forward on ``like``'s library's views.

    NumPy arrays, lists and scalars as they are; ``like``'s library's CPU arrays
    as views; another library's or device's array is the Array API path's error.
    """
    if not is_foreign_array(value):
        return value
    if library_name(value) == library_name(like):
        view = cpu_numpy_view(value)
        if view is not None:
            return view
    value = same_library(value, "dout", like, "the forward's input", moves=True)
    xp: Any = foreign_namespace(value)
    if xp.isdtype(value.dtype, "real floating"):  # bfloat16 (NumPy has none): float32 holds its values
        view = cpu_numpy_view(xp.astype(value, xp.float32))
        if view is not None:
            return view
    raise TypeError(f"dout is {type_name(value)} of dtype {value.dtype}, which NumPy cannot read through DLPack; "
                    f"pass dout in the forward output's dtype")


def backward_on_views(method: Method) -> Method:
    """A layer's ``backward`` on the NumPy state of a forward that ran on views; results in the forward's library."""

    @functools.wraps(method)
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        like = self._views_like
        if like is None:
            return method(self, *args, **kwargs)
        held_views = cpu_numpy_views(_layer_arrays(self))
        if held_views is None:  # the parameters were replaced since the forward (a GPU copy): as called
            return method(self, *args, **kwargs)
        args = tuple(_numpy_gradient(value, like) for value in args)
        kwargs = {name: _numpy_gradient(value, like) for name, value in kwargs.items()}
        shadow, start = _shadow(self, held_views)
        result = method(shadow, *args, **kwargs)
        shared = (*(value for value in (*args, *kwargs.values()) if isinstance(value, np.ndarray)),
                  *held_views.values())
        _take_state(self, shadow, start, like, shared)
        return _back(result, like, shared)

    return run  # type: ignore[return-value]


def as_caller_array(layer: Any, array: Any) -> Any:
    """``array`` of the layer's last forward's state (indices) as the caller's library's, if it ran on views."""
    like = layer._views_like
    return array if like is None or not isinstance(array, np.ndarray) else as_library_of(array, like)
