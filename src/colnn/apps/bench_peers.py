"""Peers of ``colnn bench``: ONNX Runtime and JAX beside colnn, and whole training steps against PyTorch.

PyTorch's NCHW kernels are no longer the bar for pooling, so this section
times the engines a CNN is deployed on for CPU inference (ONNX Runtime, its
MLAS kernels) and the compiler a NumPy user reaches for (JAX/XLA):

- **forward ops**: each pooling and convolution case of :mod:`colnn.apps.bench`
  as a one-node ONNX model (``MaxPool``, ``AveragePool``, ``Conv``, built with
  ``onnx.helper``) and as ``jax.jit`` of ``lax.reduce_window`` /
  ``lax.conv_general_dilated``;
- **training step**: forward, backward and Adam of the book's SimpleConvNet
  (:func:`colnn.nn.network.simple_conv_net`) on an MNIST-shaped and a
  CIFAR-shaped batch, against the same network in PyTorch (weights copied,
  same batch, ``torch.optim.Adam``);
- **predict**: :meth:`colnn.nn.network.Network.predict` of SimpleConvNet on
  1,000 MNIST-sized images against the same network exported to ONNX
  (:func:`export_onnx`) and run by ONNX Runtime.

The implementations of a case are timed interleaved (A, B, A, B, ...) and
the median kept, so a machine shared with other work slows them alike. The
ratio is the peer's time over colnn's ("÷ colnn", as in :mod:`colnn.apps.bench`):
above 1, colnn is faster. A row whose repeats lie more than
:data:`colnn.apps.bench_common.NOISE_RATIO` apart is marked noisy. ONNX Runtime
and PyTorch run on colnn's thread count (:func:`colnn.get_num_threads`), and
ONNX Runtime's workers do not spin between calls, so they leave the cores to
whatever runs next. XLA picks its own thread count. A peer that is not
installed is left out (``pip install colnn[bench]``).
"""

from __future__ import annotations

import functools
import importlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .bench_common import (
    COLNN_RATIO,
    COLNN_RATIO_NOTE,
    CONV_SHAPES,
    NOISE_RATIO,
    POOL_SHAPES,
    QUICK_CONV_SHAPES,
    QUICK_POOL_SHAPES,
    conv_geometry,
    noise_warnings,
    pool_geometry,
    shape_text,
    spread_cell,
    summarize_times,
)

__all__ = ["PeerRow", "export_onnx", "ort_session", "run_peers", "format_peers"]

# C3 is the convolution of SimpleConvNet's training batch (the main job's layer).
PEER_CONV_SHAPES = {**CONV_SHAPES, "C3": ((100, 1, 28, 28), (30, 1, 5, 5), 0)}
# (batch shape, filter_num) of the training steps.
STEP_SHAPES = {"SimpleConvNet (100, 1, 28, 28)": ((100, 1, 28, 28), 30),
               "SimpleConvNet CIFAR-shaped (100, 3, 32, 32), 32 filters": ((100, 3, 32, 32), 32)}
QUICK_STEP_SHAPES = {"SimpleConvNet (8, 1, 28, 28)": ((8, 1, 28, 28), 6)}
PREDICT_IMAGES = 1000


@dataclass
class PeerRow:
    """One implementation of one case: its times in milliseconds and ``ratio_to_colnn`` (its median / colnn's)."""

    section: str
    case: str
    shape: str
    impl: str
    median_ms: float
    min_ms: float
    max_ms: float
    noisy: bool
    ratio_to_colnn: float


def _optional(name: str) -> Any | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


# --- ONNX Runtime -----------------------------------------------------------------


