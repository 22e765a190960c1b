"""Names of a package imported on first use (PEP 562), so that importing one module loads only what it needs.

``import colnn.book.functions`` runs ``colnn/__init__.py`` first; were that to
import every layer and op eagerly, a chapter 3 script would pay for all of
colnn (about twice NumPy's own import) to call ``sigmoid``. A package instead
names where each public name lives::

    __getattr__, __dir__ = lazy_names(__name__, {"Relu": ".nn", "conv2d": ".ops"})

and the first ``colnn.Relu`` imports ``colnn.nn`` and keeps the class in the
package's namespace, so later lookups are plain attribute reads. Type checkers
and readers see the names through ``if TYPE_CHECKING:`` imports beside it.

A module's own classes and calls are deferred the same way by :mod:`.stand_ins`
(a stand-in base class, a stand-in module); this module is only the packages'
half, because every import of colnn runs it: without bytecode (under
``PYTHONDONTWRITEBYTECODE``) each line of it is compiled again by every
chapter 4 script.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(package: str, homes: Mapping[str, str], submodules: tuple[str, ...] = ()
               ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` for ``homes``: public name -> module (relative to ``package``).

    ``__getattr__(name)`` imports the home of ``name``, keeps the value in the
    package's namespace and returns it; a name of ``submodules`` is that
    subpackage itself (``colnn.nn`` after a bare ``import colnn``, as when
    the package imported it eagerly); an unknown name is AttributeError, as for
    any module. ``__dir__()`` lists the namespace and the lazy names.

    A name that is also its home module's (``colnn.nn.deep_conv_net``, the
    function of the module ``deep_conv_net``) stays the function when something
    imports the module itself later, as it did when the package imported it eagerly
    (the import system would otherwise bind the module in its place).
    """
    namesakes = {name for name, home in homes.items() if home == f".{name}"}
    if namesakes:
        sys.modules[package].__class__ = _namesakes_kept(frozenset(namesakes))

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
        # The public names and the module's dunders, not its import-time helpers (TYPE_CHECKING, lazy_names).
        module = sys.modules[package]
        dunders = (name for name in vars(module) if name.startswith("__"))
        return sorted({*dunders, *getattr(module, "__all__", ()), *homes, *submodules})

    return __getattr__, __dir__


def _namesakes_kept(namesakes: frozenset[str]) -> type[types.ModuleType]:
    """A module class whose ``namesakes`` stay the same-named object of their submodule when it is bound."""

    class NamesakesKept(types.ModuleType):
        def __setattr__(self, name: str, value: Any) -> None:
            # The import system binds a submodule in its package once the submodule has run: take its namesake.
            if (name in namesakes and isinstance(value, types.ModuleType)
                    and value.__name__ == f"{self.__name__}.{name}"):
                value = getattr(value, name)
            super().__setattr__(name, value)

    return NamesakesKept
