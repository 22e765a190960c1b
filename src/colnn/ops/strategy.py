"""The one place that picks an op's path: the compiled kernels, the Array API reference, or Dask.

Every public op takes ``strategy=None`` (the default: the compiled kernels of
:mod:`colnn.kernels` where they take the input) or ``"im2col"`` (the tutorial's
path on the Array API standard, :mod:`colnn.ops.reference`: the readable
reference). Three things decide where a call runs, all here:

- a Dask array goes to the op's lazy path in :mod:`colnn.ops.dask`
  (:func:`is_dask_array`; each public function sends it there explicitly);
- another library's array in CPU memory (PyTorch, JAX) is viewed as NumPy
  through DLPack and runs the kernels, its result going back as the caller's
  type (:func:`numpy_for_cpu_arrays`, around every public op); on another device
  (CUDA, or where DLPack cannot export it) it runs the reference where it
  lives, and only ``None`` or ``"im2col"`` may be asked for it;
- a NumPy array runs the kernels unless ``"im2col"`` is asked for or the
  kernels of the op's family cannot take its dtype (:func:`runs_kernels`).

A fourth rule is for callers that opt in (the book's ``Convolution``,
:class:`colnn.book.layers.Convolution`): :func:`warm_up_strategy` runs the
first small convolutions of a process on the reference, so that a script that
convolves a few images never pays for loading the compiled kernels.

Pooling's two paths are objects with one interface (:class:`PoolStrategy`),
:func:`pool_strategy` hands out the one that runs an input.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import numpy as np

from ..core.checks import describe
from ..core.namespace import (
    as_library_of,
    cpu_numpy_views,
    foreign_namespace,
    is_dask_array,
    is_foreign_array,
    library_name,
    type_name,
)
from ..core.window import Window
from ..kernels import conv_chunked
from ..kernels.geometry import kernel_dtype
from ..kernels.pool import NumbaStrategy
from .reference.pooling import ReferencePool

__all__ = [
    "STRATEGIES",
    "available_strategies",
    "check_strategy",
    "runs_kernels",
    "pool_strategy",
    "PoolStrategy",
    "is_dask_array",
    "numpy_for_cpu_arrays",
    "warm_up_strategy",
    "KERNEL_LOAD_SECONDS",
]

#: The names ``strategy`` takes, the default first: the compiled kernels, or the tutorial's im2col path.
STRATEGIES = ("numba", "im2col")


def available_strategies() -> tuple[str, ...]:
    """Names accepted by every op's ``strategy`` argument, the default first.

    >>> available_strategies()
    ('numba', 'im2col')
    """
    return STRATEGIES


def check_strategy(strategy: Any) -> str | None:
    """``strategy`` if it is None or one of :data:`STRATEGIES`; ValueError naming it otherwise."""
    if strategy is not None and not (isinstance(strategy, str) and strategy in STRATEGIES):
        raise ValueError(f"strategy must be one of {[None, *STRATEGIES]}, got {describe(strategy)}")
    return strategy


def _takes_half(dtype: np.dtype) -> bool:
    # Pooling's kernels compute float16 in float32: a max is exact, and a sum of float16 is too.
    return kernel_dtype(dtype) is not None


def _takes_no_half(dtype: np.dtype) -> bool:
    # im2col/col2im sums and products would round float16 differently from the reference.
    return dtype != np.float16 and kernel_dtype(dtype) is not None


# What each family's kernels take: pooling, im2col/col2im/unfold/fold, convolution.
_KERNEL_DTYPES: dict[str, Callable[[np.dtype], bool]] = {
    "pool": _takes_half,
    "unfold": _takes_no_half,
    "conv": conv_chunked.supports_dtype,
}


def runs_kernels(strategy: str | None, x: Any, family: str, dtype: Any = None) -> bool:
    """Whether ``x`` (NumPy, in ``dtype``, default its own) runs the compiled kernels of ``family``.

    ``family`` is ``"pool"``, ``"unfold"`` or ``"conv"``. False means the Array
    API reference. Another library's array reaching here (one on a GPU, or of a
    dtype NumPy lacks: :func:`numpy_for_cpu_arrays` viewed the others as NumPy)
    runs the reference; asking it for the kernels by name is a ValueError (``strategy`` itself is checked at
    the boundary, :func:`check_strategy`).
    """
    if foreign_namespace(x) is not None:
        if strategy not in (None, "im2col"):
            raise ValueError(f"strategy {strategy!r} runs NumPy arrays only; {type_name(x)} runs strategy None "
                             "or 'im2col' (the Array API path)")
        return False
    return strategy != "im2col" and _KERNEL_DTYPES[family](np.dtype(x.dtype if dtype is None else dtype))


Body = TypeVar("Body", bound=Callable[..., Any])


def numpy_for_cpu_arrays(body: Body) -> Body:
    """``body`` (a public op) run on NumPy views of another library's CPU arrays, its result back as their type.

    The one boundary where PyTorch and JAX arrays in CPU memory reach the
    compiled kernels (issue 25): when the arrays among the arguments are all of
    one such library and each has a NumPy view through DLPack
    (:func:`colnn.core.namespace.cpu_numpy_view`), ``body`` runs on the views and
    each array it returns goes back as the caller's type
    (:func:`colnn.core.namespace.as_library_of`: a PyTorch tensor sharing the
    result's memory, a JAX array a copy of it; indices int64, or int32 in JAX
    without x64, as the Array API path gives them). The caller's arrays are read,
    never written. Everything else runs ``body`` as called: NumPy (two loops over
    the arguments), ``strategy="im2col"`` (the reference on the caller's library,
    as asked), arrays on a GPU, dtypes NumPy lacks (bfloat16), and arrays of two
    libraries or of one with NumPy (the Array API path moves a NumPy gradient,
    indices or samples, or refuses the mix). Where the views raise TypeError or
    ValueError (a bad argument), ``body`` runs as called, so the error names
    the caller's types, not NumPy's. A PyTorch tensor that requires grad is
    computed as ``tensor.detach()`` (as on the Array API path): colnn's math is
    NumPy's, its backward its own, so the result carries no autograd graph.
    """
    signature = inspect.signature(body)

    @functools.wraps(body)
    def run(*args: Any, **kwargs: Any) -> Any:
        values = (*args, *kwargs.values())
        foreign = [value for value in values if is_foreign_array(value)]
        if not foreign or any(isinstance(value, np.ndarray) for value in values):
            return body(*args, **kwargs)
        if signature.bind(*args, **kwargs).arguments.get("strategy") == "im2col":
            return body(*args, **kwargs)
        if len({library_name(value) for value in foreign}) != 1:
            return body(*args, **kwargs)
        views = cpu_numpy_views({id(value): value for value in foreign})
        if views is None:
            return body(*args, **kwargs)
        try:
            result = body(*(views.get(id(value), value) for value in args),
                          **{name: views.get(id(value), value) for name, value in kwargs.items()})
        except (TypeError, ValueError):
            return body(*args, **kwargs)  # the same check on the caller's arrays: a message naming their type
        shared = tuple(views.values())
        if isinstance(result, tuple):
            return tuple(as_library_of(item, foreign[0], shared) if isinstance(item, np.ndarray) else item
                         for item in result)
        return as_library_of(result, foreign[0], shared) if isinstance(result, np.ndarray) else result

    return run  # type: ignore[return-value]


class PoolStrategy(Protocol):
    """How pooling windows are reduced, on batched ``(N, C, *spatial)`` arrays.

    The compiled strategy (:class:`colnn.kernels.pool.NumbaStrategy`) takes 2-D
    windows (the N-d ops reach it through a unit axis or depth slices); the
    reference (:class:`colnn.ops.reference.pooling.ReferencePool`) any number.
    """

    def max_forward(self, x: Any, window: Window) -> tuple[Any, Any]:
        """The maxima ``(N, C, *out)`` and the flat offset of each inside its window.

        PyTorch's CPU rule: a cell replaces the running maximum when it is greater
        or NaN, scanning the window row-major; padded cells never count.
        """

    def max_values(self, x: Any, window: Window) -> Any:
        """The maxima of :meth:`max_forward` alone (inference: no offsets to keep)."""

    def max_backward(self, grad_output: Any, window_offset: Any, input_shape: tuple[int, ...], window: Window) -> Any:
        """Route each output gradient to its chosen cell; overlaps sum. Returns ``input_shape``."""

    def avg_forward(self, x: Any, window: Window, divisor: np.ndarray) -> Any:
        """Window sums (padding counts as 0) divided by ``divisor`` ``(*out)``."""

    def avg_backward(self, grad_output: Any, input_shape: tuple[int, ...], window: Window, divisor: np.ndarray) -> Any:
        """Spread ``grad_output / divisor`` over each window's cells; overlaps sum."""


