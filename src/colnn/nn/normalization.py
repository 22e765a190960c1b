"""Batch normalisation: the book's ``BatchNormalization`` and PyTorch's ``BatchNorm2d``.

Both normalise with the batch's mean and biased variance while training and
with running estimates in evaluation; they differ in what a "feature" is and in
how the estimates are kept:

* :class:`BatchNormalization` (the book, chapter 6.3; Ioffe & Szegedy, 2015)
  flattens ``(N, C, H, W)`` to ``(N, C*H*W)`` and normalises every element
  position on its own; its running estimates follow
  ``running = momentum * running + (1 - momentum) * batch`` with the biased variance.
* :class:`BatchNorm2d` (``torch.nn.BatchNorm2d``) normalises each channel over
  ``(N, H, W)``; ``running = (1 - momentum) * running + momentum * batch`` with
  the unbiased variance ``var * n / (n - 1)``.

Both share :func:`_normalize` and :func:`_normalize_backward`, the one copy of
the arithmetic, written on the Python Array API standard: NumPy 2's namespace
follows it, so NumPy input runs this same code (bit for bit the results of the
NumPy methods it replaced), and a layer whose arrays are CuPy's (or on a GPU)
computes in that library, on that device; PyTorch and JAX arrays in CPU memory
are computed on NumPy views of them (:mod:`colnn.nn.cpu_views`, faster than
their libraries' Array API namespaces), the results of their library.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..core.checks import check_array, check_flag, check_float_array, describe
from ..core.dtypes import as_numpy_dtype
from ..core.ieee import quiet_ieee
from ..core.namespace import foreign_namespace, is_dask_array, namespace_dtype, same_library
from ..ops.xp import copy_as, device_of, namespace_of
from .base import LAZY, Layer
from .cpu_views import backward_on_views, forward_on_views, infer_on_views

__all__ = ["BatchNormalization", "BatchNorm2d"]


@quiet_ieee
def _normalize(x: Any, axes: tuple[int, ...], eps: float) -> tuple[Any, Any, Any, Any]:
    """``(x_hat, inv_std, mean, var)`` of ``x`` over ``axes``; ``var`` is biased, the others broadcast.

    Written on the Array API (NumPy 2's namespace is one), so NumPy runs the same
    arithmetic as any other library; a Python ``eps`` takes ``x``'s dtype.
    """
    xp = namespace_of(x)
    mean = xp.mean(x, axis=axes, keepdims=True)
    centered = x - mean
    var = xp.mean(centered * centered, axis=axes, keepdims=True)
    inv_std = 1.0 / xp.sqrt(var + eps)
    return centered * inv_std, inv_std, mean, var


@quiet_ieee
def _normalize_backward(grad_x_hat: Any, x_hat: Any, inv_std: Any, axes: tuple[int, ...]) -> Any:
    """Gradient w.r.t. ``x`` of a loss whose gradient w.r.t. ``x_hat = (x - mean) * inv_std`` is ``grad_x_hat``.

    The batch statistics depend on every sample, hence the two mean terms
    (chain rule through the mean and the variance).
    """
    xp = namespace_of(grad_x_hat)
    mean_grad = xp.mean(grad_x_hat, axis=axes, keepdims=True)
    mean_grad_x_hat = xp.mean(grad_x_hat * x_hat, axis=axes, keepdims=True)
    return inv_std * (grad_x_hat - mean_grad - x_hat * mean_grad_x_hat)


def _check_fraction(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {describe(value)}")
    if not 0 <= float(value) <= 1:
        raise ValueError(f"{name} must be in [0, 1], got {describe(value)}")
    return float(value)


def _check_eps(eps: Any) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.integer, np.floating)):
        raise TypeError(f"eps must be a number, got {describe(eps)}")
    if not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a finite number > 0, got {describe(eps)}")
    return float(eps)


def _feature_vector(value: Any, name: str, size: int, like: Any) -> Any:
    """A copy of ``value`` ``(size,)`` of ``like``'s (``gamma``'s) library and device, in its dtype."""
    array = check_float_array(value, name, ndims=(1,), batch_ndims=(), array_api=True, like=like, like_name="gamma")
    if tuple(array.shape) != (size,):
        raise ValueError(f"{name} must have shape ({size},), got {tuple(array.shape)}")
    if isinstance(like, np.ndarray) and isinstance(array, np.ndarray):
        return np.array(array, dtype=like.dtype, copy=True)
    return copy_as(array, like.dtype)


class _BatchNormBase(Layer):
    """Shared state: ``params`` (scale and shift), ``buffers`` (running estimates), ``grads``.

    The four arrays live in one namespace and on one device, those of the arrays
    the layer was given (NumPy by default); ``forward`` computes in them and
    answers in them. An input of another library is a TypeError, as for
    :class:`~colnn.nn.layers.Affine`: PyTorch, too, refuses a module and an input
    on different devices rather than moving either behind the caller's back.
    """

    _scale_name: str
    _shift_name: str
    mode_dependent = True
    infers_statelessly = True
    eps: float
    running_mean: Any
    running_var: Any

    def _normalized(self, x: Any, train_flg: bool) -> tuple[Any, Any]:  # pragma: no cover - interface
        """``(out, state for backward)``; training updates the running estimates."""
        raise NotImplementedError

    @infer_on_views
    def infer(self, x: Any) -> Any:
        """The evaluation output (running estimates), keeping nothing; a Dask batch lazily, chunk by chunk."""
        if is_dask_array(x):
            from ..ops.dask import map_batches

            return map_batches(x, self.infer)
        return self._normalized(x, False)[0]

    @forward_on_views
    def forward(self, x: Any, train_flg: bool = True) -> np.ndarray:
        train_flg = check_flag(train_flg, "train_flg")
        if is_dask_array(x):
            if train_flg:
                self._refuse_lazy(x, "training normalises with the whole batch's statistics")
            self._keep(LAZY)
            return self.infer(x)
        out, state = self._normalized(x, train_flg)
        self._keep(state)
        return out

    @property
    def params(self) -> dict[str, np.ndarray]:
        return {self._scale_name: getattr(self, self._scale_name), self._shift_name: getattr(self, self._shift_name)}

    @property
    def buffers(self) -> dict[str, np.ndarray]:
        """The running estimates: saved with a network, not trained by optimizers."""
        return {"running_mean": self.running_mean, "running_var": self.running_var}

    def _check_input(self, x: Any, ndims: tuple[int, ...]) -> Any:
        """``x`` checked as a floating array of the parameters' library and device; TypeError/ValueError naming both."""
        # check_array detaches a PyTorch tensor (colnn's backward is its own): running estimates
        # that tracked autograd would chain every step's graph to the next, as torch's never do.
        return check_float_array(x, "x", ndims=ndims, batch_ndims=ndims, array_api=True,
                                 like=getattr(self, self._scale_name),
                                 like_name=f"{type(self).__name__}'s {self._scale_name}")

    def _check_dout(self, dout: Any, input_shape: tuple[int, ...], like: Any) -> Any:
        """``dout`` of the forward's shape, in the forward's library (a NumPy gradient moves there)."""
        dout = same_library(dout, "dout", like, "the forward's input", moves=True)
        if tuple(dout.shape) != input_shape:
            raise ValueError(f"dout must have the forward output's shape {input_shape}, got {tuple(dout.shape)}")
        return dout

    def _scale_and_shift(self, x_hat: Any, shape: tuple[int, ...]) -> Any:
        xp = namespace_of(x_hat)
        scale = xp.astype(xp.reshape(getattr(self, self._scale_name), shape), x_hat.dtype, copy=False)
        shift = xp.astype(xp.reshape(getattr(self, self._shift_name), shape), x_hat.dtype, copy=False)
        return x_hat * scale + shift

    def _backward_through(self, dout: Any, axes: tuple[int, ...], shape: tuple[int, ...]) -> tuple[Any, Any, Any]:
        """``(dx, d_scale, d_shift)`` for ``dout`` of the layout the forward normalised in."""
        x_hat, inv_std, _ = self._saved()
        xp = namespace_of(dout)
        scale = getattr(self, self._scale_name)
        d_shift = xp.astype(xp.sum(dout, axis=axes), scale.dtype, copy=False)
        d_scale = xp.astype(xp.sum(dout * x_hat, axis=axes), scale.dtype, copy=False)
        grad_x_hat = dout * xp.astype(xp.reshape(scale, shape), dout.dtype, copy=False)
        if inv_std is None:  # evaluation: fixed statistics, an affine map per feature
            running_inv_std = 1.0 / xp.sqrt(xp.reshape(self.running_var, shape) + self.eps)
            return xp.astype(grad_x_hat * running_inv_std, dout.dtype, copy=False), d_scale, d_shift
        return _normalize_backward(grad_x_hat, x_hat, inv_std, axes), d_scale, d_shift


