"""How the decisions actually taken did, judged on the labels that have arrived so far.

Chargebacks arrive weeks after the payment, so a recent day has few labels or none: every figure
that needs labels is computed on the labelled decisions only, next to how many there are, and a
ratio with nothing to rest on is ``None``. Reading an unlabelled day as a day of perfect (or
useless) decisions is the mistake this module exists to avoid. Costs are those of the actions the
log says were taken, priced with the fees each decision records it was taken with, not with the
costs in force today.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pandas as pd

from fraud_ray.costs import approve_all_cost, realised_costs
from fraud_ray.decision_log import DECLINE_COST, REVIEW_COST
from fraud_ray.metrics import average_precision, card_precision_at_k
from fraud_ray.monitoring.summaries import (
    DayPerformance,
    ModelComparison,
    ModelOutcome,
    PerformanceReport,
)
from fraud_ray.schema import AMOUNT, LABEL, TIMESTAMP, TRANSACTION_ID, Action

PROBABILITY = "fraud_probability"
DECISION = "decision"
MODEL_VERSION = "model_version"


@dataclass(frozen=True)
class _Judged:
    """What one model's decisions on labelled transactions were worth."""

    labelled: int
    frauds: int
    precision: float | None
    recall: float | None
    average_precision: float | None
    realised_cost: float
    savings: float


def daily_performance(
    frame: pd.DataFrame, k: int, model_version: str | None = None
) -> PerformanceReport:
    """One ``DayPerformance`` per UTC day of transaction time that has decisions.

    ``frame`` is what ``DecisionLog.frame`` returns. Card precision@k is computed once over the
    labelled rows of the whole frame rather than day by day, because its definition carries state
    across days: a card found on one day is blocked and not counted again later.
    """
    if model_version is not None:
        frame = frame[frame[MODEL_VERSION] == model_version]
    labelled = _labelled(frame)
    card_precision: dict[date, float] = {}
    if len(labelled):
        per_day = card_precision_at_k(labelled, labelled[PROBABILITY], k).per_day
        card_precision = {pd.Timestamp(day).date(): float(v) for day, v in per_day.items()}
    report = [
        _day(day.date(), rows, card_precision.get(day.date()))
        for day, rows in frame.groupby(frame[TIMESTAMP].dt.floor("D"), sort=True)
    ]
    return PerformanceReport(model_version=model_version, k=k, days=report)


def compare_models(
    served: pd.DataFrame,
    shadow: pd.DataFrame,
    window: tuple[datetime, datetime],
) -> ModelComparison:
    """The champion's served decisions against each challenger's shadow decisions.

    ``served`` is what ``DecisionLog.frame`` returns and ``shadow`` what ``DecisionLog.shadow_frame``
    returns; rows outside ``window`` (transaction time in [start, end)) are left out. Every outcome
    is computed on the same transactions: the labelled ones that the champion and every challenger
    in the window decided, so that the figures side by side are about the same payments. With one
    challenger, the usual case, that is simply what both decided. The champion gets one outcome
    per served version among them (a rollout within the window makes two).
    """
    served, shadow = _within(served, window), _within(shadow, window)
    challengers = sorted(shadow[MODEL_VERSION].unique(), key=version_order)
    labelled = _labelled(served)
    common = set(labelled[TRANSACTION_ID]) if challengers else set()
    for version in challengers:
        common &= set(shadow.loc[shadow[MODEL_VERSION] == version, TRANSACTION_ID])
    champion = labelled[labelled[TRANSACTION_ID].isin(common)].set_index(TRANSACTION_ID)
    rivals = _labelled(shadow[shadow[TRANSACTION_ID].isin(common)])
    # Versions with nothing in common still appear, with no labelled transactions, so that a
    # comparison waiting for labels shows which models it will compare.
    champion_versions = served.loc[
        served[TRANSACTION_ID].isin(shadow[TRANSACTION_ID]), MODEL_VERSION
    ].unique()
    outcomes = [
        _outcome("champion", version, champion[champion[MODEL_VERSION] == version])
        for version in sorted(champion_versions, key=version_order)
    ]
    outcomes += [
        _outcome("challenger", version, rivals[rivals[MODEL_VERSION] == version])
        for version in challengers
    ]
    actions = rivals.pivot(index=TRANSACTION_ID, columns=MODEL_VERSION, values=DECISION)
    same = actions.eq(champion[DECISION].reindex(actions.index), axis=0).all(axis=1)
    return ModelComparison(
        window_start=window[0],
        window_end=window[1],
        compared=len(common),
        agreement=float(same.mean()) if len(common) else None,
        outcomes=outcomes,
    )


def version_order(version: str) -> tuple[int, str]:
    """Registry versions are numbers written as text: "10" comes after "9"."""
    return (int(version), "") if version.isdigit() else (-1, version)


def _day(day: date, rows: pd.DataFrame, card_precision: float | None) -> DayPerformance:
    judged = _judge(_labelled(rows))
    has_labels = judged.labelled > 0
    return DayPerformance(
        day=day,
        decisions=len(rows),
        alerts=int((rows[DECISION] != Action.APPROVE.value).sum()),
        labelled=judged.labelled,
        unlabelled=len(rows) - judged.labelled,
        frauds=judged.frauds,
        precision=judged.precision,
        recall=judged.recall,
        average_precision=judged.average_precision,
        card_precision_at_k=card_precision,
        expected_cost=float(rows["expected_cost"].sum()),
        realised_cost=judged.realised_cost if has_labels else None,
        savings=judged.savings if has_labels else None,
    )


def _outcome(role: str, version: str, rows: pd.DataFrame) -> ModelOutcome:
    judged = _judge(rows)
    return ModelOutcome(
        role=role,
        model_version=version,
        labelled=judged.labelled,
        average_precision=judged.average_precision,
        precision=judged.precision,
        recall=judged.recall,
        realised_cost=judged.realised_cost,
        savings=judged.savings,
    )


def _judge(labelled: pd.DataFrame) -> _Judged:
    """The figures of decisions on labelled rows; the day report and the comparison share them,
    so that a model's precision means the same on both pages."""
    fraud = labelled[LABEL].to_numpy(dtype=np.int8)
    actions = labelled[DECISION].to_numpy()
    amounts = labelled[AMOUNT].to_numpy(dtype=float)
    alerted = actions != Action.APPROVE.value
    caught = int((alerted & (fraud == 1)).sum())
    realised = float(
        realised_costs(
            actions,
            amounts,
            fraud,
            labelled[REVIEW_COST].to_numpy(dtype=float),
            labelled[DECLINE_COST].to_numpy(dtype=float),
        ).sum()
    )
    return _Judged(
        labelled=len(labelled),
        frauds=int(fraud.sum()),
        precision=_ratio(caught, int(alerted.sum())),
        recall=_ratio(caught, int(fraud.sum())),
        average_precision=_defined(average_precision(fraud, labelled[PROBABILITY])),
        realised_cost=realised,
        savings=approve_all_cost(amounts, fraud) - realised,
    )


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows whose label has arrived, with the label as a plain integer column."""
    labelled = frame[frame[LABEL].notna()]
    return labelled.assign(**{LABEL: labelled[LABEL].to_numpy(dtype=np.int8)})


def _within(frame: pd.DataFrame, window: tuple[datetime, datetime]) -> pd.DataFrame:
    start, end = window
    return frame[(frame[TIMESTAMP] >= start) & (frame[TIMESTAMP] < end)]


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _defined(value: float) -> float | None:
    """JSON has no NaN: an undefined figure is None."""
    return None if math.isnan(value) else float(value)
