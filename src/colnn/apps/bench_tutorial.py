"""The tutorial's code for ``colnn bench``: where a checkout keeps it, and loading it as the baseline rows.

The tutorial's ``Pooling`` layer (``benchmarks/tutorial.py``, kept as the
tutorial wrote it) lives in the repository, not in the package: a checkout has
it, an installed wheel does not. :func:`find_tutorial` looks for it in a colnn
checkout at or above the package's folder and at or above the current folder,
so ``colnn bench`` finds it from anywhere inside a checkout (or from an
editable install run anywhere). A folder counts as a checkout only when it also
holds ``src/colnn/__init__.py``: the file found is executed, so a
``benchmarks/tutorial.py`` of some other project is never run.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType

__all__ = ["TUTORIAL_FILE", "TutorialError", "find_tutorial", "load_tutorial", "missing_tutorial_note"]

TUTORIAL_FILE = Path("benchmarks") / "tutorial.py"
CHECKOUT_MARK = Path("src") / "colnn" / "__init__.py"
PACKAGE_DIR = Path(__file__).resolve().parents[1]


class TutorialError(ValueError):
    """A ``--tutorial`` file that cannot be the baseline: missing, not Python, failing, or without ``Pooling``."""


def _folders_up(starts: Iterable[Path]) -> Iterator[Path]:
    """Each start and its parents, each folder once, in order."""
    seen = set()
    for start in starts:
        for folder in (start, *start.parents):
            if folder not in seen:
                seen.add(folder)
                yield folder


def find_tutorial(starts: Iterable[Path] | None = None) -> Path | None:
    """``benchmarks/tutorial.py`` of the first colnn checkout at or above one of ``starts``, or None.

    ``starts`` defaults to the installed package's folder, then the current folder.
    """
    starts = [PACKAGE_DIR, Path.cwd()] if starts is None else starts
    for folder in _folders_up(Path(start).resolve() for start in starts):
        candidate = folder / TUTORIAL_FILE
        if candidate.is_file() and (folder / CHECKOUT_MARK).is_file():
            return candidate
    return None


def missing_tutorial_note() -> str:
    """The one line ``colnn bench`` prints when :func:`find_tutorial` finds nothing: why, and what to do."""
    return (f"the tutorial rows are left out: no colnn checkout holding {TUTORIAL_FILE.as_posix()} at or above "
            f"{Path.cwd()} or the package's folder {PACKAGE_DIR} (an installed wheel has none); "
            "pass --tutorial FILE to add them")


def load_tutorial(path: str | Path | None = None) -> ModuleType | None:
    """The tutorial's module, run from ``path``; without ``path``, from :func:`find_tutorial` (None if not found).

    Raises
    ------
    TutorialError
        with a one-line reason naming ``path``, when it is not a ``.py`` file,
        does not exist, is a folder, fails when run, or defines no ``Pooling``.
    """
    if path is None:
        found = find_tutorial()
        return None if found is None else _run_module(found, "the tutorial")
    path = Path(path)
    name = f"--tutorial {path}"
    if path.suffix != ".py":
        raise TutorialError(f"{name}: not a Python file (.py); give the tutorial's code, e.g. {TUTORIAL_FILE}")
    if path.is_dir():
        raise TutorialError(f"{name}: is a folder; give the tutorial's .py file")
    if not path.is_file():
        raise TutorialError(f"{name}: no such file")
    return _run_module(path, name)


def _run_module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("colnn_bench_tutorial", path)
    if spec is None or spec.loader is None:
        raise TutorialError(f"{name}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # the user's file: whatever it raises, one line naming it
        reason = str(error).splitlines()[0] if str(error) else ""
        raise TutorialError(f"{name}: fails when run ({type(error).__name__}: {reason})") from None
    if not isinstance(getattr(module, "Pooling", None), type):
        raise TutorialError(f"{name}: defines no Pooling class, the tutorial's layer that bench times")
    return module
