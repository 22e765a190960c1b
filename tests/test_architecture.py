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


# --- no import circles ---------------------------------------------------------------

MODULE_NAMES = {module_name(path) for path in MODULES}


def _type_checking_block(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``): imports for the type checker, never run."""
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _run_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that can run, at any depth (a lazy import inside a function counts)."""
    found, pending = [], [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        children = node.orelse if _type_checking_block(node) else ast.iter_child_nodes(node)
        pending.extend(children)
    return found


def import_edges(path: Path, source: str | None = None) -> set[str]:
    """The colnn modules the file at ``path`` imports when it runs.

    ``from package import name`` imports the module ``package.name`` where there
    is one (``from . import kernels``), else the package itself (whose
    ``__init__`` holds ``name``).
    """
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    edges = set()
    for node in _run_imports(ast.parse(path.read_text() if source is None else source)):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            submodules = {f"{target}.{alias.name}" for alias in node.names} & MODULE_NAMES
            edges |= submodules
            if len(submodules) < len(node.names):
                edges.add(target)
        else:
            edges |= {alias.name for alias in node.names}
    own = module_name(path)
    return {edge for edge in edges if edge in MODULE_NAMES and edge != own}


def import_circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    circles.append(component)
    return circles


def import_graph(replace: dict[Path, str] | None = None) -> dict[str, set[str]]:
    replace = replace or {}
    return {module_name(path): import_edges(path, replace.get(path)) for path in MODULES}


def test_no_module_imports_itself_back():
    """No circle among colnn's modules (lazy imports count): the Dask path gets its NumPy computation from its
    caller."""
    assert [sorted(circle) for circle in import_circles(import_graph())] == []


def test_the_circle_check_sees_a_circle():
    """A lazy import of bench from the module below it (what bench_family did) is found."""
    path = PACKAGE / "apps" / "bench_common.py"
    source = path.read_text() + "\n\ndef later():\n    from .bench import Row\n"
    circles = import_circles(import_graph({path: source}))
    assert any({"colnn.apps.bench", "colnn.apps.bench_common"} <= circle for circle in circles)


def test_type_checking_imports_are_no_edges():
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .walk import Walk\n"
              "else:\n    from . import steps\n")
    assert import_edges(PACKAGE / "apps" / "explain" / "html.py", source) == {"colnn.apps.explain.steps"}