class BatchNormalization(_BatchNormBase):
    """The book's ``BatchNormalization(gamma, beta, momentum=0.9, running_mean=None, running_var=None)``.

    Parameters
    ----------
    gamma, beta : ``(D,)`` scale and shift, copied; ``D`` is the number of
        features per sample (``C*H*W`` for images)
    momentum : weight of the old running estimate, in [0, 1]
    running_mean, running_var : ``(D,)`` initial estimates (copied); None: zeros, as in the book
    eps : added to the variance under the square root (the book's ``10e-7``)

    ``forward(x, train_flg=True)``: ``(N, D)`` or ``(N, C, H, W)`` -> the same shape
    and dtype; training normalises with the batch's mean and biased variance and
    updates the running estimates, evaluation uses them. ``backward(dout)``
    returns ``dx`` and sets ``dgamma``, ``dbeta`` (also ``grads``).

    Any array library: ``gamma`` of PyTorch, JAX, CuPy, ... keeps the four arrays
    (``beta`` and the estimates move to ``gamma``'s library and device) and the
    gradients in that library, and ``forward``/``backward`` compute there on the
    Array API (on NumPy views for PyTorch and JAX arrays in CPU memory). An
    ``x`` of another library than ``gamma``'s is a TypeError that names both (a
    NumPy ``gamma`` takes NumPy ``x``), as for ``Affine``.

    Examples
    --------
    >>> bn = BatchNormalization(np.ones(2), np.zeros(2))
    >>> bn.forward(np.array([[1.0, 10.0], [3.0, 30.0]])).round(3)
    array([[-1., -1.],
           [ 1.,  1.]])
    >>> bn.running_mean
    array([0.2, 2. ])
    """

    _scale_name, _shift_name = "gamma", "beta"

    def __init__(self, gamma: Any, beta: Any, momentum: float = 0.9, running_mean: Any = None,
                 running_var: Any = None, *, eps: float = 1e-6) -> None:
        gamma_array = check_float_array(gamma, "gamma", ndims=(1,), batch_ndims=(), array_api=True)
        size = gamma_array.shape[0]
        self.gamma = np.array(gamma_array, copy=True) if isinstance(gamma_array, np.ndarray) else copy_as(gamma_array)
        self.beta = _feature_vector(beta, "beta", size, self.gamma)
        self.momentum = _check_fraction(momentum, "momentum")
        self.eps = _check_eps(eps)
        zeros = namespace_of(self.gamma).zeros((size,), dtype=self.gamma.dtype,
                                                      device=device_of(self.gamma))
        self.running_mean = (zeros if running_mean is None
                             else _feature_vector(running_mean, "running_mean", size, self.gamma))
        self.running_var = (copy_as(zeros) if running_var is None
                            else _feature_vector(running_var, "running_var", size, self.gamma))
        self.dgamma: np.ndarray | None = None
        self.dbeta: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"BatchNormalization(D={self.gamma.shape[0]}, momentum={self.momentum}, eps={self.eps})"

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return {} if self.dgamma is None or self.dbeta is None else {"gamma": self.dgamma, "beta": self.dbeta}

    def _normalized(self, x: Any, train_flg: bool) -> tuple[Any, Any]:
        """``(out, state for backward)``; training updates the running estimates."""
        x = self._check_input(x, (2, 4))
        xp = namespace_of(x)
        shape = tuple(x.shape)
        flat = xp.reshape(x, (shape[0], math.prod(shape[1:])))
        if flat.shape[1] != self.gamma.shape[0]:
            raise ValueError(f"x has {flat.shape[1]} features per sample but gamma has {self.gamma.shape[0]} "
                             f"(x shape {shape})")
        if train_flg and flat.shape[0] == 0:
            # PyTorch: an empty batch leaves the running estimates as they were and gives an empty output
            x_hat, inv_std = flat, None
        elif train_flg:
            x_hat, inv_std, mean, var = _normalize(flat, (0,), self.eps)
            keep, dtype = self.momentum, self.gamma.dtype
            self.running_mean = xp.astype(keep * self.running_mean + (1 - keep) * xp.reshape(mean, (-1,)), dtype)
            self.running_var = xp.astype(keep * self.running_var + (1 - keep) * xp.reshape(var, (-1,)), dtype)
        else:
            std = xp.astype(xp.sqrt(self.running_var + self.eps), x.dtype, copy=False)
            x_hat, inv_std = (flat - xp.astype(self.running_mean, x.dtype, copy=False)) / std, None
        return xp.reshape(self._scale_and_shift(x_hat, (1, -1)), shape), (x_hat, inv_std, shape)

    @backward_on_views
    def backward(self, dout: Any) -> np.ndarray:
        x_hat, _, input_shape = self._saved()
        dout = self._check_dout(dout, input_shape, x_hat)
        xp = namespace_of(dout)
        dx, dgamma, dbeta = self._backward_through(xp.reshape(dout, tuple(x_hat.shape)), (0,), (1, -1))
        self._check_thread()  # another thread's forward during this backward: its state, not ours
        self.dgamma, self.dbeta = dgamma, dbeta
        return xp.reshape(dx, input_shape)


