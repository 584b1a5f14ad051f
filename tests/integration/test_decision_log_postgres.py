"""The decision log on a real PostgreSQL: the contract SQLite meets, met by the production backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from fraud_ray.decision_log import DecisionLog, metadata

from ..decision_log_contract import DecisionLogContract


class TestPostgresDecisionLog(DecisionLogContract):
    @pytest.fixture
    def log(self, postgres_url: str) -> Iterator[DecisionLog]:
        """A log with an empty table: the server lives for the session, the table for one test."""
        engine = sa.create_engine(postgres_url)
        metadata.drop_all(engine)
        engine.dispose()
        log = DecisionLog(postgres_url)
        yield log
        log.close()
