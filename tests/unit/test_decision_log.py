"""The decision log on SQLite, the embedded default: the shared contract plus what only a file has."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.dialects import sqlite

from fraud_ray.decision_log import (
    LOOKUP_CHUNK,
    DecisionLog,
    DecisionLogError,
    DriverInsert,
    decisions_table,
    feature_maps,
)
from fraud_ray.settings import Settings

from ..conftest import free_port
from ..decision_log_contract import DecisionLogContract, write


class TestSqliteDecisionLog(DecisionLogContract):
    @pytest.fixture
    def log(self, tmp_path: Path) -> DecisionLog:
        return DecisionLog(f"sqlite:///{tmp_path / 'decisions.db'}")


def test_the_default_url_creates_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    log = DecisionLog(Settings().decisions.url)
    write(log, [1])
    log.close()
    assert (tmp_path / "data" / "decisions.db").is_file()


def test_decisions_survive_reopening(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'log' / 'decisions.db'}"
    first = DecisionLog(url)
    write(first, [1, 2])
    first.close()
    reopened = DecisionLog(url)
    assert reopened.count() == 2
    assert write(reopened, [2, 3]) == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("data/decisions.db", "is not a database URL"),
        ("mysql://fraud@127.0.0.1/fraud_ray", "supports sqlite and postgresql, not mysql"),
        ("postgresql+nodriver://fraud@127.0.0.1/fraud_ray", "postgresql\\+nodriver"),
    ],
)
def test_a_bad_url_says_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(DecisionLogError, match=message):
        DecisionLog(url)


def test_an_unreachable_database_is_named_without_its_password() -> None:
    url = f"postgresql+psycopg://fraud:s3cret@127.0.0.1:{free_port()}/fraud_ray"
    with pytest.raises(DecisionLogError, match="cannot open the decision log at") as raised:
        DecisionLog(url)
    assert "s3cret" not in str(raised.value)
    assert url.split("@")[1] in str(raised.value)


def test_a_sqlite_file_where_a_folder_should_be_is_reported(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file, not a folder")
    with pytest.raises(DecisionLogError, match="cannot create"):
        DecisionLog(f"sqlite:///{tmp_path / 'taken' / 'decisions.db'}")


def test_feature_maps_keep_missing_values_missing() -> None:
    maps = feature_maps(["a", "b"], np.array([[1.0, np.nan], [2.0, 3.0]]))
    assert maps[1] == {"a": 2.0, "b": 3.0}
    assert maps[0]["a"] == 1.0 and math.isnan(maps[0]["b"])


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2025, 6, 2, 9, 30, tzinfo=UTC),
        datetime(2025, 6, 2, 9, 30, 1, 250, tzinfo=timezone(timedelta(hours=-5))),
        datetime(1970, 1, 1, tzinfo=UTC),
    ],
)
def test_sqlite_instants_are_written_as_sqlalchemy_writes_them(moment: datetime) -> None:
    """Writes skip SQLAlchemy's type processing; windows and reads still go through it, and on
    SQLite they compare text, so both must spell an instant the same way."""
    dialect = sqlite.dialect()
    through_sqlalchemy = decisions_table.c.timestamp.type._cached_bind_processor(dialect)
    assert through_sqlalchemy is not None
    written = DriverInsert(dialect, decisions_table, ["transaction_id"]).instant(moment)
    assert written == through_sqlalchemy(moment)
    assert written == DriverInsert(dialect, decisions_table, ["transaction_id"]).instant(
        moment.isoformat()
    )


def test_a_lookup_of_more_ids_than_one_query_takes_finds_them_all(tmp_path: Path) -> None:
    log = DecisionLog(f"sqlite:///{tmp_path / 'decisions.db'}")
    ids = list(range(LOOKUP_CHUNK + 5))
    write(log, ids)
    asked = [f"tx-{i:05d}" for i in ids] + ["never-logged"]
    assert set(log.logged(asked)) == set(asked[:-1])
    log.close()
