"""Shared pieces of the ``colnn`` commands' options: ``type`` functions and help texts made from the code.

A bad value becomes argparse's one-line usage error naming the flag and the
text given (``argument --epochs: must be a positive int, got '0'``), before the
command starts. A help text that lists an option's values is made by
:func:`choices_help` from the mapping that also gives argparse its ``choices``,
so the two cannot drift apart.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping

from ..core.checks import describe

__all__ = ["int_in", "positive_int", "non_negative_int", "positive_float", "choices_help"]


def int_in(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: an int in ``[minimum, maximum]`` (no upper bound when ``maximum`` is None)."""
    if maximum is not None:
        wanted = f"an int from {minimum} to {maximum}"
    else:
        wanted = {0: "a non-negative int", 1: "a positive int"}.get(minimum, f"an int >= {minimum}")

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {describe(text)}")
        return value

    parse.__name__ = "int"
    return parse


positive_int = int_in(1)
non_negative_int = int_in(0)


def positive_float(text: str) -> float:
    """An argparse type: a finite float above 0 (a learning rate)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive float, got {describe(text)}")
    return value


def choices_help(descriptions: Mapping[str, str], default: str | None = None) -> str:
    """A help text naming every value of an option with what it means, and its default.

    Pass the same mapping as argparse's ``choices`` (its keys), so that the help
    names every accepted value and no other. A ``%`` is doubled, as argparse's
    help texts need.

    >>> choices_help({"cosine": "half a cosine down to 0", "constant": "the same rate throughout"}, "cosine")
    'cosine: half a cosine down to 0; constant: the same rate throughout; default: cosine'
    """
    if default is not None and default not in descriptions:
        raise ValueError(f"default must be one of {sorted(descriptions)}, got {describe(default)}")
    parts = [f"{name}: {text}" for name, text in descriptions.items()]
    return "; ".join(parts if default is None else [*parts, f"default: {default}"]).replace("%", "%%")
