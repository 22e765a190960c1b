"""Array checks at the public boundary: dtype, byte order, rank, batch axis and gradient shape.

Every public function and layer reads its array arguments through these
helpers, once, so that a bad input raises the same error, naming the argument
and its value, wherever it enters. What passes is normalized here too, so that
no op below sees it: non-native byte order becomes native (outputs are always
in native order), and the batch axis may be empty (``N = 0``, as in PyTorch)
while every other axis may not.
"""

from __future__ import annotations

import math
import numbers
import reprlib
import sys
from typing import Any, Iterable

import numpy as np

from .indices import x64_hint

__all__ = [
    "foreign_namespace",
    "type_name",
    "as_value",
    "same_library",
    "move_numpy",
    "namespace_dtype",
    "library_token",
    "as_numpy_dtype",
    "cast_array",
    "check_array",
    "check_float_array",
    "check_float_dtype",
    "to_batched",
    "check_grad_shape",
    "gradient_dtype",
    "accumulation_dtype",
    "check_choice",
    "check_flag",
    "check_rng",
    "check_seed",
    "check_batch_shape",
    "cast_pad_value",
    "lowest_value",
]

_brief = reprlib.Repr()
_brief.maxstring = _brief.maxother = 60
_brief.maxlist = _brief.maxtuple = 6


def describe(value: Any) -> str:
    """A short, one-line description of ``value`` for an error message.

    An array (of any library) is named by its type, dtype and shape, never by its
    contents, which may be large or private; anything else by a repr cut to a few items.
    """
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"{type_name(value)[2:].lstrip()} of dtype {value.dtype} and shape {tuple(value.shape)}"
    if isinstance(value, (list, tuple)) and (len(value) > 6 or any(isinstance(v, (list, tuple)) for v in value)):
        return f"{type(value).__name__} of length {len(value)}"
    return _brief.repr(value)


# Libraries whose arrays may run the Array API path where they live. Their modules
# are never imported here: an object's type names its library.
_ARRAY_API_LIBRARIES = frozenset({"torch", "jax", "jaxlib", "cupy", "array_api_strict"})


def foreign_namespace(x: Any) -> Any | None:
    """The Array API namespace of ``x`` if it is another library's array than NumPy's (or Dask's), else None.

    Only an object whose library is known, or that has ``__array_namespace__``,
    makes colnn import ``array_api_compat``; NumPy arrays and lists never do.
    """
    if isinstance(x, (np.ndarray, np.generic, list, tuple, int, float)) or x is None:
        return None
    library = type(x).__module__.partition(".")[0]
    if library not in _ARRAY_API_LIBRARIES and not hasattr(x, "__array_namespace__"):
        return None
    import array_api_compat

    if array_api_compat.is_numpy_array(x) or array_api_compat.is_dask_array(x):
        return None
    return array_api_compat.array_namespace(x)


def type_name(value: Any) -> str:
    """How a message names ``value``'s type: "a numpy.ndarray", "a torch.Tensor", "an array_api_strict Array", "a list".

    The dotted name when the library exports the class under it, else the
    library and the class (never a private module path); every JAX array is "a jax.Array".
    """
    kind = type(value)
    library = kind.__module__.partition(".")[0]
    if library == "builtins":
        text = kind.__name__
    elif library in ("jax", "jaxlib"):
        text = "jax.Array"
    elif getattr(sys.modules.get(library), kind.__name__, None) is kind:
        text = f"{library}.{kind.__name__}"
    else:
        text = f"{library} {kind.__name__}"
    return ("an " if text[0] in "aeiou" else "a ") + text


def as_value(x: Any) -> Any:
    """A PyTorch tensor that requires grad as a plain tensor sharing its memory; anything else as it is.

    colnn's backward is its own, not autograd: a graph built inside colnn
    would only hold memory, and a copy of a Parameter would still track it.
    """
    return x.detach() if getattr(x, "requires_grad", False) else x


def _device(x: Any) -> Any:
    import array_api_compat

    return array_api_compat.device(x)


