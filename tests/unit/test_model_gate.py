"""The model gate: constant scores, or a poor ranking of the reference sample, keep a version out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraud_ray.model import FraudModel
from fraud_ray.schema import LABEL, ModelRef
from fraud_ray.serving.gate import check_reference_scores, check_scores
from fraud_ray.serving.pipeline import ModelRefused

from .test_model import SPEC, make_model

REF = ModelRef(name="fraud-test", version="5")


def reference_sample(with_labels: bool = True) -> tuple[FraudModel, pd.DataFrame]:
    """A model and its reference sample as training saves it: features and scores (and labels)."""
    model, rows = make_model("xgboost")
    sample = pd.DataFrame(rows, columns=SPEC.names)
    sample["fraud_probability"] = model.probabilities(rows)
    if with_labels:
        amount = SPEC.names.index("amount")
        sample[LABEL] = (rows[:, amount] > 1.2).astype(int)
    return model, sample


def test_a_model_that_ranks_its_sample_passes() -> None:
    model, sample = reference_sample()
    check_reference_scores(model, REF, sample, min_average_precision=0.5)
    check_reference_scores(model, REF, sample.drop(columns=[LABEL]), min_average_precision=0.0)


@pytest.mark.parametrize("score", [0.0, 0.02, 1.0])
def test_constant_scores_are_refused(score: float) -> None:
    with pytest.raises(ModelRefused, match=r"one score .* learnt nothing"):
        check_scores(REF, np.full(300, score), None, 0.0)


def test_nan_scores_are_refused() -> None:
    with pytest.raises(ModelRefused, match="one score"):
        check_scores(REF, np.array([0.1, np.nan, 0.3]), None, 0.0)


def test_an_average_precision_below_the_setting_is_refused() -> None:
    labels = np.array([1, 0, 0, 0, 1, 0])
    inverted = np.array([0.1, 0.9, 0.8, 0.7, 0.2, 0.6])
    with pytest.raises(ModelRefused, match=r"average precision of 0\.\d+ .* below"):
        check_scores(REF, inverted, labels, 0.5)
    check_scores(REF, 1 - inverted, labels, 0.5)


def test_an_average_precision_bound_needs_labels_of_both_classes() -> None:
    scores = np.linspace(0, 1, 6)
    with pytest.raises(ModelRefused, match="no is_fraud column"):
        check_scores(REF, scores, None, 0.3)
    with pytest.raises(ModelRefused, match="lacks frauds or non-frauds"):
        check_scores(REF, scores, np.zeros(6), 0.3)


def test_a_sample_without_the_models_features_is_refused() -> None:
    model, sample = reference_sample()
    with pytest.raises(ModelRefused, match="lacks the features amount"):
        check_reference_scores(model, REF, sample.drop(columns=["amount"]), 0.0)
    with pytest.raises(ModelRefused, match="no rows"):
        check_reference_scores(model, REF, sample.iloc[:0], 0.0)
