"""Stand-ins for a class or a module of a higher layer, replaced by the real one on first use.

A module whose classes extend colnn's layers (``colnn.book.layers``: ``class
Affine(colnn.Affine)``) would import them all to define its classes, before a
script has built a single layer. :func:`lazy_base` gives such a class a
stand-in base that becomes the real one when the class is first constructed
(or an attribute it would inherit is first looked up)::

    class Affine(lazy_base("colnn.nn", "Affine")): ...

Class identity holds (there is one ``Affine``, and every instance of it is a
``colnn.Affine``); only ``issubclass(Affine, colnn.Affine)`` asked before any
construction is False.

A module that calls another's functions only once a script runs (the lean
``Relu`` of ``colnn.book.layers`` calls the ReLU kernel's wrapper) binds a
:func:`lazy_module` in its namespace instead of importing it: the first
attribute lookup imports the module and rebinds the name to it, so later
lookups cost what a module attribute does::

    relu_kernels = lazy_module("colnn.kernels.relu", globals(), "relu_kernels")

The package-level half, names of a package imported on first use, is :mod:`.lazy`.
"""

from __future__ import annotations

import _thread
import importlib
import types
from collections.abc import Callable, MutableMapping
from typing import Any

__all__ = ["lazy_base", "lazy_module"]


# Classes defined on a stand-in from lazy_base whose real base is not imported yet.
_pending: list[type] = []
# _thread's lock, not threading's: importing threading costs half a millisecond, which the book's scripts do without.
_resolving = _thread.allocate_lock()


def _resolve_pending() -> None:
    """Put every pending class on its real base (importing the bases' modules)."""
    with _resolving:
        while _pending:
            cls = _pending[-1]  # dropped once done: a failed import leaves it pending, to be tried again
            cls.__bases__ = tuple(_stand_ins[base]() if base in _stand_ins else base for base in cls.__bases__)
            _pending.pop()


# Each stand-in -> the import of the class it stands for.
_stand_ins: dict[type, Callable[[], type]] = {}


class _LazyBaseMeta(type):
    """Metaclass of the stand-ins and their subclasses: the first construction or inherited lookup resolves them."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if _pending:
            _resolve_pending()
        return super().__call__(*args, **kwargs)

    def __getattr__(cls, name: str) -> Any:
        # Only names the class does not have yet, i.e. those its real base would give it.
        if _pending and not name.startswith("__"):
            _resolve_pending()
            return getattr(cls, name)
        raise AttributeError(f"type object {cls.__name__!r} has no attribute {name!r}")

    def __dir__(cls) -> list[str]:
        if _pending:
            _resolve_pending()
        return list(super().__dir__())


def lazy_base(module: str, name: str) -> type:
    """A stand-in for the class ``module.name``, to subclass; it becomes that class on the subclass's first use.

    The first construction of a subclass (unpickling and copying included), or
    the first lookup of an attribute the subclass lacks (an inherited method), imports ``module`` and replaces
    the stand-in in every such subclass's ``__bases__`` by ``module.name``; from
    then on the subclass is an ordinary subclass of it (``super()`` and
    ``isinstance`` as usual). The real base must have the stand-in's layout (a
    plain Python class: no ``__slots__``). For type checkers, import the real
    class under ``if TYPE_CHECKING:`` and subclass that.
    """

    def __init_subclass__(cls: type, **kwargs: Any) -> None:
        if stand_in in cls.__bases__:
            _pending.append(cls)

    def __setstate__(self: Any, state: Any) -> None:
        # An instance made without calling its class (unpickled, copied) gets the real base before its state.
        _resolve_pending()
        own = getattr(type(self), "__setstate__", None)
        if own is not None:
            own(self, state)
            return
        state, slots = state if isinstance(state, tuple) else (state, None)
        self.__dict__.update(state or {})
        for key, value in (slots or {}).items():
            setattr(self, key, value)

    stand_in = _LazyBaseMeta(name, (), {"__module__": module, "__init_subclass__": __init_subclass__,
                                         "__setstate__": __setstate__,
                                         "__doc__": f"Stand-in for {module}.{name} until its first use."})
    _stand_ins[stand_in] = lambda: getattr(importlib.import_module(module), name)
    return stand_in


class _LazyModule(types.ModuleType):
    """Stand-in for a module not imported yet (see :func:`lazy_module`)."""

    def __init__(self, name: str, namespace: MutableMapping[str, Any], binding: str) -> None:
        super().__init__(name, f"Stand-in for {name} until its first use.")
        self._namespace, self._binding = namespace, binding

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):  # copy, pickle and introspection probe dunders: not a use of the module
            raise AttributeError(attribute)
        module = importlib.import_module(self.__name__)
        if self._namespace.get(self._binding) is self:
            self._namespace[self._binding] = module
        return getattr(module, attribute)


def lazy_module(name: str, namespace: MutableMapping[str, Any], binding: str) -> types.ModuleType:
    """A stand-in for the module ``name``, bound as ``namespace[binding]``, that imports it on first use.

    ``namespace`` is the caller's ``globals()``. The first lookup of an
    attribute (not a dunder) on the stand-in imports ``name`` and rebinds
    ``namespace[binding]`` to the real module, so functions of the caller that
    read the global from then on reach the module directly. A copy of the
    stand-in kept elsewhere keeps working, forwarding each lookup. For type
    checkers, import the module under ``if TYPE_CHECKING:`` instead.
    """
    return _LazyModule(name, namespace, binding)
