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

import pytest

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


@pytest.mark.slow
def test_a_second_process_loads_every_kernel_of_a_training_step_from_the_cache(tmp_path):
    """No kernel is compiled again in the next process (a closure calling another jitted closure was, each time)."""
    cache = tmp_path / "cache"
    code = """
import numpy as np
import colnn
from colnn.nn.network import simple_conv_net
from colnn.nn.optim import Adam
rng = np.random.default_rng(0)
x = rng.random((100, 1, 28, 28), dtype=np.float32)
network = simple_conv_net(input_dim=(1, 28, 28), filter_num=30, dtype=np.float32)
loss, grads = network.loss_and_gradient(x, rng.integers(0, 10, 100))
Adam().update(network.params, grads)
for dtype in (np.float32, np.float64):  # the direct loops: unrolled 5x5, tap by tap, strided
    colnn.conv2d(x.astype(dtype), rng.random((30, 1, 5, 5)).astype(dtype))
    colnn.conv2d(np.repeat(x, 3, axis=1).astype(dtype), rng.random((8, 3, 5, 5)).astype(dtype))
    colnn.conv1d(x.reshape(100, 1, 784).astype(dtype), rng.random((16, 1, 8)).astype(dtype), stride=4)
"""
    run(["-c", code], cache)
    assert compiled_kernels(cache) >= 5
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=True,
                          env={**os.environ, "NUMBA_CACHE_DIR": str(cache), "NUMBA_DEBUG_CACHE": "1"})
    loaded = [line for line in done.stdout.splitlines() if line.startswith("[cache] data loaded")]
    saved = [line for line in done.stdout.splitlines() if line.startswith("[cache] data saved")]
    assert len(loaded) >= 5 and saved == []
