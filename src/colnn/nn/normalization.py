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
the arithmetic.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.checks import check_float_array
from .layers import Layer

__all__ = ["BatchNormalization", "BatchNorm2d"]


def _normalize(x: np.ndarray, axes: tuple[int, ...], eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_hat, inv_std, mean, var)`` of ``x`` over ``axes``; ``var`` is biased, the others broadcast."""
    mean = x.mean(axis=axes, keepdims=True)
    centered = x - mean
    var = (centered * centered).mean(axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + x.dtype.type(eps))
    return centered * inv_std, inv_std, mean, var


def _normalize_backward(grad_x_hat: np.ndarray, x_hat: np.ndarray, inv_std: np.ndarray,
                        axes: tuple[int, ...]) -> np.ndarray:
    """Gradient w.r.t. ``x`` of a loss whose gradient w.r.t. ``x_hat = (x - mean) * inv_std`` is ``grad_x_hat``.

    The batch statistics depend on every sample, hence the two mean terms
    (chain rule through the mean and the variance).
    """
    mean_grad = grad_x_hat.mean(axis=axes, keepdims=True)
    mean_grad_x_hat = (grad_x_hat * x_hat).mean(axis=axes, keepdims=True)
    return inv_std * (grad_x_hat - mean_grad - x_hat * mean_grad_x_hat)


def _check_fraction(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not 0 <= float(value) <= 1:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return float(value)


def _check_eps(eps: Any) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.integer, np.floating)):
        raise TypeError(f"eps must be a number, got {eps!r}")
    if not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
    return float(eps)


def _feature_vector(value: Any, name: str, size: int, dtype: np.dtype) -> np.ndarray:
    array = check_float_array(value, name, ndims=(1,))
    if array.shape != (size,):
        raise ValueError(f"{name} must have shape ({size},), got {array.shape}")
    return np.array(array, dtype=dtype, copy=True)


class _BatchNormBase(Layer):
    """Shared state: ``params`` (scale and shift), ``buffers`` (running estimates), ``grads``."""

    _scale_name: str
    _shift_name: str
    _cache: tuple[np.ndarray, np.ndarray, tuple[int, ...]] | None = None

    @property
    def params(self) -> dict[str, np.ndarray]:
        return {self._scale_name: getattr(self, self._scale_name), self._shift_name: getattr(self, self._shift_name)}

    @property
    def buffers(self) -> dict[str, np.ndarray]:
        """The running estimates: saved with a network, not trained by optimizers."""
        return {"running_mean": self.running_mean, "running_var": self.running_var}

    def _scale_and_shift(self, x_hat: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        scale = getattr(self, self._scale_name).reshape(shape).astype(x_hat.dtype, copy=False)
        shift = getattr(self, self._shift_name).reshape(shape).astype(x_hat.dtype, copy=False)
        return x_hat * scale + shift

    def _backward_through(self, dout: np.ndarray, axes: tuple[int, ...], shape: tuple[int, ...]) -> tuple[
            np.ndarray, np.ndarray, np.ndarray]:
        """``(dx, d_scale, d_shift)`` for ``dout`` of the layout the forward normalised in."""
        x_hat, inv_std, _ = self._saved()
        scale = getattr(self, self._scale_name)
        d_shift = dout.sum(axis=axes).astype(scale.dtype, copy=False)
        d_scale = (dout * x_hat).sum(axis=axes).astype(scale.dtype, copy=False)
        grad_x_hat = dout * scale.reshape(shape).astype(dout.dtype, copy=False)
        if inv_std is None:  # evaluation: fixed statistics, an affine map per feature
            running_inv_std = 1.0 / np.sqrt(self.running_var.reshape(shape) + self.eps)
            return (grad_x_hat * running_inv_std).astype(dout.dtype, copy=False), d_scale, d_shift
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
        gamma_array = check_float_array(gamma, "gamma", ndims=(1,))
        size, dtype = gamma_array.shape[0], gamma_array.dtype
        self.gamma = np.array(gamma_array, copy=True)
        self.beta = _feature_vector(beta, "beta", size, dtype)
        self.momentum = _check_fraction(momentum, "momentum")
        self.eps = _check_eps(eps)
        self.running_mean = (np.zeros(size, dtype) if running_mean is None
                             else _feature_vector(running_mean, "running_mean", size, dtype))
        self.running_var = (np.zeros(size, dtype) if running_var is None
                            else _feature_vector(running_var, "running_var", size, dtype))
        self.dgamma: np.ndarray | None = None
        self.dbeta: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"BatchNormalization(D={self.gamma.shape[0]}, momentum={self.momentum}, eps={self.eps})"

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return {} if self.dgamma is None else {"gamma": self.dgamma, "beta": self.dbeta}

    def forward(self, x: Any, train_flg: bool = True) -> np.ndarray:
        x = check_float_array(x, "x", ndims=(2, 4))
        flat = x.reshape(x.shape[0], -1)
        if flat.shape[1] != self.gamma.shape[0]:
            raise ValueError(f"x has {flat.shape[1]} features per sample but gamma has {self.gamma.shape[0]} "
                             f"(x shape {x.shape})")
        if train_flg:
            if flat.shape[0] == 0:
                raise ValueError(f"x must hold at least one sample when training, got shape {x.shape}")
            x_hat, inv_std, mean, var = _normalize(flat, (0,), self.eps)
            keep = self.momentum
            self.running_mean = (keep * self.running_mean + (1 - keep) * mean[0]).astype(self.gamma.dtype)
            self.running_var = (keep * self.running_var + (1 - keep) * var[0]).astype(self.gamma.dtype)
        else:
            std = np.sqrt(self.running_var + self.eps).astype(x.dtype, copy=False)
            x_hat, inv_std = (flat - self.running_mean.astype(x.dtype, copy=False)) / std, None
        self._cache = (x_hat, inv_std, x.shape)
        return self._scale_and_shift(x_hat, (1, -1)).reshape(x.shape)

    def backward(self, dout: Any) -> np.ndarray:
        x_hat, _, input_shape = self._saved()
        dout = np.asarray(dout)
        if dout.shape != input_shape:
            raise ValueError(f"dout must have the forward output's shape {input_shape}, got {dout.shape}")
        dx, self.dgamma, self.dbeta = self._backward_through(dout.reshape(x_hat.shape), (0,), (1, -1))
        return dx.reshape(input_shape)


class BatchNorm2d(_BatchNormBase):
    """Per-channel batch normalisation of ``(N, C, H, W)``, as ``torch.nn.BatchNorm2d`` (affine, tracking).

    Parameters
    ----------
    num_features : ``C``
    eps : added to the variance under the square root
    momentum : weight of the new batch statistic in the running estimates, in [0, 1]
    dtype : floating dtype of ``weight`` (ones), ``bias`` (zeros), ``running_mean``
        (zeros) and ``running_var`` (ones)

    ``forward(x, train_flg=True)``: ``(N, C, H, W)`` -> the same shape and dtype.
    Training normalises each channel with the mean and the biased variance over
    ``(N, H, W)`` and folds the unbiased variance into ``running_var``; evaluation
    (``train_flg=False``, PyTorch's ``eval()``) uses the running estimates.
    ``backward(dout)`` returns ``dx`` and sets ``grads["weight"]``, ``grads["bias"]``.

    Raises
    ------
    ValueError
        When training on a batch with one value per channel (``N*H*W == 1``),
        whose variance is undefined -- as PyTorch does.
    """

    _scale_name, _shift_name = "weight", "bias"

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, *,
                 dtype: Any = np.float32) -> None:
        if isinstance(num_features, bool) or not isinstance(num_features, (int, np.integer)) or num_features < 1:
            raise ValueError(f"num_features must be a positive int, got {num_features!r}")
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"dtype must be a floating dtype, got {dtype}")
        self.num_features = int(num_features)
        self.eps = _check_eps(eps)
        self.momentum = _check_fraction(momentum, "momentum")
        self.weight = np.ones(num_features, dtype)
        self.bias = np.zeros(num_features, dtype)
        self.running_mean = np.zeros(num_features, dtype)
        self.running_var = np.ones(num_features, dtype)
        self.grad_weight: np.ndarray | None = None
        self.grad_bias: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"BatchNorm2d({self.num_features}, eps={self.eps}, momentum={self.momentum})"

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return {} if self.grad_weight is None else {"weight": self.grad_weight, "bias": self.grad_bias}

    def forward(self, x: Any, train_flg: bool = True) -> np.ndarray:
        x = check_float_array(x, "x", ndims=(4,))
        if x.shape[1] != self.num_features:
            raise ValueError(f"x must have {self.num_features} channels, got shape {x.shape}")
        axes, shape = (0, 2, 3), (1, -1, 1, 1)
        if train_flg:
            count = x.shape[0] * x.shape[2] * x.shape[3]
            if count < 2:
                raise ValueError(f"x must hold more than one value per channel when training, got shape {x.shape}")
            x_hat, inv_std, mean, var = _normalize(x, axes, self.eps)
            new = self.momentum
            unbiased = var.reshape(-1) * (count / (count - 1))
            self.running_mean = ((1 - new) * self.running_mean + new * mean.reshape(-1)).astype(self.weight.dtype)
            self.running_var = ((1 - new) * self.running_var + new * unbiased).astype(self.weight.dtype)
        else:
            mean = self.running_mean.reshape(shape).astype(x.dtype, copy=False)
            std = np.sqrt(self.running_var.reshape(shape) + self.eps).astype(x.dtype, copy=False)
            x_hat, inv_std = (x - mean) / std, None
        self._cache = (x_hat, inv_std, x.shape)
        return self._scale_and_shift(x_hat, shape)

    def backward(self, dout: Any) -> np.ndarray:
        _, _, input_shape = self._saved()
        dout = np.asarray(dout)
        if dout.shape != input_shape:
            raise ValueError(f"dout must have the forward output's shape {input_shape}, got {dout.shape}")
        dx, self.grad_weight, self.grad_bias = self._backward_through(dout, (0, 2, 3), (1, -1, 1, 1))
        return dx
