"""The integration tests: Ray and real services (the fixtures live in ``tests/conftest.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test in this directory, so ``-m "not integration"`` skips them all."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)
