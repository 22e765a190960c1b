"""Names of a package imported on first use (PEP 562), so that importing one module loads only what it needs.

``import colnn.book.functions`` runs ``colnn/__init__.py`` first; were that to
import every layer and op eagerly, a chapter 3 script would pay for all of
colnn (about twice NumPy's own import) to call ``sigmoid``. A package instead
names where each public name lives::

    __getattr__, __dir__ = lazy_names(__name__, {"Relu": ".nn", "conv2d": ".ops"})

and the first ``colnn.Relu`` imports ``colnn.nn`` and keeps the class in the
package's namespace, so later lookups are plain attribute reads. Type checkers
and readers see the names through ``if TYPE_CHECKING:`` imports beside it.

A module whose classes extend colnn's layers (``colnn.book.layers``: ``class
Affine(colnn.Affine)``) would import them all to define its classes, before a
script has built a single layer. :func:`lazy_base` gives such a class a
stand-in base that becomes the real one when the class is first constructed
(or an attribute it would inherit is first looked up)::

    class Affine(lazy_base("colnn.nn", "Affine")): ...

Class identity holds (there is one ``Affine``, and every instance of it is a
``colnn.Affine``); only ``issubclass(Affine, colnn.Affine)`` asked before any
construction is False.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_names", "lazy_base"]


def lazy_names(package: str, homes: Mapping[str, str], submodules: tuple[str, ...] = ()
               ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` for ``homes``: public name -> module (relative to ``package``).

    ``__getattr__(name)`` imports the home of ``name``, keeps the value in the
    package's namespace and returns it; a name of ``submodules`` is that
    subpackage itself (``colnn.nn`` after a bare ``import colnn``, as when
    the package imported it eagerly); an unknown name is AttributeError, as for
    any module. ``__dir__()`` lists the namespace and the lazy names.
    """

    def __getattr__(name: str) -> Any:
        if name in submodules:
            return importlib.import_module(f".{name}", package)  # the import binds it in the package
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *homes})

    return __getattr__, __dir__


# Classes defined on a stand-in from lazy_base whose real base is not imported yet.
_pending: list[type] = []
_resolving = threading.Lock()


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
