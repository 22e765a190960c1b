"""Array and argument checks at the public boundary: dtype, byte order, rank, batch axis, flags and choices.

Every public function and layer reads its array arguments through these
helpers, once, so that a bad input raises the same error, naming the argument
and its value, wherever it enters. What passes is normalized here too, so that
no op below sees it: non-native byte order becomes native (outputs are always
in native order), and the batch axis may be empty (``N = 0``, as in PyTorch)
while every other axis may not. A Dask array is refused where an op has no Dask
path (:func:`refuse_dask`): reading it as NumPy would compute all of it.
The helpers these build on are split by concept: :mod:`.namespace` (which
library an array belongs to) and :mod:`.dtypes` (which dtype a result takes).
"""

from __future__ import annotations

import math
import numbers
import reprlib
from collections.abc import Iterable
from typing import Any

import numpy as np

from .dtypes import as_numpy_dtype, check_float_dtype, gradient_dtype
from .namespace import as_value, cast_array, foreign_namespace, is_dask_array, same_library, type_name

__all__ = [
    "describe",
    "refuse_dask",
    "stand_in",
    "check_array",
    "check_float_array",
    "to_batched",
    "from_batched",
    "check_grad_shape",
    "check_choice",
    "check_flag",
    "check_rng",
    "check_seed",
    "check_batch_shape",
    "cast_pad_value",
]

_brief = reprlib.Repr()
_brief.maxstring = _brief.maxother = 60
_brief.maxlist = _brief.maxtuple = 6


def describe(value: Any) -> str:
    """A short, one-line description of ``value`` for an error message.

    An array (of any library) is named by its type, dtype and shape, never by its
    contents, which may be large or private; anything else by a repr cut to a few items.
    """
    if isinstance(value, np.generic):  # a NumPy scalar is short: its repr names its type and value
        return repr(value)
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"{type_name(value)[2:].lstrip()} of dtype {value.dtype} and shape {tuple(value.shape)}"
    if isinstance(value, (list, tuple)) and (len(value) > 6 or any(isinstance(v, (list, tuple)) for v in value)):
        return f"{type(value).__name__} of length {len(value)}"
    return _brief.repr(value)


def refuse_dask(x: Any, name: str, op: str, way: str = "") -> None:
    """TypeError if ``x`` is a Dask array: ``op`` has no lazy path for ``name``, and reading it would compute it.

    The message names the op and what to do instead: ``way`` (e.g. "the
    function form, which is lazy"), else to compute the array first.
    """
    if is_dask_array(x):
        instead = way or f"compute it first ({name}.compute()) if it fits in memory"
        raise TypeError(f"{op} takes no Dask array as {name} (it would be computed into memory): {instead}")


def stand_in(x: Any) -> np.ndarray:
    """A read-only ndarray of ``x``'s shape and dtype that takes no memory: a lazy array's face for the checks.

    A public op checks a Dask array's shape and dtype through the same helpers,
    with the same messages, as a NumPy array's, without reading (computing) it.
    """
    cell = np.zeros(1, dtype=x.dtype)
    return np.lib.stride_tricks.as_strided(cell, shape=tuple(x.shape), strides=(0,) * len(x.shape), writeable=False)


def _as_numeric_array(x: Any, name: str) -> np.ndarray:
    """``x`` as a real integer or floating ndarray in native byte order (a copy only if the order changes)."""
    if x is None:
        raise TypeError(f"{name} must be a numeric array, got None")
    # np.asarray of a Dask array computes all of it: never silently (each op with a Dask path routes it there first).
    refuse_dask(x, name, "this call")
    try:
        array = np.asarray(x)
    except (ValueError, TypeError) as error:
        # NumPy's message ("inhomogeneous shape ...") names neither the argument nor the value.
        raise ValueError(f"{name} must be a rectangular array, got a ragged sequence ({describe(x)})") from error
    if array.dtype.kind not in "iuf":
        # An array's description names its dtype; a list's names only its type, so the dtype goes first.
        got = describe(x) if hasattr(x, "dtype") else f"dtype {array.dtype}: {describe(x)}"
        raise TypeError(f"{name} must be a real integer or floating array, got {got}")
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return array


def _weak_dtype(array: np.ndarray, like: Any, kinds: str) -> np.ndarray:
    """``array`` (read from a list or Python scalar) in ``like``'s floating dtype if its kind is in ``kinds``.

    NumPy 2's promotion (NEP 50) gives Python numbers no dtype of their own, so
    ``[0.1, 0.2]`` as the bias of a float32 weight is float32, as a layer keeps it.
    """
    try:
        target = as_numpy_dtype(like.dtype)
    except TypeError:  # bfloat16 and other dtypes NumPy lacks: NumPy's reading stands
        return array
    if target.kind != "f" or array.dtype.kind not in kinds or array.dtype == target:
        return array
    return array.astype(target)


