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
"""

from __future__ import annotations

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
    jax = _jax()
    if jax is not None:
        x_j = jax.device_put(x)
        case = Case("XJ max_pool2d of jax", geometry, pool_limit_ms, x.nbytes / 2**20)
        case.impls["colnn"] = lambda: _ready(max_pool2d(x_j, 2))
        case.impls["jax jit"] = jax_pool("max", x, 2, 2, 0)
        cases.append(case)
    return cases
