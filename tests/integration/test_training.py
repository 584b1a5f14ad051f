"""Both model families trained through Ray Train, and the imbalance strategies on Ray Data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray.data
from sklearn.metrics import average_precision_score

from fraud_ray.boosters import Family, trees
from fraud_ray.schema import LABEL, TRANSACTION_ID
from fraud_ray.settings import TrainingSettings
from fraud_ray.training.distributed import train_model
from fraud_ray.training.resampling import Resampling, resample_dataset, resample_frame

FEATURES = ["signal", "weak_signal", "noise_a", "noise_b"]


def synthetic(rows: int, seed: int) -> pd.DataFrame:
    """About 5% fraud, decided mostly by two of the four features."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(rows, len(FEATURES)))
    score = values[:, 0] + 0.5 * values[:, 1] + rng.normal(scale=0.4, size=rows)
    frame = pd.DataFrame(values, columns=FEATURES)
    frame[LABEL] = (score > 1.9).astype("int8")
    frame[TRANSACTION_ID] = [f"{seed}-{i}" for i in range(rows)]
    return frame


@pytest.mark.parametrize("family", ["xgboost", "lightgbm"])
def test_two_workers_learn_and_stop_early(
    ray_session: None, tmp_path: Path, family: Family
) -> None:
    train, validation, test = synthetic(3000, 1), synthetic(1500, 2), synthetic(1500, 3)
    settings = TrainingSettings(num_workers=2, num_boost_round=60, early_stopping_rounds=4)
    model = train_model(
        ray.data.from_pandas(train),
        ray.data.from_pandas(validation),
        FEATURES,
        family,
        {"learning_rate": 0.3},
        settings,
        storage_path=str(tmp_path),
    )

    base_rate = test[LABEL].mean()
    probabilities = model.predict_raw(test)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    assert average_precision_score(test[LABEL], probabilities) > max(0.5, 8 * base_rate)
    assert model.metrics["average_precision"] > 0.5

    assert model.rounds < settings.num_boost_round
    assert model.rounds == model.best_iteration + 1 + settings.early_stopping_rounds
    assert (
        trees(model.booster) == model.best_iteration + 1
    )  # the model kept is the best one, not the last

    assert [run.rank for run in model.workers] == [0, 1]
    assert all(run.world_size == 2 for run in model.workers)
    assert sum(run.train_rows for run in model.workers) == len(train)

    contributions = model.contributions(test[FEATURES].to_numpy())
    assert contributions.shape == (len(test), len(FEATURES) + 1)
    log_odds = np.log(probabilities / (1 - probabilities))
    np.testing.assert_allclose(contributions.sum(axis=1), log_odds, rtol=1e-3, atol=1e-3)


def test_without_validation_every_round_is_kept(ray_session: None, tmp_path: Path) -> None:
    """The refit of a tuned model on Ray Train: as many rounds as asked for, nothing to stop on
    or report. One family: this branch of the workers' loop is the same for both (the two-worker
    test covers each family's trainer), and each Ray Train run costs its start-up."""
    train, test = synthetic(3000, 5), synthetic(1500, 6)
    settings = TrainingSettings(num_boost_round=12)
    model = train_model(
        ray.data.from_pandas(train), None, FEATURES, "lightgbm", {}, settings, str(tmp_path)
    )

    assert (model.rounds, model.best_iteration) == (12, 11)
    assert trees(model.booster) == 12
    assert "average_precision" not in model.metrics
    assert average_precision_score(test[LABEL], model.predict_raw(test)) > 0.5


@pytest.mark.parametrize("strategy", ["class_weights", "undersample", "smote"])
def test_ray_resampling_matches_pandas(ray_session: None, strategy: str) -> None:
    frame = synthetic(2000, 4)
    frame.loc[::9, "noise_a"] = np.nan
    plan = Resampling(strategy, ratio=0.3, seed=11)  # type: ignore[arg-type]
    expected = resample_frame(frame, FEATURES, plan)
    blocks = [frame.iloc[start : start + 500] for start in range(0, len(frame), 500)]
    result = resample_dataset(ray.data.from_pandas(blocks), FEATURES, plan)
    assert result.scale_pos_weight == pytest.approx(expected.scale_pos_weight)
    # Ray hands Arrow-backed columns back; the values, not the pandas types, are compared.
    produced = result.data.to_pandas()[expected.data.columns].astype(expected.data.dtypes)
    pd.testing.assert_frame_equal(
        produced.sort_values(TRANSACTION_ID, ignore_index=True),
        expected.data.sort_values(TRANSACTION_ID, ignore_index=True),
    )
