"""Relu forward and backward against x.copy() of the same 6.9 MB activation (SimpleConvNet's first layer).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/relu_copy.py

A layer returns new memory, so the limit of each pass is a copy into fresh
memory; the three calls are timed interleaved, medians of 31.
"""

import time

import numpy as np

from colnn.nn import Relu

x = np.random.default_rng(0).standard_normal((100, 30, 24, 24)).astype(np.float32)
relu = Relu()
relu.forward(x)
g = np.ones_like(x)
calls = {"forward": lambda: relu.forward(x), "backward": lambda: relu.backward(g), "x.copy()": x.copy}
seconds = {name: [] for name in calls}
for _ in range(31):
    for name, call in calls.items():
        started = time.perf_counter()
        call()
        seconds[name].append(time.perf_counter() - started)
copy = np.median(seconds["x.copy()"])
print(", ".join(f"{name} {np.median(v) * 1e3:.2f} ms ({np.median(v) / copy:.2f}x copy)" for name, v in seconds.items()))
