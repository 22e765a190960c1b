"""conv_transpose1d/2d/3d and the ConvTranspose layers against PyTorch, forward and backward, on every backend."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import colnn
from cases import arrays, nd_conv_case
from colnn.ops.conv import ConvTransposeArgs, conv_transpose_backward
from colnn.ops.xp import as_common_dtype

torch = pytest.importorskip("torch", reason="PyTorch is the oracle")
F = torch.nn.functional


def test_conv_transpose_matches_torch(backend):
    @backend.settings(40, 8)
    @given(case=nd_conv_case(), extra=st.data(), unbatched=st.booleans())
    def check(case, extra, unbatched):
        ndim, groups, size, kernel, stride, padding, dilation, dtype = case
        size = tuple(min(s, 4) for s in size)
        output_padding = tuple(extra.draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
        rng = np.random.default_rng(1)
        x, weight, bias = arrays(rng, dtype, (2, 2 * groups, *size), (2 * groups, 3, *kernel), 3 * groups)
        xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, weight, bias))
        function = getattr(colnn, f"conv_transpose{ndim}d")
        arguments = (stride, padding, output_padding, groups, dilation)
        try:
            expected = getattr(F, f"conv_transpose{ndim}d")(xt, wt, bt, *arguments)
        except RuntimeError:
            with pytest.raises(ValueError):
                backend.call(function, x, weight, bias, *arguments)
            return
        if expected.numel() == 0:  # an empty output is a ValueError (README)
            with pytest.raises(ValueError, match="empty"):
                backend.call(function, x, weight, bias, *arguments)
            return
        tol = dict(rtol=1e-4, atol=1e-4) if dtype == "float32" else dict(rtol=1e-10, atol=1e-10)
        sample = x[0] if unbatched else x
        out = backend.call(function, sample, weight, bias, *arguments)
        assert out.dtype == x.dtype
        np.testing.assert_allclose(out, expected.detach().numpy()[0] if unbatched else expected.detach().numpy(),
                                   **tol)
        grad = rng.standard_normal(expected.shape).astype(dtype)
        expected.backward(torch.from_numpy(grad))
        args = ConvTransposeArgs.check(ndim, *arguments)
        given_x, given_weight, _ = as_common_dtype(backend.to(x), backend.to(weight), backend.to(bias))
        window = args.window(x.shape[2:], weight.shape[2:])
        grads = conv_transpose_backward(backend.to(grad), given_x, given_weight, window, groups, backend.strategy)
        for got, want in zip(backend.back(grads), (xt, wt, bt)):
            np.testing.assert_allclose(got, want.grad.numpy(), **tol)

    check()


def test_transposed_conv_with_groups_and_dilation(backend):
    rng = np.random.default_rng(2)
    x, weight = rng.standard_normal((1, 4, 3, 3)), rng.standard_normal((4, 2, 3, 3))
    expected = F.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(weight), None, 2, 1, 1, 2, 2)
    np.testing.assert_allclose(backend.call(colnn.conv_transpose2d, x, weight, None, 2, 1, 1, 2, 2), expected.numpy(),
                               rtol=1e-12)


@pytest.mark.parametrize("kwargs, name", [({"output_padding": 2, "stride": 2}, "output_padding"),
                                          ({"groups": 3}, "groups"), ({"stride": 0}, "stride")])
def test_transpose_bad_arguments_name_themselves(backend, kwargs, name):
    with pytest.raises(ValueError, match=name):
        backend.call(colnn.conv_transpose1d, np.ones((1, 4, 3)), np.ones((4, 1, 2)), **kwargs)
