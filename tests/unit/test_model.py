"""The servable bundle: it scores, explains and decides the same after a save and a load."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb

from fraud_ray.calibration import Calibrator
from fraud_ray.costs import CostPolicy
from fraud_ray.features.definitions import FeatureSpec
from fraud_ray.model import FraudModel

SPEC = FeatureSpec(has_card=False, has_terminal=False)


def make_model(family: str, spec: FeatureSpec = SPEC) -> tuple[FraudModel, np.ndarray]:
    """A small model whose fraud probability rises with the amount column."""
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(600, len(spec.names)))
    amount = spec.names.index("amount")
    labels = (rows[:, amount] + 0.3 * rng.normal(size=600) > 1.2).astype(int)
    if family == "xgboost":
        booster = xgb.train(
            {"objective": "binary:logistic", "max_depth": 3, "verbosity": 0},
            xgb.DMatrix(rows, label=labels, feature_names=spec.names),
            num_boost_round=20,
        )
        raw = booster.inplace_predict(rows)
    else:
        booster = lgb.train(
            {"objective": "binary", "verbosity": -1, "num_leaves": 7},
            lgb.Dataset(rows, label=labels),
            num_boost_round=20,
        )
        raw = booster.predict(rows)
    calibrator = Calibrator().fit(raw, labels)
    model = FraudModel(booster, family, calibrator, spec, {"note": "t"})
    return model, rows


@pytest.mark.parametrize("family", ["xgboost", "lightgbm"])
def test_a_saved_bundle_scores_the_same(family: str, tmp_path: Path) -> None:
    model, rows = make_model(family)
    loaded = FraudModel.load(model.save(tmp_path / "bundle"))
    np.testing.assert_allclose(loaded.probabilities(rows), model.probabilities(rows))
    assert loaded.spec == model.spec
    assert loaded.metadata == {"note": "t"}


@pytest.mark.parametrize("family", ["xgboost", "lightgbm"])
def test_contributions_add_up_to_the_raw_log_odds(family: str) -> None:
    """The reasons are exact: with the booster's bias, the contributions are its margin."""
    model, rows = make_model(family)
    contributions = model.contributions(rows)
    assert contributions.shape == rows.shape
    raw = model.raw_scores(rows)
    margin = np.log(raw / (1 - raw))
    bias = margin - contributions.sum(axis=1)
    np.testing.assert_allclose(bias, bias[0], atol=1e-3)
    riskiest = int(np.argmax(raw))
    assert model.features[int(np.argmax(contributions[riskiest]))] == "amount"


def test_decisions_weigh_the_amount() -> None:
    model, rows = make_model("xgboost")
    probabilities = model.probabilities(rows)
    uncertain = np.flatnonzero((probabilities > 0.01) & (probabilities < 0.5))
    assert uncertain.size, "the synthetic model should have uncertain rows"
    same = np.repeat(rows[uncertain[:1]], 2, axis=0)
    probabilities = model.probabilities(same)
    actions, _ = CostPolicy(3.0, 10.0).decide(probabilities, np.array([5.0, 5000.0]))
    assert probabilities[0] == probabilities[1]
    assert actions.tolist() == ["approve", "review"]


def test_rows_of_the_wrong_width_are_refused() -> None:
    model, rows = make_model("xgboost")
    with pytest.raises(ValueError, match="features"):
        model.probabilities(rows[:, :3])
