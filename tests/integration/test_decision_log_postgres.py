"""The decision log on a real PostgreSQL: the contract SQLite meets, met by the production backend."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

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


def test_consumers_opening_a_fresh_database_together_all_succeed(postgres_url: str) -> None:
    """A pool's consumers each open the log at start-up; on an empty database their CREATE TABLEs
    used to collide (a duplicate key in ``pg_type``) and kill an actor before it consumed."""
    engine = sa.create_engine(postgres_url)
    opened: list[DecisionLog] = []
    try:
        for _ in range(5):
            metadata.drop_all(engine)
            start = threading.Barrier(6)

            def open_log(start: threading.Barrier = start) -> DecisionLog:
                start.wait()
                return DecisionLog(postgres_url)

            with ThreadPoolExecutor(6) as pool:
                opened.extend(pool.map(lambda _: open_log(), range(6)))
            assert sa.inspect(engine).has_table("decisions")
    finally:
        for log in opened:
            log.close()
        engine.dispose()
