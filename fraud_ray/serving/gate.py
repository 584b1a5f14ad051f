"""The model gate: a version must score its own reference sample like a model before it may serve.

The probe (``ServingModel.probe``) proves a version can score at all; it cannot tell a model that
learnt nothing, which gives every transaction the same score and so approves every fraud. The
reference sample saved with each version (validation rows, for drift) can: scores that do not vary
on it are refused, and so is an average precision below ``serving.min_average_precision`` when the
sample carries its labels. Reload and promote call ``admit`` before a version replaces the serving
one, so a refused version changes nothing; a version registered without a sample cannot be judged
and is refused too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from fraud_ray.metrics import average_precision
from fraud_ray.model import FraudModel
from fraud_ray.registry import Registry
from fraud_ray.schema import LABEL, ModelRef
from fraud_ray.serving.pipeline import ModelRefused

# Calibrated probabilities closer than this on every row of the sample are one score.
CONSTANT_SPREAD = 1e-9


def admit(
    registry: Registry, model: FraudModel, ref: ModelRef, min_average_precision: float
) -> None:
    """Refuse (``ModelRefused``) the registered version ``ref`` unless it scores the reference
    sample saved with it like a model."""
    try:
        sample = registry.reference_sample(f"models:/{ref.name}/{ref.version}")
    except MlflowException as error:
        raise ModelRefused(f"{_named(ref)} cannot be judged: {error.message}") from None
    check_reference_scores(model, ref, sample, min_average_precision)


def check_reference_scores(
    model: FraudModel, ref: ModelRef, sample: pd.DataFrame, min_average_precision: float
) -> None:
    """Score the version's reference sample and refuse it (``ModelRefused``) if the scores are
    constant or rank the frauds too poorly."""
    missing = [name for name in model.features if name not in sample.columns]
    if missing:
        raise ModelRefused(
            f"{_named(ref)}: its reference sample lacks the features {', '.join(missing)}"
        )
    if sample.empty:
        raise ModelRefused(f"{_named(ref)}: its reference sample has no rows to judge it on")
    probabilities = model.probabilities(sample[model.features].to_numpy(dtype=np.float64))
    labels = sample[LABEL].to_numpy() if LABEL in sample.columns else None
    check_scores(ref, probabilities, labels, min_average_precision)


def check_scores(
    ref: ModelRef,
    probabilities: np.ndarray,
    labels: np.ndarray | None,
    min_average_precision: float,
) -> None:
    """The gate on scores already computed: constant scores are refused; with labels (both
    classes), so is an average precision below ``min_average_precision``. A bound above 0 with
    no labels to check it on is refused too: the operator asked for a check that cannot be made."""
    spread = float(np.ptp(probabilities)) if len(probabilities) else 0.0
    if not np.isfinite(spread) or spread <= CONSTANT_SPREAD:
        raise ModelRefused(
            f"{_named(ref)} gives the {len(probabilities):,} rows of its reference sample one "
            f"score ({float(probabilities[0]) if len(probabilities) else float('nan'):.6g}): it "
            "has learnt nothing to rank transactions by"
        )
    if min_average_precision <= 0:
        return
    if labels is None:
        raise ModelRefused(
            f"{_named(ref)}: its reference sample has no {LABEL} column, so its average precision "
            f"cannot be checked against serving.min_average_precision ({min_average_precision})"
        )
    precision = average_precision(labels, probabilities)
    if np.isnan(precision):
        raise ModelRefused(
            f"{_named(ref)}: its reference sample lacks frauds or non-frauds, so its average "
            f"precision cannot be checked against serving.min_average_precision "
            f"({min_average_precision})"
        )
    if precision < min_average_precision:
        raise ModelRefused(
            f"{_named(ref)} has an average precision of {precision:.4f} on its reference sample, "
            f"below serving.min_average_precision ({min_average_precision})"
        )


def _named(ref: ModelRef) -> str:
    return f"{ref.name} version {ref.version}"
