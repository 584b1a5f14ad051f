"""A registered model judged on labelled transactions: every figure of ``metrics.evaluate`` and
the three plots training saves, for any file and window a user points at.

The features are computed over the whole file, as in batch scoring, so the window's first
transactions see their history; only the rows of the window are judged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from fraud_ray.costs import CostPolicy
from fraud_ray.data import DataValidationError
from fraud_ray.metrics import evaluate
from fraud_ray.model import FraudModel
from fraud_ray.plots import plot_calibration, plot_cost_curve, plot_precision_recall
from fraud_ray.schema import AMOUNT, CARD_ID, LABEL, TIMESTAMP, TRANSACTION_ID, DatasetMapping
from fraud_ray.scoring import featurised
from fraud_ray.settings import FeatureSettings


@dataclass(frozen=True)
class Evaluation:
    rows: int
    frauds: int
    metrics: dict[str, float]
    plots: tuple[Path, ...]

    def summary(self) -> dict[str, object]:
        """The one JSON line ``fraud-ray evaluate`` ends with."""
        return {"rows": self.rows, "frauds": self.frauds, **self.metrics}


def evaluate_model(
    model: FraudModel,
    policy: CostPolicy,
    data: Path,
    out: Path,
    feature_settings: FeatureSettings,
    mapping: DatasetMapping | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    k: int = 100,
) -> Evaluation:
    """Score ``data`` (only [start, end) when given) with ``model`` and judge it on the labels,
    the costs under ``policy``: the settings' cost policy, which serving decides with."""
    columns = [TRANSACTION_ID, TIMESTAMP, AMOUNT, LABEL, *model.features]
    table = featurised(data, model, feature_settings, mapping, start, end)
    if LABEL not in table.columns():
        raise DataValidationError(
            "evaluation needs labels: set `label` in the dataset mapping to the 0/1 fraud column"
        )
    if model.spec.has_card:
        columns.append(CARD_ID)
    frame = table.select_columns(list(dict.fromkeys(columns))).to_pandas()
    if frame.empty:
        raise DataValidationError("no transactions in the window to evaluate")
    rows = frame[model.features].to_numpy(dtype=np.float64, na_value=np.nan)
    frame[LABEL] = frame[LABEL].astype(np.int8)
    raw = model.raw_scores(rows)
    probabilities = model.calibrator.transform(raw)
    metrics = evaluate(frame, probabilities, policy, k=k)
    labels = frame[LABEL].to_numpy()
    plots: tuple[Path, ...] = ()
    if labels.min() != labels.max():
        plots = (
            plot_precision_recall(labels, {"model": probabilities}, out / "precision_recall.png"),
            plot_cost_curve(
                probabilities,
                frame[AMOUNT].to_numpy(dtype=float),
                labels,
                policy,
                out / "cost_curve.png",
            ),
            plot_calibration(labels, raw, probabilities, out / "calibration.png"),
        )
    return Evaluation(
        rows=len(frame), frauds=int(pd.Series(labels).sum()), metrics=metrics, plots=plots
    )
