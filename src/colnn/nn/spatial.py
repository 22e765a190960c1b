"""The base of the 1/2/3-d layers: a windowed layer whose input rank follows its dimensionality.

Subclasses set ``ndim`` (and ``floating`` for ops that take only floats) and
implement ``_forward(x) -> (out, window, state)`` and ``_backward(grad, saved)``
on batched arrays, as :class:`colnn.nn.layers._WindowLayer`'s do; ``config()``
returns the constructor's hyper-parameters, which :class:`colnn.nn.network.Network`
saves, and ``from_config`` rebuilds the layer from them (and its ``params``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.checks import from_batched, gradient_dtype, library_token
from ..core.spatial import check_spatial_input
from .layers import _Saved, _WindowLayer

__all__ = ["SpatialLayer"]


class SpatialLayer(_WindowLayer):
    """A windowed layer over ``ndim`` spatial axes: ``(N, C, *spatial)`` or one unbatched ``(C, *spatial)``."""

    ndim: int = 2
    floating: bool = True

    def forward(self, x: Any) -> np.ndarray:
        batched, unbatched = check_spatial_input(x, "x", self.ndim, floating=self.floating, like=self._weights(),
                                                 like_name="W")
        out, window, state = self._forward(batched)
        # A gradient is never an integer: integer max pooling takes and gives float64 gradients.
        grad_dtype = gradient_dtype(out.dtype, out.dtype)
        self._cache = _Saved(tuple(batched.shape), tuple(out.shape), grad_dtype, unbatched, window, state,
                             library_token(batched))
        return from_batched(out, unbatched)

    def _weights(self) -> Any:
        """The array whose library and device the input must share (a convolution's ``W``); None: any."""
        return None

    def config(self) -> dict[str, Any]:
        """Hyper-parameters as JSON-ready values (tuples as lists)."""
        return {name: list(value) if isinstance(value, tuple) else value
                for name, value in vars(self).items() if name in self._config_names}

    @classmethod
    def from_config(cls, config: dict[str, Any], params: dict[str, np.ndarray]) -> "SpatialLayer":
        arguments = {name: config[name] for name in cls._config_names}
        if "W" in params:
            return cls(params["W"], params["b"], **arguments)
        return cls(**arguments)

    _config_names: tuple[str, ...] = ()

    def __repr__(self) -> str:
        arguments = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._config_names)
        return f"{type(self).__name__}({arguments})"
