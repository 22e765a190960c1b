"""What the peer suites share: comparing colnn's arrays with a peer's, at the tolerance the computation earns.

``tests/test_opinfo.py`` runs PyTorch's OpInfo samples and ``tests/test_onnx_nodes.py``
ONNX's backend node tests through colnn's public API; both compare with
:func:`assert_matches`, and both collect every mismatch of an op before failing
(:class:`Mismatches`), so that one run lists them all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

# Relative tolerance of a computed sum (average, convolution, LP norm). A sum of K
# terms rounds with an error of about K * eps * sum(|term|) (Higham, "Accuracy and
# Stability of Numerical Algorithms", 4.2): it scales with the terms, not with the
# result, so a cell whose terms cancel to near zero may show a relative error far
# above eps while its absolute error stays at the scale of the other cells. The
# absolute tolerance is therefore this relative one times the largest magnitude of the
# expected output. float32: eps 6e-8 and windows of at most a few hundred terms here;
# float64: eps 1.1e-16, so 1e-12 still fails a float32 accumulation (error ~1e-7) by
# five orders of magnitude.
SUM_RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def describe_array(value: Any) -> str:
    """An array as its type, dtype and shape (never its contents)."""
    return f"{type(value).__name__} {getattr(value, 'dtype', '?')} {tuple(getattr(value, 'shape', ()))}"


def assert_matches(actual: Any, expected: Any, exact: bool, what: str) -> None:
    """``actual`` equals ``expected`` in type, dtype, shape, and values: bit for bit, or as a sum can.

    ``exact`` for maxima, indices, gathers and scatters (they select or move values,
    so any difference is a fault); otherwise :data:`SUM_RTOL` of ``expected``'s dtype,
    with the absolute tolerance scaled by its largest magnitude. NaNs compare equal.
    """
    expected = np.asarray(expected)
    assert isinstance(actual, np.ndarray), f"{what}: expected a NumPy array, got {type(actual).__name__}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype}, expected {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, expected {expected.shape}"
    if exact or expected.dtype.kind != "f":
        np.testing.assert_array_equal(actual, expected, err_msg=what, strict=True)
        return
    rtol = SUM_RTOL[expected.dtype]
    finite = expected[np.isfinite(expected)]
    scale = float(np.max(np.abs(finite))) if finite.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what, strict=True)


def assert_refuses(call: Callable[[], Any], errors: type | tuple[type, ...], what: str,
                   names: str | None = None) -> None:
    """``call()`` raises one of ``errors`` (colnn's boundary errors), whose message contains ``names`` if given."""
    try:
        call()
    except errors as error:
        assert names is None or names in str(error), f"{what}: {type(error).__name__} names no {names}: {error}"
        return
    raise AssertionError(f"{what}: colnn computes it instead of raising {errors}")


class Mismatches:
    """The failures of one op's cases, collected so that the test reports all of them at once."""

    def __init__(self, op: str) -> None:
        self.op = op
        self.failures: list[str] = []
        self.cases = 0

    def check(self, case: str, run: Any) -> None:
        """Run ``run()`` (a case's assertions), keeping its failure under the name ``case``."""
        self.cases += 1
        try:
            run()
        except AssertionError as failure:
            self.failures.append(f"{case}\n    {_first_lines(str(failure))}")
        except Exception as error:  # colnn refused a case its peer accepts, or crashed on it
            self.failures.append(f"{case}\n    raised {type(error).__name__}: {_first_lines(str(error))}")

    def assert_none(self) -> None:
        assert not self.failures, (f"{self.op}: {len(self.failures)} of {self.cases} cases differ from the peer:\n"
                                   + "\n".join(self.failures))


def _first_lines(message: str, count: int = 6) -> str:
    lines = [line for line in message.strip().splitlines() if line.strip()]
    return "\n    ".join(lines[:count])
