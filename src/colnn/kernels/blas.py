"""Small matrix products on one BLAS thread.

On the 2-core VM of ``colnn bench`` (OpenBLAS 0.3.31, SkylakeX kernel), the
first ``Affine`` product of SimpleConvNet, ``(100, 4320) @ (4320, 100)``
float32, took 85-100 ms on OpenBLAS's two threads and 1.2 ms on one; its
weight gradient likewise (23 ms against about 1). A product this small gains
nothing from a second thread anyway, so :func:`blas_threads_for` runs it on
one, through threadpoolctl (loaded on first use).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

__all__ = ["SERIAL_BELOW_FLOPS", "blas_threads_for"]

# Products of fewer FLOPs (2*M*N*K) than this run on one BLAS thread.
SERIAL_BELOW_FLOPS = 1 << 28

_controller = None
_lock = threading.Lock()


@contextlib.contextmanager
def blas_threads_for(flops: float) -> Iterator[None]:
    """Inside the block, BLAS runs on one thread if ``flops`` < :data:`SERIAL_BELOW_FLOPS` (process-wide)."""
    global _controller
    if flops >= SERIAL_BELOW_FLOPS:
        yield
        return
    with _lock:
        if _controller is None:
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
        with _controller.limit(limits=1, user_api="blas"):
            yield
