"""Under ``CI=true``, a test skipped because a dependency that CI installs is missing fails the run.

Every optional piece (torch, JAX, Dask, ONNX Runtime, Chromium...) is reached through
``pytest.importorskip`` or a skip that names it, so if one stopped importing in CI a
whole backend would turn into skipped lines and the run would stay green. This plugin
(its hooks are imported by ``conftest.py``) tells those skips from the others (a dtype a
library lacks, a geometry with no window), which stay skips:

- a skip raised inside ``pytest.importorskip(modname)`` during a test, its setup or
  teardown becomes a failure naming the module, when that module's top-level package is
  one of :data:`CI_MODULES`;
- a test module skipped as a whole by a module-level ``importorskip`` (collection
  reports carry only the skip's location, so the call is read from that source line)
  is listed at the end and the run's exit status set to 1;
- skips that say in words that an installed piece is missing (:data:`MISSING_IN_WORDS`)
  count as well.

Outside CI (``CI`` unset, or not ``true``/``1``/``yes``) nothing changes.
"""

from __future__ import annotations

import linecache
import os
import platform
import re
from types import TracebackType
from typing import Any

import pytest

# What .ci/run installs, by import name: the test extra of pyproject.toml with the extras
# it names (checked by tests/test_ci_skips.py), the core dependencies, and torch==2.13.0.
CI_MODULES = frozenset({
    "numpy", "numba", "threadpoolctl", "array_api_compat", "array_api_extra",  # core
    "sklearn", "mlxtend", "tqdm", "matplotlib",  # apps
    "dask", "distributed", "zarr",  # dask
    "ome_zarr_models", "ome_zarr", "ngff_zarr",  # imaging
    "onnx", "onnxruntime", "jax", "jaxlib",  # bench
    "pytest", "xdist", "hypothesis", "array_api_strict", "selenium", "expecttest",  # test
    "torch",
} | ({"tbb"} if platform.machine() in ("x86_64", "AMD64") else set()))  # tbb's wheels: x86-64 only

# Skips that name a missing piece CI installs in words rather than through importorskip:
# Debian's chromium and chromium-driver (.ci/run's apt-get), and the bench peers.
MISSING_IN_WORDS = (
    re.compile(r"no headless browser"),
    re.compile(r"neither ONNX Runtime nor JAX is installed"),
)

_IMPORTORSKIP_CALL = re.compile(r"importorskip\(\s*[\"']([\w.]+)[\"']")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _importorskip_module(traceback: TracebackType | None) -> str | None:
    """The ``modname`` of the ``pytest.importorskip`` call this skip was raised in, if any."""
    while traceback is not None:
        frame = traceback.tb_frame
        if frame.f_code.co_name == "importorskip" and "modname" in frame.f_locals:
            return str(frame.f_locals["modname"])
        traceback = traceback.tb_next
    return None


def missing_ci_piece(module: str | None, reason: str) -> str | None:
    """What CI installs that this skip says is missing, or None for a skip of another kind."""
    if module is not None and module.split(".")[0] in CI_MODULES:
        return repr(module)
    for words in MISSING_IN_WORDS:
        if words.search(reason):
            return f"what the skip names ({words.pattern!r})"
    return None


def _skip_reason(longrepr: Any) -> str:
    return str(longrepr[2]).removeprefix("Skipped: ") if isinstance(longrepr, tuple) else str(longrepr)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    report = yield
    if not (in_ci() and report.skipped and call.excinfo is not None) or hasattr(report, "wasxfail"):
        return report
    reason = _skip_reason(report.longrepr)
    missing = missing_ci_piece(_importorskip_module(call.excinfo.tb), reason)
    if missing is not None:
        report.outcome = "failed"
        report.longrepr = (f"CI=true: CI installs {missing}, but this test was skipped for its absence "
                           f"({reason}); check the installation (.ci/run)")
    return report


# Module-level skips seen by this process: the controller's under pytest-xdist, which gets
# every worker's skipped collection reports (workers leave the exit status to it).
_pending: list[str] = []
_worker = False


def pytest_configure(config: pytest.Config) -> None:
    global _worker
    _worker = hasattr(config, "workerinput")


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if _worker or not (in_ci() and report.skipped and isinstance(report.longrepr, tuple)):
        return
    path, lineno, _ = report.longrepr
    call = _IMPORTORSKIP_CALL.search(linecache.getline(str(path), int(lineno)))
    reason = _skip_reason(report.longrepr)
    missing = missing_ci_piece(call.group(1) if call else None, reason)
    if missing is not None:
        _pending.append(f"{path}:{lineno}: CI installs {missing}, but the module was skipped ({reason})")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _pending:
        terminalreporter.section("skipped for want of what CI installs (CI=true)", red=True)
        for line in dict.fromkeys(_pending):
            terminalreporter.line(line, red=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _pending and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
