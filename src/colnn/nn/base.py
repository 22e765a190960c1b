"""The layer protocol: the book's ``forward``/``backward`` pair, and what a :class:`~colnn.nn.network.Network`
asks of a layer.

Every layer has ``forward`` (also ``__call__``), which keeps on the layer what
``backward`` will need (the book's design), ``backward`` (the gradient w.r.t.
the input; parameter gradients become ``dW``, ``db``...) and the dicts
``params`` and ``grads``. Beyond the book, a layer answers a network's questions
itself, so that no one reaches into its private state:

- :meth:`Layer.infer`: the output without keeping anything for backward, so
  that several threads may predict with one layer at once;
- :meth:`Layer.forward_relu`: ``relu(forward(x))`` in one pass where the layer
  can fuse a following ``Relu`` (convolutions, ``Affine``), else None;
- :attr:`Layer.skips_input_grad`: whether ``backward(dout, input_grad=False)``
  computes the parameter gradients alone (a network's first layer);
- :attr:`Layer.fresh_gradient`: whether ``backward`` returns a new array that
  nothing else references (which a network may then overwrite in place).

Threads: a layer's forward state belongs to the thread that ran the forward.
A ``backward`` in another thread (or after another thread's forward came in
between) raises RuntimeError naming the layer, instead of returning a gradient
of someone else's input: use one layer (one network) per thread, e.g.
``copy.deepcopy(net)``. A Dask array through ``forward`` runs the layer's
``infer`` lazily over chunks of samples, and ``backward`` after it raises.

Other libraries' arrays: a layer's ``forward``, ``infer`` and ``backward`` are
wrapped by :mod:`.cpu_views`, which runs PyTorch and JAX arrays in CPU memory
on NumPy views of them (the compiled kernels) and hands the results back in
their library; the methods themselves are written for NumPy and the Array API.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..core.checks import check_grad_shape, from_batched, stand_in
from ..core.namespace import is_dask_array, library_token
from ..core.spatial import check_spatial_input
from .cpu_views import backward_on_views, forward_on_views, infer_on_views

__all__ = ["Layer", "WindowLayer", "Saved", "WeightAndBias", "LAZY"]


class _Lazy:
    """The state a forward on a Dask array leaves: nothing a backward could use."""

    def __repr__(self) -> str:
        return "LAZY"


#: What :meth:`Layer.forward` keeps after a forward on a Dask array.
LAZY = _Lazy()


class Layer:
    """Base class: the forward/backward protocol, parameter bookkeeping and forward-state ownership.

    Subclasses keep their forward's state with :meth:`_keep` (or call :meth:`_claim`
    beside state of their own) and read it in ``backward`` with :meth:`_saved`
    (or :meth:`_check_thread`).
    """

    #: ``backward`` returns a new array that nothing else references.
    fresh_gradient: bool = False
    #: ``backward(dout, input_grad=False)`` computes only the parameter gradients and returns None.
    skips_input_grad: bool = False
    #: ``forward`` takes ``train_flg`` (dropout, batch normalisation).
    mode_dependent: bool = False
    #: :meth:`infer` keeps no state (False: it runs ``forward``, and a network serializes it).
    infers_statelessly: bool = False

    _cache: Any = None
    _owner: int | None = None  # the thread whose forward left the state
    # The forward's library_token where it ran on NumPy views of another library's arrays (.cpu_views), else None.
    _views_like: Any = None

    def forward(self, x: Any) -> Any:  # pragma: no cover - interface
        """The output, in the input's library (a NumPy, PyTorch, JAX... array; a Dask array lazily)."""
        raise NotImplementedError

    def backward(self, dout: Any) -> Any:  # pragma: no cover - interface
        """The gradient w.r.t. the input, in its library (None for ``input_grad=False``: :attr:`skips_input_grad`)."""
        raise NotImplementedError

    def __call__(self, x: Any) -> np.ndarray:
        return self.forward(x)

    def infer(self, x: Any) -> Any:
        """The output of :meth:`forward` (evaluation mode), keeping nothing for backward.

        Safe from several threads at once where :attr:`infers_statelessly`; this
        default, for layers that do not say so, runs ``forward``.
        """
        return forward_in_mode(self, x, False)

    def forward_relu(self, x: Any, relu: Layer, *, keep: bool = True, workspace: Any = None) -> Any:
        """``relu.forward(self.forward(x))`` in one pass, leaving both layers ready for backward; None if not fused.

        A layer that can apply ReLU as it stores its output overrides this
        (bit for bit the two layers' outputs, masks and gradients); the default
        fuses nothing. ``keep=False``: inference (``relu.infer(self.infer(x))``:
        neither layer keeps anything).
        ``workspace``: a :class:`~colnn.nn.workspace.Workspace` whose buffers the
        output may be written into (for a caller that hands it on to its next layers only).
        """
        return None

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Learnable parameters by name; optimizers update these arrays in place."""
        return {}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """Gradients of the loss w.r.t. :attr:`params`, set by :meth:`backward`."""
        return {}

    # --- the forward state and its thread --------------------------------------------

    def _claim(self) -> None:
        """Mark the state just kept as the calling thread's."""
        self._owner = threading.get_ident()

    def _keep(self, state: Any) -> None:
        """Keep ``state`` for backward, as the calling thread's."""
        self._cache = state
        self._claim()

    def _check_thread(self) -> None:
        """RuntimeError unless the kept state is the calling thread's (or there is none yet)."""
        if self._owner is not None and self._owner != threading.get_ident():
            raise RuntimeError(
                f"{type(self).__name__}.backward was called in another thread than the forward whose state the "
                f"layer holds (another thread's forward came in between, or the forward ran elsewhere): use one "
                f"layer or network per thread (copy.deepcopy(net)); Network.gradient and Network.loss of one "
                f"network wait for each other")

    def _saved(self) -> Any:
        """The state the calling thread's forward kept; RuntimeError if there is none or it is another's."""
        state = self._cache
        if state is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        self._check_thread()
        if state is LAZY:
            raise RuntimeError(f"{type(self).__name__}.backward after a forward on a Dask array, which keeps no "
                               f"state: compute the input first (x.compute()) to train on it")
        return state

    def _lazy(self, x: Any, batched: bool = True) -> Any:
        """``forward`` of a Dask ``x``: :meth:`infer` over chunks of samples, lazily; backward will refuse.

        ``batched=False``: ``x`` is one sample, run as one chunk.
        """
        from ..ops.dask import map_batches

        self._keep(LAZY)
        if not batched:
            return map_batches(x[np.newaxis], self.infer)[0]
        return map_batches(x, self.infer)

    def _refuse_lazy(self, x: Any, why: str) -> None:
        """TypeError naming the layer if ``x`` is a Dask array it cannot map over samples (``why``)."""
        if is_dask_array(x):
            raise TypeError(f"{type(self).__name__}.forward takes no Dask array here ({why}): compute it first "
                            f"(x.compute()) if it fits in memory")


