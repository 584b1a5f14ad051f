"""Batch scoring with Ray Data: point-in-time features over a whole file, decisions for a window.

Features are computed over everything in the file, so a transaction's windows see its history even
when only a later window is scored; terminal fraud rates only ever use labels older than the label
delay, as they would have been known when the transaction happened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import ray.data

from fraud_ray.costs import CostPolicy
from fraud_ray.data import TimeWindow, filter_window, read_transactions
from fraud_ray.data_summary import DataSummary, summarise
from fraud_ray.features.distributed import build_features
from fraud_ray.model import FraudModel
from fraud_ray.schema import AMOUNT, TIMESTAMP, TRANSACTION_ID, DatasetMapping
from fraud_ray.settings import FeatureSettings

OUTPUT_SCHEMA = pa.schema(
    [
        pa.field(TRANSACTION_ID, pa.string()),
        pa.field("fraud_probability", pa.float64()),
        pa.field("decision", pa.string()),
        pa.field("expected_cost", pa.float64()),
    ]
)


@dataclass(frozen=True)
class ScoringSummary:
    rows: int
    decisions: dict[str, int]
    out: Path


def decide_batch(batch: pd.DataFrame, model: FraudModel, policy: CostPolicy) -> pd.DataFrame:
    probabilities = model.frame_probabilities(batch)
    actions, expected_costs = policy.decide(probabilities, batch[AMOUNT])
    return pd.DataFrame(
        {
            TRANSACTION_ID: batch[TRANSACTION_ID].astype(str).to_numpy(),
            "fraud_probability": probabilities,
            "decision": actions,
            "expected_cost": expected_costs,
        }
    )


def featurised(
    data: Path,
    model: FraudModel,
    feature_settings: FeatureSettings,
    mapping: DatasetMapping | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    on_summary: Callable[[DataSummary], None] | None = None,
) -> ray.data.Dataset:
    """The canonical rows of [start, end) with the model's features, computed over the whole file.

    The model's own feature spec decides the features, so a model is never fed columns it was not
    trained on; the settings only supply the partitioning of the work. ``on_summary`` is shown
    what was read (the whole file) before any scoring starts.
    """
    transactions = read_transactions(data, mapping)
    if on_summary is not None:
        transactions = transactions.materialize()
        on_summary(summarise(transactions))
    table = build_features(transactions, model.spec, feature_settings.partitions)
    if start or end:
        window = TimeWindow(start or datetime(1970, 1, 1), end or datetime(9999, 1, 1))
        table = filter_window(table, window)
    return table


def score_file(
    data: Path,
    model: FraudModel,
    policy: CostPolicy,
    out: Path,
    feature_settings: FeatureSettings,
    mapping: DatasetMapping | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    on_summary: Callable[[DataSummary], None] | None = None,
) -> ScoringSummary:
    """Score ``data`` (optionally only [start, end)) into one Parquet file at ``out``.

    ``policy`` is the cost policy of the settings, the same one the Serve graph and the stream
    decide with.
    """
    table = featurised(data, model, feature_settings, mapping, start, end, on_summary)
    columns = [TRANSACTION_ID, TIMESTAMP, *model.features]
    if AMOUNT not in columns:
        columns.append(AMOUNT)
    decisions = table.select_columns(columns).map_batches(
        decide_batch, fn_kwargs={"model": model, "policy": policy}, batch_format="pandas"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    rows = 0
    with pq.ParquetWriter(out, OUTPUT_SCHEMA) as writer:
        for batch in decisions.iter_batches(batch_format="pandas", batch_size=65536):
            writer.write_table(
                pa.Table.from_pandas(batch, schema=OUTPUT_SCHEMA, preserve_index=False)
            )
            rows += len(batch)
            for action, count in batch["decision"].value_counts().items():
                counts[str(action)] = counts.get(str(action), 0) + int(count)
    return ScoringSummary(rows=rows, decisions=counts, out=out)
