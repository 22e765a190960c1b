"""A network: an ordered list of layers followed by softmax cross-entropy.

:class:`Network` is a generic sequential container in the book's style: it
owns its layers (so there is no global state), exposes their parameters and
gradients under flat names and saves itself, architecture included, to one
``.npz`` file that loads back without pickle (:mod:`.model_file`).
:func:`simple_conv_net` builds the book's ``SimpleConvNet``: conv -> relu ->
max pool -> affine -> relu -> affine -> softmax.

Parameter names are ``"<layer index>.<name>"``, where the index counts every
layer in order (parameter-free ones too), e.g. ``"0.W"``, ``"0.b"``, ``"3.W"``
for a convolution at position 0 and an affine layer at position 3 -- the
scheme of PyTorch's ``nn.Sequential.state_dict``.

A network asks its layers what they can do rather than knowing their types:
whether a layer fuses the ``Relu`` after it (:meth:`Layer.forward_relu
<colnn.nn.base.Layer.forward_relu>`), whether the first layer with parameters
can skip its input gradient, whether a gradient is fresh memory it may
overwrite. Threads: :meth:`Network.predict` may run in several threads at once
(it keeps no state in the layers); :meth:`Network.loss`,
:meth:`Network.loss_and_gradient` and :meth:`Network.gradient` of one network
wait for each other (one lock per network), since each leaves its layers'
state for the next. For training in parallel, give each thread its own
network (``copy.deepcopy(net)``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.checks import check_flag, describe
from ..core.namespace import foreign_namespace, is_dask_array, type_name
from ..core.simple_conv_spec import SimpleConvSpec, simple_conv_spec
from ..core.simple_conv_spec import positive_int as _positive_int
from .activation import Relu
from .base import Layer, forward_in_mode
from .conv import Convolution
from .dense import Affine
from .loss import LossLayer, SoftmaxWithLoss, column_labels
from .pooling import MaxPool2d
from .workspace import Workspace

if TYPE_CHECKING:
    from pathlib import Path

    from .model_file import ModelFileError

# The file format (.model_file, ..core.arrayfile: zipfile, json, pathlib, every layer kind) is imported by
# save, load and architecture, not by building a network: a book script that only trains pays none of it.

__all__ = ["Network", "ModelFileError", "simple_conv_net", "as_network_array"]


def __getattr__(name: str) -> Any:
    # ``from colnn.nn.network import ModelFileError``, as when this module imported the file format eagerly.
    if name == "ModelFileError":
        from .model_file import ModelFileError

        return ModelFileError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_DLPACK_CPU = 1  # DLPack's device type of host memory (kDLCPU)


def as_network_array(value: Any, name: str) -> Any:
    """``value`` as the NumPy array a :class:`Network` computes on: the one conversion at its boundary.

    A Network's layers hold NumPy parameters and compute on the CPU, so inputs
    and labels of another library are read as NumPy arrays: PyTorch tensors
    (one that requires grad is taken as a value: colnn's backward is its own),
    JAX and ``array_api_strict`` arrays, through DLPack (no copy). Lists and
    NumPy arrays go through :func:`numpy.asarray`; a Dask array is returned as it
    is (:meth:`Network.predict` maps it chunk by chunk).

    Raises
    ------
    TypeError naming ``name``, the library and the device when the array is not in CPU memory
    (a CUDA tensor, a CuPy array, a meta tensor): move it to the CPU first; and naming
    its dtype when NumPy cannot read it through DLPack (bfloat16, a conjugate view).
    """
    if is_dask_array(value):
        return value
    if foreign_namespace(value) is None:
        return np.asarray(value)
    if callable(getattr(value, "detach", None)):  # a PyTorch tensor, perhaps in an autograd graph
        value = value.detach()
    import array_api_compat

    try:
        device_type, _ = value.__dlpack_device__()
    except Exception:  # a device DLPack has no number for (PyTorch's meta)
        device_type = None
    if device_type != _DLPACK_CPU:
        raise TypeError(f"{name} is {type_name(value)} on device "
                        f"{array_api_compat.device(value)}; a Network computes with NumPy on the CPU: "
                        f"move {name} to the CPU first (e.g. {name}.cpu())")
    try:
        return np.from_dlpack(value)
    except Exception as error:  # DLPack cannot export it: bfloat16, a conjugate view, ...
        raise TypeError(f"{name} is {type_name(value)} of dtype {value.dtype} on device "
                        f"{array_api_compat.device(value)}, which NumPy cannot read through DLPack ({error}); "
                        f"a Network computes with NumPy on the CPU: convert {name} to a NumPy dtype "
                        f"(float16, float32 or float64; resolve a conjugate view) first") from None


def _check_numpy_arrays(index: int, layer: Layer) -> None:
    """TypeError naming the layer and the array unless its parameters and buffers are NumPy arrays.

    A Network computes with NumPy on the CPU (its input is read as NumPy), so a
    layer that keeps PyTorch or JAX arrays could only fail later, deep inside.
    """
    arrays = {**layer.params, **getattr(layer, "buffers", {})}
    for name, array in arrays.items():
        if not isinstance(array, np.ndarray):
            raise TypeError(f"layers[{index}] ({type(layer).__name__}) holds {name} as {type_name(array)}; "
                            f"a Network keeps NumPy parameters and computes with NumPy on the CPU: "
                            f"build the layer from NumPy arrays (numpy.asarray({name})), or use the layer on its own")


class Network:
    """Layers applied in order, then :class:`~colnn.nn.layers.SoftmaxWithLoss`.

    Parameters
    ----------
    layers : sequence of :class:`~colnn.nn.layers.Layer`
        Applied in order by :meth:`predict`; the last one must output scores
        ``(N, K)``. The network uses these very objects (it does not copy them).
    input_shape : ``(C, H, W)`` or None
        Shape of one sample, if known; saved with the model so that a loader can
        check its data against it.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> net = Network([Affine(rng.normal(size=(4, 3)), np.zeros(3))])
    >>> sorted(net.params)
    ['0.W', '0.b']
    >>> net.predict(np.ones((2, 4))).shape
    (2, 3)
    """

    def __init__(self, layers: Sequence[Layer], input_shape: Sequence[int] | None = None) -> None:
        layers = tuple(layers)
        if not layers:
            raise ValueError("layers must hold at least one layer, got an empty sequence")
        for index, layer in enumerate(layers):
            if not isinstance(layer, Layer) or isinstance(layer, SoftmaxWithLoss):
                raise TypeError(f"layers[{index}] must be a Layer other than SoftmaxWithLoss, got {describe(layer)}")
            _check_numpy_arrays(index, layer)
        self.layers: tuple[Layer, ...] = layers
        self.loss_layer: LossLayer = SoftmaxWithLoss()
        # A Relu fused into the output pass of the layer before (Layer.forward_relu); False runs every layer alone.
        self.fuse_epilogues = True
        # Fused convolutions' outputs and masks, written again on the next call once nothing holds them.
        self._workspace = Workspace()
        # loss, loss_and_gradient and gradient leave the layers' state for each other: one at a time.
        self._lock = threading.RLock()
        self.input_shape: tuple[int, ...] | None = None if input_shape is None else tuple(int(s) for s in input_shape)

    def __getstate__(self) -> dict[str, Any]:
        # A lock cannot be copied: copy.deepcopy and pickle give the copy a fresh one.
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        names = ", ".join(type(layer).__name__ for layer in self.layers)
        return f"Network([{names}], input_shape={self.input_shape})"

    def clear_workspace(self) -> None:
        """Drop the buffers :meth:`predict` keeps for fused convolutions between calls (:mod:`colnn.nn.workspace`).

        They are at most two outputs and two masks per fused convolution, each
        256 MiB at most; arrays still referenced elsewhere live on as ordinary arrays.
        """
        self._workspace.clear()

    # --- parameters --------------------------------------------------------

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Every learnable array by name (``"0.W"``...); these are the layers' own arrays."""
        return self._by_name(lambda layer: layer.params)

    def _by_name(self, arrays_of: Callable[[Layer], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return {f"{i}.{name}": array for i, layer in enumerate(self.layers) for name, array in arrays_of(layer).items()}

    @property
    def dtype(self) -> np.dtype:
        """Common dtype of the parameters (float64 for a network without any)."""
        arrays = list(self.params.values())
        return np.result_type(*arrays) if arrays else np.dtype(np.float64)

    # --- computation -------------------------------------------------------

    def predict(self, x: Any, train_flg: bool = False) -> Any:
        """Scores ``(N, K)`` (before softmax) for inputs ``x`` ``(N, C, H, W)``.

        ``x`` is converted to the parameters' dtype, so float64 or uint8 inputs
        run a float32 network in float32; the caller's array is not modified.
        ``train_flg`` is passed to the layers whose forward depends on it
        (dropout, batch normalisation): False, the default, evaluates.

        Evaluation keeps nothing in the layers (:meth:`Layer.infer
        <colnn.nn.base.Layer.infer>`), so several threads may predict with one
        network at once, also while another trains it; a layer that cannot infer
        without state, or ``train_flg=True`` (which updates running estimates),
        waits for the network's lock as :meth:`loss` does. A layer followed by a
        ``Relu`` that it fuses (convolutions, ``Affine``) runs both in one pass
        while :attr:`fuse_epilogues` is True: the same results as the layers one
        by one. A fused convolution inside the network writes its output into
        buffers the network keeps (:mod:`colnn.nn.workspace`, up to two per
        layer, 256 MiB at most each) and reuses once nothing else references them.
        A Dask array gives lazy scores, chunk by chunk of samples.
        """
        train_flg = check_flag(train_flg, "train_flg")
        out = self._input(x)
        if is_dask_array(out):  # lazy scores, chunk by chunk of samples
            from ..ops.dask import map_batches

            return map_batches(out, self.predict)
        if train_flg or not all(layer.infers_statelessly for layer in self.layers):
            with self._lock:
                return self._forward(out, train_flg, keep=True)
        return self._forward(out, False, keep=False)

    def _input(self, x: Any) -> Any:
        """``x`` as the network's NumPy input (or a Dask array), checked against ``input_shape``, in its dtype."""
        out = as_network_array(x, "x")
        expected = self.input_shape
        if expected is not None and tuple(out.shape[1:]) != expected:
            hint = "; for one sample use x[np.newaxis]" if tuple(out.shape) == expected else ""
            raise ValueError(
                f"x must be a batch of shape (N, {', '.join(map(str, expected))}) for this network's "
                f"input_shape {expected}, got shape {tuple(out.shape)}{hint}"
            )
        if self.params and out.dtype != self.dtype:
            out = out.astype(self.dtype)
        return out

    def _forward(self, out: Any, train_flg: bool, keep: bool) -> Any:
        """The layers in order; with ``keep`` each keeps its state for backward (the book's forward)."""
        train_flg = check_flag(train_flg, "train_flg")  # also where no layer depends on it: one rule
        layers, index = self.layers, 0
        while index < len(layers):
            layer = layers[index]
            if self.fuse_epilogues and index + 1 < len(layers):
                # The network's own output is the caller's: only intermediate results go to the workspace.
                workspace = self._workspace if index + 2 < len(layers) else None
                fused = layer.forward_relu(out, layers[index + 1], keep=keep, workspace=workspace)
                if fused is not None:
                    out, index = fused, index + 2
                    continue
            out = forward_in_mode(layer, out, train_flg) if keep else layer.infer(out)
            index += 1
        return out

    def loss(self, x: Any, t: Any, train_flg: bool = False) -> float:
        """Mean cross-entropy of the softmax of the scores against labels ``t`` ``(N,)`` or one-hot.

        Every layer keeps its state for a backward pass (the book's ``loss`` then
        its loop of ``layer.backward``); calls on one network wait for each other.
        """
        with self._lock:
            labels = as_network_array(t, "t")
            return self.loss_layer.forward(self._forward(self._input(x), train_flg, keep=True), labels)

    def loss_and_gradient(self, x: Any, t: Any) -> tuple[float, dict[str, np.ndarray]]:
        """One training-mode forward and backward pass: ``(loss, grads)``, grads keyed like :attr:`params`.

        Calls on one network (and :meth:`loss`, :meth:`gradient`) run one at a
        time. Backward stops at the first layer with parameters, which computes
        only its parameters' gradients where it can (``skips_input_grad``):
        nothing needs the gradient of the network's input.
        """
        with self._lock:
            loss = self.loss(x, t, train_flg=True)
            dout = self.loss_layer.backward(1.0)
            fresh = False  # whether dout is a new array only this loop holds
            first = next((index for index, layer in enumerate(self.layers) if layer.params), 0)
            for layer in reversed(self.layers[first + 1:]):
                if fresh and type(layer) is Relu and self.fuse_epilogues:
                    dout = layer.backward_owned(dout)
                else:
                    dout = layer.backward(dout)
                    fresh = layer.fresh_gradient
            layer = self.layers[first]
            if layer.skips_input_grad:
                backward: Callable[..., Any] = layer.backward  # such a layer's backward takes input_grad
                backward(dout, input_grad=False)
            else:
                layer.backward(dout)
            return loss, self._by_name(lambda layer: layer.grads)

    def gradient(self, x: Any, t: Any) -> dict[str, np.ndarray]:
        """Gradients of :meth:`loss` w.r.t. every parameter, keyed like :attr:`params` (see
        :meth:`loss_and_gradient`)."""
        return self.loss_and_gradient(x, t)[1]

    def accuracy(self, x: Any, t: Any, batch_size: int = 100) -> float:
        """Fraction of samples whose highest score is the label; evaluated ``batch_size`` samples at a time.

        ``t``: labels ``(N,)``, an integer column ``(N, 1)`` or one-hot rows ``(N, K)``.

        A Dask ``x`` is scored as one graph (the network sent once, its chunks the
        batches) and computed here: the answer is a number.
        """
        batch_size = _positive_int(batch_size, "batch_size")
        x, labels = as_network_array(x, "x"), column_labels(as_network_array(t, "t"))
        if labels.ndim == 2:  # one-hot rows
            labels = labels.argmax(axis=1)
        n = len(labels)
        if n == 0 or len(x) != n:
            raise ValueError(f"x and t must hold the same non-zero number of samples, got {len(x)} and {n}")
        if is_dask_array(x):
            return int(np.count_nonzero((self.predict(x).argmax(axis=1) == labels).compute())) / n
        correct = 0
        for start in range(0, n, batch_size):
            scores = self.predict(x[start:start + batch_size])
            correct += int(np.count_nonzero(scores.argmax(axis=1) == labels[start:start + batch_size]))
        return correct / n

    # --- persistence -------------------------------------------------------

    def architecture(self) -> dict[str, Any]:
        """The JSON-able description :meth:`load` rebuilds the layers from (weights not included)."""
        from .model_file import FORMAT_NAME, FORMAT_VERSION, layer_config

        return {"format": FORMAT_NAME, "version": FORMAT_VERSION, "input_shape": self.input_shape,
                "loss": "SoftmaxWithLoss", "layers": [layer_config(layer) for layer in self.layers]}

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write weights and architecture to ``path`` (an ``.npz`` file, written at exactly that path).

        The file is written beside ``path`` first and then renamed onto it, so a
        failure halfway (a full disk) leaves any earlier file at ``path`` whole.
        Batch normalisation's running statistics are saved with the weights.
        """
        import json

        from ..core.arrayfile import write_whole
        from .model_file import ARCHITECTURE_KEY

        # Any: numpy's stubs read np.savez's keywords as its allow_pickle flag.
        arrays: dict[str, Any] = {**self.params, **self._by_name(lambda layer: getattr(layer, "buffers", {}))}
        arrays[ARCHITECTURE_KEY] = np.array(json.dumps(self.architecture()))

        def write(partial: Path) -> None:
            with open(partial, "wb") as file:  # a file object stops numpy from appending ".npz"
                np.savez(file, **arrays)

        write_whole(path, write)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Network:
        """Rebuild a network written by :meth:`save`, reading no pickled data.

        Raises
        ------
        ModelFileError
            When the file is missing, a directory, unreadable, not an ``.npz``
            archive, damaged, or does not describe a colnn network (bad or
            unsupported architecture JSON, missing or extra arrays, weights of
            the wrong dtype, shape or with NaN/inf, layers that do not fit
            together); the one-line message names the file and the fault.
        TypeError
            When ``path`` is not a str or path.
        """
        from ..core.arrayfile import ArrayFileError, read_npz
        from .model_file import ModelFileError

        try:
            arrays = read_npz(path)
        except ArrayFileError as error:
            raise ModelFileError(str(error)) from None
        try:
            return cls._from_arrays(arrays)
        # Crafted files reach every corner of the layers' constructors; whatever
        # they raise, the user sees one line naming the file.
        except (AttributeError, KeyError, TypeError, ValueError, IndexError, OverflowError, MemoryError) as error:
            message = error.args[0] if len(error.args) == 1 else (str(error) or type(error).__name__)
            raise ModelFileError(f"{path}: not a valid colnn model: {message}") from None

    @classmethod
    def _from_arrays(cls, arrays: dict[str, np.ndarray]) -> Network:
        from .model_file import ARCHITECTURE_KEY, build_layer, param_names, read_architecture, take_weight

        config = read_architecture(arrays.pop(ARCHITECTURE_KEY, None))
        if config.get("loss", "SoftmaxWithLoss") != "SoftmaxWithLoss":
            raise ValueError(f"unknown loss {config.get('loss')!r:.60}; colnn networks end in 'SoftmaxWithLoss'")
        input_shape = config.get("input_shape")
        # One sample: (C, L), (C, H, W) or (C, D, H, W) for the 1/2/3-d layers, or (D,) for affine ones.
        if input_shape is not None and not (
                isinstance(input_shape, list) and 1 <= len(input_shape) <= 4
                and all(type(size) is int and size > 0 for size in input_shape)):
            raise ValueError("input_shape must be null or 1 to 4 positive ints such as [C, H, W], "
                             f"got {describe(input_shape)}")
        layer_configs = config.get("layers")
        if not isinstance(layer_configs, list) or not layer_configs:
            raise ValueError(f"'layers' must be a non-empty list, got {layer_configs!r:.60}")
        layers = []
        for index, described in enumerate(layer_configs):
            kind = described.get("type") if isinstance(described, dict) else None
            try:
                names = param_names(kind) if isinstance(kind, str) else None
            except ValueError:
                names = None
            if names is None or not isinstance(kind, str):
                raise ValueError(f"layer {index} has unknown type {kind!r:.60}")
            params = {name: take_weight(arrays, f"{index}.{name}", kind) for name in names}
            layers.append(build_layer(kind, described, params))
        if arrays:
            raise ValueError(f"arrays not used by the architecture: {sorted(arrays)}")
        network = cls(layers, input_shape)
        if input_shape is not None and np.prod(input_shape, dtype=float) <= _PROBE_SIZE:
            # One zero sample through the layers checks that the weights' shapes fit together.
            dtype = network.dtype
            try:
                scores = network.predict(np.zeros((1, *input_shape), dtype))
            except (ValueError, TypeError) as error:
                raise ValueError(f"the layers do not fit together on input_shape {input_shape}: {error}") from None
            if scores.ndim != 2:
                raise ValueError(f"the last layer must give scores (N, K), got shape {scores.shape}")
        return network


# Largest sample (in elements) that :meth:`Network.load` runs through the layers as a check.
_PROBE_SIZE = 1 << 22


def simple_conv_net(
    input_dim: Sequence[int] = (1, 28, 28),
    filter_num: int = 30,
    filter_size: int = 5,
    pad: int = 0,
    stride: int = 1,
    pool_size: int = 2,
    hidden_size: int = 100,
    output_size: int = 10,
    weight_init_std: float | str = "he",
    seed: int | np.random.Generator | np.random.RandomState | None = 0,
    dtype: Any = np.float32,
) -> Network:
    """The book's ``SimpleConvNet``: conv -> relu -> max pool -> affine -> relu -> affine.

    Parameters
    ----------
    input_dim : ``(C, H, W)`` of one sample
    filter_num, filter_size, pad, stride : the convolution's filters
        ``(filter_num, C, filter_size, filter_size)``, zero padding and stride
    pool_size : max pooling window and stride
    hidden_size, output_size : widths of the two affine layers
    weight_init_std : ``"he"`` (std ``sqrt(2 / fan_in)`` per layer) or a fixed std
    seed : seed of the weight initialisation (None: fresh randomness), or a NumPy
        ``Generator`` or ``RandomState`` whose ``standard_normal`` draws the weights,
        in the layers' order (``colnn.book`` passes the book's ``RandomState``, so
        that the weights are the book's ``weight_init_std * randn(...)``)
    dtype : floating dtype of the parameters and of the computation

    Returns
    -------
    Network with parameters ``"0.W"`` ``(filter_num, C, filter_size, filter_size)``,
    ``"0.b"``, ``"3.W"`` ``(filter_num * pool_h * pool_w, hidden_size)``, ``"3.b"``,
    ``"5.W"`` ``(hidden_size, output_size)`` and ``"5.b"``; biases start at zero.

    Examples
    --------
    >>> net = simple_conv_net((1, 8, 8), filter_num=4, filter_size=3, pad=1, hidden_size=10)
    >>> net.params["3.W"].shape, net.predict(np.zeros((2, 1, 8, 8))).shape
    ((64, 10), (2, 10))
    """
    return simple_conv_network(simple_conv_spec(input_dim, filter_num, filter_size, pad, stride, pool_size,
                                                hidden_size, output_size, weight_init_std, seed, dtype))


def simple_conv_network(spec: SimpleConvSpec) -> Network:
    """The layers of :func:`simple_conv_net` on ``spec``'s very arrays (not copied), as a :class:`Network`."""
    conv_w, conv_b, hidden_w, hidden_b, out_w, out_b = spec.params
    layers = [Convolution(conv_w, conv_b, spec.stride, spec.pad), Relu(), MaxPool2d(spec.pool_size),
              Affine(hidden_w, hidden_b), Relu(), Affine(out_w, out_b)]
    return Network(layers, input_shape=spec.input_shape)
