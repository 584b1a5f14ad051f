"""What was read: a short account of a transaction file before anything is trained or scored on it.

A wrong time unit, a label column of the wrong polarity or a file cut short shows here in a line,
rather than as a puzzling model minutes later.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import ray.data

from fraud_ray.schema import LABEL, TIMESTAMP, TRANSACTION_ID

# Up to this span the rows are counted per hour, beyond it per day.
HOURLY_UP_TO = pd.Timedelta(days=3)


@dataclass(frozen=True)
class DataSummary:
    rows: int
    first: pd.Timestamp
    last: pd.Timestamp
    frauds: int | None
    period: str  # "hour" or "day"
    per_period: pd.Series  # rows per period, empty periods included
    missing: dict[str, int]
    duplicate_ids: int

    @property
    def label_rate(self) -> float | None:
        return None if self.frauds is None or not self.rows else self.frauds / self.rows

    @classmethod
    def of(cls, frame: pd.DataFrame, columns: list[str]) -> DataSummary:
        """The summary of canonical transactions; ``columns`` are those the mapping filled."""
        moments = pd.to_datetime(frame[TIMESTAMP], utc=True)
        first, last = moments.min(), moments.max()
        period = "hour" if last - first <= HOURLY_UP_TO else "day"
        buckets = moments.dt.floor("h" if period == "hour" else "D")
        per_period = buckets.value_counts().sort_index()
        if len(per_period):
            every = pd.date_range(
                per_period.index[0], per_period.index[-1], freq="h" if period == "hour" else "D"
            )
            per_period = per_period.reindex(every, fill_value=0)
        frauds = int(frame[LABEL].sum()) if LABEL in frame else None
        return cls(
            rows=len(frame),
            first=first,
            last=last,
            frauds=frauds,
            period=period,
            per_period=per_period,
            missing={c: int(frame[c].isna().sum()) for c in columns if c in frame},
            duplicate_ids=int(frame[TRANSACTION_ID].duplicated().sum()),
        )

    def lines(self) -> list[tuple[str, str]]:
        """(what, value) rows for a table."""
        counts = self.per_period.to_numpy()
        found = [
            ("rows", f"{self.rows:,}"),
            ("time span", f"{self.first:%Y-%m-%d %H:%M} .. {self.last:%Y-%m-%d %H:%M} UTC"),
            (
                "label rate",
                "no label column"
                if self.label_rate is None
                else f"{self.label_rate:.3%} ({self.frauds:,} frauds)",
            ),
        ]
        if len(counts):
            found.append(
                (
                    f"rows per {self.period}",
                    f"min {counts.min():,}, median {int(np.median(counts)):,}, max {counts.max():,}"
                    f" over {len(counts):,} {self.period}s, {int((counts == 0).sum())} empty",
                )
            )
        missing = {c: n for c, n in self.missing.items() if n}
        found.append(
            (
                "missing values",
                ", ".join(f"{c} {n:,}" for c, n in missing.items()) if missing else "none",
            )
        )
        found.append(("duplicate ids", f"{self.duplicate_ids:,}"))
        return found


def summarise(dataset: ray.data.Dataset) -> DataSummary:
    """The summary of a dataset of canonical transactions (features, if any, are left out)."""
    columns = [c for c in dataset.columns() if not c.startswith("__")]
    frame = dataset.select_columns(columns).to_pandas()
    return DataSummary.of(frame, columns)
