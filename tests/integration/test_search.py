"""The search: trials that boost in their own process, stopped early by ASHA, and the same model
whether a configuration is boosted in a trial's process or on Ray Train."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray.data
from sklearn.metrics import average_precision_score

from fraud_ray.boosters import load_booster, raw_scores
from fraud_ray.costs import CostPolicy
from fraud_ray.data import Fold, TimeWindow
from fraud_ray.schema import AMOUNT, LABEL, TIMESTAMP
from fraud_ray.settings import CostSettings, Settings, TrainingSettings
from fraud_ray.training.distributed import train_model
from fraud_ray.training.resampling import Resampling, resample_dataset
from fraud_ray.training.search import TuningOutcome, tune_models
from fraud_ray.training.trial import fit_frame, training_frame

from .test_training import FEATURES, synthetic

DAY0 = pd.Timestamp("2025-01-01", tz="UTC")


def week(first_day: int) -> TimeWindow:
    return TimeWindow(DAY0 + pd.Timedelta(days=first_day), DAY0 + pd.Timedelta(days=first_day + 7))


def dated(frame: pd.DataFrame, first_day: int, days: int) -> pd.DataFrame:
    """``frame`` spread evenly over ``days`` days from day ``first_day``, in time order."""
    start = DAY0 + pd.Timedelta(days=first_day)
    step = pd.Timedelta(days=days) / len(frame)
    frame[TIMESTAMP] = [start + i * step for i in range(len(frame))]
    frame[AMOUNT] = 50.0
    return frame


def frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A training week, a validation week after a week's delay, and a test set."""
    train, validation = dated(synthetic(4000, 11), 0, 7), dated(synthetic(3000, 12), 14, 7)
    return train, validation, dated(synthetic(2000, 13), 28, 7)


ONE_FOLD = (Fold(week(0), week(14)),)


def tune(
    settings: Settings,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    folds: tuple[Fold, ...],
    tmp_path: Path,
    *,
    trials: int,
) -> TuningOutcome:
    return tune_models(
        ray.data.from_pandas(train).materialize(),
        validation,
        folds,
        FEATURES,
        settings,
        CostPolicy.from_settings(CostSettings()),
        tmp_path,
        trials=trials,
        time_budget_s=600,
    )


def test_weak_trials_stop_before_the_round_budget(ray_session: None, tmp_path: Path) -> None:
    train, validation, _ = frames()
    budget = 60
    settings = Settings(
        training={
            "families": ["xgboost"],
            "num_boost_round": budget,
            "early_stopping_rounds": budget,  # only ASHA stops a trial here
            "report_every": 5,
        }
    )
    outcome = tune(settings, train, validation, ONE_FOLD, tmp_path, trials=8)
    rounds = outcome.trials["rounds"]
    assert outcome.stopped_early >= 1
    assert (rounds < budget).sum() == outcome.stopped_early
    assert outcome.rounds_trained == rounds.sum() < 8 * budget
    assert rounds.max() == budget  # the trials ASHA let through boosted the whole budget
    assert outcome.metrics["average_precision"] > 0.5
    assert outcome.booster_file.exists()


def test_trials_are_judged_on_the_mean_over_their_folds(ray_session: None, tmp_path: Path) -> None:
    train = dated(synthetic(6000, 21), 0, 14)
    validation = dated(synthetic(5000, 22), 14, 14)
    # The newest fold: train days 7-13, validated on days 21-27; the older one a week earlier.
    folds = (Fold(week(7), week(21)), Fold(week(0), week(14)))
    settings = Settings(
        split={"validation_folds": 2},
        training={"families": ["xgboost"], "num_boost_round": 40, "early_stopping_rounds": 5},
    )
    outcome = tune(settings, train, validation, folds, tmp_path, trials=2)

    trials = outcome.trials.dropna(subset=["average_precision_fold1"])
    assert len(trials) >= 1
    np.testing.assert_allclose(
        trials["average_precision"],
        (trials["average_precision_fold0"] + trials["average_precision_fold1"]) / 2,
    )
    assert (trials["average_precision_fold0"] != trials["average_precision_fold1"]).all()
    # The booster kept is the newest fold's: its score on that fold's validation rows is fold 0's.
    booster = load_booster("xgboost", outcome.booster_file)
    newest = validation[folds[0].validation.contains(validation[TIMESTAMP]).to_numpy()]
    ap = average_precision_score(newest[LABEL], raw_scores(booster, newest[FEATURES].to_numpy()))
    assert ap == pytest.approx(outcome.metrics["average_precision_fold0"])


