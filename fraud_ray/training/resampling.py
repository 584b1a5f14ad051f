"""Class-imbalance strategies for the training split, on a pandas frame or on a Ray dataset.

Fraud is under 1% of payments, so a model trained on the raw split sees few frauds and learns to
approve. The strategies here change what the model learns from, never what it is judged on: they
apply to the training split only, and the tuner chooses a strategy and a ratio like any other
hyperparameter.

- ``none``: the split as it is.
- ``class_weights``: nothing resampled; a ``scale_pos_weight`` that weighs the frauds as if they
  were ``ratio`` times as many as the legitimate payments.
- ``undersample``: every fraud kept, legitimate payments dropped at random until frauds make up
  ``ratio`` of the legitimate count.
- ``smote``: synthetic frauds (imbalanced-learn's SMOTE over the feature columns) until there are
  ``ratio`` times as many frauds as legitimate payments.

Random choices come from a hash of each transaction id keyed by the seed, not from a generator
walking the rows, so the same seed picks the same rows whatever the row order or the block layout:
the pandas and the Ray Data paths return the same rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Generic, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import ray
import ray.data
from imblearn.over_sampling import SMOTE
from sklearn.neighbors import NearestNeighbors

from fraud_ray.data import Data
from fraud_ray.schema import LABEL, TRANSACTION_ID

Strategy = Literal["none", "class_weights", "undersample", "smote"]

_DRAW = "draw"


@dataclass(frozen=True)
class Resampling:
    """One choice of strategy; ``ratio`` is the fraud:legitimate ratio the strategy aims at."""

    strategy: Strategy = "none"
    ratio: float = 1.0
    seed: int = 0
    neighbours: int = 5

    def __post_init__(self) -> None:
        if not self.ratio > 0:
            raise ValueError(f"resampling ratio must be positive, not {self.ratio}")
        if self.neighbours < 1:
            raise ValueError(f"SMOTE needs at least one neighbour, not {self.neighbours}")


@dataclass(frozen=True)
class Resampled(Generic[Data]):
    """The training data to fit on, and the positive-class weight to fit it with."""

    data: Data
    scale_pos_weight: float = 1.0


def resample_frame(
    frame: pd.DataFrame, features: list[str], resampling: Resampling
) -> Resampled[pd.DataFrame]:
    """Apply ``resampling`` to a training frame held in memory."""
    if resampling.strategy == "none":
        return Resampled(frame)
    labels = frame[LABEL].to_numpy()
    frauds = int((labels == 1).sum())
    legit = len(frame) - frauds
    _require_frauds(frauds, resampling)
    if resampling.strategy == "class_weights":
        return Resampled(frame, _weight(frauds, legit, resampling.ratio))
    if resampling.strategy == "undersample":
        keep = _legit_quota(frauds, legit, resampling.ratio)
        if keep >= legit:
            return Resampled(frame)
        draws = _draws(frame[TRANSACTION_ID], resampling.seed)
        threshold = _kth_smallest(draws[labels == 0], keep)
        return Resampled(frame[(labels == 1) | (draws <= threshold)].reset_index(drop=True))
    count = _synthetic_count(frauds, legit, resampling.ratio)
    if count == 0:
        return Resampled(frame)
    context = _bottom(frame[labels == 0], min(legit, frauds), resampling.seed)
    synthetic = synthesise(frame[labels == 1], context, features, count, resampling)
    return Resampled(pd.concat([frame, synthetic], ignore_index=True))


def resample_dataset(
    dataset: ray.data.Dataset, features: list[str], resampling: Resampling
) -> Resampled[ray.data.Dataset]:
    """Apply ``resampling`` to a training split on Ray: the same rows ``resample_frame`` returns.

    Counting and picking the undersampling threshold each read the dataset once, so pass a
    materialised dataset. SMOTE gathers the frauds (few by nature) and an equal sample of
    legitimate rows onto the driver, synthesises there and unions the new rows back in.
    """
    if resampling.strategy == "none":
        return Resampled(dataset)
    rows = dataset.count()
    frauds = int(dataset.sum(LABEL) or 0)
    legit = rows - frauds
    _require_frauds(frauds, resampling)
    if resampling.strategy == "class_weights":
        return Resampled(dataset, _weight(frauds, legit, resampling.ratio))
    if resampling.strategy == "undersample":
        keep = _legit_quota(frauds, legit, resampling.ratio)
        if keep >= legit:
            return Resampled(dataset)
        threshold = _dataset_threshold(dataset, keep, resampling.seed)
        return Resampled(_frauds_and_legit_below(dataset, threshold, resampling.seed))
    count = _synthetic_count(frauds, legit, resampling.ratio)
    if count == 0:
        return Resampled(dataset)
    context_rows = min(legit, frauds)
    context_threshold = _dataset_threshold(dataset, context_rows, resampling.seed)
    gathered = _frauds_and_legit_below(dataset, context_threshold, resampling.seed)
    table = pa.concat_tables(ray.get(gathered.to_arrow_refs()), promote_options="default")
    frame = table.to_pandas()
    is_fraud = frame[LABEL].to_numpy() == 1
    context = _bottom(frame[~is_fraud], context_rows, resampling.seed)
    synthetic = synthesise(frame[is_fraud], context, features, count, resampling)
    block = pa.Table.from_pandas(synthetic, schema=table.schema, preserve_index=False)
    return Resampled(dataset.union(ray.data.from_arrow(block)))


def synthesise(
    minority: pd.DataFrame,
    context: pd.DataFrame,
    features: list[str],
    count: int,
    resampling: Resampling,
) -> pd.DataFrame:
    """``count`` synthetic frauds, each on the segment between a fraud and one of its neighbours.

    Plain SMOTE interpolates between frauds only; imbalanced-learn still wants both classes, so
    ``context`` (a few legitimate rows) comes along and is otherwise unused. Features are
    standardised first so that no column dominates the neighbour search by its unit (seconds
    against counts); interpolation commutes with that scaling, so the rows come back in the
    original units. SMOTE cannot take NaN: a missing value is filled with the frauds' median for
    the synthesis only, and a column no fraud has a value for stays missing in the new rows.
    A synthetic row borrows its other columns (time, card, terminal, label) from the real fraud
    nearest to it, which keeps it inside the training window and every column's type intact; its
    transaction id names it as synthetic.
    """
    if len(minority) < 2:
        raise ValueError("SMOTE needs at least two frauds in the training split")
    minority = minority.sort_values(TRANSACTION_ID, kind="stable").reset_index(drop=True)
    medians = minority[features].median()
    fill = medians.fillna(0.0)
    frauds = minority[features].fillna(fill).to_numpy(dtype="float64")
    legit = context[features].fillna(fill).to_numpy(dtype="float64")
    centre = frauds.mean(axis=0)
    scale = frauds.std(axis=0)
    scale[scale == 0] = 1.0
    smote = SMOTE(
        sampling_strategy={1: len(frauds) + count},
        k_neighbors=min(resampling.neighbours, len(frauds) - 1),
        random_state=resampling.seed,
    )
    inputs = (np.vstack([frauds, legit]) - centre) / scale
    classes = np.r_[np.ones(len(frauds), dtype="int8"), np.zeros(len(legit), dtype="int8")]
    produced, _ = smote.fit_resample(inputs, classes)
    scaled = produced[len(inputs) :]
    nearest = NearestNeighbors(n_neighbors=1).fit((frauds - centre) / scale)
    _, index = nearest.kneighbors(scaled)
    synthetic = minority.iloc[index[:, 0]].reset_index(drop=True)
    values = scaled * scale + centre
    values[:, medians.isna().to_numpy()] = np.nan
    synthetic[features] = values
    synthetic[TRANSACTION_ID] = [f"smote-{resampling.seed}-{i}" for i in range(count)]
    return synthetic


def _require_frauds(frauds: int, resampling: Resampling) -> None:
    if frauds == 0:
        raise ValueError(
            f"resampling {resampling.strategy!r} needs frauds, and the training split holds none"
        )


def _weight(frauds: int, legit: int, ratio: float) -> float:
    """Weighted frauds count ``ratio`` times the legitimate payments: ratio * n_legit / n_fraud."""
    return ratio * legit / frauds


def _legit_quota(frauds: int, legit: int, ratio: float) -> int:
    return min(legit, max(1, round(frauds / ratio)))


def _synthetic_count(frauds: int, legit: int, ratio: float) -> int:
    return max(0, math.ceil(ratio * legit) - frauds)


def _draws(ids: pd.Series, seed: int) -> np.ndarray:
    """A uniform 64-bit draw per transaction, fixed by its id and the seed alone."""
    key = f"{seed & 0xFFFF_FFFF_FFFF_FFFF:016x}"
    return pd.util.hash_array(ids.astype(str).to_numpy(dtype=object), hash_key=key)


def _kth_smallest(draws: np.ndarray, k: int) -> np.uint64:
    return np.partition(draws, k - 1)[k - 1]


def _bottom(frame: pd.DataFrame, k: int, seed: int) -> pd.DataFrame:
    """The ``k`` rows with the smallest draws: a seeded sample independent of row order."""
    draws = _draws(frame[TRANSACTION_ID], seed)
    return frame.iloc[np.argsort(draws, kind="stable")[:k]]


def _dataset_threshold(dataset: ray.data.Dataset, k: int, seed: int) -> np.uint64:
    """The k-th smallest draw among legitimate rows, from each batch's own k smallest."""
    smallest = dataset.map_batches(
        _smallest_legit_draws, fn_kwargs={"k": k, "seed": seed}, batch_format="pandas"
    ).to_pandas()
    return _kth_smallest(smallest[_DRAW].to_numpy(dtype="uint64"), k)


def _smallest_legit_draws(batch: pd.DataFrame, k: int, seed: int) -> pd.DataFrame:
    draws = _draws(batch[TRANSACTION_ID], seed)[batch[LABEL].to_numpy() == 0]
    if len(draws) > k:
        draws = np.partition(draws, k - 1)[:k]
    return pd.DataFrame({_DRAW: draws})


def _frauds_and_legit_below(
    dataset: ray.data.Dataset, threshold: np.uint64, seed: int
) -> ray.data.Dataset:
    """Every fraud and the legitimate rows drawn at or below ``threshold``, in Arrow batches.

    Arrow in and out keeps each column's type as it was; a pandas round trip would turn the
    columns into pandas' Arrow-backed types and missing floats into ``<NA>``.
    """
    return dataset.map_batches(
        _keep_frauds_and_legit_below,
        fn_kwargs={"threshold": threshold, "seed": seed},
        batch_format="pyarrow",
    )


def _keep_frauds_and_legit_below(batch: pa.Table, threshold: np.uint64, seed: int) -> pa.Table:
    legit = batch[LABEL].to_numpy() == 0
    draws = _draws(batch[TRANSACTION_ID].to_pandas(), seed)
    return batch.filter(pa.array(~legit | (draws <= threshold)))
