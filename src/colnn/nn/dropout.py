"""The book's ``Dropout`` layer (chapter 6.4.3), with a random generator of its own."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ..core.checks import check_flag, check_seed, describe
from ..core.dtypes import check_float_dtype
from ..core.namespace import as_value, foreign_namespace, is_dask_array, library_token, same_library
from ..ops.xp import as_namespace_of, device_of, namespace_of, zero_like
from .base import LAZY as _LAZY_STATE
from .base import Layer
from .cpu_views import backward_on_views, forward_on_views, infer_on_views

__all__ = ["Dropout"]


class RandomSource(Protocol):
    """What :class:`Dropout` asks of its ``rng``: ``numpy.random.Generator.random``'s uniform draws in [0, 1)."""

    def random(self, size: Any = None) -> Any: ...


class Dropout(Layer):
    """Zero each input element with probability ``dropout_ratio`` while training.

    The book's semantics (chapter 6.4.3), which differ from ``torch.nn.Dropout``
    by where the scale goes: training keeps the surviving elements as they are
    (``x * mask``) and evaluation multiplies everything by ``1 - dropout_ratio``,
    where PyTorch divides the survivors by ``1 - p`` and leaves evaluation alone.
    Both give the same expected output in training and evaluation.

    Parameters
    ----------
    dropout_ratio : probability of dropping an element, in [0, 1)
    seed : seed of the layer's own ``numpy.random.Generator`` (None: fresh
        randomness); the global NumPy random state is never used. ``rng`` may
        be replaced by any Generator, e.g. to replay a mask.

    ``forward(x, train_flg=True)``: any shape -> the same shape and dtype;
    ``backward(dout)`` passes the gradient through the last training mask
    (or scales it by ``1 - dropout_ratio`` after an evaluation forward).
    Another Array API library's array (CuPy, a CUDA tensor, ...) is computed in
    its library and on its device, the mask drawn by ``rng`` and moved there;
    PyTorch and JAX arrays in CPU memory on NumPy views of them
    (:mod:`colnn.nn.cpu_views`), the output, mask and gradient of their library.
    A Dask array is scaled lazily in evaluation; in training it is refused
    (its mask would be drawn chunk by chunk): compute it first.

    Examples
    --------
    >>> layer = Dropout(0.5, seed=0)
    >>> out = layer.forward(np.ones(8))
    >>> bool(np.all((out == 0) | (out == 1))), layer.forward(np.ones(2), train_flg=False)
    (True, array([0.5, 0.5]))
    """

    def __init__(self, dropout_ratio: float = 0.5, *, seed: int | None = None) -> None:
        if isinstance(dropout_ratio, bool) or not isinstance(dropout_ratio, (int, float, np.integer, np.floating)):
            raise TypeError(f"dropout_ratio must be a number, got {describe(dropout_ratio)}")
        if not 0 <= float(dropout_ratio) < 1:
            raise ValueError(f"dropout_ratio must be in [0, 1), got {describe(dropout_ratio)}")
        self.dropout_ratio = float(dropout_ratio)
        self.rng: RandomSource = np.random.default_rng(check_seed(seed))
        self.mask: np.ndarray | None = None  # kept elements of the last training forward
        self._scale: float | None = None  # set instead of mask by an evaluation forward
        self._like: Any = None  # the last input's library_token, which dout must match

    mode_dependent = True
    infers_statelessly = True

    def __repr__(self) -> str:
        return f"Dropout(dropout_ratio={self.dropout_ratio})"

    @infer_on_views
    def infer(self, x: Any) -> Any:
        """The evaluation output ``x * (1 - dropout_ratio)``, keeping nothing."""
        if is_dask_array(x):
            check_float_dtype(x.dtype, "x")
            return x * x.dtype.type(1.0 - self.dropout_ratio)
        x = _as_array(x)
        check_float_dtype(x.dtype, "x")
        return x * _scalar(1.0 - self.dropout_ratio, x)

    @forward_on_views
    def forward(self, x: Any, train_flg: bool = True) -> np.ndarray:
        if check_flag(train_flg, "train_flg"):
            self._refuse_lazy(x, "a training mask would be drawn chunk by chunk")
        elif is_dask_array(x):
            out = self.infer(x)
            self._like, self.mask, self._scale = None, None, None
            self._keep(_LAZY_STATE)
            return out
        x = _as_array(x)
        check_float_dtype(x.dtype, "x")
        xp = namespace_of(x)
        self._like = library_token(x)
        if train_flg:
            mask = as_namespace_of(self.rng.random(tuple(x.shape)) >= self.dropout_ratio, x)
            self.mask, self._scale = mask, None
            self._keep((mask, None, self._like))
            return xp.where(mask, x, zero_like(x))
        self.mask, self._scale = None, 1.0 - self.dropout_ratio
        self._keep((None, self._scale, self._like))
        return x * _scalar(self._scale, x)

    @backward_on_views
    def backward(self, dout: Any) -> np.ndarray:
        mask, scale, like = self._saved()
        dout = same_library(dout, "dout", like, "the forward's input", moves=True)
        if scale is not None:
            return dout * _scalar(scale, dout)
        if tuple(dout.shape) != tuple(mask.shape):
            raise ValueError(f"dout must have the forward output's shape {tuple(mask.shape)}, "
                             f"got {tuple(dout.shape)}")
        return namespace_of(dout).where(mask, dout, zero_like(dout))


def _as_array(value: Any) -> Any:
    """Another Array API library's array as a value (detached); anything else as a NumPy array."""
    return as_value(value) if foreign_namespace(value) is not None else np.asarray(value)


def _scalar(value: float, like: Any) -> Any:
    """``value`` as a 0-d array of ``like``'s dtype, so that scaling keeps the dtype on every library."""
    return namespace_of(like).asarray(value, dtype=like.dtype, device=device_of(like))
