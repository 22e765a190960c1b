"""Threads of colnn's kernels: the user's limit, and a serial path for small inputs.

Numba is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

import numpy as np

__all__ = ["set_num_threads", "get_num_threads", "threads_for", "task_threads", "SERIAL_BELOW_BYTES"]

def set_num_threads(n: int) -> None:
    """Run colnn's kernels and the BLAS library on at most ``n`` threads (default: all cores).

    Numba's limit is per calling thread (see ``numba.set_num_threads``); its
    ceiling is ``NUMBA_NUM_THREADS``, fixed at start-up. The BLAS limit, set
    through threadpoolctl, applies to the whole process.
    """
    import numba
    from threadpoolctl import threadpool_limits

    ceiling = numba.config.NUMBA_NUM_THREADS
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= ceiling:
        raise ValueError(f"n must be an int in [1, NUMBA_NUM_THREADS={ceiling}], got {n!r}")
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
    """Inside the block, Numba's parallel kernels run on one thread if ``nbytes`` < :data:`SERIAL_BELOW_BYTES`."""
    import numba

    threads = numba.get_num_threads()
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
    import numba

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
    import numba
    from threadpoolctl import threadpool_limits

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
            if _tasks_inside == 0:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None