def _ranks(ndims: tuple[int, ...]) -> str:
    if len(ndims) > 2 and ndims == tuple(range(ndims[0], ndims[-1] + 1)):
        return f"{ndims[0]}-D to {ndims[-1]}-D"
    return " or ".join(str(d) for d in ndims) + "-D"


def check_array(
    x: Any,
    name: str = "input",
    *,
    ndims: tuple[int, ...] | None = (3, 4),
    batch_ndims: Iterable[int] = (4,),
    array_api: bool = False,
    like: Any = None,
    like_name: str = "input",
    moves: bool = False,
    weak_kinds: str = "f",
) -> np.ndarray:
    """Return ``x`` as a real numeric ndarray (integer or floating) of an allowed rank, in native byte order.

    Parameters
    ----------
    x : array-like
    name : the argument's name, for messages
    ndims : allowed ranks (None: any)
    batch_ndims : ranks at which axis 0 is a batch axis, which may be empty
        (``N = 0``); every other axis must be non-empty. Pass ``()`` for
        parameters (a weight with no filters is an error).
    array_api : let an array of another Array API library (PyTorch, JAX,
        CuPy, ...) through as it is, checked where it lives, for the ops that
        compute on any namespace; otherwise it is converted to NumPy. A
        PyTorch tensor that requires grad comes back detached (a value).
    like, like_name : the array ``x`` must match in library and device (see
        :func:`same_library`), and its name for messages; None: no check.
        A list or scalar is read by NumPy's rules, then moved to ``like``'s
        library; a NumPy array too if ``moves``. A list or scalar of a kind in
        ``weak_kinds`` (NumPy's dtype kinds) takes ``like``'s floating dtype
        (NumPy 2's NEP 50: Python numbers carry no dtype of their own).

    Raises
    ------
    TypeError
        For strings, objects, booleans, complex numbers and None; for an
        array of another library than ``like``'s.
    ValueError
        For a ragged nested sequence, a rank not in ``ndims`` or an empty
        non-batch axis; for an array on another device than ``like``.

    The array is copied only to change a non-native byte order.
    """
    xp = foreign_namespace(x) if array_api else None
    if xp is None:
        array = _as_numeric_array(x, name)
    elif not xp.isdtype(x.dtype, ("integral", "real floating")):
        raise TypeError(f"{name} must be a real integer or floating array, got dtype {x.dtype}")
    else:
        array = as_value(x)
    if like is not None:
        # A list or scalar belongs to no library: read by NumPy's rules, it goes where ``like`` is.
        no_library = xp is None and not isinstance(x, np.ndarray)
        if no_library:
            array = _weak_dtype(array, like, weak_kinds)
        array = same_library(array, name, like, like_name, moves=moves or no_library)
    shape = tuple(array.shape)
    if ndims is not None and array.ndim not in ndims:
        got = f"a scalar {describe(x)}" if array.ndim == 0 else f"shape {shape}"
        raise ValueError(f"{name} must be {_ranks(tuple(ndims))}, got {got}")
    inner = shape[1:] if array.ndim in tuple(batch_ndims) else shape
    if 0 in inner:
        what = "axes after the batch axis" if array.ndim in tuple(batch_ndims) else "axes"
        raise ValueError(f"{name} must have non-empty {what}, got shape {shape}")
    return array


def check_float_array(
    x: Any,
    name: str = "input",
    *,
    ndims: tuple[int, ...] | None = (3, 4),
    batch_ndims: Iterable[int] = (4,),
    array_api: bool = False,
    like: Any = None,
    like_name: str = "input",
) -> np.ndarray:
    """Like :func:`check_array`, but integer dtypes raise TypeError; a list of ints given with ``like`` takes its
    dtype."""
    array = check_array(x, name, ndims=ndims, batch_ndims=batch_ndims, array_api=array_api, like=like,
                        like_name=like_name, weak_kinds="fiu")
    check_float_dtype(array.dtype, name)
    return array


def to_batched(x: np.ndarray) -> tuple[np.ndarray, bool]:
    """View a ``(C, H, W)`` sample as ``(1, C, H, W)``; return it and whether it was unbatched."""
    if x.ndim == 3:
        return x[None, ...], True
    return x, False


def from_batched(x, unbatched: bool):
    """Undo :func:`to_batched`: drop the batch axis of a one-sample result when the input had none.

    ``x[0, ...]`` rather than ``x[0]``: the Array API standard requires an index for every axis.
    """
    return x[0, ...] if unbatched else x


