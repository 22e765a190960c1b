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
