"""The book *Deep Learning from Scratch*'s packages on colnn: its scripts run with only their imports changed.

The rule: ``common.X`` -> ``colnn.book.X``, ``dataset.mnist`` ->
``colnn.book.mnist``, and the chapters' ``simple_convnet`` and
``deep_convnet`` -> ``colnn.book.simple_convnet``, ``colnn.book.deep_convnet``::

    from common.multi_layer_net import MultiLayerNet   ->  from colnn.book.multi_layer_net import MultiLayerNet
    from dataset.mnist import load_mnist               ->  from colnn.book.mnist import load_mnist
    from simple_convnet import SimpleConvNet           ->  from colnn.book.simple_convnet import SimpleConvNet

The modules mirror the book's, name for name, signature for signature:
:mod:`~colnn.book.functions`, :mod:`~colnn.book.gradient`,
:mod:`~colnn.book.layers`, :mod:`~colnn.book.multi_layer_net`,
:mod:`~colnn.book.multi_layer_net_extend`, :mod:`~colnn.book.optimizer`,
:mod:`~colnn.book.trainer`, :mod:`~colnn.book.util`, :mod:`~colnn.book.mnist`,
:mod:`~colnn.book.simple_convnet`, :mod:`~colnn.book.deep_convnet`. Where the
book defines a number (the ``1e-7`` of the cross-entropy, the optimizers' rules
and defaults, He's scales, the random draws from NumPy's global state) they
use the book's, so a script prints the book's numbers; the layers underneath
are colnn's, so it prints them sooner. Each module's docstring says where it
differs from the book (only where the book is wrong in a case its scripts never meet).

The book's ``.pkl`` files are read by :func:`load_pickle`, which refuses
anything but NumPy arrays of numeric dtypes and plain containers (a pickle
can otherwise run any code); ``save_params`` writes the book's pickle format.

The names below are here too, for short imports:
``from colnn.book import SimpleConvNet, DeepConvNet, Trainer, load_mnist, load_pickle``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.lazy import lazy_names

if TYPE_CHECKING:
    from ._pickle import UnsafePickleError, load_pickle, save_pickle
    from .deep_convnet import DeepConvNet
    from .mnist import MNIST_DIR_VARIABLE, load_mnist
    from .simple_convnet import SimpleConvNet
    from .trainer import Trainer

__all__ = ["SimpleConvNet", "DeepConvNet", "Trainer", "load_mnist", "MNIST_DIR_VARIABLE", "load_pickle",
           "save_pickle", "UnsafePickleError"]

# Imported on first use, so that ``import colnn.book.functions`` loads no network or data code.
_HOMES = {"SimpleConvNet": ".simple_convnet", "DeepConvNet": ".deep_convnet", "Trainer": ".trainer",
          "load_mnist": ".mnist", "MNIST_DIR_VARIABLE": ".mnist", "load_pickle": "._pickle", "save_pickle": "._pickle",
          "UnsafePickleError": "._pickle"}

# The book's modules, reachable as attributes after ``import colnn.book`` (``colnn.book.layers``), as
# ``colnn.nn`` is after ``import colnn``; each is imported on first access.
_SUBMODULES = ("functions", "gradient", "layers", "multi_layer_net", "multi_layer_net_extend", "optimizer", "trainer",
               "util", "mnist", "simple_convnet", "deep_convnet")

__getattr__, __dir__ = lazy_names(__name__, _HOMES, _SUBMODULES)
