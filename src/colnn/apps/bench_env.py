"""The machine and software a ``colnn bench`` run measured, as a JSON block and as header lines.

A ratio means little without what produced it: the processor and the vector
instructions it offers (Numba compiles for the host, ``NUMBA_CPU_NAME``
overrides that), Numba's threading layer and thread count, the BLAS library
NumPy calls for colnn's GEMMs (its kernel, or "core type", and threads) and
whether ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` are set (they tune old
OpenBLAS builds and can halve a current one's SGEMM; colnn reports them and
never changes them), and how busy the machine was (the load average).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["OPENBLAS_OVERRIDES", "environment", "format_environment", "load_average"]

OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
# The instruction sets that decide which code Numba and OpenBLAS generate (/proc/cpuinfo names).
VECTOR_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "amx_tile")


def load_average() -> float | None:
    """The 1-minute load average, or None where the platform has none (``os.getloadavg`` missing or failing)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _cpuinfo() -> dict[str, str]:
    """The first processor's ``/proc/cpuinfo`` fields; empty where there is no such file (not Linux)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def _numba_block() -> dict[str, Any]:
    import numba

    from .. import get_num_threads

    threads = get_num_threads()  # launches colnn's threading layer if no kernel has yet
    layer: str
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet: name the configured one
        layer = f"not launched yet (configured: {numba.config.THREADING_LAYER})"
    try:
        from llvmlite import binding

        host_cpu = binding.get_host_cpu_name()
    except (ImportError, AttributeError):
        host_cpu = None
    return {"numba": threads, "threading_layer": layer,
            "numba_cpu_name": os.environ.get("NUMBA_CPU_NAME"), "llvm_host_cpu": host_cpu}


def blas_info() -> list[dict[str, Any]]:
    """BLAS libraries the process loaded, NumPy's first, via threadpoolctl (empty without it).

    ``architecture`` is OpenBLAS's kernel ("core type"), the one
    ``OPENBLAS_CORETYPE`` would force.
    """
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("internal_api", "version", "architecture", "threading_layer", "num_threads", "filepath")
    libraries = [{key: info.get(key) for key in keys} for info in threadpool_info() if info.get("user_api") == "blas"]
    # NumPy's wheels keep their BLAS under numpy.libs (or numpy/.dylibs): that one does colnn's GEMMs.
    libraries.sort(key=lambda library: "numpy" not in str(library["filepath"]))
    return libraries


def _versions(colnn_version: str, torch: Any | None) -> dict[str, str]:
    import numba

    versions = {"python": platform.python_version(), "colnn": colnn_version, "numpy": np.__version__,
                "numba": numba.__version__}
    if torch is not None:
        versions["torch"] = torch.__version__
    return versions


def environment(colnn_version: str, torch: Any | None = None) -> dict[str, Any]:
    """The JSON block of a run: ``machine``, ``versions``, ``threads``, ``blas``, ``openblas_overrides``.

    ``threads`` holds Numba's thread count and threading layer, ``NUMBA_CPU_NAME``
    and the CPU LLVM compiles for. Call it after the timing, when the threading
    layer has been launched and can be named.
    """
    versions = _versions(colnn_version, torch)
    cpuinfo = _cpuinfo()
    flags = set(cpuinfo.get("flags", "").split())
    return {
        "machine": {"cpu": cpuinfo.get("model name") or platform.processor() or "unknown",
                    "cores": os.cpu_count(), "platform": platform.platform(),
                    "cpu_flags": [flag for flag in VECTOR_FLAGS if flag in flags] if flags else None},
        "versions": versions,
        "threads": _numba_block(),
        "blas": blas_info(),
        "openblas_overrides": {name: os.environ[name] for name in OPENBLAS_OVERRIDES if name in os.environ},
    }


def _blas_line(result: dict[str, Any]) -> str:
    libraries = result["blas"]
    if libraries:
        first, *others = libraries
        line = (f"BLAS (NumPy's, colnn's GEMMs): {first['internal_api']} {first['version']}, "
                f"core type {first['architecture']}, {first['num_threads']} threads ({Path(first['filepath']).name})")
        if others:
            line += "; also loaded: " + ", ".join(
                f"{other['internal_api']} {other['version']} ({Path(other['filepath']).name})" for other in others)
    else:
        line = "BLAS: not reported (threadpoolctl missing)"
    overrides = result["openblas_overrides"]
    if overrides:
        settings = " ".join(f"{name}={value}" for name, value in overrides.items())
        return (f"{line}; WARNING: {settings} set, which can halve SGEMM: rerun with "
                f"env -u {' -u '.join(OPENBLAS_OVERRIDES)}")
    return f"{line}; {' and '.join(OPENBLAS_OVERRIDES)} unset"


def format_environment(result: dict[str, Any]) -> list[str]:
    """Header lines: date and versions; CPU; Numba; BLAS (one line, every library); limits and load."""
    machine, threads = result["machine"], result["threads"]
    versions = ", ".join(f"{name} {version}" for name, version in result["versions"].items())
    flags = "unknown" if machine["cpu_flags"] is None else (" ".join(machine["cpu_flags"]) or "none of AVX/AVX-512")
    load = result.get("load_average")
    return [
        f"{result['date']}; {versions}",
        f"CPU: {machine['cpu']}, {machine['cores']} cores, flags {flags}; {machine['platform']}",
        f"Numba: threading layer {threads['threading_layer']}, {threads['numba']} threads; "
        f"NUMBA_CPU_NAME {threads['numba_cpu_name'] or 'unset'} (LLVM host CPU {threads['llvm_host_cpu']})",
        _blas_line(result),
        f"Limits: memory bandwidth {result['bandwidth_GBps']:.1f} GB/s (np.copyto, read + write), "
        f"SGEMM {result['sgemm_GFLOPS']:.0f} GFLOP/s; load average before timing: "
        f"{'unknown' if load is None else f'{load:.2f}'} (1 min)",
    ]
