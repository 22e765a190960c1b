"""Buffers a network writes its largest intermediate results into again from one call to the next.

A fused ``Convolution -> Relu`` of SimpleConvNet on 1,000 images writes a
69 MB activation and its 17 MB ReLU mask. In new memory each call, the
kernel pays for faulting every page in (about a third of its 22 ms on the
2-core bench machine), where an engine such as ONNX Runtime reuses an arena.
A :class:`Workspace` keeps such arrays by key and hands one out again only
when nothing else references it — no layer cache, no view, no caller — so
reuse never changes an array anyone holds a reference to. The test is the
reference count: the workspace's own list and the probe are the only
references of a free buffer. (A ``weakref`` is not a reference: one to a
buffer sees it written again.)
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Hashable
from typing import Any

import numpy as np

__all__ = ["Workspace", "MAX_BUFFER_BYTES", "COPIES"]

# Larger arrays are allocated anew each time rather than kept between calls.
MAX_BUFFER_BYTES = 256 << 20
# Buffers kept per key: a layer keeps the previous call's ReLU mask until its next forward replaces it,
# so a second buffer lets every other call reuse one.
COPIES = 2


def _references(kept: list[np.ndarray], index: int) -> int:
    return sys.getrefcount(kept[index])


# What _references answers for an array only the list holds (the list slot and the call's argument).
_FREE = _references([np.empty(0)], 0)


class Workspace:
    """Arrays kept by key between calls; :meth:`empty` returns one that nothing else references, or a new one.

    Thread-safe: a buffer is handed out under a lock, and the caller's
    reference then keeps it from every other caller.
    """

    def __init__(self) -> None:
        self._kept: dict[Hashable, list[np.ndarray]] = {}
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[type, tuple[()]]:
        # A copy (copy.deepcopy of a network, pickling with any protocol) is a new, empty workspace:
        # the buffers are scratch, and a lock cannot be copied.
        return (type(self), ())

    def __repr__(self) -> str:
        count = sum(len(kept) for kept in self._kept.values())
        return f"Workspace({count} buffers, {self.nbytes / 2**20:.1f} MiB)"

    @property
    def nbytes(self) -> int:
        """Bytes held in kept buffers."""
        return sum(array.nbytes for kept in self._kept.values() for array in kept)

    def empty(self, key: Hashable, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A C-contiguous array of ``shape`` and ``dtype`` (values undefined, as ``np.empty``).

        A kept buffer of ``key`` with that shape and dtype that nothing outside
        the workspace references, else a new array, kept (up to :data:`COPIES`
        per key, replacing free buffers of another shape) when it is at most
        :data:`MAX_BUFFER_BYTES`.
        """
        dtype = np.dtype(dtype)
        if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize > MAX_BUFFER_BYTES:
            return np.empty(shape, dtype)
        with self._lock:
            kept = self._kept.setdefault(key, [])
            free = [index for index in range(len(kept)) if _references(kept, index) == _FREE]
            for index in free:
                if kept[index].shape == tuple(shape) and kept[index].dtype == dtype:
                    return kept[index]
            array = np.empty(shape, dtype)
            if free:
                kept[free[0]] = array
            elif len(kept) < COPIES:
                kept.append(array)
            return array

    def clear(self) -> None:
        """Drop every kept buffer (arrays still referenced elsewhere live on as ordinary arrays)."""
        with self._lock:
            self._kept.clear()
