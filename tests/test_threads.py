"""The threading layer of colnn's kernels (colnn.kernels.threads): safe under fork and under Python threads.

Numba's GNU OpenMP layer stops a forked child ("Terminating: fork() called
from a process already using GNU OpenMP") and a fork pool then never returns;
its workqueue layer aborts the process when two threads run parallel kernels
at once. Both failures end or block a process, so each case runs in a fresh
interpreter under a timeout: a hang fails the test instead of blocking it.
Each runs twice: on the layer colnn picks (tbb where installed) and on the
fallback without oneTBB (workqueue, one parallel kernel at a time).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

# Prepended to each program: "fallback" hides oneTBB from colnn.
LAYERS = {
    "chosen": "",
    "fallback": "import colnn.kernels.threads as threads; threads._load_tbb = lambda: False\n",
}


def run_python(code: str, layer: str, env: dict[str, str] | None = None) -> str:
    """Run ``code`` in a fresh interpreter on ``layer``, at most 240 s; return its stdout."""
    program = LAYERS[layer] + textwrap.dedent(code)
    environment = {name: value for name, value in os.environ.items() if not name.startswith("NUMBA_THREADING")}
    environment.update(env or {})
    try:
        done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=240, check=False,
                              env=environment)
    except subprocess.TimeoutExpired as hung:
        pytest.fail(f"the program hung: {hung.stderr!r}")
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("layer", LAYERS)
def test_a_fork_pool_after_pooling_and_convolution_returns(layer):
    out = run_python("""
        import multiprocessing, numpy as np, colnn
        x = np.arange(2 * 3 * 8 * 8, dtype=np.float32).reshape(2, 3, 8, 8)
        w = np.ones((4, 3, 3, 3), np.float32)
        colnn.max_pool2d(x, 2)  # the parent's kernels have run
        colnn.avg_pool2d(x, 3, stride=1)
        colnn.conv2d(x, w, padding=1)

        def child(scale):
            return float(colnn.max_pool2d(scale * x, 2).sum() + colnn.conv2d(scale * x, w).sum())

        with multiprocessing.get_context("fork").Pool(2) as pool:
            got = pool.map(child, [1.0, 2.0])
        print(got == [child(1.0), child(2.0)])
    """, layer)
    assert out.strip() == "True"


@pytest.mark.parametrize("layer", LAYERS)
def test_concurrent_calls_from_threads_equal_the_single_threaded_results(layer):
    out = run_python("""
        import threading, numpy as np, colnn
        from colnn.kernels import threads
        threads.SERIAL_BELOW_BYTES = 0  # every call a multi-threaded parallel region
        rng = np.random.default_rng(0)
        calls = []
        for shape in [(2, 3, 9, 9), (1, 4, 16, 12), (3, 2, 7, 11), (2, 5, 12, 12)]:
            x = rng.standard_normal(shape).astype(np.float32)
            w = rng.standard_normal((3, shape[1], 3, 3)).astype(np.float32)
            calls += [(colnn.max_pool2d, (x, 2)), (colnn.max_pool2d, (x, 3, 1, 1)),
                      (colnn.avg_pool2d, (x, 3, 2, 1)), (colnn.conv2d, (x, w))]
        expected = [f(*args) for f, args in calls]  # one thread at a time
        wrong = []

        def worker(first):
            for i in range(20):
                index = (first + 3 * i) % len(calls)
                f, args = calls[index]
                if not np.array_equal(f(*args), expected[index]):
                    wrong.append(index)

        workers = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
        print(wrong)
    """, layer)
    assert out.strip() == "[]"


@pytest.mark.parametrize("layer", LAYERS)
def test_colnn_picks_tbb_if_it_loads_else_workqueue(layer):
    out = run_python("""
        import numba, numpy as np, colnn
        from colnn.kernels import threads
        colnn.max_pool2d(np.ones((1, 1, 4, 4), np.float32), 2)
        print(numba.threading_layer(), threads._load_tbb())
    """, layer)
    name, tbb_loads = out.split()
    assert name == ("tbb" if tbb_loads == "True" else "workqueue")


def test_a_layer_the_user_chose_is_kept():
    out = run_python("""
        import numba, numpy as np, colnn
        from colnn.kernels import threads
        colnn.max_pool2d(np.ones((1, 1, 4, 4), np.float32), 2)
        print(numba.threading_layer(), threads.choose_threading_layer())
    """, "chosen", env={"NUMBA_THREADING_LAYER": "workqueue"})
    assert out.split() == ["workqueue", "None"]
