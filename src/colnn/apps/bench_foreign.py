"""``colnn bench`` rows for other libraries' CPU arrays: colnn called on a PyTorch tensor or a JAX array.

Three rows of issue 25: ``colnn.max_pool2d`` and ``colnn.conv2d`` of PyTorch CPU
tensors against ``torch.nn.functional``'s own call on the same tensors, and
``colnn.max_pool2d`` of a JAX CPU array against ``jax.jit`` of
``lax.reduce_window``. colnn's time includes the round trip through DLPack
(:func:`colnn.ops.strategy.numpy_for_cpu_arrays`): a view of the input, the
kernels, the result back as the caller's type (a PyTorch tensor sharing its
memory, a JAX array one copy). The limits are those of the 2-D rows: the bytes
read and written at the measured bandwidth for pooling, the FLOPs at the SGEMM
rate for the convolution.

Three more time the layers (:mod:`colnn.nn.cpu_views`): ``MaxPool2d`` and
``Conv2d`` (built from PyTorch weights) forward and backward on PyTorch
tensors against ``torch.nn``'s modules, forward and autograd backward, on the
same tensors, and ``MaxPool2d`` on JAX arrays against ``jax.jit`` of
``reduce_window``'s forward and VJP; the convolution's backward gives the weights' gradients on both
sides (PyTorch's set to None before each step, as a training loop's
``zero_grad`` does). Their limits: the forward's bytes plus the backward's
(pooling: read the gradient and the offsets, write the input's size), and three
times the forward's FLOPs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .bench_common import Case, conv_geometry, pool_geometry

__all__ = ["FOREIGN_SHAPES", "QUICK_FOREIGN_SHAPES", "foreign_cases"]

# (input shape, weight shape): the S1 pooling shape, and 64 filters 3x3 (padding 1) on it.
FOREIGN_SHAPES = {"X": ((64, 64, 56, 56), (64, 64, 3, 3))}
QUICK_FOREIGN_SHAPES = {"X": ((2, 8, 28, 28), (8, 8, 3, 3))}


def _jax() -> Any | None:
    """The ``jax`` module, or None where it is not installed (its row is then left out)."""
    try:
        import jax
    except ImportError:
        return None
    return jax


def _ready(array: Any) -> Any:
    """A JAX array once computed: its calls return before their work is done."""
    return array.block_until_ready()


def foreign_cases(quick: bool, torch: Any, bandwidth: float, sgemm: float) -> list[Case]:
    """The rows as :class:`colnn.apps.bench_common.Case` objects; each peer where its library is installed."""
    from .. import conv2d, max_pool2d
    from .bench_peers import jax_pool

    x_shape, w_shape = (QUICK_FOREIGN_SHAPES if quick else FOREIGN_SHAPES)["X"]
    rng = np.random.default_rng(5)
    x = rng.random(x_shape, dtype=np.float32)
    weight = rng.random(w_shape, dtype=np.float32) - 0.5
    bias = rng.random(w_shape[0], dtype=np.float32)
    geometry = pool_geometry(x_shape, 2, 2, 0)
    pool_limit_ms = x.nbytes * 5 / 4 / bandwidth * 1e3  # read the input, write a quarter
    cases = []
    if torch is not None:
        x_t, weight_t, bias_t = (torch.from_numpy(array) for array in (x, weight, bias))
        case = Case("XT max_pool2d of torch", geometry, pool_limit_ms, x.nbytes / 2**20)
        case.impls["colnn"] = lambda: max_pool2d(x_t, 2)
        case.impls["torch NCHW"] = lambda: torch.nn.functional.max_pool2d(x_t, 2)
        cases.append(case)
        flop = 2.0 * x_shape[0] * w_shape[0] * x_shape[2] * x_shape[3] * w_shape[1] * w_shape[2] * w_shape[3]
        case = Case("XT conv2d of torch", conv_geometry(x_shape, w_shape, 1, 1), flop / sgemm * 1e3,
                    x.nbytes / 2**20)
        case.impls["colnn"] = lambda: conv2d(x_t, weight_t, bias_t, padding=1)
        case.impls["torch NCHW"] = lambda: torch.nn.functional.conv2d(x_t, weight_t, bias_t, padding=1)
        cases.append(case)
        cases += _torch_layer_cases(torch, x, weight, bias, bandwidth, sgemm)
    jax = _jax()
    if jax is not None:
        x_j = jax.device_put(x)
        case = Case("XJ max_pool2d of jax", geometry, pool_limit_ms, x.nbytes / 2**20)
        case.impls["colnn"] = lambda: _ready(max_pool2d(x_j, 2))
        case.impls["jax jit"] = jax_pool("max", x, 2, 2, 0)
        cases.append(case)
        cases.append(_jax_layer_case(jax, x, bandwidth))
    return cases


def _pool_step_limit_ms(x: np.ndarray, bandwidth: float) -> float:
    """Max pooling k2 s2 forward + backward at ``bandwidth``: the forward reads the input and writes the
    output and its int64 offsets; the backward reads both and writes the input's size."""
    return (x.nbytes * 2 + x.nbytes // 4 * (1 + 2) * 2) / bandwidth * 1e3


def _pooled_gradient(x: np.ndarray) -> np.ndarray:
    """A gradient of max pooling k2 s2's output (N, C, H/2, W/2)."""
    return np.random.default_rng(6).random((*x.shape[:2], x.shape[2] // 2, x.shape[3] // 2), dtype=np.float32)


def _jax_layer_case(jax: Any, x: np.ndarray, bandwidth: float) -> Case:
    """``MaxPool2d`` forward + backward on JAX arrays against ``jax.jit`` of ``reduce_window``'s VJP."""
    from jax import lax

    from ..nn import MaxPool2d

    def pool(array: Any) -> Any:
        return lax.reduce_window(array, -np.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    step = jax.jit(lambda array, grad: jax.vjp(pool, array)[1](grad)[0])
    x_j, grad_j = jax.device_put(x), jax.device_put(_pooled_gradient(x))
    layer = MaxPool2d(2)

    def layer_step() -> Any:
        layer.forward(x_j)
        return _ready(layer.backward(grad_j))

    case = Case("XJ MaxPool2d fwd+bwd of jax", pool_geometry(x.shape, 2, 2, 0), _pool_step_limit_ms(x, bandwidth),
                x.nbytes / 2**20)
    case.impls["colnn"] = layer_step
    case.impls["jax jit"] = lambda: _ready(step(x_j, grad_j))
    return case


def _torch_layer_cases(torch: Any, x: np.ndarray, weight: np.ndarray, bias: np.ndarray, bandwidth: float,
                       sgemm: float) -> list[Case]:
    """``MaxPool2d`` and ``Conv2d`` forward + backward on PyTorch tensors, against ``torch.nn``'s modules."""
    from ..nn import Conv2d, MaxPool2d

    x_t = torch.from_numpy(x)
    rng = np.random.default_rng(7)
    pooled_grad = torch.from_numpy(_pooled_gradient(x))
    conv_grad = torch.from_numpy(rng.random((x.shape[0], weight.shape[0], *x.shape[2:]), dtype=np.float32))
    conv_layer = Conv2d(torch.from_numpy(weight), torch.from_numpy(bias), padding=1)
    conv_module = torch.nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[2:], padding=1)
    with torch.no_grad():
        conv_module.weight.copy_(torch.from_numpy(weight))
        conv_module.bias.copy_(torch.from_numpy(bias))

    def layer_step(layer: Any, grad: Any) -> Callable[[], Any]:
        def step() -> Any:
            layer.forward(x_t)
            return layer.backward(grad)
        return step

    def module_step(module: Any, grad: Any) -> Callable[[], Any]:
        def step() -> Any:
            module.zero_grad(set_to_none=True)
            with torch.enable_grad():  # the benchmark runs under no_grad
                leaf = x_t.detach().requires_grad_()
                module(leaf).backward(grad)
            return leaf.grad
        return step

    pool_case = Case("XT MaxPool2d fwd+bwd of torch", pool_geometry(x.shape, 2, 2, 0),
                     _pool_step_limit_ms(x, bandwidth), x.nbytes / 2**20)
    pool_case.impls["colnn"] = layer_step(MaxPool2d(2), pooled_grad)
    pool_case.impls["torch NCHW"] = module_step(torch.nn.MaxPool2d(2), pooled_grad)
    flop = 3 * 2.0 * conv_grad.numel() * weight[0].size  # forward, the input's and the weights' gradients
    conv_case = Case("XT Conv2d fwd+bwd of torch", conv_geometry(x.shape, weight.shape, 1, 1), flop / sgemm * 1e3,
                     x.nbytes / 2**20)
    conv_case.impls["colnn"] = layer_step(conv_layer, conv_grad)
    conv_case.impls["torch NCHW"] = module_step(conv_module, conv_grad)
    return [pool_case, conv_case]
