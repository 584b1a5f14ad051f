"""Shared fixtures for the tests that need a local Ray (and, later, real services)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
import ray.data

from fraud_ray.runtime import configure_data
from fraud_ray.settings import RaySettings

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test in this directory, so ``-m "not integration"`` skips them all."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One small local Ray for the whole session: starting Ray costs seconds, not milliseconds."""
    os.environ["RAY_AUTH_MODE"] = "disabled"  # Ray 2.60 turns token auth on by default
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    configure_data(RaySettings())  # the Ray Data knobs production uses
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()
