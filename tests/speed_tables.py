"""The rule both the README and the speed page follow for their tables' ratio columns."""

from __future__ import annotations


def assert_ratio_columns_named(markdown: str) -> None:
    """At least two tables starting ``| case |``; each ratio column "X ÷ colnn" (X over colnn), none with a "/"."""
    headers = [line for line in markdown.splitlines() if line.startswith("| case |")]
    assert len(headers) >= 2
    for header in headers:
        for cell in (cell.strip() for cell in header.strip("|").split("|")):
            assert "/" not in cell, cell
            if "÷" in cell:
                assert cell.endswith(" ÷ colnn"), cell
