"""Hyperparameter search: Ray Tune with Optuna over model family, tree parameters and resampling.

Each trial resamples the training split its own way, trains on Ray Train and scores the validation
split, so the class-imbalance strategy is chosen on evidence like any other hyperparameter. The
search space is written define-by-run, because each model family has parameters of its own.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import ray.data
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch
from sklearn.metrics import average_precision_score, roc_auc_score

from fraud_ray.boosters import BOOSTER_FILES, Family
from fraud_ray.calibration import Calibrator
from fraud_ray.costs import CostPolicy
from fraud_ray.metrics import evaluate
from fraud_ray.runtime import configure_data
from fraud_ray.schema import LABEL
from fraud_ray.settings import Settings
from fraud_ray.training.distributed import train_model
from fraud_ray.training.resampling import Resampling, resample_dataset

# setting -> (the trial metric it optimises, direction). Minimising expected cost means choosing the
# model whose cost-policy decisions cost least on the validation labels: their realised cost.
OBJECTIVES = {
    "average_precision": ("average_precision", "max"),
    "expected_cost": ("realised_cost", "min"),
}


def search_space(trial: optuna.Trial, families: list[str]) -> None:
    """The space, asked of Optuna one choice at a time so each family gets its own parameters."""
    family = trial.suggest_categorical("family", families)
    if family == "xgboost":
        trial.suggest_int("max_depth", 3, 8)
        trial.suggest_float("learning_rate", 0.03, 0.3, log=True)
        trial.suggest_float("subsample", 0.6, 1.0)
        trial.suggest_float("colsample_bytree", 0.5, 1.0)
        trial.suggest_float("min_child_weight", 0.5, 10.0, log=True)
        trial.suggest_float("lambda", 0.1, 10.0, log=True)
    else:
        trial.suggest_int("num_leaves", 15, 127, log=True)
        trial.suggest_float("learning_rate", 0.03, 0.3, log=True)
        trial.suggest_float("feature_fraction", 0.5, 1.0)
        trial.suggest_float("bagging_fraction", 0.6, 1.0)
        trial.suggest_int("min_data_in_leaf", 10, 200, log=True)
    trial.suggest_categorical("resampling", ["none", "class_weights", "undersample", "smote"])
    trial.suggest_float("ratio", 0.02, 1.0, log=True)


def split_config(config: dict[str, Any]) -> tuple[Family, dict[str, Any], str, float]:
    """(family, booster parameters, resampling strategy, ratio) from a flat trial config."""
    rest = {k: v for k, v in config.items() if k not in {"family", "resampling", "ratio"}}
    return config["family"], rest, config["resampling"], float(config["ratio"])


def validation_metrics(
    raw: np.ndarray, validation: pd.DataFrame, policy: CostPolicy
) -> dict[str, float]:
    """The metrics a trial is judged by.

    Costs need calibrated probabilities, so the calibration the final model will get is fitted
    here too (on the validation labels, which makes the cost figures in-sample for the
    calibration step). Ranking metrics are taken on the raw scores: isotonic calibration ties
    scores, which would blur the ranking the booster learnt.
    """
    labels = validation[LABEL].to_numpy()
    probabilities = Calibrator().fit(raw, labels).transform(raw)
    metrics = evaluate(validation, probabilities, policy)
    metrics["average_precision"] = float(average_precision_score(labels, raw))
    metrics["roc_auc"] = float(roc_auc_score(labels, raw))
    return metrics


def run_trial(
    config: dict[str, Any],
    *,
    train: ray.data.Dataset,
    validation: pd.DataFrame,
    features: list[str],
    settings: Settings,
    policy: CostPolicy,
    storage_path: str,
) -> None:
    configure_data(settings.ray)  # a trial runs in a process of its own, with Ray's defaults
    ray.data.DataContext.get_current().enable_progress_bars = False
    family, params, strategy, ratio = split_config(config)
    resampled = resample_dataset(
        train, features, Resampling(strategy=strategy, ratio=ratio, seed=settings.training.seed)
    )
    model = train_model(
        resampled.data,
        ray.data.from_pandas(validation[[*features, LABEL]]),
        features,
        family,
        params,
        settings.training,
        storage_path,
        scale_pos_weight=resampled.scale_pos_weight,
    )
    metrics = validation_metrics(model.predict_raw(validation), validation, policy)
    metrics["best_iteration"] = model.best_iteration
    with tempfile.TemporaryDirectory() as folder:
        model.booster.save_model(str(Path(folder) / BOOSTER_FILES[family]))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


@dataclass(frozen=True)
class TuningOutcome:
    """The best trial: its configuration and metrics, its booster, and the number of boosting
    rounds early stopping kept, which a refit on later data trains for."""

    config: dict[str, Any]
    metrics: dict[str, float]
    booster_file: Path
    rounds: int
    trials: pd.DataFrame


def tune_models(
    train: ray.data.Dataset,
    validation: pd.DataFrame,
    features: list[str],
    settings: Settings,
    policy: CostPolicy,
    storage_path: Path,
    *,
    trials: int,
    time_budget_s: float,
    callbacks: list[tune.Callback] | None = None,
) -> TuningOutcome:
    """Search, and return the best trial's configuration, metrics and booster file."""
    metric, mode = OBJECTIVES[settings.training.objective]
    searcher = OptunaSearch(
        space=partial(
            search_space, families=list(settings.training.families)
        ),  # picklable, unlike a lambda
        metric=metric,
        mode=mode,
        seed=settings.training.seed,
    )
    trainable = tune.with_parameters(
        run_trial,
        train=train,
        validation=validation,
        features=features,
        settings=settings,
        policy=policy,
        storage_path=str(storage_path),
    )
    tuner = tune.Tuner(
        # The trial only drives Ray Train, whose workers hold the CPUs; a whole CPU held by the
        # driver too would leave a two-core machine with none for the workers (and Ray refuses
        # an empty request, hence a sliver).
        tune.with_resources(trainable, {"cpu": 0.01}),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=ASHAScheduler(metric=metric, mode=mode, grace_period=1),
            num_samples=trials,
            time_budget_s=time_budget_s,
            max_concurrent_trials=settings.training.max_concurrent_trials,
        ),
        run_config=tune.RunConfig(
            name="fraud-ray-tuning",
            storage_path=str(storage_path),
            callbacks=callbacks,
            verbose=1,
        ),
    )
    results = tuner.fit()
    best = results.get_best_result(metric=metric, mode=mode)
    if best.checkpoint is None or best.metrics is None:
        errors = [str(result.error) for result in results if result.error]
        raise RuntimeError("no tuning trial finished" + (f": {errors[0]}" if errors else ""))
    local = Path(best.checkpoint.to_directory())
    table = results.get_dataframe()
    return TuningOutcome(
        config=dict(best.config),
        metrics={
            k: float(best.metrics[k]) for k in ("average_precision", "roc_auc", "expected_cost")
        },
        booster_file=local / BOOSTER_FILES[best.config["family"]],
        rounds=int(best.metrics["best_iteration"]) + 1,
        trials=table,
    )
