"""The notice of colnn.kernels.compile_notice: once on stderr when the CLI compiles, never from the library.

Each run is a fresh interpreter whose Numba cache (NUMBA_CACHE_DIR) starts
empty, so that the kernels really compile there; the cache's index files
(``*.nbi``, one per compiled kernel) show that they did. The runs are the
cheapest that compile: ``colnn explain`` (three small kernels, about 5 s cold)
and one ReLU in the library (one kernel).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from colnn.kernels.compile_notice import NOTICE


def run(args: list[str], cache_dir: Path) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)})
    assert done.returncode == 0, done.stderr
    return done


def compiled_kernels(cache_dir: Path) -> int:
    return len(list(cache_dir.rglob("*.nbi")))


def test_the_cli_says_once_that_it_compiles_and_not_again_with_a_warm_cache(tmp_path):
    cache = tmp_path / "cache"
    cold = run(["-m", "colnn", "explain"], cache)
    assert compiled_kernels(cache) >= 2  # several compiles, one notice
    assert cold.stderr.count(NOTICE) == 1 and cold.stderr.replace(NOTICE + "\n", "") == ""
    assert NOTICE not in cold.stdout
    warm = run(["-m", "colnn", "explain"], cache)
    assert warm.stderr == "" and warm.stdout == cold.stdout


def test_the_library_compiles_silently(tmp_path):
    cache = tmp_path / "cache"
    code = "import numpy as np, colnn.nn; colnn.nn.Relu().forward(np.ones((1, 1, 256, 256), np.float32))"
    done = run(["-c", code], cache)
    assert compiled_kernels(cache) >= 1  # it did compile
    assert done.stderr == ""
