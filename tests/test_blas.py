"""colnn.kernels.blas: small products run on one BLAS thread, and the limit is restored afterwards."""

from __future__ import annotations

import pytest

from colnn.kernels.blas import SERIAL_BELOW_FLOPS, blas_threads_for

threadpoolctl = pytest.importorskip("threadpoolctl")


def _blas_threads() -> list[int]:
    return [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]


def test_small_products_run_on_one_blas_thread_then_the_limit_comes_back():
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
