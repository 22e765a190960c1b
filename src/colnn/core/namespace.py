"""Which array library a value belongs to, and how arrays move between libraries.

colnn computes NumPy arrays with its kernels and every other Array API library's
arrays (PyTorch, JAX, CuPy, ``array_api_strict``) where they live. These helpers
name a value's library (never importing it: an object's type names its library),
check that the arrays of one call share a library and a device, and move NumPy
values into another library; an array in CPU memory is viewed as NumPy through
DLPack (:func:`cpu_numpy_view`) and a NumPy result goes back
(:func:`as_library_of`). Dask arrays are recognised here too, so that no
boundary reads one as NumPy (which would compute it).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np

from .dtypes import as_numpy_dtype
from .indices import x64_hint

Key = TypeVar("Key")

__all__ = [
    "is_foreign_array",
    "cpu_numpy_views",
    "array_namespace",
    "device_of",
    "foreign_namespace",
    "type_name",
    "as_value",
    "same_library",
    "move_numpy",
    "namespace_dtype",
    "library_token",
    "cast_array",
    "is_dask_array",
    "cpu_numpy_view",
    "as_library_of",
    "library_name",
]


def is_dask_array(value: Any) -> bool:
    """Whether ``value`` is a ``dask.array.Array``, without importing Dask.

    An input can only be a Dask array if the caller has imported ``dask.array`` already.
    """
    dask_array = sys.modules.get("dask.array")
    return dask_array is not None and isinstance(value, dask_array.Array)


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


def array_namespace(*arrays: Any) -> Any:
    """The Array API namespace of ``arrays``, via ``array_api_compat``; NumPy's main namespace for NumPy arrays.

    NumPy 2 follows the standard, so a NumPy caller never imports
    ``array_api_compat`` (0.1 s of a short script).
    """
    if all(type(array) is np.ndarray for array in arrays):
        return np
    import array_api_compat

    return array_api_compat.array_namespace(*arrays)


def device_of(x: Any) -> Any:
    """The device ``x`` lives on (``"cpu"`` for NumPy, without importing ``array_api_compat``)."""
    if type(x) is np.ndarray:
        return "cpu"
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
    if is_dask_array(array):  # np.asarray would compute all of it
        raise TypeError(f"{name} is a dask.array.Array, which this call cannot take lazily; compute it first "
                        f"({name}.compute()) if it fits in memory")
    if xp is None and not isinstance(array, np.ndarray):
        array, moves = np.asarray(array), True  # a list or scalar belongs to no library
    if like_xp is not None and xp is None and moves:
        return move_numpy(array, like_xp, device_of(like), name)
    if xp is not like_xp:
        raise TypeError(f"{name} is {type_name(array)} but {like_name} is {type_name(like)}; "
                        "pass arrays of one library")
    if xp is not None and device_of(array) != device_of(like):
        raise ValueError(f"{name} is on device {device_of(array)} but {like_name} is on device {device_of(like)}; "
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
    _check_integers_fit(array, xp, device, name)
    return xp.asarray(array, device=device)


def _check_integers_fit(array: np.ndarray, xp: Any, device: Any, name: str) -> None:
    """ValueError naming ``name`` and a value of integer ``array`` that ``xp`` would store in a narrower dtype."""
    if array.dtype.kind in "iu" and array.size:
        stored = as_numpy_dtype(xp.asarray(array[:0], device=device).dtype)
        info = np.iinfo(stored)
        low, high = int(array.min()), int(array.max())
        if low < info.min or high > info.max:
            value = high if high > info.max else low
            raise ValueError(f"{name} holds {value}, which {xp.__name__} stores as {stored} "
                             f"(range [{info.min}, {info.max}]){x64_hint(xp)}")


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
    return xp.empty((0,), dtype=x.dtype, device=device_of(x))


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
        target = xp.__array_namespace_info__().default_dtypes(device=device_of(array))["real floating"]
    if target is None:
        target = namespace_dtype(xp, dtype)
    return array if array.dtype == target else xp.astype(array, target)


# DLPack's device type of host memory (``DLDeviceType.kDLCPU``).
_DLPACK_CPU = 1
# array_api_strict exists to hold the Array API path to the standard: its arrays keep that path.
_KEEPS_ARRAY_API_PATH = frozenset({"array_api_strict"})


def library_name(x: Any) -> str:
    """The top-level module of ``x``'s type: ``"torch"``, ``"jax"`` (``jaxlib``'s arrays too), ``"numpy"``."""
    library = type(x).__module__.partition(".")[0]
    return "jax" if library == "jaxlib" else library


def cpu_numpy_view(x: Any) -> np.ndarray | None:
    """Another library's array in CPU memory as a NumPy array sharing its memory (DLPack), else None.

    None where there is no such view: an array on another device (a CUDA tensor,
    a meta tensor), a dtype NumPy lacks (bfloat16), a view DLPack cannot export
    (a conjugate or negative-bit tensor), or an ``array_api_strict`` array. A
    PyTorch tensor that requires grad is read detached (``Tensor.detach()``): colnn
    computes with NumPy, outside autograd. A JAX array comes read-only; nothing
    below writes into an input.
    """
    if library_name(x) in _KEEPS_ARRAY_API_PATH or not hasattr(x, "__dlpack_device__"):
        return None
    x = as_value(x)
    try:
        if x.__dlpack_device__()[0] != _DLPACK_CPU:
            return None
        return np.from_dlpack(x)
    except (BufferError, TypeError, ValueError, RuntimeError):  # each library refuses in its own words
        return None


def is_foreign_array(value: Any) -> bool:
    """Whether ``value`` is another library's array that DLPack might view (a torch.Generator or a float is not)."""
    return not isinstance(value, np.ndarray) and hasattr(value, "__dlpack__") and foreign_namespace(value) is not None


def cpu_numpy_views(arrays: Mapping[Key, Any]) -> dict[Key, np.ndarray] | None:
    """:func:`cpu_numpy_view` of each of ``arrays``, under the same keys; None if any has no view."""
    views = {}
    for key, array in arrays.items():
        view = cpu_numpy_view(array)
        if view is None:
            return None
        views[key] = view
    return views


def as_library_of(array: np.ndarray, like: Any, shared: tuple[np.ndarray, ...] = ()) -> Any:
    """A NumPy result as an array of ``like``'s library and device: how a result of :func:`cpu_numpy_view`'s goes back.

    A PyTorch tensor shares ``array``'s memory (``torch.from_dlpack``); a JAX
    array is ``jax.device_put`` of it (JAX owns its buffers: a copy; a tenth of
    ``jax.numpy.asarray``'s time here), without x64 in JAX's narrower dtypes, with
    :func:`move_numpy`'s check that no integer wraps around; any other library's
    by :func:`move_numpy`. An ``array`` that may share memory with one of
    ``shared`` (the NumPy views of the caller's arrays) is copied first, so that
    the result never aliases an input.
    """
    if any(np.may_share_memory(array, view) for view in shared) or not array.flags.writeable:
        array = array.copy()
    library = library_name(like)
    if library == "torch":
        return sys.modules["torch"].from_dlpack(array)
    xp, device = foreign_namespace(like), device_of(like)
    if library != "jax":
        return move_numpy(array, xp, device, "result")
    _check_integers_fit(array, xp, device, "result")
    return sys.modules["jax"].device_put(array, device)
