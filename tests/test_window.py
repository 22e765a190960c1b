"""Argument normalization and the output-size rule, against the formula written independently."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from colnn.core.checks import check_array
from colnn.core.window import Window, as_pair, output_size
from reference import out_size


@given(size=st.integers(1, 40), kernel=st.integers(1, 6), stride=st.integers(1, 5),
       pad=st.integers(0, 3), dilation=st.integers(1, 3), ceil=st.booleans())
def test_output_size_matches_the_formula(size, kernel, stride, pad, dilation, ceil):
    assert output_size(size, kernel, stride, pad, dilation, ceil) == out_size(size, kernel, stride, pad, dilation, ceil)


def test_output_size_ignoring_pad_is_the_tutorials_bug():
    # The tutorial's Pooling.forward uses 1 + (H - pool_h) / stride, which ignores pad.
    assert output_size(4, 2, 2, 1) == 3 != int(1 + (4 - 2) / 2)


@pytest.mark.parametrize("value, expected", [(2, (2, 2)), ((1, 3), (1, 3)), ([4], (4, 4)), (np.int64(5), (5, 5))])
def test_as_pair_reads_ints_and_pairs(value, expected):
    assert as_pair(value, "kernel_size") == expected


@pytest.mark.parametrize("value, error", [(True, TypeError), (1.5, TypeError), ((1, 2, 3), ValueError),
                                          ("2", TypeError), ((1, None), TypeError), (-1, ValueError)])
def test_as_pair_rejects_bad_values_naming_the_argument(value, error):
    with pytest.raises(error, match="stride"):
        as_pair(value, "stride", minimum=0)


def test_check_array_converts_lists_and_keeps_arrays():
    x = np.zeros((1, 2, 3), dtype=np.float32)
    assert check_array(x) is x
    assert check_array([[[1, 2]]]).dtype.kind == "i"
    with pytest.raises(TypeError, match="bool"):
        check_array(np.zeros((1, 1, 1), dtype=bool))


def test_window_padding_reaches_exactly_the_last_window():
    window = Window.build((5, 5), 2, 2, 0, ceil_mode=True)
    assert (window.out_h, window.pad_bottom) == (3, 1)
    assert Window.build((5, 5), 2, 2, 0).pad_bottom == 0


# --- N spatial dimensions and huge arguments ----------------------------------

from colnn.core.window import as_tuple  # noqa: E402


@pytest.mark.parametrize("value, ndim, expected", [(2, 1, (2,)), ((3,), 3, (3, 3, 3)), ((1, 2, 3), 3, (1, 2, 3))])
def test_as_tuple_reads_pytorchs_forms(value, ndim, expected):
    assert as_tuple(value, "kernel_size", ndim) == expected


@pytest.mark.parametrize("value", [(1, 2), 2**63, -1, ((1, 2, 3),)])
def test_as_tuple_rejects_naming_the_argument(value):
    with pytest.raises(ValueError, match="dilation"):
        as_tuple(value, "dilation", 3)


@given(size=st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 9)), kernel=st.integers(1, 4),
       stride=st.integers(1, 3))
def test_nd_window_is_the_2d_rule_per_axis(size, kernel, stride):
    try:
        window = Window.build(size, kernel, stride)
    except ValueError:
        assert min(size) < kernel
        return
    assert window.out_size == tuple(out_size(s, kernel, stride, 0) for s in size)
    assert window.kernel_volume == kernel ** 3


def test_flat_indices_and_first_inside_in_3d():
    window = Window.build((3, 4, 5), 2, 1, 1, pooling=True)
    first = window.first_inside()
    assert first.shape == window.out_size
    assert first[0, 0, 0] == 1 * 4 + 1 * 2 + 1  # offset (1, 1, 1) of a 2x2x2 kernel
    assert window.flat_indices(first)[0, 0, 0] == 0


@pytest.mark.parametrize("name, kwargs", [
    ("kernel_size", {"kernel_size": 2**63}), ("stride", {"kernel_size": 2, "stride": 2**70}),
    ("padding", {"kernel_size": 3, "padding": 2**64}), ("dilation", {"kernel_size": 2, "dilation": 2**63}),
    ("padding", {"kernel_size": 2, "padding": 2**62}),  # the padded span passes int64
])
def test_arguments_beyond_int64_are_value_errors_naming_them(name, kwargs):
    with pytest.raises(ValueError, match=name):
        Window.build((2, 2), **kwargs)


def test_a_kernel_volume_beyond_int64_is_a_value_error():
    with pytest.raises(ValueError, match="kernel_size"):
        Window.build((2, 2), 2**40, padding=2**39, pooling=True)


def test_an_empty_output_names_dilation_only_when_the_window_is_dilated():
    with pytest.raises(ValueError, match=r"kernel_size=\(9, 9\).*padding=\(0, 0\) gives output \(0, 0\)") as plain:
        Window.build((4, 4), 9)
    assert "dilation" not in str(plain.value)
    with pytest.raises(ValueError, match=r"dilation=\(2, 2\) gives output"):
        Window.build((4, 4), 3, dilation=2)
