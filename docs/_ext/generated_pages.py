"""Pages of the site that the ``colnn`` command writes when the site is built, so that they cannot drift.

When the build starts, ``colnn explain`` runs through its command-line entry
point (:func:`colnn.apps.cli.main`, exactly as a user types it) and writes

- ``_generated/extra/explain_walk.html`` and ``explain_walk_backward.html``: the
  interactive pages of ``colnn explain --html``, copied to the site's root
  (``html_extra_path``) and embedded in the tutorial's page;
- ``_generated/explain.txt`` and ``explain_conv.txt``: the text walks, which
  the tutorial's page includes.

A command that fails stops the build with its exit status and what it said.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

from colnn.apps.cli import main

GENERATED = Path(__file__).resolve().parents[1] / "_generated"

# (arguments of `colnn`, the file its standard output goes to, or None)
COMMANDS = (
    (["explain"], "explain.txt"),
    (["explain", "--op", "conv"], "explain_conv.txt"),
    (["explain", "--html", str(GENERATED / "extra" / "explain_walk.html")], None),
    (["explain", "--backward", "--html", str(GENERATED / "extra" / "explain_walk_backward.html")], None),
)


class CommandFailed(RuntimeError):
    """A ``colnn`` command run for the site exited with a non-zero status."""


def run_colnn(argv: list[str]) -> str:
    """Run ``colnn ARGV`` in this process; return its standard output, or raise :class:`CommandFailed`."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main(argv)
    if status != 0:
        raise CommandFailed(f"colnn {' '.join(argv)} exited with {status}: {stderr.getvalue().strip()}")
    return stdout.getvalue()


def write_pages(app: Any = None) -> None:
    """Run :data:`COMMANDS`, writing their pages and text under :data:`GENERATED`."""
    (GENERATED / "extra").mkdir(parents=True, exist_ok=True)
    for argv, text_file in COMMANDS:
        output = run_colnn(argv)
        if text_file is not None:
            (GENERATED / text_file).write_text(output, encoding="utf-8")


def setup(app: Any) -> dict[str, Any]:
    # Sphinx checks that html_extra_path exists before the build starts, so the folder is made here.
    (GENERATED / "extra").mkdir(parents=True, exist_ok=True)
    app.connect("builder-inited", write_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