def forward_in_mode(layer: Layer, x: Any, train_flg: bool) -> Any:
    """``layer.forward(x, train_flg)`` for a :attr:`~Layer.mode_dependent` layer (dropout, batch normalisation),
    else ``layer.forward(x)``."""
    # The flag says which of the two signatures the layer's forward has.
    forward: Callable[..., Any] = layer.forward
    return forward(x, train_flg) if layer.mode_dependent else forward(x)


class WeightAndBias:
    """Mixin for layers with the book's parameters ``W``, ``b`` and gradients ``dW``, ``db``."""

    W: np.ndarray
    b: np.ndarray
    dW: np.ndarray | None = None
    db: np.ndarray | None = None

    @property
    def params(self) -> dict[str, np.ndarray]:
        return {"W": self.W, "b": self.b}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return {} if self.dW is None or self.db is None else {"W": self.dW, "b": self.db}


@dataclass(frozen=True)
class Saved:
    """What a windowed layer's forward keeps for backward."""

    input_shape: tuple[int, ...]  # batched (N, C, *in)
    output_shape: tuple[int, ...]  # batched (N, C', *out)
    dtype: np.dtype  # the output's: the gradient takes it if floating, else dout's (check_grad_shape)
    unbatched: bool
    window: Any
    state: Any  # the op's own: window offsets, divisor, indices or what the convolution keeps
    like: Any = None  # the input's library_token: dout must be of its library and device, or NumPy


