"""Where one SimpleConvNet training step (forward, backward, Adam) spends its time, layer by layer.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/step_profile.py [C H FILTERS]
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/step_profile.py predict

``predict``: ``Network.predict`` on 1,000 images (``colnn bench``'s row), each
fused pair and layer timed, beside ONNX Runtime on the exported network
(interleaved, when installed).

Defaults: the MNIST step of ``colnn bench`` (100, 1, 28, 28) with 30 filters;
``3 32 32`` is its CIFAR-shaped step. Each layer's ``forward``/``backward`` is
wrapped in a timer (fused Convolution/Affine -> Relu forwards run inside the
network and show up only in the step's total); medians over steps 11-40.
"""

import sys
import time
from collections import defaultdict

import numpy as np

from colnn.nn.network import simple_conv_net
from colnn.nn.optim import Adam


def timed(layer, name, seconds):
    forward, backward = layer.forward, layer.backward

    def timed_forward(*args, **kwargs):
        started = time.perf_counter()
        out = forward(*args, **kwargs)
        seconds[f"{name} forward"].append(time.perf_counter() - started)
        return out

    def timed_backward(*args, **kwargs):
        started = time.perf_counter()
        out = backward(*args, **kwargs)
        seconds[f"{name} backward"].append(time.perf_counter() - started)
        return out

    layer.forward, layer.backward = timed_forward, timed_backward


def main(channels=1, size=28, filters=30, steps=40):
    rng = np.random.default_rng(0)
    x = rng.random((100, channels, size, size), dtype=np.float32)
    labels = rng.integers(0, 10, 100)
    network = simple_conv_net((channels, size, size), filter_num=filters, seed=0)
    optimizer = Adam(0.001)
    seconds = defaultdict(list)
    for index, layer in enumerate(network.layers):
        timed(layer, f"{index}: {type(layer).__name__}", seconds)
    for _ in range(steps):
        started = time.perf_counter()
        _, grads = network.loss_and_gradient(x, labels)
        updating = time.perf_counter()
        optimizer.update(network.params, grads)
        done = time.perf_counter()
        seconds["Adam update"].append(done - updating)
        seconds["whole step"].append(done - started)
    for name, values in seconds.items():
        print(f"{name:26s} {np.median(values[10:]) * 1e3:7.2f} ms")


def predict_profile(calls=30):
    import colnn.nn.network as network_module
    from colnn.apps.bench_peers import predict_pair, time_interleaved
    from colnn.kernels.threads import get_num_threads

    impls = predict_pair(1000, get_num_threads())
    network = impls["colnn"].__closure__[0].cell_contents
    seconds = defaultdict(list)
    for index, layer in enumerate(network.layers):
        timed(layer, f"{index}: {type(layer).__name__}", seconds)
    fused = network_module.fused_forward

    def timed_fused(layer, relu, *args, **kwargs):
        started = time.perf_counter()
        out = fused(layer, relu, *args, **kwargs)
        seconds[f"fused {type(layer).__name__} + Relu"].append(time.perf_counter() - started)
        return out

    network_module.fused_forward = timed_fused
    totals = time_interleaved(impls, calls, settle_s=0.02)
    for name, values in seconds.items():
        per_call = len(values) // (calls + 1)  # a name can run more than once a call (two fused affine pairs)
        print(f"{name:26s} {np.median(values) * per_call * 1e3:7.2f} ms")
    for name, values in totals.items():
        print(f"whole predict, {name:11s} {np.median(values) * 1e3:7.2f} ms")


if __name__ == "__main__":
    if sys.argv[1:2] == ["predict"]:
        predict_profile()
    else:
        main(*(int(value) for value in sys.argv[1:4]))