def ort_session(model: Any, threads: int) -> Any:
    """An ONNX Runtime CPU session of ``model`` on ``threads`` intra-op threads that do not spin when idle."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _one_node_model(op_type: str, x_shape: tuple[int, ...], out_shape: tuple[int, ...],
                    initializers: dict[str, np.ndarray], **attributes: Any) -> Any:
    """A float32 model ``y = op_type(x, *initializers)``."""
    from onnx import TensorProto, helper, numpy_helper

    node = helper.make_node(op_type, ["x", *initializers], ["y"], **attributes)
    graph = helper.make_graph(
        [node], op_type,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))],
        [numpy_helper.from_array(array, name) for name, array in initializers.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def ort_pool(kind: str, x: np.ndarray, out_shape: tuple[int, ...], kernel: int, stride: int, pad: int,
             threads: int) -> Callable[[], np.ndarray]:
    """``kind`` ("max" or "avg", zero padding counted as PyTorch does) pooling by ONNX Runtime on ``x``."""
    attributes: dict[str, Any] = {"kernel_shape": [kernel, kernel], "strides": [stride, stride], "pads": [pad] * 4}
    if kind == "avg":
        attributes["count_include_pad"] = 1
    model = _one_node_model("MaxPool" if kind == "max" else "AveragePool", x.shape, out_shape, {}, **attributes)
    session = ort_session(model, threads)
    return lambda: session.run(None, {"x": x})[0]


def ort_conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, out_shape: tuple[int, ...], pad: int,
             threads: int) -> Callable[[], np.ndarray]:
    """Stride-1 convolution of ``x`` by ONNX Runtime, ``weight`` and ``bias`` as initializers."""
    model = _one_node_model("Conv", x.shape, out_shape, {"W": weight, "B": bias},
                            kernel_shape=list(weight.shape[2:]), pads=[pad] * 4)
    session = ort_session(model, threads)
    return lambda: session.run(None, {"x": x})[0]


def export_onnx(network: Any, batch: int) -> Any:
    """An ONNX model of a :class:`~colnn.nn.network.Network` of ``Convolution``, ``Relu``, ``MaxPool2d`` and
    ``Affine`` layers (SimpleConvNet's), for inputs ``(batch, *network.input_shape)``; scores ``(batch, K)``.

    Convolutions and pooling take their stride and (integer) padding along;
    each ``Affine`` is a ``Flatten`` and a ``Gemm`` with ``W`` ``(D, M)`` as is.
    Raises TypeError for any other layer.
    """
    from onnx import TensorProto, helper, numpy_helper

    from ..nn import Affine, Convolution, MaxPool2d, Relu

    nodes, weights, name = [], [], "x"
    for index, layer in enumerate(network.layers):
        out = f"h{index}"
        if isinstance(layer, Convolution):
            weights += [numpy_helper.from_array(layer.W, f"W{index}"), numpy_helper.from_array(layer.b, f"b{index}")]
            nodes.append(helper.make_node("Conv", [name, f"W{index}", f"b{index}"], [out],
                                          kernel_shape=list(layer.W.shape[2:]), strides=list(layer.stride),
                                          pads=[*layer.pad, *layer.pad], dilations=list(layer.dilation),
                                          group=layer.groups))
        elif isinstance(layer, Relu):
            nodes.append(helper.make_node("Relu", [name], [out]))
        elif isinstance(layer, MaxPool2d):
            nodes.append(helper.make_node("MaxPool", [name], [out], kernel_shape=list(layer.kernel_size),
                                          strides=list(layer.stride), pads=[*layer.padding, *layer.padding],
                                          ceil_mode=int(layer.ceil_mode)))
        elif isinstance(layer, Affine):
            weights += [numpy_helper.from_array(layer.W, f"W{index}"), numpy_helper.from_array(layer.b, f"b{index}")]
            nodes += [helper.make_node("Flatten", [name], [f"flat{index}"], axis=1),
                      helper.make_node("Gemm", [f"flat{index}", f"W{index}", f"b{index}"], [out])]
        else:
            raise TypeError(f"export_onnx cannot export layer {index}: {layer!r}")
        name = out
    scores = network.layers[-1].W.shape[1]
    graph = helper.make_graph(
        nodes, "colnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, *network.input_shape])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [batch, scores])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


# --- JAX ----------------------------------------------------------------------------


def jax_pool(kind: str, x: np.ndarray, kernel: int, stride: int, pad: int) -> Callable[[], Any]:
    """``jax.jit`` of ``lax.reduce_window`` pooling of ``x`` (average: zero padding counted, as PyTorch)."""
    import jax
    from jax import lax

    window, strides = (1, 1, kernel, kernel), (1, 1, stride, stride)
    padding = ((0, 0), (0, 0), (pad, pad), (pad, pad))
    if kind == "max":
        pool = jax.jit(lambda t: lax.reduce_window(t, -np.inf, lax.max, window, strides, padding))
    else:
        pool = jax.jit(lambda t: lax.reduce_window(t, 0.0, lax.add, window, strides, padding) / (kernel * kernel))
    x_device = jax.device_put(x)
    return lambda: pool(x_device).block_until_ready()


def jax_conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, pad: int) -> Callable[[], Any]:
    """``jax.jit`` of a stride-1 NCHW ``lax.conv_general_dilated`` plus bias."""
    import jax
    from jax import lax

    padding = ((pad, pad), (pad, pad))
    conv = jax.jit(lambda t, w, b: lax.conv_general_dilated(t, w, (1, 1), padding) + b[None, :, None, None])
    arrays = [jax.device_put(a) for a in (x, weight, bias)]
    return lambda: conv(*arrays).block_until_ready()


# --- cases ----------------------------------------------------------------------------


def _selected(case: str, only: Sequence[str] | None) -> bool:
    """Whether ``case`` is to be timed: every case without ``only``, else those whose name contains one of
    its strings."""
    return only is None or any(part in case for part in only)


def _op_cases(quick: bool, threads: int, only: Sequence[str] | None = None,
              ) -> list[tuple[str, str, str, dict[str, Callable[[], Any]]]]:
    """``(section, case, shape, {impl: func})`` for each forward op selected by ``only``, colnn first."""
    from ..ops.conv import conv2d
    from ..ops.pooling import avg_pool2d, max_pool2d

    has_ort, has_jax = _optional("onnxruntime") and _optional("onnx"), _optional("jax")
    rng = np.random.default_rng(0)
    cases: list[tuple[str, str, str, dict[str, Callable[[], Any]]]] = []
    for name, (shape, kernel, stride, pad) in (QUICK_POOL_SHAPES if quick else POOL_SHAPES).items():
        x = rng.random(shape, dtype=np.float32)
        for kind, pool in (("max", max_pool2d), ("avg", avg_pool2d)):
            if not _selected(f"{name} {kind} fwd", only):
                continue
            impls: dict[str, Callable[[], Any]] = {"colnn": functools.partial(pool, x, kernel, stride, pad)}
            if has_ort:
                out_shape = impls["colnn"]().shape
                impls["onnxruntime"] = ort_pool(kind, x, out_shape, kernel, stride, pad, threads)
            if has_jax:
                impls["jax jit"] = jax_pool(kind, x, kernel, stride, pad)
            cases.append(("forward ops", f"{name} {kind} fwd", pool_geometry(shape, kernel, stride, pad), impls))
    for name, (x_shape, w_shape, pad) in (QUICK_CONV_SHAPES if quick else PEER_CONV_SHAPES).items():
        if not _selected(f"{name} conv fwd", only):
            continue
        x = rng.random(x_shape, dtype=np.float32)
        weight = rng.random(w_shape, dtype=np.float32) - 0.5
        bias = rng.random(w_shape[0], dtype=np.float32)
        impls = {"colnn": functools.partial(conv2d, x, weight, bias, padding=pad)}
        if has_ort:
            impls["onnxruntime"] = ort_conv(x, weight, bias, impls["colnn"]().shape, pad, threads)
        if has_jax:
            impls["jax jit"] = jax_conv(x, weight, bias, pad)
        cases.append(("forward ops", f"{name} conv fwd", conv_geometry(x_shape, w_shape, 1, pad), impls))
    return cases


def torch_simple_conv_net(network: Any, torch: Any) -> Any:
    """The same SimpleConvNet as a ``torch.nn.Sequential``, weights copied (``Affine``'s ``W`` transposed)."""
    conv, _, pool, hidden, _, scores = network.layers
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(conv.W.shape[1], conv.W.shape[0], conv.W.shape[2:], conv.stride, conv.pad),
        nn.ReLU(), nn.MaxPool2d(pool.kernel_size, pool.stride), nn.Flatten(),
        nn.Linear(*hidden.W.shape), nn.ReLU(), nn.Linear(*scores.W.shape))
    with torch.no_grad():
        for index, layer in ((0, conv), (4, hidden), (6, scores)):
            weight = layer.W if index == 0 else layer.W.T
            model[index].weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
            model[index].bias.copy_(torch.from_numpy(layer.b))
    return model


def step_pair(batch_shape: tuple[int, ...], filter_num: int, torch: Any | None,
              seed: int = 0) -> dict[str, Callable[[], float]]:
    """One training step (forward, backward, Adam) of SimpleConvNet in colnn and, if given, PyTorch.

    Both start from the same weights and see the same batch; each call returns
    the step's loss (before its update).
    """
    from ..nn.network import simple_conv_net
    from ..nn.optim import Adam

    rng = np.random.default_rng(seed)
    x = rng.random(batch_shape, dtype=np.float32)
    labels = rng.integers(0, 10, batch_shape[0])
    network = simple_conv_net(batch_shape[1:], filter_num=filter_num, seed=seed)
    optimizer = Adam(0.001)

    def colnn_step() -> float:
        loss, grads = network.loss_and_gradient(x, labels)
        optimizer.update(network.params, grads)
        return float(loss)

    steps = {"colnn": colnn_step}
    if torch is not None:
        model = torch_simple_conv_net(network, torch)
        torch_optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
        x_t, labels_t = torch.from_numpy(x), torch.from_numpy(labels)

        def torch_step() -> float:
            torch_optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x_t), labels_t)
            loss.backward()
            torch_optimizer.step()
            return float(loss.detach())

        steps["torch"] = torch_step
    return steps


