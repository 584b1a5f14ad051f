"""The account of what was read, before training or scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraud_ray.data_summary import DataSummary


def canonical(hours: list[float], ids: list[str]) -> pd.DataFrame:
    start = pd.Timestamp("2025-04-01", tz="UTC")
    return pd.DataFrame(
        {
            "transaction_id": ids,
            "timestamp": [start + pd.Timedelta(hours=h) for h in hours],
            "amount": [0.0, 5.0, 7.0, 9.0],
            "is_fraud": [0, 1, 0, 0],
            "V1": [0.1, np.nan, np.nan, 0.4],
        }
    )


def test_a_short_file_is_counted_per_hour_with_its_gaps() -> None:
    summary = DataSummary.of(canonical([0, 0.5, 3.2, 5], ["a", "b", "c", "a"]), ["amount", "V1"])
    assert summary.rows == 4 and summary.frauds == 1 and summary.label_rate == 0.25
    assert summary.period == "hour"
    assert summary.per_period.tolist() == [2, 0, 0, 1, 0, 1]
    assert summary.missing == {"amount": 0, "V1": 2}
    assert summary.duplicate_ids == 1
    lines = dict(summary.lines())
    assert lines["missing values"] == "V1 2"
    assert "3 empty" in lines["rows per hour"]


def test_a_long_file_is_counted_per_day() -> None:
    summary = DataSummary.of(canonical([0, 30, 100, 24 * 9], list("abcd")), [])
    assert summary.period == "day"
    assert summary.per_period.sum() == 4 and len(summary.per_period) == 10
