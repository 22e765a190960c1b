"""Other libraries' CPU arrays run the compiled kernels through DLPack (issue 25, ``numpy_for_cpu_arrays``).

Every public op takes a PyTorch CPU tensor and a JAX CPU array: the oracle is
the same op on NumPy arrays of the same values (the kernels' own path, tested
against PyTorch elsewhere), so the foreign call must give the same values
exactly, as the caller's type, dtype and device. Then the promises of the
boundary: the input is viewed, not copied; a PyTorch result shares the memory
the kernels wrote; the caller's arrays are never written; errors name the
caller's types; what NumPy cannot view (bfloat16) or mixes libraries stays on
the Array API path.
"""

from __future__ import annotations

import numpy as np
import pytest

import colnn
from colnn.core.namespace import as_library_of
from colnn.ops import strategy as strategy_module

RNG = np.random.default_rng(25)


def _data(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


X1, X2, X3 = _data(2, 3, 9), _data(2, 3, 9, 8), _data(2, 3, 6, 6, 8)
W1, W2, W3 = _data(4, 3, 3), _data(4, 3, 3, 3), _data(4, 3, 3, 3, 3)
WT1, WT2, WT3 = _data(3, 4, 3), _data(3, 4, 3, 3), _data(3, 4, 3, 3, 3)
BIAS = _data(4)
SAMPLES = RNG.random((2, 3, 2)).astype(np.float32)
SAMPLES3 = RNG.random((2, 3, 3)).astype(np.float32)
COL = colnn.im2col(X2, 3, 3, 1, 1)
BLOCKS = colnn.unfold(X2, 3, padding=1)
POOLED = {ndim: colnn.max_pool2d(X2, 2, return_indices=True) if ndim == 2 else
          getattr(colnn, f"max_pool{ndim}d")(x, 2, return_indices=True) for ndim, x in ((1, X1), (2, X2), (3, X3))}

# Every public op: its name, a call on arrays, and the NumPy arrays it takes (all converted to the library).
OPS = {
    "max_pool1d": (lambda x: colnn.max_pool1d(x, 3, 2, 1, return_indices=True), (X1,)),
    "max_pool2d": (lambda x: colnn.max_pool2d(x, 3, 2, 1, return_indices=True), (X2,)),
    "max_pool3d": (lambda x: colnn.max_pool3d(x, 2, return_indices=True), (X3,)),
    "avg_pool1d": (lambda x: colnn.avg_pool1d(x, 3, 2, 1), (X1,)),
    "avg_pool2d": (lambda x: colnn.avg_pool2d(x, 3, 2, 1, count_include_pad=False), (X2,)),
    "avg_pool3d": (lambda x: colnn.avg_pool3d(x, 2), (X3,)),
    "lp_pool1d": (lambda x: colnn.lp_pool1d(x, 2.0, 3), (X1,)),
    "lp_pool2d": (lambda x: colnn.lp_pool2d(x, 3.0, 2), (X2,)),
    "lp_pool3d": (lambda x: colnn.lp_pool3d(x, 2.0, 2), (X3,)),
    "adaptive_avg_pool1d": (lambda x: colnn.adaptive_avg_pool1d(x, 4), (X1,)),
    "adaptive_avg_pool2d": (lambda x: colnn.adaptive_avg_pool2d(x, (3, 5)), (X2,)),
    "adaptive_avg_pool3d": (lambda x: colnn.adaptive_avg_pool3d(x, 3), (X3,)),
    "adaptive_max_pool1d": (lambda x: colnn.adaptive_max_pool1d(x, 4, return_indices=True), (X1,)),
    "adaptive_max_pool2d": (lambda x: colnn.adaptive_max_pool2d(x, (3, 5), return_indices=True), (X2,)),
    "adaptive_max_pool3d": (lambda x: colnn.adaptive_max_pool3d(x, 3, return_indices=True), (X3,)),
    "fractional_max_pool2d": (lambda x, s: colnn.fractional_max_pool2d(x, 2, output_size=4, return_indices=True,
                                                                       random_samples=s), (X2, SAMPLES)),
    "fractional_max_pool3d": (lambda x, s: colnn.fractional_max_pool3d(x, 2, output_size=3, return_indices=True,
                                                                       random_samples=s), (X3, SAMPLES3)),
    "max_unpool1d": (lambda x, i: colnn.max_unpool1d(x, i, 2), POOLED[1]),
    "max_unpool2d": (lambda x, i: colnn.max_unpool2d(x, i, 2), POOLED[2]),
    "max_unpool3d": (lambda x, i: colnn.max_unpool3d(x, i, 2), POOLED[3]),
    "conv1d": (lambda x, w, b: colnn.conv1d(x, w, b, padding=1), (X1, W1, BIAS)),
    "conv2d": (lambda x, w, b: colnn.conv2d(x, w, b, padding=1), (X2, W2, BIAS)),
    "conv3d": (lambda x, w, b: colnn.conv3d(x, w, b, stride=2), (X3, W3, BIAS)),
    "conv_transpose1d": (lambda x, w, b: colnn.conv_transpose1d(x, w, b, stride=2), (X1, WT1, BIAS)),
    "conv_transpose2d": (lambda x, w, b: colnn.conv_transpose2d(x, w, b, stride=2, padding=1), (X2, WT2, BIAS)),
    "conv_transpose3d": (lambda x, w, b: colnn.conv_transpose3d(x, w, b, stride=2), (X3, WT3, BIAS)),
    "im2col": (lambda x: colnn.im2col(x, 3, 3, 1, 1), (X2,)),
    "col2im": (lambda col: colnn.col2im(col, X2.shape, 3, 3, 1, 1), (COL,)),
    "unfold": (lambda x: colnn.unfold(x, 3, padding=1), (X2,)),
    "fold": (lambda blocks: colnn.fold(blocks, X2.shape[2:], 3, padding=1), (BLOCKS,)),
}


class Library:
    """A library's CPU arrays: to and from NumPy, its array type, its dtype of a NumPy dtype."""

    def __init__(self, name: str):
        self.name = name
        if name == "torch":
            self.module = pytest.importorskip("torch", reason="needs torch==2.13.0")
            self.array_type = self.module.Tensor
        else:
            self.module = pytest.importorskip("jax", reason="needs jax (pip install colnn[bench])")
            self.array_type = self.module.Array

    def to(self, array: np.ndarray):
        if self.name == "torch":
            return self.module.from_numpy(array.copy())
        return self.module.numpy.asarray(array)

    def numpy(self, array) -> np.ndarray:
        return array.detach().numpy() if self.name == "torch" else np.asarray(array)

    def dtype(self, dtype: np.dtype):
        """The library's dtype for a NumPy result's (JAX without x64 keeps int64 as int32, as ``jnp.asarray``)."""
        if self.name == "torch":
            return self.module.from_numpy(np.zeros(0, dtype)).dtype
        return self.module.numpy.asarray(np.zeros(0, dtype)).dtype

    def device_is_cpu(self, array) -> bool:
        if self.name == "torch":
            return array.device.type == "cpu"
        return all(device.platform == "cpu" for device in array.devices())


@pytest.fixture(params=["torch", "jax"])
def library(request) -> Library:
    return Library(request.param)


def _items(result) -> tuple:
    return result if isinstance(result, tuple) else (result,)


def spy_hand_backs(monkeypatch, module) -> list:
    """Each NumPy array ``module`` hands back to the caller's library, then what it gave for it (a flat list)."""
    handed_back = []
    original = module.as_library_of

    def record(array, like, shared=()):
        handed_back.append(array)
        result = original(array, like, shared)
        handed_back.append(result)
        return result

    monkeypatch.setattr(module, "as_library_of", record)
    return handed_back


@pytest.fixture
def kernel_results(monkeypatch) -> list:
    """The NumPy arrays each call handed back to the caller's library: proof that the NumPy path ran."""
    return spy_hand_backs(monkeypatch, strategy_module)


@pytest.mark.parametrize("name", OPS)
def test_every_op_gives_numpy_s_values_as_the_caller_s_arrays(name, library, kernel_results):
    op, arrays = OPS[name]
    expected = _items(op(*arrays))
    inputs = [library.to(array) for array in arrays]
    before = [library.numpy(array).copy() for array in inputs]
    result = _items(op(*inputs))
    assert len(result) == len(expected)
    for got, want in zip(result, expected):
        assert isinstance(got, library.array_type), f"{name} gave {type(got)}"
        assert got.dtype == library.dtype(want.dtype)
        assert library.device_is_cpu(got)
        np.testing.assert_array_equal(library.numpy(got), want)
    assert len(kernel_results) == 2 * len(expected), f"{name} did not run on NumPy views"
    for array, value in zip(inputs, before):  # the caller's arrays are read, never written
        np.testing.assert_array_equal(library.numpy(array), value)


@pytest.mark.parametrize("name", ["max_pool2d", "conv2d", "max_pool3d", "unfold", "max_unpool2d"])
def test_a_torch_result_shares_the_memory_the_kernels_wrote(name, kernel_results):
    torch = Library("torch").module
    op, arrays = OPS[name]
    result = _items(op(*(torch.from_numpy(array.copy()) for array in arrays)))
    written, handed = kernel_results[0::2], kernel_results[1::2]
    for numpy_result, tensor, got in zip(written, handed, result):
        assert got is tensor
        assert got.data_ptr() == numpy_result.ctypes.data


def test_the_input_is_viewed_without_a_copy(monkeypatch):
    torch = Library("torch").module
    jnp = Library("jax").module.numpy
    seen = []
    original = colnn.ops.pooling.max.max_pool_forward

    def spy(x, *args, **kwargs):
        seen.append(x)
        return original(x, *args, **kwargs)

    monkeypatch.setattr(colnn.ops.pooling.max, "max_pool_forward", spy)
    tensor = torch.from_numpy(X2.copy())
    colnn.max_pool2d(tensor, 2)
    assert isinstance(seen[0], np.ndarray) and seen[0].ctypes.data == tensor.data_ptr()
    array = jnp.asarray(X2)
    colnn.max_pool2d(array, 2)
    assert isinstance(seen[1], np.ndarray) and seen[1].ctypes.data == array.unsafe_buffer_pointer()
    assert not seen[1].flags.writeable  # JAX's buffers are immutable: the kernels only read them


def test_a_result_never_aliases_the_input():
    torch = Library("torch").module
    tensor = torch.from_numpy(X2.copy())
    out = colnn.max_pool2d(tensor, 1)  # a 1x1 window: the values of the input itself
    out += 1
    np.testing.assert_array_equal(tensor.numpy(), X2)
    np.testing.assert_array_equal(out.numpy(), X2 + 1)


def test_a_numpy_result_that_may_share_an_input_s_memory_goes_back_as_a_copy(library):
    view = X2.copy()
    like = library.to(X2)
    back = as_library_of(view[:, :, ::2], like, shared=(view,))
    assert isinstance(back, library.array_type)
    view[...] = 0  # the kernels' view of the caller's input: what came back must not follow it
    np.testing.assert_array_equal(library.numpy(back), X2[:, :, ::2])


def test_a_non_contiguous_tensor_is_read_through_its_strides():
    torch = Library("torch").module
    tensor = torch.from_numpy(X2.copy()).transpose(2, 3)
    np.testing.assert_array_equal(colnn.max_pool2d(tensor, 2).numpy(), colnn.max_pool2d(X2.transpose(0, 1, 3, 2), 2))


def test_a_tensor_that_requires_grad_is_computed_detached_and_left_alone():
    torch = Library("torch").module
    tensor = torch.from_numpy(X2.copy()).requires_grad_()
    out = colnn.conv2d(tensor, torch.from_numpy(W2), padding=1)
    assert not out.requires_grad and tensor.grad is None
    np.testing.assert_array_equal(out.numpy(), colnn.conv2d(X2, W2, padding=1))


def test_float16_tensors_run_the_pooling_kernels():
    torch = Library("torch").module
    half = X2.astype(np.float16)
    out = colnn.max_pool2d(torch.from_numpy(half), 3, 2, 1)
    assert out.dtype == torch.float16
    np.testing.assert_array_equal(out.numpy(), colnn.max_pool2d(half, 3, 2, 1))


def test_bfloat16_which_numpy_lacks_stays_on_the_array_api_path(kernel_results):
    torch = Library("torch").module
    tensor = torch.from_numpy(X2).to(torch.bfloat16)
    out = colnn.max_pool2d(tensor, 2)
    assert out.dtype == torch.bfloat16 and not kernel_results
    assert torch.equal(out, torch.nn.functional.max_pool2d(tensor, 2))


def test_the_reference_strategy_asked_by_name_runs_on_the_caller_s_library(library, kernel_results):
    out = colnn.avg_pool2d(library.to(X2), 2, strategy="im2col")
    assert isinstance(out, library.array_type) and not kernel_results
    np.testing.assert_allclose(library.numpy(out), colnn.avg_pool2d(X2, 2), rtol=1e-6)


def test_the_kernels_asked_by_name_run_a_cpu_tensor():
    torch = Library("torch").module
    out = colnn.max_pool2d(torch.from_numpy(X2), 2, strategy="numba")
    np.testing.assert_array_equal(out.numpy(), colnn.max_pool2d(X2, 2))


def test_numpy_samples_and_indices_with_a_tensor_keep_the_array_api_path(kernel_results):
    torch = Library("torch").module
    out = colnn.fractional_max_pool2d(torch.from_numpy(X2), 2, output_size=4, random_samples=SAMPLES)
    np.testing.assert_array_equal(out.numpy(), colnn.fractional_max_pool2d(X2, 2, output_size=4,
                                                                            random_samples=SAMPLES))
    values, indices = POOLED[2]
    out = colnn.max_unpool2d(torch.from_numpy(values), indices, 2)
    np.testing.assert_array_equal(out.numpy(), colnn.max_unpool2d(values, indices, 2))
    assert not kernel_results


def test_errors_name_the_caller_s_types(library):
    library_type = "torch.Tensor" if library.name == "torch" else "jax.Array"
    with pytest.raises(TypeError, match=f"^weight is a numpy.ndarray but input is a {library_type}"):
        colnn.conv2d(library.to(X2), W2)
    with pytest.raises(ValueError, match=r"must be 3-D \(unbatched\) or 4-D \(batched\)"):
        colnn.max_pool2d(library.to(X1[0, 0]), 2)
    with pytest.raises(TypeError, match=r"^input must be a floating array, got dtype (torch\.)?int32"):
        colnn.conv2d(library.to(X2.astype(np.int32)), library.to(W2))
    with pytest.raises(ValueError, match=r"^output would be empty"):
        colnn.conv_transpose2d(library.to(X2[:, :, :1, :1]), library.to(WT2[:, :, :1, :1]), padding=1)
