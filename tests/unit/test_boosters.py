"""The two model families behind one set of calls, without Ray: parameters, fitting, scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from fraud_ray.boosters import (
    BOOSTER_FILES,
    Family,
    booster_params,
    contributions,
    fit,
    load_booster,
    raw_scores,
    trees,
)

FEATURES = ["signal", "weak_signal", "noise"]


def arrays(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """About 5% fraud, decided mostly by the first two features; a few values missing."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(rows, len(FEATURES)))
    score = values[:, 0] + 0.5 * values[:, 1] + rng.normal(scale=0.4, size=rows)
    values[::11, 2] = np.nan
    return values, (score > 1.9).astype(np.float64)


def test_booster_params_keep_each_familys_names() -> None:
    xgboost = booster_params("xgboost", {"learning_rate": 0.1, "max_depth": 4}, 2, 5.0, seed=3)
    assert xgboost["eta"] == 0.1 and "learning_rate" not in xgboost
    assert xgboost["scale_pos_weight"] == 5.0 and xgboost["nthread"] == 2
    lightgbm = booster_params("lightgbm", {"bagging_fraction": 0.8}, 1, 1.0)
    assert lightgbm["bagging_freq"] == 1 and lightgbm["num_threads"] == 1
    with pytest.raises(ValueError, match="num_leaves"):
        booster_params("xgboost", {"num_leaves": 31}, 1, 1.0)
    with pytest.raises(ValueError, match="unknown model family 'catboost'"):
        booster_params("catboost", {}, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize("family", ["xgboost", "lightgbm"])
def test_fit_stops_early_keeps_the_best_round_and_reloads(family: Family, tmp_path: Path) -> None:
    train, validation, test = arrays(3000, 1), arrays(1500, 2), arrays(1500, 3)
    params = booster_params(family, {"learning_rate": 0.3}, 1, seed=0)
    fitted = fit(family, params, train, validation, FEATURES, 200, 4)

    assert fitted.rounds < 200
    assert fitted.rounds == fitted.best_iteration + 1 + 4
    assert trees(fitted.booster) == fitted.best_iteration + 1
    scores = raw_scores(fitted.booster, test[0])
    assert ((scores >= 0) & (scores <= 1)).all()
    assert average_precision_score(test[1], scores) > 0.5

    explained = contributions(fitted.booster, test[0], FEATURES)
    assert explained.shape == (len(test[1]), len(FEATURES) + 1)
    np.testing.assert_allclose(
        explained.sum(axis=1), np.log(scores / (1 - scores)), rtol=1e-3, atol=1e-3
    )

    path = tmp_path / BOOSTER_FILES[family]
    fitted.booster.save_model(str(path))
    np.testing.assert_allclose(raw_scores(load_booster(family, path), test[0]), scores)


@pytest.mark.parametrize("family", ["xgboost", "lightgbm"])
def test_without_validation_every_round_is_kept(family: Family) -> None:
    params = booster_params(family, {}, 1, seed=0)
    fitted = fit(family, params, arrays(1000, 4), None, FEATURES, 12, 4)
    assert (fitted.rounds, fitted.best_iteration, trees(fitted.booster)) == (12, 11, 12)
