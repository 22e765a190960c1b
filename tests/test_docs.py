"""The documentation site (docs/) cannot lie: every public name has its page, every example runs, every link resolves.

- The API reference's autosummary lists (docs/api/*.rst) name every public name of
  ``colnn``, ``colnn.nn``, ``colnn.nn.optim``, each module of ``colnn.book`` and
  ``colnn.ops.dask`` (the oracle: each package's own ``__all__``); a name a module
  re-exports (``colnn.MaxPool2d`` is ``colnn.nn.MaxPool2d``) counts as listed when the
  object it names is.
- The built site's inventory (``objects.inv``, what Sphinx generated from those lists)
  holds every listed name: it needs a build (``.ci/run`` builds the site before the tests).
- The ``python`` blocks of the guide's pages run as written; the speed page's tables name
  their ratios as ``colnn bench`` does.
- README.md's links into docs/ resolve to files that exist.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest

from speed_tables import assert_ratio_columns_named

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BUILT_INVENTORY = DOCS / "_build" / "html" / "objects.inv"

# The packages whose ``__all__`` the reference must cover; colnn.book's modules are found below.
PACKAGES = ("colnn", "colnn.nn", "colnn.nn.optim", "colnn.book", "colnn.ops.dask")
# Names in an ``__all__`` that are not the package's own API: the book's modules give ``np`` to
# ``import *``, as the book's do.
NOT_API = {"np"}


def _book_modules() -> list[str]:
    folder = ROOT / "src" / "colnn" / "book"
    return [f"colnn.book.{path.stem}" for path in sorted(folder.glob("*.py")) if not path.stem.startswith("_")]


def _public_names() -> list[tuple[str, str]]:
    """(module, name) for every name of every covered module's ``__all__``."""
    names = []
    for module_name in (*PACKAGES, *_book_modules()):
        module = importlib.import_module(module_name)
        names += [(module_name, name) for name in module.__all__ if name not in NOT_API]
    return names


def _listed_names() -> list[str]:
    """The full names that the autosummary directives of docs/api/*.rst list, as Sphinx resolves them."""
    listed = []
    for page in sorted((DOCS / "api").glob("*.rst")):
        current = None
        in_autosummary = False
        for line in page.read_text(encoding="utf-8").splitlines():
            if match := re.match(r"\.\. (?:current)?module:: (\S+)", line):
                current = match.group(1) if "currentmodule" in line else current
                continue
            if line.startswith(".. autosummary::"):
                in_autosummary = True
                continue
            if in_autosummary and line and not line.startswith(" "):
                in_autosummary = False
            entry = line.strip()
            if in_autosummary and entry and not entry.startswith(":"):
                listed.append(f"{current}.{entry}" if current else entry)
    return listed


def _resolve(full_name: str) -> Any:
    """The object ``full_name`` (``package.module.Name``) names."""
    parts = full_name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            target: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            target = getattr(target, attribute)
        return target
    raise ImportError(full_name)


def _is_documented_object(value: Any) -> bool:
    # Classes and functions are one object however they are reached; a constant (a string, a
    # dict) may be equal to another by chance, so it must be listed under its own name.
    return isinstance(value, type) or callable(value)


def _unlisted(listed: list[str]) -> list[str]:
    listed_objects = [_resolve(name) for name in listed]
    missing = []
    for module_name, name in _public_names():
        full_name = f"{module_name}.{name}"
        if full_name in listed:
            continue
        value = getattr(importlib.import_module(module_name), name)
        if _is_documented_object(value) and any(value is other for other in listed_objects):
            continue
        missing.append(full_name)
    return missing


def test_the_api_reference_lists_every_public_name():
    listed = _listed_names()
    assert len(listed) > 100
    assert _unlisted(listed) == []


def test_the_api_reference_lists_only_names_that_exist():
    for name in _listed_names():
        _resolve(name)  # raises if the page names something the code does not have


def test_the_unlisted_check_can_fail():
    listed = [name for name in _listed_names() if name != "colnn.nn.Network"]
    assert _unlisted(listed) == ["colnn.nn.Network"]


def test_the_built_site_has_a_page_for_every_listed_name():
    """Every listed name is an object of the built site's inventory (what autosummary generated)."""
    inventory_module = pytest.importorskip("sphinx.util.inventory", reason="the site's build needs sphinx "
                                           '(pip install "colnn[docs]")')
    if not BUILT_INVENTORY.exists():
        pytest.skip(f"the site is not built ({BUILT_INVENTORY} is missing): "
                    "sphinx-build -W --keep-going -b html docs docs/_build/html")
    with BUILT_INVENTORY.open("rb") as stream:
        inventory = inventory_module.InventoryFile.load(stream, str(BUILT_INVENTORY.parent),
                                                        lambda *parts: "/".join(parts))
    # {"py:function": {"colnn.max_pool2d": item, ...}, "py:class": {...}, "std:doc": {...}, ...}
    documented = {name for object_type, entries in inventory.items() if object_type.startswith("py:")
                  for name in entries}
    assert sorted(set(_listed_names()) - documented) == []


# ---------------------------------------------------------------- the pages' examples

PAGES = sorted(DOCS.glob("**/*.md"))
PAGES = [page for page in PAGES if "_build" not in page.parts and "_generated" not in page.parts]
# What a page's examples import beyond colnn's core (the extras CI installs).
PAGE_NEEDS = {"large_arrays.md": ("dask",), "book.md": ("mlxtend",)}


def _blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"), flags=re.S | re.M)


EXAMPLES = [(page, index, source) for page in PAGES for index, source in enumerate(_blocks(page))]


def test_the_guide_has_examples():
    assert len(EXAMPLES) >= 10
    assert {page.name for page, _, _ in EXAMPLES} >= {"tutorial.md", "training.md", "large_arrays.md", "threads.md"}


@pytest.mark.parametrize("page, index, source", EXAMPLES,
                         ids=[f"{page.relative_to(DOCS)}-{index}" for page, index, _ in EXAMPLES])
def test_page_example_runs(page, index, source, tmp_path, monkeypatch):
    for module in PAGE_NEEDS.get(page.name, ()):
        pytest.importorskip(module, reason=f"{page.name}'s examples need {module}")
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # load_mnist's cache of the sample
    exec(compile(source, f"{page}:block{index}", "exec"), {"__name__": "__docs__"})


def test_the_speed_tables_use_the_benchmarks_ratio_names():
    """Every ratio column of the speed page's tables is "X ÷ colnn" (the peer over colnn) or "x limit"."""
    speed = (DOCS / "guide" / "speed.md").read_text(encoding="utf-8")
    assert_ratio_columns_named(speed)


# ---------------------------------------------------------------- links

def _links_into_docs(markdown: str) -> list[str]:
    """Targets of Markdown links and images that point into docs/, without their #anchor."""
    targets = re.findall(r"\]\(\s*<?((?:\./)?docs/[^)\s>#]*)", markdown)
    return [target.removeprefix("./") for target in targets]


def test_the_readme_links_into_docs_resolve():
    targets = _links_into_docs((ROOT / "README.md").read_text(encoding="utf-8"))
    assert targets, "README.md links to nothing in docs/"
    assert [target for target in targets if not (ROOT / target).exists()] == []


def test_the_link_check_can_fail():
    assert _links_into_docs("see [speed](docs/guide/speed.md#how-to-read-it) and ![x](./docs/x.png)") == [
        "docs/guide/speed.md", "docs/x.png"]
    assert not (ROOT / "docs/guide/no_such_page.md").exists()
