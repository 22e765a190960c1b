"""Shared fixtures: PyTorch as the oracle, and the backends every conformance test runs on.

Also registers ``ci_skips``: under ``CI=true`` a test skipped for want of a dependency that
CI installs fails the run.
"""

from __future__ import annotations

import numpy as np
import pytest

import ci_skips
from backends import BACKENDS, Backend, make_backend


def pytest_configure(config):
    """Under CI=true, a skip for want of a dependency that CI installs fails the run (see ci_skips)."""
    if not config.pluginmanager.is_registered(ci_skips):
        config.pluginmanager.register(ci_skips, "ci_skips")


@pytest.fixture(scope="session")
def torch():
    """The torch module, or a skip if it is not installed (CI installs torch==2.13.0)."""
    return pytest.importorskip("torch")


# Eager JAX compiles every new shape of every operation: its backend is a quarter of the suite's time,
# so it runs under the ``slow`` marker (``pytest -m slow``; CI runs both halves).
@pytest.fixture(params=[pytest.param(name, marks=pytest.mark.slow) if name == "jax" else name for name in BACKENDS])
def backend(request) -> Backend:
    """Each NumPy strategy, then the Array API path on array_api_strict, PyTorch and (slow) JAX arrays."""
    return make_backend(request.param)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(autouse=True)
def parallel_kernels_even_for_small_inputs(monkeypatch):
    """Test arrays are small; without this the kernels would run them on one thread only."""
    from colnn.kernels import threads

    monkeypatch.setattr(threads, "SERIAL_BELOW_BYTES", 0)


@pytest.fixture(autouse=True)
def winograd_for_any_channel_count(monkeypatch):
    """Test convolutions have few channels; without this none would take the Winograd path."""
    from colnn.kernels import winograd

    monkeypatch.setattr(winograd, "MIN_CHANNELS", 1)


@pytest.fixture(scope="session")
def dask_cluster():
    """A client of one ``distributed.LocalCluster`` of two worker processes on 127.0.0.1, shared by all tests.

    It is not made the process's default scheduler: a default client would capture every later
    ``.compute()`` of the worker process, including the peers' readers in other tests.
    """
    distributed = pytest.importorskip("distributed", reason="needs distributed (pip install colnn[dask])")
    with (distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address=":0") as cluster,
          distributed.Client(cluster, set_as_default=False) as client):
        yield client
