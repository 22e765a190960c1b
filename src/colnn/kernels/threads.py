"""Threads of colnn's kernels: the threading layer, the user's limit, and a serial path for small inputs.

Numba is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..core.checks import describe

__all__ = ["set_num_threads", "get_num_threads", "threads_for", "task_threads", "choose_threading_layer",
           "SERIAL_BELOW_BYTES"]

# Numba's threading layers (numba.readthedocs.io, "The Threading Layers"):
# ``tbb`` is safe under fork() and under concurrent calls from Python threads;
# GNU OpenMP, the ``omp`` layer of the PyPI wheels and Numba's first choice, is
# not fork-safe: a forked child that touches it stops with "Terminating: fork()
# called from a process already using GNU OpenMP", and multiprocessing's fork
# pools then wait forever; ``workqueue`` is fork-safe but aborts the process
# when two threads launch parallel regions at once.
_TBB_LIBRARY = {"win32": "tbb12.dll", "darwin": "libtbb.12.dylib"}.get(sys.platform, "libtbb.so.12")
_TBB_INTERFACE_MIN = 12060  # oneTBB 2021.6, the oldest Numba accepts
_layer_lock = threading.Lock()
# What :func:`threads_for` holds around a kernel: a Lock once the layer is
# launched if it is workqueue, else nothing.
_serialize: contextlib.AbstractContextManager = contextlib.nullcontext()
_launched = False
_tbb_handle = None  # keeps oneTBB loaded for Numba
_chosen = False


def _load_tbb() -> bool:
    """Load oneTBB's library if it can be found; True if it is new enough for Numba.

    Numba's ``tbb`` layer links ``libtbb.so.12`` by name, but the ``tbb`` wheel
    puts it in ``<prefix>/lib``, outside the loader's search path in a virtual
    environment; once loaded by its full path, the loader finds it by name.
    """
    global _tbb_handle
    candidates = [_TBB_LIBRARY]
    try:
        from importlib.metadata import PackageNotFoundError, distribution

        files = distribution("tbb").files or []
        candidates += [str(file.locate()) for file in files if file.name == _TBB_LIBRARY]
    except (ImportError, PackageNotFoundError):
        pass
    for candidate in candidates:
        try:
            library = ctypes.CDLL(candidate)
            version = library.TBB_runtime_interface_version
        except (OSError, AttributeError):
            continue
        version.restype = ctypes.c_int
        if version() >= _TBB_INTERFACE_MIN:
            _tbb_handle = library
            return True
    return False


def choose_threading_layer() -> str | None:
    """Make Numba's parallel kernels fork-safe and thread-safe, unless the user chose a layer.

    Call it before Numba compiles or launches anything parallel (the kernel loop
    modules call it on import). With oneTBB installed (the ``tbb`` package)
    Numba runs on its ``tbb`` layer. Without it, on ``workqueue``, and
    :func:`threads_for` lets one parallel kernel run at a time: concurrent
    callers wait for each other's pooling kernels (each still uses all threads).
    A layer chosen through ``NUMBA_THREADING_LAYER``,
    ``NUMBA_THREADING_LAYER_PRIORITY`` or ``numba.config.THREADING_LAYER``, or
    one already running, is kept as it is.

    Returns
    -------
    str or None
        The layer set, or None where the choice was left alone.
    """
    global _chosen
    with _layer_lock:
        if _chosen:
            return None
        _chosen = True
        import numba
        from numba.np.ufunc import parallel

        if getattr(parallel, "_is_initialized", False):  # too late: the layer runs already
            return None
        # Loaded whatever the choice, so that a user's own "tbb" works in a venv too.
        tbb = _load_tbb()
        user_chose = (numba.config.THREADING_LAYER != "default"
                      or "NUMBA_THREADING_LAYER" in os.environ
                      or "NUMBA_THREADING_LAYER_PRIORITY" in os.environ)
        if user_chose:
            return None
        numba.config.THREADING_LAYER = "tbb" if tbb else "workqueue"
        return numba.config.THREADING_LAYER


def _numba() -> Any:
    """Numba, with its threading layer chosen and launched, and :data:`_serialize` set for it."""
    global _serialize, _launched
    choose_threading_layer()
    import numba

    with _layer_lock:
        if not _launched:
            numba.get_num_threads()  # launches the layer, so that it can be named
            if numba.threading_layer() == "workqueue":
                _serialize = threading.Lock()
            _launched = True
    return numba


def parallel_kernels_started() -> bool:
    """Whether Numba's thread pool runs in this process: a parallel kernel has been launched.

    Read from ``sys.modules``, so asking never imports Numba.
    """
    parallel = sys.modules.get("numba.np.ufunc.parallel")
    return bool(parallel is not None and getattr(parallel, "_is_initialized", False))


def set_num_threads(n: int) -> None:
    """Run colnn's kernels and the BLAS library on at most ``n`` threads (default: all cores).

    Numba's limit is per calling thread (see ``numba.set_num_threads``); its
    ceiling is ``NUMBA_NUM_THREADS``, fixed at start-up. The BLAS limit, set
    through threadpoolctl, applies to the whole process.
    """
    from threadpoolctl import threadpool_limits

    numba = _numba()
    ceiling = numba.config.NUMBA_NUM_THREADS
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an int in [1, NUMBA_NUM_THREADS={ceiling}], got {describe(n)}")
    if not 1 <= n <= ceiling:
        raise ValueError(f"n must be an int in [1, NUMBA_NUM_THREADS={ceiling}], got {describe(n)}")
    numba.set_num_threads(int(n))
    threadpool_limits(int(n), user_api="blas")


# Below this many bytes a parallel kernel runs on the calling thread alone. It
# gains little there (0.1 ms on 1 MiB, 2 cores), and it can lose much: after a
# multi-threaded BLAS call OpenBLAS's idle workers spin for a while, and a
# parallel region started then waits for the core they hold (about 6 ms on 2
# cores, whatever its size; `colnn train` met this between the affine layers'
# products and the pooling kernels, at 6x its time).
SERIAL_BELOW_BYTES = 1 << 20


@contextlib.contextmanager
def threads_for(nbytes: int) -> Iterator[None]:
    """Run one parallel kernel in the block: on one thread if ``nbytes`` < :data:`SERIAL_BELOW_BYTES`.

    Under the ``workqueue`` layer the block also holds a lock, since that layer
    aborts the process when two threads run parallel regions at once.
    """
    numba = _numba()
    threads = numba.get_num_threads()
    with _serialize:
        if nbytes >= SERIAL_BELOW_BYTES or threads == 1:
            yield
            return
        numba.set_num_threads(1)
        try:
            yield
        finally:
            numba.set_num_threads(threads)


def get_num_threads() -> int:
    """Threads colnn's kernels run on (Numba's setting for the calling thread)."""
    numba = _numba()
    return int(numba.get_num_threads())


# BLAS's limit is per process: the first task to enter limits it, the last to leave restores it.
_task_lock = threading.Lock()
_tasks_inside = 0
_blas_limiter = None


@contextlib.contextmanager
def task_threads(n: int = 1) -> Iterator[None]:
    """Run colnn's kernels and BLAS on ``n`` threads inside a task of a parallel scheduler.

    A scheduler such as Dask's already runs one task per core; a task that also
    spread over every core would oversubscribe them. Numba's limit is set for
    the calling thread only; the BLAS limit, per process, holds while any task
    is inside.
    """
    global _tasks_inside, _blas_limiter
    from threadpoolctl import threadpool_limits

    numba = _numba()

    with _task_lock:
        if _tasks_inside == 0:
            _blas_limiter = threadpool_limits(n, user_api="blas")
        _tasks_inside += 1
    threads = numba.get_num_threads()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(threads)
        with _task_lock:
            _tasks_inside -= 1
            if _tasks_inside == 0 and _blas_limiter is not None:  # the first task in set it
                _blas_limiter.restore_original_limits()
                _blas_limiter = None
