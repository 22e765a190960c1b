"""Sphinx configuration of colnn's documentation site.

Build: ``pip install -e ".[docs]" && sphinx-build -W --keep-going -b html docs docs/_build/html``.
The build needs no network: no intersphinx, no remote images or fonts beyond
what pydata-sphinx-theme ships. What can drift from the code is generated when
the site is built: the API pages (autosummary, from the docstrings), the
command-line page (sphinx-argparse, from the parsers of ``colnn.apps.cli``) and
the walk of ``colnn explain`` (docs/_ext/generated_pages.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

import colnn  # noqa: E402  (after the path to docs/_ext is set)

project = "colnn"
author = "the colnn developers"
copyright = "2026, the colnn developers"
version = release = colnn.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "myst_parser",
    "sphinxarg.ext",
    "generated_pages",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_generated", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]

# The API reference: one page per public name, generated from its docstring.
autosummary_generate = True
autodoc_typehints = "none"  # numpydoc's Parameters section says the types; signatures stay short
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "undoc-members": False}

# numpydoc: the class pages list their methods themselves (templates/autosummary/class.rst), so
# numpydoc's own member tables would repeat them and point at pages that do not exist.
numpydoc_show_class_members = False
numpydoc_show_inherited_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# Markdown pages: headings get anchors, so that a link may name a section (speed.md#how-to-read-it).
myst_heading_anchors = 3
# Options are spelled with two hyphens; typographic quotes would turn "--model" into an en dash.
smartquotes = False

html_theme = "pydata_sphinx_theme"
html_title = f"colnn {release}"
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc"],
}
html_static_path = ["_static"]
html_css_files = ["colnn.css"]
# The pages of `colnn explain --html`, written when the build starts (generated_pages.py).
html_extra_path = ["_generated/extra"]
html_show_sourcelink = False