_REFERENCE = ReferencePool()
_KERNELS = NumbaStrategy()


def pool_strategy(strategy: str | None, x: Any, *, dilated_average: bool = False) -> PoolStrategy:
    """The pooling strategy that runs ``x``: the compiled kernels or the reference.

    ``dilated_average``: an average over dilated windows, which only the
    reference computes (ONNX's dilated AveragePool has no compiled kernel).
    """
    if dilated_average:
        runs_kernels(strategy, x, "pool")  # the foreign-array rule still applies
        return _REFERENCE
    return _KERNELS if runs_kernels(strategy, x, "pool") else _REFERENCE


# --- the warm-up rule: a few small convolutions need not load the compiled kernels -----------------

#: CPU seconds a process spends on its first compiled convolution: importing Numba (about 0.27 s over
#: NumPy's own import) and loading the kernels from the disk cache. Measured on the 2-core development
#: machine: 0.45-0.8 s for the first Conv2d forward+backward or 16 forwards of one 256x256 image, against
#: 0.6-1.8 ms for the second, in a fresh process (``strategy=None`` vs ``"im2col"``).
KERNEL_LOAD_SECONDS = 0.5

# What one convolution costs more on the reference than on the kernels, once both are loaded (same
# machine, float64, forward): about 90 us per call (1x1x10x10 image, ten 3x3 filters: 164 vs 73 us) and
# 2.5 ns per multiply-add (one 256x256 image, a 5x5 filter, 3.2 MFLOP: 8.1 vs 0.6 ms).
_REFERENCE_EXTRA_PER_CALL = 90e-6
_REFERENCE_EXTRA_PER_FLOP = 2.5e-9

