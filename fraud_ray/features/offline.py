"""Offline execution of the feature definitions: vectorised over a history, point-in-time correct.

Each function takes the canonical transaction frame (``fraud_ray.data.apply_mapping``) holding
*every* transaction of the cards or terminals it contains, in any order, and returns one column per
feature, aligned with the input rows. No Ray here: the distributed path (``distributed.py``) calls these on
partitions that hold whole cards or whole terminals, and the tests call them directly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraud_ray.features.definitions import (
    MICROS_PER_SECOND,
    Entity,
    FeatureDefinition,
    FeatureSpec,
    Kind,
    hour_of_day,
    is_weekend,
)
from fraud_ray.schema import AMOUNT, CARD_ID, LABEL, TERMINAL_ID, TIMESTAMP, TRANSACTION_ID


def epoch_micros(timestamps: pd.Series) -> np.ndarray:
    """UTC epoch microseconds: integers compare exactly at window edges, floats would not."""
    return timestamps.dt.tz_convert("UTC").dt.as_unit("us").astype("int64").to_numpy()


def transaction_features(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    ts = epoch_micros(frame[TIMESTAMP])
    amount = frame[AMOUNT].to_numpy(dtype=np.float64)
    hour = hour_of_day(ts)
    columns: dict[str, np.ndarray] = {}
    for definition in _of(spec, Entity.TRANSACTION):
        match definition.kind:
            case Kind.AMOUNT:
                columns[definition.name] = amount
            case Kind.LOG_AMOUNT:
                columns[definition.name] = np.log1p(amount)
            case Kind.HOUR:
                columns[definition.name] = hour.astype(np.float64)
            case Kind.WEEKEND:
                columns[definition.name] = is_weekend(ts).astype(np.float64)
            case Kind.NIGHT:
                columns[definition.name] = np.asarray(spec.is_night(hour), dtype=np.float64)
            case Kind.ATTRIBUTE:
                columns[definition.name] = frame[definition.name].to_numpy(dtype=np.float64)
    return pd.DataFrame(columns, index=frame.index)


def card_features(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    return _entity_features(frame, spec, Entity.CARD, CARD_ID)


def terminal_features(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    return _entity_features(frame, spec, Entity.TERMINAL, TERMINAL_ID)


def compute_features(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """All features of a frame that holds the full history of its cards and terminals."""
    parts = [transaction_features(frame, spec)]
    if spec.has_card:
        parts.append(card_features(frame, spec))
    if spec.has_terminal:
        parts.append(terminal_features(frame, spec))
    return pd.concat(parts, axis=1)[spec.names]


def _of(spec: FeatureSpec, entity: Entity) -> list[FeatureDefinition]:
    return [d for d in spec.definitions if d.entity == entity]


def _entity_features(
    frame: pd.DataFrame, spec: FeatureSpec, entity: Entity, key_column: str
) -> pd.DataFrame:
    """Window aggregates per key, for all keys at once.

    Rows are sorted by (key, timestamp, transaction id). A row's window ``[t - w, t)`` then starts
    at the first row of the same key whose time is >= t - w, found by binary search on a composite
    of the key and the rank of the time among all times: the key keeps the search inside its own
    group. Sums are differences of prefix sums, so every window costs O(log n).
    """
    definitions = _of(spec, entity)
    n = len(frame)
    keys = pd.factorize(frame[key_column], sort=True)[0].astype(np.int64)
    ts_unsorted = epoch_micros(frame[TIMESTAMP])
    order = _history_order(keys, ts_unsorted, frame[TRANSACTION_ID].to_numpy())
    key, ts = keys[order], ts_unsorted[order]
    amount = frame[AMOUNT].to_numpy(dtype=np.float64)[order]
    labels = frame[LABEL].to_numpy(dtype=np.float64)[order] if LABEL in frame else np.zeros(n)
    # Every binary search below gets its queries in ascending order, which numpy answers an order
    # of magnitude faster than scattered ones: the time ranks are searched in time order, then the
    # (key, rank) composites in the (key, time) order the rows already have.
    by_time = np.argsort(ts, kind="stable")
    times = ts[by_time]

    def rank(bound: np.ndarray) -> np.ndarray:
        """For each row, how many transactions (of any key) happened before ``bound``."""
        ranks = np.empty(n, dtype=np.int64)
        ranks[by_time] = np.searchsorted(times, bound[by_time], side="left")
        return ranks

    stride = n + 1
    composite = key * stride + rank(ts)
    position = np.arange(n)
    starts: dict[int, np.ndarray] = {}

    def first_at_or_after(offset: int) -> np.ndarray:
        """First row of the same key at or after ``ts - offset``: one search per distinct offset."""
        if offset not in starts:
            starts[offset] = np.searchsorted(composite, key * stride + rank(ts - offset))
        return starts[offset]

    amount_sums = np.concatenate(([0.0], np.cumsum(amount)))
    fraud_sums = np.concatenate(([0.0], np.cumsum(labels)))
    columns: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for definition in definitions:
            window = definition.window_us
            match definition.kind:
                case Kind.COUNT:
                    value = (position - first_at_or_after(window)).astype(np.float64)
                case Kind.MEAN_AMOUNT | Kind.AMOUNT_TO_MEAN:
                    start = first_at_or_after(window)
                    count = position - start
                    mean = np.where(
                        count > 0, (amount_sums[position] - amount_sums[start]) / count, np.nan
                    )
                    value = (
                        mean
                        if definition.kind == Kind.MEAN_AMOUNT
                        else np.where(mean > 0, amount / mean, np.nan)
                    )
                case Kind.SECONDS_SINCE_PREVIOUS:
                    value = np.full(n, np.nan)
                    same = np.flatnonzero(key[1:] == key[:-1]) + 1
                    value[same] = (ts[same] - ts[same - 1]) / MICROS_PER_SECOND
                case Kind.FRAUD_RATE:
                    start = first_at_or_after(spec.label_delay_us + window)
                    end = first_at_or_after(spec.label_delay_us)
                    count = end - start
                    value = np.where(
                        count > 0, (fraud_sums[end] - fraud_sums[start]) / count, np.nan
                    )
                case _:
                    raise ValueError(f"{definition.kind} is not a {entity} feature")
            aligned = np.empty(n)
            aligned[order] = value
            columns[definition.name] = aligned
    return pd.DataFrame(columns, index=frame.index)


def _history_order(keys: np.ndarray, ts: np.ndarray, transaction_ids: np.ndarray) -> np.ndarray:
    """Sort by (key, time, transaction id).

    Comparing millions of id strings is the slowest part of a sort, and only rows sharing a key and
    a microsecond need it, so the ids are ranked among those few rows only.
    """
    order = np.lexsort((ts, keys))
    tied = (keys[order][1:] == keys[order][:-1]) & (ts[order][1:] == ts[order][:-1])
    if not tied.any():
        return order
    involved = np.union1d(order[1:][tied], order[:-1][tied])
    tie_rank = np.zeros(len(keys), dtype=np.int64)
    tie_rank[involved] = pd.factorize(transaction_ids[involved].astype(str), sort=True)[0]
    return np.lexsort((tie_rank, ts, keys))
