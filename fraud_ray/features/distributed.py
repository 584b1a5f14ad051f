"""The offline feature path on Ray Data: the same functions as ``offline.py``, spread over a cluster.

Window aggregates need the whole history of a card (or terminal) in one place. Rows are hashed by
key into a few buckets, each bucket is grouped on one worker, and ``offline.py`` computes it with
one vectorised pass; buckets rather than one group per key keep per-call overhead negligible when a
data set has millions of cards.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import ray.data

from fraud_ray.data import read_transactions
from fraud_ray.features.definitions import FeatureSpec
from fraud_ray.features.offline import card_features, terminal_features, transaction_features
from fraud_ray.schema import CARD_ID, TERMINAL_ID, DatasetMapping
from fraud_ray.settings import FeatureSettings

BUCKET = "__bucket"
MANIFEST = "_features.json"


@dataclass(frozen=True)
class FeatureTableSummary:
    out: Path
    rows: int
    seconds: float
    stats: dict[str, dict[str, float]]


def write_features(
    source: Path, out: Path, settings: FeatureSettings, mapping: DatasetMapping | None = None
) -> FeatureTableSummary:
    """Read transactions, compute their features on Ray and write a Parquet feature table.

    ``_features.json`` beside the Parquet files (Parquet readers skip names starting with ``_``)
    records the spec, so training knows which columns are features and a rerun knows the folder is
    its own to replace.
    """
    started = time.perf_counter()
    spec = FeatureSpec.from_settings(settings, mapping)
    _prepare(out)
    dataset = build_features(read_transactions(source, mapping), spec, settings.partitions)
    dataset.write_parquet(str(out))
    (out / MANIFEST).write_text(
        json.dumps({"spec": asdict(spec), "features": spec.names}, indent=2)
    )
    table = pq.read_table(out, columns=spec.names)
    seconds = time.perf_counter() - started
    frame = table.to_pandas()
    stats = {
        name: {
            "missing": float(frame[name].isna().mean()),
            "mean": float(frame[name].mean()),
            "std": float(frame[name].std()),
            "min": float(frame[name].min()),
            "max": float(frame[name].max()),
        }
        for name in spec.names
    }
    return FeatureTableSummary(out=out, rows=table.num_rows, seconds=seconds, stats=stats)


def _prepare(out: Path) -> None:
    """Replace an earlier feature table, but never a folder that holds anything else."""
    if out.exists() and any(out.iterdir()):
        if not (out / MANIFEST).is_file():
            raise FileExistsError(
                f"{out} is not empty and holds no {MANIFEST}: choose another --out"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def build_features(
    dataset: ray.data.Dataset, spec: FeatureSpec, partitions: int
) -> ray.data.Dataset:
    """Append every feature of ``spec`` to a dataset of canonical transactions."""
    dataset = dataset.map_batches(
        partial(_append, compute=transaction_features, spec=spec), batch_format="pandas"
    )
    for present, key, compute in (
        (spec.has_card, CARD_ID, card_features),
        (spec.has_terminal, TERMINAL_ID, terminal_features),
    ):
        if present:
            dataset = (
                dataset.map_batches(
                    partial(_bucket, key=key, partitions=partitions), batch_format="pandas"
                )
                .groupby(BUCKET, num_partitions=partitions)
                .map_groups(partial(_append, compute=compute, spec=spec), batch_format="pandas")
                .drop_columns([BUCKET])
            )
    return dataset


def _bucket(batch: pd.DataFrame, key: str, partitions: int) -> pd.DataFrame:
    """A stable hash: the same key lands in the same bucket on every worker and every run."""
    hashes = pd.util.hash_array(batch[key].to_numpy(dtype=object))
    return batch.assign(**{BUCKET: (hashes % partitions).astype("int64")})


def _append(
    batch: pd.DataFrame,
    compute: Callable[[pd.DataFrame, FeatureSpec], pd.DataFrame],
    spec: FeatureSpec,
) -> pd.DataFrame:
    features = compute(batch, spec)
    return pd.concat([batch, features.loc[:, ~features.columns.isin(batch.columns)]], axis=1)