class BatchNorm2d(_BatchNormBase):
    """Per-channel batch normalisation of ``(N, C, H, W)``, as ``torch.nn.BatchNorm2d`` (affine, tracking).

    Parameters
    ----------
    num_features : ``C``
    eps : added to the variance under the square root
    momentum : weight of the new batch statistic in the running estimates, in [0, 1]
    dtype : floating dtype of ``weight`` (ones), ``bias`` (zeros), ``running_mean``
        (zeros) and ``running_var`` (ones): NumPy's, or the same type of ``like``'s library
    like : None (NumPy arrays), or an array of the library and device the four arrays
        are created in (NumPy's ``like=``, PyTorch's ``device=``): ``like=x`` for
        a PyTorch/JAX/CuPy ``x`` keeps them, the gradients and the computation there;
        its dtype is not used (``dtype`` sets theirs, as with NumPy's ``like=``)

    ``forward(x, train_flg=True)``: ``(N, C, H, W)`` -> the same shape and dtype.
    Training normalises each channel with the mean and the biased variance over
    ``(N, H, W)`` and folds the unbiased variance into ``running_var``; evaluation
    (``train_flg=False``, PyTorch's ``eval()``) uses the running estimates.
    ``backward(dout)`` returns ``dx`` and sets ``grads["weight"]``, ``grads["bias"]``.

    Raises
    ------
    ValueError
        When training on a batch with one value per channel (``N*H*W == 1``),
        whose variance is undefined -- as PyTorch does. An empty batch
        (``N = 0``) gives an empty output and leaves the running estimates as
        they were, as PyTorch's does; its backward gives zero gradients.
    TypeError
        When ``like`` is not an array (a list, a scalar), or ``dtype`` not floating.
    TypeError
        When ``x`` is of another library than the layer's arrays (a NumPy layer
        given a PyTorch tensor: create it with ``like=x``), as ``Affine``.
    """

    _scale_name, _shift_name = "weight", "bias"

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, *,
                 dtype: Any = np.float32, like: Any = None) -> None:
        if isinstance(num_features, bool) or not isinstance(num_features, (int, np.integer)) or num_features < 1:
            raise ValueError(f"num_features must be a positive int, got {describe(num_features)}")
        dtype = as_numpy_dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"dtype must be a floating dtype, got {dtype}")
        self.num_features = int(num_features)
        self.eps = _check_eps(eps)
        self.momentum = _check_fraction(momentum, "momentum")
        if like is not None and not (isinstance(like, np.ndarray) or is_dask_array(like)
                                     or foreign_namespace(like) is not None):
            # NumPy's like= takes arrays only: a list would silently mean NumPy.
            raise TypeError(f"like must be an array whose library and device the parameters are created in "
                            f"(NumPy, PyTorch, JAX, CuPy), got {describe(like)}")
        if like is None or isinstance(like, np.ndarray):
            self.weight = np.ones(num_features, dtype)
            self.bias = np.zeros(num_features, dtype)
            self.running_mean = np.zeros(num_features, dtype)
            self.running_var = np.ones(num_features, dtype)
        else:
            like = check_array(like, "like", ndims=None, array_api=True)
            xp, device = namespace_of(like), device_of(like)
            xp_dtype = namespace_dtype(xp, dtype)
            self.weight = xp.ones((self.num_features,), dtype=xp_dtype, device=device)
            self.bias = xp.zeros((self.num_features,), dtype=xp_dtype, device=device)
            self.running_mean = xp.zeros((self.num_features,), dtype=xp_dtype, device=device)
            self.running_var = xp.ones((self.num_features,), dtype=xp_dtype, device=device)
        self.grad_weight: np.ndarray | None = None
        self.grad_bias: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"BatchNorm2d({self.num_features}, eps={self.eps}, momentum={self.momentum})"

    @property
    def grads(self) -> dict[str, np.ndarray]:
        if self.grad_weight is None or self.grad_bias is None:
            return {}
        return {"weight": self.grad_weight, "bias": self.grad_bias}

    def _normalized(self, x: Any, train_flg: bool) -> tuple[Any, Any]:
        """``(out, state for backward)``; training updates the running estimates."""
        x = self._check_input(x, (4,))
        xp = namespace_of(x)
        if x.shape[1] != self.num_features:
            raise ValueError(f"x must have {self.num_features} channels, got shape {tuple(x.shape)}")
        axes, shape = (0, 2, 3), (1, -1, 1, 1)
        count = x.shape[0] * x.shape[2] * x.shape[3]
        if train_flg and count == 0:
            # PyTorch: an empty batch leaves the running estimates as they were and gives an empty output
            x_hat, inv_std = x, None
        elif train_flg:
            if count == 1:
                raise ValueError(
                    f"x must hold more than one value per channel when training, got shape {tuple(x.shape)}")
            x_hat, inv_std, mean, var = _normalize(x, axes, self.eps)
            new, dtype = self.momentum, self.weight.dtype
            unbiased = xp.reshape(var, (-1,)) * (count / (count - 1))
            self.running_mean = xp.astype((1 - new) * self.running_mean + new * xp.reshape(mean, (-1,)), dtype)
            self.running_var = xp.astype((1 - new) * self.running_var + new * unbiased, dtype)
        else:
            mean = xp.astype(xp.reshape(self.running_mean, shape), x.dtype, copy=False)
            std = xp.astype(xp.sqrt(xp.reshape(self.running_var, shape) + self.eps), x.dtype, copy=False)
            x_hat, inv_std = (x - mean) / std, None
        return self._scale_and_shift(x_hat, shape), (x_hat, inv_std, tuple(x.shape))

    @backward_on_views
    def backward(self, dout: Any) -> np.ndarray:
        x_hat, _, input_shape = self._saved()
        dout = self._check_dout(dout, input_shape, x_hat)
        dx, grad_weight, grad_bias = self._backward_through(dout, (0, 2, 3), (1, -1, 1, 1))
        self._check_thread()  # another thread's forward during this backward: its state, not ours
        self.grad_weight, self.grad_bias = grad_weight, grad_bias
        return dx
