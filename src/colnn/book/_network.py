"""What the book's networks share: the book's ``params`` dict over a :class:`colnn.nn.Network`.

The book builds each network from ``params`` (``W1``, ``b1``, ...) and layers
that share those arrays, then loops over the layers. colnn.book builds the same
layers (colnn's, which share the arrays too) into a :class:`colnn.nn.Network`,
which runs them with fused convolution+ReLU passes and reused buffers, and
replaces its loss by the book's :class:`~colnn.book.layers.SoftmaxWithLoss`
(with the book's ``1e-7``), so the numbers are the book's.
"""

from __future__ import annotations

import functools
import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from . import gradient as book_gradient
from .layers import SoftmaxWithLoss, lean_affine, lean_relu, window_work

if TYPE_CHECKING:
    from pathlib import Path

    from colnn.nn import Layer, Network

# colnn's layers (and the file and error helpers) are imported where a network is first built or used, not with
# this module: importing colnn.book.simple_convnet (or deep_convnet, multi_layer_net) stays a NumPy import.

# What _assemble sets: asking a network for one of them builds layers that wait for their first use.
_ASSEMBLED = frozenset({"network", "layers", "last_layer", "_grad_sources", "_warming"})

__all__ = ["BookNetwork", "draw_normal", "he_draws", "numbered_sources", "conv_param_values"]


def draw_normal(seed: int | None) -> Any:
    """``randn(*shape)`` of NumPy's global state (the book's) for ``seed=None``, else of a RandomState seeded so.

    A seed ``s`` gives the weights that ``np.random.seed(s)`` followed by the
    book's constructor gives.
    """
    if seed is None:
        return np.random.randn
    return np.random.RandomState(seed).randn


def he_draws(network: Network, randn: Any) -> None:
    """Overwrite the weights of ``network``'s convolution and affine layers, in order, with the book's He draws.

    ``W = sqrt(2 / fan_in) * randn(*W.shape)``, ``fan_in`` the inputs of one output
    (``C * FH * FW`` for a convolution, the rows for an affine layer): the draws the
    book's DeepConvNet makes, in its order. Biases are set to 0.
    """
    from colnn.nn.base import WeightAndBias

    for layer in network.layers:
        if isinstance(layer, WeightAndBias):
            weight = layer.W
            fan_in = int(np.prod(weight.shape[1:])) if weight.ndim == 4 else weight.shape[0]
            weight[...] = np.sqrt(2.0 / fan_in) * randn(*weight.shape)
            layer.b[...] = 0


def numbered_sources(layers: Sequence[Layer]) -> dict[str, tuple[Layer, str]]:
    """``W1``, ``b1``, ``W2``, ... for the layers with weights, in order, as the book numbers them."""
    weighted = [layer for layer in layers if getattr(layer, "W", None) is not None]
    sources: dict[str, tuple[Layer, str]] = {}
    for number, layer in enumerate(weighted, start=1):
        sources[f"W{number}"], sources[f"b{number}"] = (layer, "dW"), (layer, "db")
    return sources


def _infer(layer: Any, x: Any) -> Any:
    """``layer.infer(x)``; for colnn's own ``Affine`` and ``Relu``, the book's lean arithmetic (the same bits).

    A numerical gradient evaluates the last layers thousands of times on one or
    two samples, where colnn's per-call checks cost more than the products.
    """
    affine, relu = _lean_layer_types()
    if type(layer) is affine:
        out = lean_affine(x.reshape(x.shape[0], -1) if x.ndim > 2 else x, layer.W, layer.b)
        if out is not None:
            return out
    elif type(layer) is relu:
        lean = lean_relu(x)
        if lean is not None:
            return lean[0]
    return layer.infer(x)


@functools.cache
def _lean_layer_types() -> tuple[Any, Any]:
    """colnn's ``Affine`` and ``Relu`` (imported once, by the first numerical gradient)."""
    from colnn.nn import Affine, Relu

    return Affine, Relu