def predict_pair(images: int, threads: int, seed: int = 0) -> dict[str, Callable[[], np.ndarray]]:
    """``Network.predict`` of SimpleConvNet on ``images`` MNIST-sized images, and ONNX Runtime on its export."""
    from ..nn.network import simple_conv_net

    rng = np.random.default_rng(seed)
    network = simple_conv_net(seed=seed)
    for param in network.params.values():  # trained-looking biases, so the export's must be right too
        param += rng.normal(0, 0.01, param.shape).astype(param.dtype)
    x = rng.random((images, 1, 28, 28), dtype=np.float32)
    impls = {"colnn": lambda: network.predict(x)}
    if _optional("onnxruntime") and _optional("onnx"):
        session = ort_session(export_onnx(network, images), threads)
        impls["onnxruntime"] = lambda: session.run(None, {"x": x})[0]
    return impls


# --- timing and reporting ---------------------------------------------------------------

# The pause before each timed call in run_peers: on 2 shared cores, a peer's worker threads still
# winding down from the previous call (ONNX Runtime's pool even with spinning off, XLA's) slowed
# the next timed call; with 20 ms between calls each implementation starts on idle cores.
SETTLE_S = 0.02


def time_interleaved(impls: dict[str, Callable[[], Any]], repeat: int,
                     settle_s: float = 0.0) -> dict[str, list[float]]:
    """Seconds of each of ``repeat`` calls per implementation, timed A, B, A, B, ... after one warm-up call each.

    ``settle_s``: a pause before each timed call, so that threads the previous
    call left spinning (XLA's, TBB's) are idle when the next one starts.
    """
    for func in impls.values():
        func()
    seconds: dict[str, list[float]] = {name: [] for name in impls}
    for _ in range(repeat):
        for name, func in impls.items():
            if settle_s:
                time.sleep(settle_s)
            start = time.perf_counter()
            func()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def run_peers(quick: bool = False, repeat: int = 7, log: Callable[[str], None] | None = None,
              only: Sequence[str] | None = None, *, settle_s: float = SETTLE_S) -> list[dict[str, Any]]:
    """Time every peer case; returns JSON-ready :class:`PeerRow` dicts (colnn's row first in each case).

    ``only`` restricts the run to the cases whose name contains one of its
    strings (``["C2", "C3", "predict"]``); the predict case is named
    ``"SimpleConvNet on 1000 images"`` and also matches ``"predict"``.
    ``settle_s``: see :func:`time_interleaved`.
    """
    from .. import get_num_threads

    threads = get_num_threads()
    torch = _optional("torch")
    cases = _op_cases(quick, threads, only)
    for name, (shape, filters) in (QUICK_STEP_SHAPES if quick else STEP_SHAPES).items():
        if _selected(name, only):
            cases.append(("training step", name, f"{shape_text(shape)}, {filters} filters",
                          step_pair(shape, filters, torch)))
    images = 10 if quick else PREDICT_IMAGES
    predict_case = f"SimpleConvNet on {images} images"
    if _selected(predict_case, only) or _selected("predict", only):
        cases.append(("predict", predict_case, shape_text((images, 1, 28, 28)), predict_pair(images, threads)))
    torch_threads = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(threads)
    rows = []
    try:
        for section, case, geometry, impls in cases:
            if log:
                log(f"timing peers: {case}")
            timed = time_interleaved(impls, repeat, settle_s)
            times = {impl: summarize_times(seconds) for impl, seconds in timed.items()}
            rows += [asdict(PeerRow(section, case, geometry, impl, **summary,
                                    ratio_to_colnn=summary["median_ms"] / times["colnn"]["median_ms"]))
                     for impl, summary in times.items()]
    finally:
        if torch is not None:
            torch.set_num_threads(torch_threads)
    return rows


def format_peers(rows: list[dict[str, Any]], legend: bool = True) -> str:
    """The peer rows as a Markdown table; "÷ colnn" is a row's median over colnn's (above 1: colnn is faster).

    ``legend=False`` leaves out the line that says so, for ``colnn bench``,
    whose header says it once for both tables. Warnings about noisy rows follow
    the table.
    """
    lines = ["", "Peers, timed interleaved (A, B, A, B, ...): median and min-max (* : repeats more than "
             f"{NOISE_RATIO}x apart).", *([COLNN_RATIO_NOTE] if legend else []), "",
             f"| section | case | shape | implementation | median ms | min-max ms | {COLNN_RATIO} |",
             "| --- | --- | --- | --- | ---: | ---: | ---: |"]
    lines += [f"| {row['section']} | {row['case']} | {row['shape']} | {row['impl']} | {row['median_ms']:.2f} | "
              f"{spread_cell(row)} | {row['ratio_to_colnn']:.2f} |"
              for row in rows]
    warnings = noise_warnings(rows, None, None)
    return "\n".join(lines + (["", *warnings] if warnings else []))
