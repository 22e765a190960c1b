"""What the layers with parameters share: how they keep the arrays they are given, and when they fuse.

As the book's layers (and ``torch.nn.Parameter``) do, a layer shares its
parameters with whoever built it: an optimizer that updates the arrays of a
``params`` dict in place trains the layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ops.xp import copy_as
from .base import Layer

__all__ = ["scalar_bias", "shared_parameters", "fuses"]


def scalar_bias(b: Any, W: Any, axis: int = 0) -> Any:
    """A scalar bias (the book's ``b = 0``) as one value per output, ``W.shape[axis]`` of them; anything else as
    given."""
    if b is not None and np.ndim(b) == 0 and np.ndim(W) > axis:
        return [b] * int(np.shape(W)[axis])
    return b


def shared_parameters(weight: Any, bias: Any) -> tuple[Any, Any]:
    """The checked ``weight`` and ``bias`` a layer keeps: the caller's arrays themselves wherever they can be.

    Only a bias of another dtype than the weight's (or one given as a list or
    scalar) becomes a new array.
    """
    return weight, copy_as(bias, weight.dtype, copy=False)


def fuses(layer: Any, owner: type[Layer], relu: Any) -> bool:
    """Whether ``layer`` may fuse ``relu`` into its forward: ``relu`` is exactly a ``Relu``, and ``layer``'s
    class computes its forward as ``owner`` does (a subclass that overrides it may compute something else)."""
    from .activation import Relu

    return (type(relu) is Relu and type(layer).forward is owner.forward
            and getattr(type(layer), "_forward", None) is getattr(owner, "_forward", None))
