"""The environment block of ``colnn bench``: reported as it is, and degrading where the platform lacks a piece."""

from __future__ import annotations

import os

import numpy as np
import pytest

from colnn import __version__
from colnn.apps import bench_env

BLAS = {"internal_api": "openblas", "version": "0.3.31", "architecture": "SkylakeX", "threading_layer": "pthreads",
        "num_threads": 2, "filepath": "/x/numpy.libs/libscipy_openblas64_.so"}


def header_for(block: dict) -> list[str]:
    return bench_env.format_environment({**block, "date": "today", "load_average": None,
                                         "bandwidth_GBps": 10.0, "sgemm_GFLOPS": 100.0})


def test_load_average_is_none_where_the_platform_has_none(monkeypatch):
    monkeypatch.delattr(os, "getloadavg", raising=False)
    assert bench_env.load_average() is None

    def unavailable():
        raise OSError("no load average")

    monkeypatch.setattr(os, "getloadavg", unavailable, raising=False)
    assert bench_env.load_average() is None
    monkeypatch.setattr(os, "getloadavg", lambda: (1.5, 1.0, 0.5), raising=False)
    assert bench_env.load_average() == 1.5


def test_openblas_variables_are_reported_on_the_blas_line_and_left_alone(monkeypatch):
    monkeypatch.setattr(bench_env, "blas_info", lambda: [BLAS])
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.delenv("OPENBLAS_L2_SIZE", raising=False)
    block = bench_env.environment(__version__)
    assert block["openblas_overrides"] == {"OPENBLAS_CORETYPE": "Haswell"}
    assert os.environ["OPENBLAS_CORETYPE"] == "Haswell"  # reported, never changed
    blas = [line for line in header_for(block) if "BLAS" in line]
    assert len(blas) == 1 and "OPENBLAS_CORETYPE=Haswell" in blas[0] and "WARNING" in blas[0]
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    blas = [line for line in header_for(bench_env.environment(__version__)) if "BLAS" in line]
    assert len(blas) == 1 and "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset" in blas[0]


def test_numba_cpu_name_and_missing_cpuinfo_are_reported(monkeypatch):
    monkeypatch.setenv("NUMBA_CPU_NAME", "generic")
    monkeypatch.setattr(bench_env, "_cpuinfo", dict)  # not Linux: no /proc/cpuinfo
    block = bench_env.environment(__version__)
    assert block["threads"]["numba_cpu_name"] == "generic"
    assert block["machine"]["cpu_flags"] is None
    header = header_for(block)
    assert any(line.startswith("Numba:") and "NUMBA_CPU_NAME generic" in line for line in header)
    assert any(line.startswith("CPU:") and "flags unknown" in line for line in header)


def test_cpu_flags_come_from_cpuinfo(monkeypatch):
    monkeypatch.setattr(bench_env, "_cpuinfo", lambda: {"model name": "Test CPU", "flags": "sse avx2 fma avx512f"})
    machine = bench_env.environment(__version__)["machine"]
    assert machine["cpu"] == "Test CPU" and machine["cpu_flags"] == ["avx2", "fma", "avx512f"]


def test_the_threading_layer_is_named_once_launched():
    numba = pytest.importorskip("numba")
    import colnn

    colnn.max_pool2d(np.ones((1, 1, 4, 4), np.float32), 2)  # launches the layer
    assert bench_env.environment(__version__)["threads"]["threading_layer"] == numba.threading_layer()