def check_grad_shape(dout: Any, expected_shape: tuple[int, ...], dtype: np.dtype, like: Any = None) -> np.ndarray:
    """Return ``dout`` in :func:`gradient_dtype` of ``dtype`` if its shape is ``expected_shape``.

    ``like`` (the forward's input, or its :func:`library_token`): ``dout`` must
    be of its library and device, or NumPy (moved there).
    """
    grad = check_array(dout, "dout", ndims=(len(expected_shape),), batch_ndims=(len(expected_shape),),
                       array_api=True, like=like, like_name="the forward's input", moves=True)
    if tuple(grad.shape) != tuple(expected_shape):
        raise ValueError(
            f"dout must have the forward output's shape {tuple(expected_shape)}, got {tuple(grad.shape)}"
        )
    return cast_array(grad, gradient_dtype(dtype, grad.dtype))


def check_choice(value: Any, name: str, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices``, else ValueError naming ``name`` and the choices."""
    choices = tuple(choices)
    if not any(value is choice or (isinstance(value, str) and value == choice) for choice in choices):
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_flag(value: Any, name: str) -> bool:
    """``value`` as a bool; anything but a bool (``"no"``, ``None``, ``2``) is a TypeError naming ``name``.

    ``bool("no")`` is True: reading any object as a flag would silently turn a typo into a setting.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {describe(value)}")
    return bool(value)


def check_rng(rng: Any, name: str = "rng") -> np.random.Generator:
    """``rng`` if it is a ``numpy.random.Generator``, a fresh one for None; else a TypeError naming ``name``.

    colnn draws its randomness from NumPy generators only (seeds go to ``seed=``
    arguments), so an int, a legacy ``RandomState`` or a ``torch.Generator`` is refused here,
    where it is passed, rather than failing at the first draw.
    """
    if rng is None:
        return np.random.default_rng()
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{name} must be a numpy.random.Generator or None, got {type_name(rng)} "
                        f"({describe(rng)}); e.g. numpy.random.default_rng(0)")
    return rng


def check_seed(seed: Any, name: str = "seed") -> int | None:
    """``seed`` as an int >= 0 or None (fresh randomness): TypeError/ValueError naming ``name`` otherwise."""
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{name} must be an int or None, got {type_name(seed)} ({describe(seed)})")
    if seed < 0:
        raise ValueError(f"{name} must be >= 0, got {seed!r}")
    return int(seed)


def check_batch_shape(value: Any, name: str, ndim: int = 4) -> tuple[int, ...]:
    """``value`` as a shape of ``ndim`` ints: the batch size ``>= 0``, every other size ``>= 1``."""
    try:
        sizes = tuple(value)
    except TypeError as error:
        raise TypeError(f"{name} must be a tuple of {ndim} ints, got {describe(value)}") from error
    if any(isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral) for v in sizes):
        raise TypeError(f"{name} must be a tuple of {ndim} ints, got {describe(value)}")
    if len(sizes) != ndim or sizes[0] < 0 or any(v < 1 for v in sizes[1:]):
        raise ValueError(f"{name} must be {ndim} sizes, the batch >= 0 and the rest >= 1, got {describe(value)}")
    return tuple(int(v) for v in sizes)


def cast_pad_value(pad_value: Any, dtype: np.dtype, name: str = "pad_value") -> Any:
    """``pad_value`` as a scalar of ``dtype``.

    +-inf in an integer dtype means its maximum / minimum. A value that is not a
    real number is a TypeError; an integer dtype that cannot hold it exactly,
    or a finite value that overflows a floating dtype (1e6 in float16), a
    ValueError.
    """
    dtype = np.dtype(dtype)
    if isinstance(pad_value, (bool, np.bool_)) or not isinstance(pad_value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {describe(pad_value)}")
    unrepresentable = ValueError(f"{name} {pad_value!r} cannot be represented in the input's dtype {dtype}")
    try:
        as_float = float(pad_value)
    except OverflowError as error:  # an int beyond any float
        raise unrepresentable from error
    if dtype.kind in "iu" and math.isinf(as_float):
        info = np.iinfo(dtype)
        return dtype.type(info.max if as_float > 0 else info.min)
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            cast = np.asarray(pad_value).astype(dtype)
    except (OverflowError, TypeError) as error:
        raise unrepresentable from error
    if dtype.kind == "f":
        representable = np.isfinite(cast) or not math.isfinite(as_float)
    else:
        representable = not math.isnan(as_float) and int(cast) == pad_value
    if not representable:
        raise unrepresentable
    return dtype.type(cast)