_warm_up_spent = 0.0


def warm_up_strategy(strategy: str | None, flops: float) -> str | None:
    """The strategy of one convolution of ``flops`` floating-point operations: ``"im2col"`` while warming up.

    ``strategy`` other than None is returned as asked (``"numba"`` forces the
    kernels, ``"im2col"`` the reference). For None, the choice between renting and
    buying: the kernels are faster per call at every size (2x for a 10x10
    image, 13x for a 256x256 one) but their first call costs
    :data:`KERNEL_LOAD_SECONDS` of loading. So the reference runs while the time
    it has cost more than the kernels would have (an estimate: 90 us per call and
    2.5 ns per FLOP, measured) stays under that load; from then on (or at once,
    when Numba is loaded already by another op) the kernels run. A process can
    thus spend at most about twice the better choice's time, whatever its number
    of calls: 16 convolutions of a 256x256 image (the book's ``apply_filter.py``)
    stay on the reference, a training loop reaches the kernels within its
    first batches. Both paths are exact against PyTorch.

    A caller with a backward must keep the strategy of its forward for it (the
    two paths keep different state): :class:`colnn.book.layers.Convolution` does.
    """
    global _warm_up_spent
    if strategy is not None or "numba" in sys.modules:
        return strategy
    extra = _REFERENCE_EXTRA_PER_CALL + _REFERENCE_EXTRA_PER_FLOP * flops
    if _warm_up_spent + extra > KERNEL_LOAD_SECONDS:
        return None
    _warm_up_spent += extra
    return "im2col"
