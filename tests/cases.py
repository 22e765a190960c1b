"""Hypothesis strategies the op tests share (the N-d convolutions' settings)."""

from __future__ import annotations

from hypothesis import strategies as st


@st.composite
def nd_conv_case(draw):
    """``(ndim, groups, size, kernel, stride, padding, dilation, dtype)`` of a 1-, 2- or 3-d convolution."""
    ndim = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 2))
    ints = lambda lo, hi: tuple(draw(st.integers(lo, hi)) for _ in range(ndim))  # noqa: E731
    return (ndim, groups, ints(2, 6), ints(1, 3), ints(1, 2), ints(0, 1), ints(1, 2),
            draw(st.sampled_from(["float32", "float64"])))


def arrays(rng, dtype, *shapes):
    """Standard normal arrays of ``shapes`` in ``dtype``: input, weight, bias."""
    return tuple(rng.standard_normal(shape).astype(dtype) for shape in shapes)


