"""colnn.kernels.blas: small products on one BLAS thread beside colnn's parallel kernels; the limit restored."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import colnn
from colnn.kernels.blas import SERIAL_BELOW_FLOPS, blas_threads_for
from colnn.kernels.threads import parallel_kernels_started

threadpoolctl = pytest.importorskip("threadpoolctl")


def _blas_threads() -> list[int]:
    return [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]


def _start_parallel_kernels() -> None:
    colnn.max_pool2d(np.ones((64, 64, 32, 32), np.float32), 2)  # above the size that runs on one thread
    assert parallel_kernels_started()


def test_small_products_run_on_one_blas_thread_then_the_limit_comes_back():
    _start_parallel_kernels()
    before = _blas_threads()
    with blas_threads_for(SERIAL_BELOW_FLOPS - 1):
        assert all(threads == 1 for threads in _blas_threads())
    assert _blas_threads() == before


def test_large_products_keep_the_blas_threads():
    before = _blas_threads()
    with blas_threads_for(SERIAL_BELOW_FLOPS):
        assert _blas_threads() == before


def test_the_limit_is_restored_after_an_error():
    before = _blas_threads()
    with pytest.raises(RuntimeError), blas_threads_for(1):
        raise RuntimeError("inside")
    assert _blas_threads() == before


def test_before_any_parallel_kernel_small_products_keep_the_blas_threads():
    """A network of dense layers alone (the book's chapter 6) has the cores to itself: BLAS keeps its threads."""
    code = """
import numpy as np
import colnn
from colnn.kernels.blas import SERIAL_BELOW_FLOPS, blas_threads_for
from threadpoolctl import threadpool_info
def threads():
    return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]
before = threads()
with blas_threads_for(SERIAL_BELOW_FLOPS - 1):
    alone = threads()
colnn.max_pool2d(np.ones((64, 64, 32, 32), np.float32), 2)
with blas_threads_for(SERIAL_BELOW_FLOPS - 1):
    beside_numba = threads()
print(before == alone, max(before) > 1, set(beside_numba))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "OPENBLAS_NUM_THREADS": "2"})
    assert done.stdout.split() == ["True", "True", "{1}"]