def test_the_same_rows_in_any_block_order_give_the_same_trial_model(ray_session: None) -> None:
    """Ray Data hands a trial the split's blocks in whatever order they finish, which varies with
    the machine's load; the booster subsamples rows by position, so without a fixed order the
    same search on the same data would register another model."""
    train, validation, _ = frames()
    config = {"family": "xgboost", "resampling": "none", "ratio": 1.0, "subsample": 0.7}
    training = TrainingSettings(num_boost_round=30)
    ordered = ray.data.from_pandas(train).materialize()
    shuffled = ray.data.from_pandas(np.array_split(train, 8)[::-1]).random_shuffle(seed=3)

    frame = training_frame(ordered, FEATURES)
    pd.testing.assert_frame_equal(training_frame(shuffled.materialize(), FEATURES), frame)
    boosters = [
        fit_frame(config, training_frame(data, FEATURES), validation, FEATURES, training, threads=1)
        for data in (ordered, shuffled)
    ]
    matrix = validation[FEATURES].to_numpy()
    np.testing.assert_array_equal(*(b.booster.inplace_predict(matrix) for b in boosters))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_trial_and_ray_train_give_the_same_model(
    ray_session: None, tmp_path: Path, workers: int
) -> None:
    """One worker runs in Ray Train's local mode, two as a data-parallel group, whose histogram
    bins are sketched over both shards: the same booster parameters either way, and nearly the
    same scores."""
    train, validation, test = frames()
    training = TrainingSettings(num_boost_round=80, early_stopping_rounds=5)
    config = {"family": "xgboost", "resampling": "undersample", "ratio": 0.2, "max_depth": 4}
    dataset = ray.data.from_pandas(train).materialize()
    in_process = fit_frame(
        config, training_frame(dataset, FEATURES), validation, FEATURES, training, threads=1
    )
    resampled = resample_dataset(dataset, FEATURES, Resampling("undersample", 0.2, training.seed))
    on_ray_train = train_model(
        resampled.data,
        ray.data.from_pandas(validation),
        FEATURES,
        "xgboost",
        {"max_depth": 4},
        training.model_copy(update={"num_workers": workers}),
        str(tmp_path),
    )

    assert len(on_ray_train.workers) == workers
    saved = tmp_path / "in_process.json"
    in_process.booster.save_model(str(saved))  # a checkpoint's booster keeps what the model needs
    config_here = json.loads(load_booster("xgboost", saved).save_config())
    config_there = json.loads(on_ray_train.booster.save_config())
    assert config_here["learner"]["gradient_booster"] == config_there["learner"]["gradient_booster"]
    matrix = test[FEATURES].to_numpy()
    ap_here = average_precision_score(test[LABEL], in_process.booster.inplace_predict(matrix))
    ap_there = average_precision_score(test[LABEL], on_ray_train.predict_raw(matrix))
    assert abs(ap_here - ap_there) < 0.01
    if workers == 1:
        assert in_process.best_iteration == on_ray_train.best_iteration
        assert load_booster("xgboost", saved).save_config() == on_ray_train.booster.save_config()
        np.testing.assert_allclose(
            in_process.booster.inplace_predict(matrix), on_ray_train.predict_raw(matrix), atol=0.02
        )


def test_a_split_that_needs_workers_tunes_on_ray_train(ray_session: None, tmp_path: Path) -> None:
    """Above ``in_process_max_rows`` with two workers a trial drives a Ray Train run per fold.

    One fold: each fold is a Ray Train run, mostly its worker group's start, and the mean over
    folds is the in-process trial's code (``test_trials_are_judged_on_the_mean_over_their_folds``).
    """
    train, validation, _ = frames()
    settings = Settings(
        training={
            "families": ["xgboost"],
            "num_workers": 2,
            "in_process_max_rows": 100,
            "num_boost_round": 30,
            "early_stopping_rounds": 5,
        }
    )
    outcome = tune(settings, train, validation, ONE_FOLD, tmp_path, trials=1)

    assert outcome.metrics["average_precision"] > 0.5
    assert outcome.rounds_trained <= 30
    assert load_booster("xgboost", outcome.booster_file).num_boosted_rounds() <= 30
