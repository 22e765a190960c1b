"""The ``colnn`` command: ``colnn train``, ``colnn evaluate``, ``colnn explain``, ``colnn bench``, ``colnn pool``.

Each application module exposes ``register(subparsers)``, which adds its
sub-commands with ``set_defaults(run=...)``; heavy imports (matplotlib, tqdm,
scikit-learn, torch) happen inside ``run`` so that ``colnn --help`` is instant.
``colnn CMD ...`` imports only the application that registers CMD
(:data:`COMMANDS`): ``colnn pool`` does not load the network code of
``colnn train``, which would cost a short run a sizeable share of its time.

A plain ``pip install colnn`` has none of them. Before a command starts,
:func:`needed_packages` says which optional packages its arguments need; a
missing required one stops it with one line naming the extra to install, a
missing optional one (the figure of ``colnn train``, PyTorch's columns in
``colnn bench``) is a one-line note and the command goes on without it.

What a command says when it stops, the same for every command:

- exit status 0: done;
- exit status 1 and one line ``colnn CMD: error: ...`` on stderr, never a
  traceback: a bad option (argparse's usage errors, made one line), a bad
  input or an output that cannot be written;
- exit status 130 (the shell's status for Ctrl-C) and the line
  ``colnn CMD: interrupted``: Ctrl-C, which is the user's choice, not an error.

An exception that no command expected is still one line, which says that it
is a fault of colnn's and how to see its traceback (``COLNN_TRACEBACK=1``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

from .. import __version__

APPLICATIONS = ("train", "explain", "bench", "pool")
# The application (module of colnn.apps) that registers each sub-command; a test checks it against register().
COMMANDS = {"train": "train", "evaluate": "train", "explain": "explain", "bench": "bench", "pool": "pool"}
DASK_EXTRA = 'pip install "colnn[dask]"'
APPS_EXTRA = 'pip install "colnn[apps]"'
INTERRUPTED = 130  # the shell's exit status for a process stopped by Ctrl-C (128 + SIGINT)
TRACEBACK_VARIABLE = "COLNN_TRACEBACK"


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
    # --data reads IDX files; each built-in data set ships inside its own package.
    if command in ("train", "evaluate") and getattr(args, "data", None) is None:
        from .data import BUILTIN_DATASETS, DEFAULT_DATASET, evaluation_dataset

        if command == "evaluate":
            name = evaluation_dataset(args) or DEFAULT_DATASET
        else:
            name = args.dataset or DEFAULT_DATASET
        builtin = BUILTIN_DATASETS[name]
        purpose = (f"--dataset {name} ({builtin.description})" if args.dataset else
                   f"the data set {name} ({builtin.description}; --data DIR reads IDX files)")
        needs.append(Need(builtin.module, builtin.package, purpose))
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


class UsageError(Exception):
    """A bad command line, as argparse words it, with the command it belongs to (``colnn train``)."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors raised (:class:`UsageError`) for :func:`main` to print as one line.

    argparse's own error prints the usage block and exits with status 2; every
    colnn command instead stops with one line and status 1.
    """

    def error(self, message: str) -> NoReturn:
        raise UsageError(self.prog, message)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of the ``colnn`` command line ``argv``, with every sub-command, or with only ``argv``'s own.

    When ``argv`` starts with a sub-command's name, only the application that
    registers it is imported, and the parser knows that application's
    sub-commands alone: they parse (and ``--help``) exactly as in the whole
    parser. Otherwise (None, nothing, ``--help``, ``--version``, an unknown
    word) every application is registered, for the top-level help and for
    argparse's list of the commands in an error.
    """
    parser = _Parser(prog="colnn")
    parser.add_argument("--version", action="version", version=f"colnn {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    first = argv[0] if argv else None
    for name in (COMMANDS[first],) if first in COMMANDS else APPLICATIONS:
        importlib.import_module(f"colnn.apps.{name}").register(subparsers)
    # Named from the commands registered, so that a new one cannot be left out.
    parser.description = f"im2col-based CNN layers for NumPy; the commands: {', '.join(subparsers.choices)}."
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``colnn`` console script; returns the exit status (0, 1, or 130 after Ctrl-C)."""
    prog = "colnn"
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        try:
            args, unknown = build_parser(argv).parse_known_args(argv)
            if unknown:  # argparse reports them from the top parser: "colnn: error:", not the command's
                raise UsageError(f"colnn {args.command}", f"unrecognized arguments: {' '.join(unknown)}")
        except UsageError as error:
            return _say(error.prog, f"error: {error} (see {error.prog} --help)", 1)
        prog = f"colnn {args.command}"
        return _run(args)
    except KeyboardInterrupt:
        return _say(prog, "interrupted", INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (colnn explain | head): nothing more can reach it, and
        # Python's flush of stdout at exit must not fail into a traceback either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as error:  # a fault of colnn's: still one line, with the way to see where it lies
        if os.environ.get(TRACEBACK_VARIABLE):
            raise
        reason = str(error).splitlines()[0] if str(error) else ""
        return _say(prog, f"error: internal error ({type(error).__name__}: {reason}); please report it; "
                          f"{TRACEBACK_VARIABLE}=1 shows the traceback", 1)


def _run(args: argparse.Namespace) -> int:
    """Check the optional packages ``args`` needs, then run its command."""
    for need in needed_packages(args):
        if is_installed(need.module):
            continue
        if need.required:
            return _say(f"colnn {args.command}", f"error: {need.purpose} needs {need.package}, which is not "
                                                 f"installed; {need.install}", 1)
        _say(f"colnn {args.command}", f"warning: {need.package} is not installed, so {need.purpose} "
                                      f"will be left out; {need.install}", 0)
    # The first run compiles for seconds; say so rather than look hung. A command that uses compiled
    # kernels only at times (colnn pool) says it itself, when it does: the notice imports Numba.
    if not getattr(args, "announces_compiles", False):
        from ..kernels.compile_notice import announce_compiles

        announce_compiles()
    return int(args.run(args) or 0)


def _say(prog: str, message: str, status: int) -> int:
    """Print ``prog: message`` as one line on stderr; return ``status``."""
    print(f"{prog}: {message}", file=sys.stderr, flush=True)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
