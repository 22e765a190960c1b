"""Small matrix products on one BLAS thread, once colnn's parallel kernels run in the process.

On the 2-core VM of ``colnn bench`` (OpenBLAS 0.3.31, SkylakeX kernel), the
first ``Affine`` product of SimpleConvNet, ``(100, 4320) @ (4320, 100)``
float32, took 85-100 ms on OpenBLAS's two threads and 1.2 ms on one; its
weight gradient likewise (23 ms against about 1): OpenBLAS's workers and
Numba's, both waiting for work on the same cores. A product this small gains
little from a second thread anyway, so :func:`blas_threads_for` runs it on
one, through threadpoolctl (loaded on first use) -- but only once Numba's
thread pool has started (:func:`colnn.kernels.threads.parallel_kernels_started`).
Before that, OpenBLAS's threads have the cores to themselves, and a network
of dense layers alone (the book's chapter 6 scripts) gains from them: on the
2-core AMD EPYC VM, ``ch06/weight_init_compare.py`` with colnn.book took 25 s
on one BLAS thread and 17.5 s on two (the book's own code 20.5 s). Below
:data:`UNLIMITED_BELOW_FLOPS` it does nothing: setting the limit and restoring
it costs 20-30 us, more than such a product takes on any number of threads
(``(3, 784) @ (784, 50)``: 14 us as it is, 43 us inside the limit; ``(1, 784)
@ (784, 100)``: 12 us and 31 us), which made the book's gradient checks (10^5
products of one to three samples) 3x slower than the book's own code.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from .threads import parallel_kernels_started

__all__ = ["SERIAL_BELOW_FLOPS", "UNLIMITED_BELOW_FLOPS", "blas_threads_for"]

# Products of fewer FLOPs (2*M*N*K) than this run on one BLAS thread.
SERIAL_BELOW_FLOPS = 1 << 28
# Products of fewer FLOPs than this are left alone: a (3, 784) @ (784, 50) product takes 14 us, the limit 20-30 us.
UNLIMITED_BELOW_FLOPS = 2 * 65536 * 4

_controller = None
_lock = threading.Lock()


@contextlib.contextmanager
def blas_threads_for(flops: float) -> Iterator[None]:
    """Inside the block, BLAS runs on one thread if ``flops`` < :data:`SERIAL_BELOW_FLOPS` (process-wide).

    Products under :data:`UNLIMITED_BELOW_FLOPS` are left as they are: the limit would cost more than they do;
    so is every product while no parallel kernel of colnn has run in the process.
    """
    global _controller
    if flops >= SERIAL_BELOW_FLOPS or flops < UNLIMITED_BELOW_FLOPS or not parallel_kernels_started():
        yield
        return
    with _lock:
        if _controller is None:
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
        with _controller.limit(limits=1, user_api="blas"):
            yield