class WindowLayer(Layer):
    """A layer over ``ndim`` spatial axes: ``(N, C, *spatial)`` or one unbatched ``(C, *spatial)``.

    The base of the pooling and convolution layers (PyTorch's ``_MaxPoolNd``,
    ``_ConvNd``): a subclass sets ``ndim`` (and ``floating`` for floating-point
    ops), holds its checked arguments object, and implements on batched arrays
    ``_forward(x) -> (out, window, state)``, ``_backward(grad, saved) -> dx`` and,
    where inference is cheaper, ``_infer(x) -> out``. ``config()`` returns the
    constructor's hyper-parameters (which a :class:`~colnn.nn.network.Network`
    saves) and ``from_config`` rebuilds the layer from them and its ``params``.
    """

    ndim: int = 2
    floating: bool = True
    fresh_gradient = True
    infers_statelessly = True
    _config_names: tuple[str, ...] = ()
    # Hyper-parameters added after files were first written: their value when a file lacks them.
    _config_defaults: ClassVar[dict[str, Any]] = {}

    def _check(self, x: Any) -> tuple[Any, bool]:
        return check_spatial_input(x, "x", self.ndim, floating=self.floating, like=self._weights(),
                                   like_name="W")

    def _weights(self) -> Any:
        """The array whose library and device the input must share (a convolution's ``W``); None: any."""
        return None

    @forward_on_views
    def forward(self, x: Any) -> np.ndarray:
        if is_dask_array(x):
            _, unbatched = self._check(stand_in(x))
            return self._lazy(x, batched=not unbatched)
        batched, unbatched = self._check(x)
        out, window, state = self._forward(batched)
        self._keep(Saved(tuple(batched.shape), tuple(out.shape), out.dtype, unbatched, window, state,
                         library_token(batched)))
        return from_batched(out, unbatched)

    @infer_on_views
    def infer(self, x: Any) -> Any:
        if is_dask_array(x):
            _, unbatched = self._check(stand_in(x))
            from ..ops.dask import map_batches

            return map_batches(x[np.newaxis], self.infer)[0] if unbatched else map_batches(x, self.infer)
        batched, unbatched = self._check(x)
        return from_batched(self._infer(batched), unbatched)

    def _forward(self, x: Any) -> tuple[Any, Any, Any]:  # pragma: no cover - interface
        """``(out, window, state)`` of a batched ``x``: the subclass's op."""
        raise NotImplementedError

    def _backward(self, grad: Any, saved: Saved) -> Any:  # pragma: no cover - interface
        """The batched input gradient for the batched ``grad`` and what :meth:`_forward` kept."""
        raise NotImplementedError

    def _infer(self, x: Any) -> Any:
        return self._forward(x)[0]

    @backward_on_views
    def backward(self, dout: Any) -> np.ndarray:
        grad, saved = self._batched_grad(dout)
        grad_input = self._backward(grad, saved)
        self._check_thread()  # another thread's forward during this backward: its state, not ours
        return from_batched(grad_input, saved.unbatched)

    def _batched_grad(self, dout: Any) -> tuple[Any, Saved]:
        """``dout`` checked against the forward's output and batched, with what the forward saved."""
        saved = self._saved()
        out_shape = saved.output_shape[1:] if saved.unbatched else saved.output_shape
        grad = check_grad_shape(dout, out_shape, saved.dtype, saved.like)
        return (grad[None, ...] if saved.unbatched else grad), saved

    # --- hyper-parameters ---------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """Hyper-parameters as JSON-ready values (tuples as lists)."""
        return {name: list(value) if isinstance(value, tuple) else value
                for name in self._config_names for value in (getattr(self, name),)}

    @classmethod
    def from_config(cls, config: dict[str, Any], params: dict[str, np.ndarray]) -> WindowLayer:
        arguments = {name: config[name] if name in config or name not in cls._config_defaults
                     else cls._config_defaults[name] for name in cls._config_names}
        # Each subclass's constructor takes its own hyper-parameters, after W and b where it has weights.
        construct: Callable[..., WindowLayer] = cls
        if "W" in params:
            return construct(params["W"], params["b"], **arguments)
        return construct(**arguments)

    def __repr__(self) -> str:
        arguments = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._config_names)
        return f"{type(self).__name__}({arguments})"
