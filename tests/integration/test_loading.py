"""Reading transactions with Ray Data gives what the pandas path gives, and fails the same way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray.data
import ray.exceptions

from fraud_ray.data import (
    DataValidationError,
    TimeWindow,
    filter_window,
    read_transactions,
    read_transactions_pandas,
)
from fraud_ray.schema import (
    AMOUNT,
    CARD_ID,
    FRAUD_SCENARIO,
    LABEL,
    TERMINAL_ID,
    TIMESTAMP,
    TRANSACTION_ID,
    DatasetMapping,
)

DAYS = ("2025-04-01", "2025-04-02", "2025-04-03")
CANONICAL = [TRANSACTION_ID, TIMESTAMP, CARD_ID, TERMINAL_ID, AMOUNT, LABEL]


def _write_hive(root: Path, amounts: dict[str, float] | None = None) -> Path:
    """Three days of four transactions each, laid out as the simulator writes them."""
    amounts = amounts or {}
    for number, day in enumerate(DAYS):
        ids = [f"{day}-{i}" for i in range(4)]
        start = datetime.fromisoformat(day).replace(tzinfo=UTC)
        table = pa.table(
            {
                TRANSACTION_ID: ids,
                TIMESTAMP: pa.array(
                    [start + timedelta(hours=5 * i) for i in range(4)],
                    pa.timestamp("us", tz="UTC"),
                ),
                CARD_ID: [f"card-{(number + i) % 3}" for i in range(4)],
                TERMINAL_ID: [f"term-{i}" for i in range(4)],
                AMOUNT: [amounts.get(tx, 10.0 * (number + 1) + i) for i, tx in enumerate(ids)],
                LABEL: pa.array([0, 1, 0, 0], pa.int8()),
                FRAUD_SCENARIO: pa.array([0, 2, 0, 0], pa.int8()),
            }
        )
        folder = root / f"day={day}"
        folder.mkdir(parents=True)
        pq.write_table(table, folder / "part-0.parquet")
    return root


def _numpy_backed(frame: pd.DataFrame) -> pd.DataFrame:
    """Ray returns Arrow-backed columns; compare values and types on common ground."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return table.replace_schema_metadata(None).to_pandas()


def _assert_same(ray_frame: pd.DataFrame, pandas_frame: pd.DataFrame) -> None:
    def ordered(frame: pd.DataFrame) -> pd.DataFrame:
        frame = _numpy_backed(frame)
        return frame.sort_values(TRANSACTION_ID, ignore_index=True)

    pd.testing.assert_frame_equal(ordered(ray_frame), ordered(pandas_frame))


def test_hive_parquet_directory(ray_session: None, tmp_path: Path) -> None:
    root = _write_hive(tmp_path / "raw")

    dataset = read_transactions(root).materialize()
    schema = dataset.schema()
    frame = dataset.to_pandas()

    assert schema is not None
    assert schema.names == CANONICAL
    assert dict(zip(schema.names, schema.types, strict=True))[TIMESTAMP] == pa.timestamp(
        "us", tz="UTC"
    )
    assert dict(zip(schema.names, schema.types, strict=True))[LABEL] == pa.int8()
    assert len(frame) == 12
    _assert_same(frame, read_transactions_pandas(root))
    assert not ray.data.DataContext.get_current().raise_original_map_exception


CSV_WITHOUT_IDS = DatasetMapping(
    time="seconds",
    time_unit="s",
    time_origin=datetime(2024, 1, 1, tzinfo=UTC),
    amount="amt",
    label="fraud",
    features=["age"],
)
CSV_WITH_IDS = DatasetMapping(
    id="ref", time="when", card="pan", amount="amt", label="fraud", features=["age"]
)


def _write_csvs(folder: Path) -> Path:
    """Two files whose sorted order differs from the order they are written in."""
    folder.mkdir()
    (folder / "b.csv").write_text(
        "ref,when,seconds,pan,amt,fraud,age,branch\n"
        "r3,2024-01-03T00:00:00+01:00,7200,411,7.5,1,40,north\n"
        "r4,2024-01-04 08:30:00,10800,412,8,0,,south\n"
    )
    (folder / "a.csv").write_text(
        "ref,when,seconds,pan,amt,fraud,age,branch\n"
        "r1,2024-01-01T00:00:00Z,0,411,1.25,0,31,north\n"
        "r2,2024-01-02T12:00:00,3600,413,99,0,58,east\n"
    )
    return folder


@pytest.mark.parametrize("mapping", [CSV_WITHOUT_IDS, CSV_WITH_IDS], ids=["row-numbers", "ids"])
def test_csv_directory_through_a_mapping(
    ray_session: None, tmp_path: Path, mapping: DatasetMapping
) -> None:
    folder = _write_csvs(tmp_path / "csv")

    frame = read_transactions(folder, mapping).to_pandas()
    expected = read_transactions_pandas(folder, mapping)

    _assert_same(frame, expected)
    assert list(frame.columns) == list(expected.columns)
    if mapping.id is None:
        # Row numbers follow the sorted files: a.csv's rows come first.
        by_id = _numpy_backed(frame).set_index(TRANSACTION_ID)
        assert by_id[AMOUNT].to_dict() == {"0": 1.25, "1": 99.0, "2": 7.5, "3": 8.0}
        assert by_id.loc["2", TIMESTAMP] == pd.Timestamp("2024-01-01 02:00", tz="UTC")
    else:
        by_id = _numpy_backed(frame).set_index(TRANSACTION_ID)
        assert by_id.loc["r3", TIMESTAMP] == pd.Timestamp("2024-01-02 23:00", tz="UTC")
        assert by_id.loc["r4", TIMESTAMP] == pd.Timestamp("2024-01-04 08:30", tz="UTC")
        assert by_id.loc["r1", CARD_ID] == "411"


def test_filter_window_on_a_dataset(ray_session: None, tmp_path: Path) -> None:
    folder = _write_csvs(tmp_path / "csv")
    window = TimeWindow(datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 4, 8, 30, tzinfo=UTC))

    kept = filter_window(read_transactions(folder, CSV_WITH_IDS), window).to_pandas()

    assert sorted(kept[TRANSACTION_ID]) == ["r2", "r3"]
    _assert_same(kept, filter_window(read_transactions_pandas(folder, CSV_WITH_IDS), window))


def test_missing_column_fails_before_anything_runs(ray_session: None, tmp_path: Path) -> None:
    root = _write_hive(tmp_path / "raw")
    mapping = DatasetMapping(id=TRANSACTION_ID, time=TIMESTAMP, amount="amount_eur")

    with pytest.raises(DataValidationError, match=r"'amount_eur' \(amount\)") as caught:
        read_transactions(root, mapping)

    assert not isinstance(caught.value, ray.exceptions.RayError)
    assert "day" in str(caught.value)  # the hive partition column counts as a column, as in Ray


def test_negative_amount_surfaces_as_data_validation_error(
    ray_session: None, tmp_path: Path
) -> None:
    root = _write_hive(tmp_path / "raw", amounts={"2025-04-02-3": -5.0})
    dataset = read_transactions(root)

    with pytest.raises(DataValidationError) as caught:
        dataset.materialize()

    message = str(caught.value)
    assert isinstance(caught.value, ray.exceptions.RayTaskError)
    assert f"amount column {AMOUNT!r}: negative in 1 of" in message
    assert "transaction_id '2025-04-02-3'" in message
