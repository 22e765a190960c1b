"""Where a conformance test runs: each NumPy strategy, and the Array API path on other libraries.

A conformance test takes the ``backend`` fixture (see ``conftest.py``) instead of
a bare strategy name, builds its input in NumPy as before, and calls the op
through :meth:`Backend.call` (or converts with :meth:`Backend.to` and
:meth:`Backend.back` around a layer). The same assertions then hold colnn to
the oracle on

- ``numba`` and ``im2col``: NumPy arrays, the default and the reference strategy;
- ``array_api_strict``, ``torch`` and ``jax``: that library's arrays, which colnn
  must compute on in place (the Array API reference) and hand back as the same
  kind of array. ``back`` fails the test if it gets anything else.

A backend whose library is missing skips with the reason; one that cannot hold
a dtype (``array_api_strict`` has no float16, PyTorch no uint16) is reported by
:meth:`Backend.supports` so a test can ``assume`` it away.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

NUMPY_STRATEGIES = ("numba", "im2col")
FOREIGN = ("array_api_strict", "torch", "jax")
BACKENDS = NUMPY_STRATEGIES + FOREIGN


@dataclass
class Backend:
    """One place a test runs: ``name`` is a NumPy strategy or a library's name."""

    name: str
    to_library: Callable[[np.ndarray], Any] | None = None
    to_numpy: Callable[[Any], np.ndarray] | None = None
    is_of_library: Callable[[Any], bool] | None = None
    unsupported: frozenset = field(default_factory=frozenset)

    @property
    def foreign(self) -> bool:
        return self.to_library is not None

    @property
    def strategy(self) -> str:
        """The strategy name to pass: foreign arrays run the Array API reference, ``"im2col"``."""
        return "im2col" if self.foreign else self.name

    def supports(self, dtype) -> bool:
        return np.dtype(dtype) not in self.unsupported

    def to(self, value):
        """A NumPy array as this backend's array (anything else unchanged)."""
        if not self.foreign or not isinstance(value, np.ndarray):
            return value
        native = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("="))
        if not native.flags.writeable:  # torch.asarray shares the memory and warns on a read-only array
            native = native.copy()
        return self.to_library(native)

    def back(self, value):
        """This backend's result as NumPy, failing unless it is of the input's kind (tuples too)."""
        if isinstance(value, tuple):
            return tuple(self.back(item) for item in value)
        if not self.foreign:
            assert isinstance(value, np.ndarray), f"expected a NumPy array, got {type(value)}"
            return value
        assert self.is_of_library(value), f"expected a {self.name} array, got {type(value)}"
        return np.asarray(self.to_numpy(value))

    def settings(self, numpy_examples: int, foreign_examples: int | None = None):
        """Hypothesis settings for a ``@given`` test run inside a test that takes this backend.

        The NumPy strategies run ``numpy_examples``; other libraries run
        ``foreign_examples`` (default: as many), but an eighth of that (at least 5) on
        JAX, whose eager calls compile each new shape. Use as
        ``@backend.settings(40, 10)`` over ``@given(...) def check(...)``, then call ``check()``.
        """
        from hypothesis import HealthCheck, settings

        if not self.foreign:
            examples = numpy_examples
        else:
            examples = numpy_examples if foreign_examples is None else foreign_examples
            if self.name == "jax":  # each new shape compiles: 1-3 s an example
                examples = max(5, examples // 8)
        return settings(max_examples=examples, deadline=None,
                        suppress_health_check=[HealthCheck.function_scoped_fixture])

    def call(self, fn: Callable, *args, strategy: bool = True, **kwargs):
        """``fn(*args, **kwargs)`` with NumPy arguments converted here and the result converted back.

        ``strategy=False`` for functions without a ``strategy`` argument.
        """
        args = tuple(self.to(arg) for arg in args)
        kwargs = {key: self.to(value) for key, value in kwargs.items()}
        if strategy:
            kwargs["strategy"] = self.strategy
        return self.back(fn(*args, **kwargs))


def make_backend(name: str) -> Backend:
    """The backend called ``name``, or a pytest skip naming what is missing."""
    if name in NUMPY_STRATEGIES:
        return Backend(name)
    if name == "array_api_strict":
        xs = pytest.importorskip("array_api_strict", reason="needs array-api-strict (pip install colnn[test])")
        strict_type = type(xs.asarray(0))
        return Backend(name, xs.asarray, np.asarray, lambda a: type(a) is strict_type,
                       frozenset({np.dtype(np.float16)}))
    if name == "torch":
        torch = pytest.importorskip("torch", reason="needs torch==2.13.0")
        return Backend(name, torch.asarray, lambda a: a.detach().numpy(), lambda a: isinstance(a, torch.Tensor),
                       frozenset(np.dtype(t) for t in (np.uint16, np.uint32, np.uint64)))
    if name == "jax":
        jax = pytest.importorskip("jax", reason="needs jax (pip install colnn[bench])")
        jax.config.update("jax_enable_x64", True)  # float64 stays float64, as in NumPy
        jnp = importlib.import_module("jax.numpy")
        return Backend(name, jnp.asarray, np.asarray, lambda a: isinstance(a, jax.Array))
    raise ValueError(f"unknown backend {name!r}")