def conv_param_values(conv_param: Any, name: str) -> dict[str, Any]:
    """The four entries of one of the book's ``conv_param`` dicts; ValueError naming ``name`` if one is missing."""
    try:
        return {key: conv_param[key] for key in ("filter_num", "filter_size", "pad", "stride")}
    except (KeyError, TypeError, IndexError):
        from ..core.checks import describe

        raise ValueError(f"{name} must be a dict with 'filter_num', 'filter_size', 'pad' and 'stride', "
                         f"got {describe(conv_param)}") from None


class BookNetwork:
    """The book's network protocol: ``params``, ``layers``, ``last_layer``, ``predict``, ``loss``, ``gradient``.

    Subclasses build ``params`` and the layers, then call :meth:`_assemble`; or build ``params`` alone and
    leave in ``_layer_spec`` what their :meth:`_build_layers` needs to build layers on those very arrays, which
    it does (and assembles) when :attr:`network`, :attr:`layers` or the like is first asked for. Building a
    network and loading or plotting its parameters then loads none of colnn's layers, ops or kernels.
    """

    network: Network
    params: dict[str, np.ndarray]
    layers: Any
    last_layer: SoftmaxWithLoss
    # The mode the book's ``loss`` runs in (DeepConvNet's drops out).
    _loss_train_flg = False
    # Whether the loss is the network's inference-mode loss and nothing else (no weight decay, no random
    # draws, no running statistics updated), so that a numerical gradient may start at the perturbed layer.
    _loss_from_any_layer = False

    def __getattr__(self, name: str) -> Any:
        # Only called where ordinary lookup fails: an attribute that _assemble sets, of a network whose layers
        # wait for their first use.
        spec = self.__dict__.get("_layer_spec")
        if spec is None or name not in _ASSEMBLED:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        self._build_layers(spec)
        self.__dict__.pop("_layer_spec", None)  # (two threads may both have built: either network will do)
        return getattr(self, name)

    def _build_layers(self, spec: Any) -> None:
        """Build the layers on the arrays of :attr:`params` from ``spec`` (``_layer_spec``), then :meth:`_assemble`."""
        raise NotImplementedError

    def _assemble(self, network: Network, layer_names: Sequence[str],
                  grad_sources: dict[str, tuple[Layer, str]]) -> None:
        """Take ``network`` as this network's, its layers named ``layer_names`` in :attr:`layers`.

        ``grad_sources[key]`` is ``(layer, "dW")`` (or ``"db"``, ``"dgamma"``,
        ``"dbeta"``), in the book's order of the gradients: the layer attribute
        that holds ``key``'s gradient, whose name without its ``d`` holds the
        parameter. :attr:`params` maps every key to that very array; a network that built its layers on
        first use keeps its ``params`` dict (which an optimizer may hold), whose arrays the layers took.
        """
        self.network = network
        # Those on colnn's default path (a 2-d convolution or max pooling; others stop the walk) warm up as the
        # book's Convolution does.
        # id -> the path last picked for it; a layer whose strategy someone else set since keeps that one.
        self._warming: dict[int, str | None] = {id(layer): None for layer in network.layers
                                                 if getattr(layer, "strategy", "") is None}
        self.network.loss_layer = self.last_layer = SoftmaxWithLoss()
        self.layers = OrderedDict(zip(layer_names, network.layers))
        if "params" not in self.__dict__:
            self.params = {key: getattr(layer, grad_name[1:]) for key, (layer, grad_name) in grad_sources.items()}
        self._grad_sources = grad_sources

    def _warm_up(self, x: Any, start: int = 0) -> None:
        """Pick the path of each convolution and pooling in one pass of ``x`` into layer ``start`` on.

        The rule of :class:`colnn.book.layers.Convolution`
        (:func:`colnn.ops.strategy.warm_up_strategy`): a process's first small
        passes (``gradient_check.py``'s one 10x10 image) run colnn's NumPy reference
        rather than load the compiled kernels; larger ones, or any once Numba is
        loaded, run the kernels. One pass (forward and its backward) keeps one path.
        The walk stops at the first affine layer, at a layer on colnn's default
        path that is neither a 2-d convolution nor a max pooling, and at one whose
        ``strategy`` was set from outside (which it keeps).
        """
        if not self._warming or type(x) is not np.ndarray or x.ndim != 4:
            return
        from colnn.ops.strategy import warm_up_strategy

        shape = x.shape
        layer: Any  # a Conv2d or MaxPool2d where it is warming up
        for layer in self.network.layers[start:]:
            if id(layer) in self._warming:
                work = window_work(layer, shape)
                if work is None or layer.strategy != self._warming[id(layer)]:
                    break
                layer.strategy = self._warming[id(layer)] = warm_up_strategy(None, work[0])
                shape = work[1]
            elif getattr(layer, "W", None) is not None:
                break  # an affine layer: the windowed part of the network is over
            # ReLU, dropout: the shape goes through

    def predict(self, x: Any, train_flg: bool = False) -> np.ndarray:
        """Scores ``(N, output_size)`` before softmax; ``train_flg`` switches dropout and batch statistics on."""
        self._warm_up(x)
        return self.network.predict(x, train_flg)

    def loss(self, x: Any, t: Any) -> float:
        """The book's mean cross-entropy of the softmax of the scores, labels ``t`` ``(N,)``, ``(N, 1)`` or one-hot."""
        self._warm_up(x)
        return self.network.loss(x, t, self._loss_train_flg)

    def accuracy(self, x: Any, t: Any, batch_size: int = 100) -> float:
        """Fraction of the samples ``x`` whose highest score is their label ``t`` (labels or one-hot rows).

        Evaluates ``batch_size`` samples at a time, every sample included (the
        book's leaves out a last partial batch but divides by all of them).
        """
        self._warm_up(x)
        return self.network.accuracy(x, t, batch_size)

    def gradient(self, x: Any, t: Any) -> dict[str, np.ndarray]:
        """Gradients of the loss by backpropagation, keyed like :attr:`params`: one training-mode pass."""
        self._warm_up(x)
        self.network.loss_and_gradient(x, t)
        return {key: getattr(layer, name) for key, (layer, name) in self._grad_sources.items()}

    def _loss_for_numerical_gradient(self, x: Any, t: Any) -> float:
        return self.loss(x, t)

    def _numerical_gradient(self, x: Any, t: Any) -> dict[str, np.ndarray]:
        """Central differences of the loss for every parameter, keyed (and ordered) like :meth:`gradient`.

        Where the loss is the network's inference-mode loss alone (:attr:`_loss_from_any_layer`) and ``x`` a
        NumPy array, each perturbed loss starts at the layer whose parameter is perturbed, from that layer's
        input computed once: the layers before it compute exactly what they computed for the unperturbed
        parameters. The same sums in the same order, so the same gradients, bit for bit; SimpleConvNet's
        gradient check (1,820 parameters, 1,610 of them past the convolution) runs about 5 times sooner.
        """
        if not (self._loss_from_any_layer and type(x) is np.ndarray):
            def loss(_: np.ndarray) -> float:
                return self._loss_for_numerical_gradient(x, t)

            return {key: book_gradient.numerical_gradient(loss, self.params[key]) for key in self._grad_sources}
        self.loss(x, t)  # the checks of x and t, once
        layers = self.network.layers
        dtype = self.network.dtype
        entering = {0: x if x.dtype == dtype else x.astype(dtype)}  # layer index -> its input

        def input_of(index: int) -> Any:
            if index not in entering:
                entering[index] = layers[index - 1].infer(input_of(index - 1))
            return entering[index]

        grads = {}
        for key, (owner, _) in self._grad_sources.items():
            start = next(index for index, layer in enumerate(layers) if layer is owner)
            first_input = input_of(start)

            def loss_from_owner(_: np.ndarray, start: int = start, out: Any = first_input) -> float:
                self._warm_up(out, start)
                for layer in layers[start:]:
                    out = _infer(layer, out)
                return self.last_layer.forward(out, t)

            grads[key] = book_gradient.numerical_gradient(loss_from_owner, self.params[key])
        return grads

    # --- the book's save_params / load_params -------------------------------------------

    def save_params(self, file_name: str | os.PathLike[str] = "params.pkl") -> None:
        """Write the parameters: a pickled dict of arrays (the book's format) or, for ``.npz``, a colnn model file.

        A pickle is what the book's ``load_params`` reads; an ``.npz`` holds the
        architecture too and loads without pickle (``colnn evaluate`` reads it).
        Either is written beside ``file_name`` and then renamed onto it.
        """
        from pathlib import Path

        from ._pickle import save_pickle

        if Path(file_name).suffix == ".npz":
            self.network.save(file_name)
        else:
            save_pickle(file_name, dict(self.params))

    def load_params(self, file_name: str | os.PathLike[str] = "params.pkl") -> None:
        """Copy saved parameters into this network's arrays (which its layers and optimizers hold).

        Reads the book's pickles (``params.pkl``, ``deep_convnet_params.pkl``)
        with :func:`colnn.book.load_pickle`, which refuses anything but arrays and
        plain containers; an ``.npz`` may be a colnn model file written by
        :meth:`save_params` or ``numpy.savez(file, **params)``. Nothing is copied
        unless every parameter is there with its shape.

        Raises
        ------
        colnn.book.UnsafePickleError
            When a pickle holds anything else than arrays and containers (naming the file and what).
        ValueError
            When the file lacks a parameter, has one of another shape, or holds another architecture.
        colnn.nn.ModelFileError
            When an ``.npz`` is damaged or not an archive of arrays.
        FileNotFoundError, IsADirectoryError, PermissionError
            When the file cannot be opened.
        """
        from pathlib import Path

        from ._pickle import load_pickle

        path = Path(file_name)
        if path.suffix == ".npz":
            loaded = self._read_npz(path)
        else:
            loaded = load_pickle(path)
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: holds a {type(loaded).__name__}, not a dict of parameters")
        missing = [key for key in self.params if key not in loaded]
        if missing:
            raise ValueError(f"{path}: lacks the parameters {missing} of this {type(self).__name__}")
        for key, array in self.params.items():
            value = loaded[key]
            if not isinstance(value, np.ndarray) or value.shape != array.shape or value.dtype.kind not in "fiu":
                found = (f"array of dtype {value.dtype}, shape {value.shape}" if isinstance(value, np.ndarray)
                         else type(value).__name__)
                raise ValueError(f"{path}: parameter {key!r} is {found}; this {type(self).__name__} "
                                 f"needs shape {array.shape}")
        for key, array in self.params.items():
            np.copyto(array, loaded[key], casting="unsafe")

    def _read_npz(self, path: Path) -> dict[str, np.ndarray]:
        """The book-named arrays of an ``.npz``: a colnn model file (checked against this network) or plain arrays."""
        import zipfile

        from colnn.nn import ModelFileError, Network

        try:
            with np.load(path, allow_pickle=False) as archive:
                # A colnn model file holds its architecture as JSON beside the weights.
                plain = None if "architecture" in archive.files else {key: archive[key] for key in archive.files}
        except (ValueError, EOFError, zipfile.BadZipFile) as error:
            raise ModelFileError(f"{path}: not a readable .npz file ({error})") from None
        if plain is not None:
            return plain
        loaded = Network.load(path)
        if loaded.architecture()["layers"] != self.network.architecture()["layers"]:
            raise ValueError(f"{path}: holds another architecture than this {type(self).__name__}")
        ours = self.network.params
        by_array = {id(array): name for name, array in ours.items()}
        theirs = loaded.params
        return {key: theirs[by_array[id(array)]] for key, array in self.params.items() if id(array) in by_array}