def same_library(array: Any, name: str, like: Any, like_name: str, *, moves: bool = False) -> Any:
    """``array`` if it is of ``like``'s library and on its device; TypeError/ValueError naming both else.

    The one rule of the public boundary: the arrays of one call (an op's
    input, weight and bias; a layer's parameters and its input; a backward's
    ``dout`` and the forward's input) are of one library, on one device. When
    ``moves`` (a gradient, indices or samples, which the README lets come as
    NumPy; or a list or scalar, already read by NumPy's rules), a NumPy
    ``array`` is moved to ``like``'s library and device instead.
    NumPy with NumPy costs two ``isinstance`` checks. A PyTorch tensor that
    requires grad comes back detached.
    """
    if isinstance(array, np.ndarray) and isinstance(like, np.ndarray):
        return array
    like_xp, xp = foreign_namespace(like), foreign_namespace(array)
    if xp is None and not isinstance(array, np.ndarray):
        array, moves = np.asarray(array), True  # a list or scalar belongs to no library
    if like_xp is not None and xp is None and moves:
        return move_numpy(array, like_xp, _device(like), name)
    if xp is not like_xp:
        raise TypeError(f"{name} is {type_name(array)} but {like_name} is {type_name(like)}; "
                        "pass arrays of one library")
    if xp is not None and _device(array) != _device(like):
        raise ValueError(f"{name} is on device {_device(array)} but {like_name} is on device {_device(like)}; "
                         "pass arrays on one device")
    return as_value(array)


def move_numpy(array: np.ndarray, xp: Any, device: Any, name: str) -> Any:
    """NumPy ``array`` as an array of namespace ``xp`` on ``device``: how every NumPy value enters another library.

    Parameters
    ----------
    array : np.ndarray, any dtype, shape and byte order, read-only or not
    xp, device : the target namespace and device (another library's, :func:`foreign_namespace`)
    name : the argument's name, for messages

    Returns
    -------
    An array of ``xp`` on ``device``, of ``array``'s values and shape, in ``xp``'s
    dtype for ``array``'s (JAX without x64 stores int64 as int32).

    Raises
    ------
    ValueError
        Naming ``name`` and the value, when an integer of ``array`` does not fit
        the narrower dtype ``xp`` stores it in: the caller's values are checked
        before the move, so nothing wraps around.

    PyTorch, JAX and ``array_api_strict`` refuse a non-native byte order, and
    PyTorch warns on a read-only array (a broadcast view), whose memory its
    tensor would share: either is copied to a native, writable array first;
    any other array is passed as it is (a copy only where ``xp`` makes one).
    """
    if not array.dtype.isnative or not array.flags.writeable:
        array = array.astype(array.dtype.newbyteorder("="), copy=True)
    if array.dtype.kind in "iu" and array.size:
        stored = as_numpy_dtype(xp.asarray(array[:0], device=device).dtype)
        info = np.iinfo(stored)
        low, high = int(array.min()), int(array.max())
        if low < info.min or high > info.max:
            value = high if high > info.max else low
            raise ValueError(f"{name} holds {value}, which {xp.__name__} stores as {stored} "
                             f"(range [{info.min}, {info.max}]){x64_hint(xp)}")
    return xp.asarray(array, device=device)


def namespace_dtype(xp: Any, dtype: Any, name: str = "dtype") -> Any:
    """``xp``'s dtype named like ``dtype`` (a NumPy dtype or name); TypeError naming ``name`` where ``xp`` has none.

    A library lacking it would otherwise substitute another with a warning
    (JAX without x64 truncates float64 to float32) or fail with its own
    message (``array_api_strict`` has no float16).
    """
    dtype = as_numpy_dtype(dtype)
    found = _lookup_dtype(xp, dtype.name)
    if found is None:
        available = sorted(xp.__array_namespace_info__().dtypes())
        raise TypeError(f"{name} {dtype} is not a dtype of {xp.__name__}, which has {available}{x64_hint(xp)}")
    return found


