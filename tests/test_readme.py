"""The README's Python examples run as they are written, so the README cannot drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from speed_tables import assert_ratio_columns_named

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.S | re.M)


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 1


@pytest.mark.parametrize("source", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(source, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    exec(compile(source, str(README), "exec"), {"__name__": "__readme__"})


def test_the_speed_tables_use_the_benchmarks_ratio_names():
    """Every ratio column of the README's speed tables is "X ÷ colnn" or a multiple of a limit ("x limit")."""
    speed = README.read_text(encoding="utf-8").split("## Speed", 1)[1].split("\n## ", 1)[0]
    assert_ratio_columns_named(speed)
