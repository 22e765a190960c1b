"""Every function of the 1/2/3-d families has torch.nn.functional's positional parameters, names and order."""

from __future__ import annotations

import inspect
import re

import pytest

import colnn

torch = pytest.importorskip("torch", reason="PyTorch's signatures are the reference")

NAMES = [f"{family}{d}d" for d in (1, 2, 3) for family in (
    "max_pool", "avg_pool", "adaptive_avg_pool", "adaptive_max_pool", "lp_pool", "max_unpool", "conv",
    "conv_transpose")] + ["fractional_max_pool2d", "fractional_max_pool3d"]


def _positional(function) -> list[str]:
    return [p.name for p in inspect.signature(function).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _torch_positional(name: str) -> list[str]:
    """From the Python signature, the ``*_with_indices`` one behind a dispatcher, or a builtin's docstring."""
    function = getattr(torch.nn.functional, name)
    try:
        names = _positional(function)
    except (TypeError, ValueError):
        names = []
    if not names and hasattr(torch.nn.functional, f"{name}_with_indices"):
        names = _positional(getattr(torch.nn.functional, f"{name}_with_indices"))
    if not names:
        match = re.search(rf"{name}\(([^)]*)\)", function.__doc__ or "")
        names = [part.split("=")[0].strip() for part in match.group(1).split(",")] if match else []
    return [n for n in names if n and not n.startswith("_") and n != "*"]


@pytest.mark.parametrize("name", NAMES)
def test_positional_parameters_are_torchs(name):
    assert name in colnn.__all__
    expected = _torch_positional(name)
    assert expected, f"no signature found for torch.nn.functional.{name}"
    assert _positional(getattr(colnn, name)) == expected
