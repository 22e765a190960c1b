"""The ``colnn`` command: ``colnn train``, ``colnn evaluate``, ``colnn explain``, ``colnn bench``, ``colnn pool``.

Each application module exposes ``register(subparsers)``, which adds its
sub-commands with ``set_defaults(run=...)``; heavy imports (matplotlib, tqdm,
scikit-learn, torch) happen inside ``run`` so that ``colnn --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from .. import __version__

APPLICATIONS = ("train", "explain", "bench", "pool")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="colnn", description="im2col-based CNN layers for NumPy: train, explain, benchmark."
    )
    parser.add_argument("--version", action="version", version=f"colnn {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in APPLICATIONS:
        importlib.import_module(f"colnn.apps.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``colnn`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