# The standard's dtypes, which ``__array_namespace_info__().dtypes()`` reports; float16 is not one.
_STANDARD_DTYPES = frozenset({"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                              "float32", "float64", "complex64", "complex128"})


def _lookup_dtype(xp: Any, name: str) -> Any:
    """``xp``'s dtype called ``name``, or None where it has none.

    A standard dtype as the namespace reports it (JAX without x64 keeps the name
    ``float64`` but stores float32); any other (float16) by attribute.
    """
    if name in _STANDARD_DTYPES:
        return xp.__array_namespace_info__().dtypes().get(name)
    return getattr(xp, name, None)


_NUMPY_TOKEN = np.empty(0)


def library_token(x: Any) -> Any:
    """An empty array of ``x``'s library and device (one shared for NumPy).

    What a layer keeps from its forward so that ``backward`` can check ``dout``
    against the input's library without keeping the input.
    """
    xp = foreign_namespace(x)
    if xp is None:
        return _NUMPY_TOKEN
    return xp.empty((0,), dtype=x.dtype, device=_device(x))


def as_numpy_dtype(dtype: Any) -> np.dtype:
    """NumPy's dtype of the same kind and size as ``dtype`` (NumPy's, or any Array API library's)."""
    try:
        return np.dtype(dtype)
    except TypeError:
        # torch.float32, array_api_strict.float32, ...: the standard's names are NumPy's.
        return np.dtype(str(dtype).rsplit(".", 1)[-1])


def cast_array(array: Any, dtype: Any) -> Any:
    """``array`` in ``dtype`` (a NumPy dtype or name), in its own namespace; no copy if it has it already.

    ``dtype`` is one colnn derived (a gradient's, an accumulator's), not one the
    caller named: where the namespace lacks a floating ``dtype`` (float64 on JAX
    without x64) its default float stands in, as ``jnp.asarray`` does for a
    float64 NumPy array, without JAX's warning. Any other missing dtype is a
    TypeError (:func:`namespace_dtype`).
    """
    dtype = as_numpy_dtype(dtype)
    xp = foreign_namespace(array)
    if xp is None:
        return array.astype(dtype, copy=False)
    if array.dtype == getattr(xp, dtype.name, None):
        return array
    target = _lookup_dtype(xp, dtype.name)
    if target is None and dtype.kind == "f":
        target = xp.__array_namespace_info__().default_dtypes(device=_device(array))["real floating"]
    if target is None:
        target = namespace_dtype(xp, dtype)
    return array if array.dtype == target else xp.astype(array, target)


def _as_numeric_array(x: Any, name: str) -> np.ndarray:
    """``x`` as a real integer or floating ndarray in native byte order (a copy only if the order changes)."""
    if x is None:
        raise TypeError(f"{name} must be a numeric array, got None")
    try:
        array = np.asarray(x)
    except (ValueError, TypeError) as error:
        # NumPy's message ("inhomogeneous shape ...") names neither the argument nor the value.
        raise ValueError(f"{name} must be a rectangular array, got a ragged sequence ({describe(x)})") from error
    if array.dtype.kind not in "iuf":
        raise TypeError(
            f"{name} must be a real integer or floating array, got dtype {array.dtype}: {describe(x)}"
        )
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
    """Like :func:`check_array`, but integer dtypes raise TypeError; a list of ints given with ``like`` takes its dtype."""
    array = check_array(x, name, ndims=ndims, batch_ndims=batch_ndims, array_api=array_api, like=like,
                        like_name=like_name, weak_kinds="fiu")
    check_float_dtype(array.dtype, name)
    return array


def check_float_dtype(dtype: Any, name: str) -> np.dtype:
    """NumPy's dtype for the float dtype of ``name`` (any library's); TypeError naming ``name`` otherwise.

    The one rule of colnn's floating-point ops: float16 (summed in float32),
    float32 or float64. bfloat16 is refused, not computed: NumPy has no such dtype,
    so a NumPy path (and every strategy) could not keep it. Integers, bools and
    complex numbers are refused as well.
    """
    try:
        numpy_dtype = as_numpy_dtype(dtype)
    except TypeError:  # a dtype NumPy does not know: PyTorch's or JAX's bfloat16, float8 ...
        numpy_dtype = None
    if numpy_dtype is not None and numpy_dtype.kind == "f":
        return numpy_dtype
    if numpy_dtype is not None and numpy_dtype.kind in "biu":
        raise TypeError(f"{name} must be a floating array, got dtype {dtype} (use float16, float32 or float64)")
    raise TypeError(f"{name} has dtype {dtype}; colnn's floating-point ops take float16, float32 or float64 "
                    f"only: convert {name} first (e.g. to float32)")


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


def gradient_dtype(forward_dtype: np.dtype, dout_dtype: np.dtype) -> np.dtype:
    """dtype of a gradient: the forward's if floating, else ``dout``'s if floating, else float64.

    A gradient is never an integer: an integer forward (max pooling, ReLU of
    integers) still has fractional gradients.
    """
    for dtype in (as_numpy_dtype(forward_dtype), as_numpy_dtype(dout_dtype)):
        if dtype.kind == "f":
            return dtype
    return np.dtype(np.float64)


def accumulation_dtype(dtype: np.dtype) -> np.dtype:
    """dtype that sums of ``dtype`` are taken in: float32 for float16 (as PyTorch's CPU kernels), else ``dtype``.

    Every strategy sums float16 in float32 and rounds once at the end, so that
    strategies agree with each other and with a float64 sum rounded to float16.
    """
    dtype = as_numpy_dtype(dtype)
    return np.dtype(np.float32) if dtype == np.float16 else dtype


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
        return dtype.type(info.max if pad_value > 0 else info.min)
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


def lowest_value(dtype: np.dtype) -> Any:
    """The value a padded cell holds for max pooling: -inf, or the integer minimum."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return dtype.type(-np.inf)
    return np.iinfo(dtype).min
