"""The notice of colnn.kernels.compile_notice: once on stderr when the CLI compiles, never from the library.

Each run is a fresh interpreter whose Numba cache (NUMBA_CACHE_DIR) starts
empty, so that the kernels really compile there.
"""

from __future__ import annotations

import os
import subprocess
import sys

from colnn.kernels.compile_notice import NOTICE


def run(args: list[str], cache_dir: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, "NUMBA_CACHE_DIR": cache_dir})
    assert done.returncode == 0, done.stderr
    return done


def test_the_cli_says_once_that_it_compiles_and_not_again_with_a_warm_cache(tmp_path):
    train = ["-m", "colnn", "train", "--epochs", "1", "--limit", "50", "--out"]
    cold = run([*train, str(tmp_path / "cold")], str(tmp_path / "cache"))
    assert cold.stderr.count(NOTICE) == 1
    assert NOTICE not in cold.stdout
    warm = run([*train, str(tmp_path / "warm")], str(tmp_path / "cache"))
    assert NOTICE not in warm.stderr


def test_the_library_compiles_silently(tmp_path):
    code = "import numpy as np, colnn; colnn.max_pool2d(np.ones((1, 1, 4, 4), np.float32), 2)"
    done = run(["-c", code], str(tmp_path / "cache"))
    assert done.stderr == ""
