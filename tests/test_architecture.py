"""The layers of the design, and their arrows: nothing low imports anything high.

Every module of ``src/colnn`` is read with :mod:`ast` (imports inside functions
count too: a lazy import is still an arrow) and each import is checked against
the order core < kernels < ops < nn < apps; the top-level ``colnn.book`` and
``colnn.__main__`` count as apps.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import colnn

PACKAGE = Path(colnn.__file__).parent
LAYERS = ("core", "kernels", "ops", "nn", "apps")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int | None:
    """Rank of a ``colnn.*`` module's layer; None for the package's face (``colnn`` and its names)."""
    parts = module.split(".")
    # colnn.book (the book's surface: nets, Trainer, load_mnist) is an application, like the CLI.
    if parts[1:2] in (["__main__"], ["book"]):
        return LAYERS.index("apps")
    if len(parts) == 1 or parts[1] not in LAYERS:
        return None
    return LAYERS.index(parts[1])


def imported_modules(path: Path, source: str | None = None) -> list[tuple[int, str]]:
    """``(line, absolute module)`` for every import in the file that names a colnn module."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text() if source is None else source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # ``from . import kernels`` names a module, not an attribute: check both.
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
            found.append((node.lineno, target))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] == "colnn"]


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_lives_in_a_layer():
    loose = [module_name(path) for path in MODULES
             if layer_of(module_name(path)) is None and module_name(path) != "colnn"]
    assert loose == []


def upward_imports(path: Path, source: str | None = None) -> list[str]:
    """The imports of ``path`` that point to a higher layer than its own."""
    own = layer_of(module_name(path))
    # The package's face (``colnn/__init__``) may re-export up to nn, never apps.
    limit = LAYERS.index("nn") if own is None else own
    upward = []
    for line, target in imported_modules(path, source):
        if own is None and target.startswith("colnn.apps.explain"):
            continue  # the face's lazy ``colnn.explain``, imported on first use only (checked below)
        if layer_of(target) is None:
            continue  # the face itself: __version__, set_num_threads
        if layer_of(target) > limit:
            upward.append(f"line {line}: {target}")
    return upward


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_imports_point_down_or_sideways(path):
    assert upward_imports(path) == []


def test_the_arrow_check_sees_an_upward_import():
    """The check above can fail: a kernels module that imports ops, even lazily, is caught."""
    path = PACKAGE / "kernels" / "geometry.py"
    source = path.read_text() + "\n\ndef later():\n    from ..ops.pooling import max_pool2d\n"
    assert upward_imports(path, source) == [f"line {source.count(chr(10))}: colnn.ops.pooling.max_pool2d",
                                            f"line {source.count(chr(10))}: colnn.ops.pooling"]


def test_core_imports_neither_numba_nor_other_layers():
    for path in (PACKAGE / "core").rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        names += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and not node.level]
        assert not [name for name in names if name.split(".")[0] in ("numba", "colnn")], path


def test_book_counts_as_an_application():
    assert layer_of("colnn.book") == LAYERS.index("apps")
    face = PACKAGE / "__init__.py"
    assert upward_imports(face, face.read_text() + "\nfrom .book import Trainer\n") != []


def test_colnn_explain_is_there_and_import_colnn_still_skips_the_apps():
    import subprocess
    import sys

    code = ("import sys, colnn; before = sorted(m for m in sys.modules if m.startswith('colnn.apps')); "
            "walk = colnn.explain(); print(before, type(walk).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] Walk"
