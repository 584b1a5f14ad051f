"""Hyperparameter search: Ray Tune with Optuna over model family, tree parameters and resampling.

Each trial resamples the training split its own way, boosts and scores the validation split
(``fraud_ray.training.trial``), so the class-imbalance strategy is chosen on evidence like any other
hyperparameter. The search space is written define-by-run, because each model family has
parameters of its own. ASHA counts a trial's progress in boosting rounds and stops, at 20, 60 and
180 rounds by default, the trials below the best third so far.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import ray.data
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from fraud_ray.boosters import BOOSTER_FILES
from fraud_ray.costs import CostPolicy
from fraud_ray.data import Fold
from fraud_ray.settings import Settings
from fraud_ray.training.trial import (
    ROUNDS,
    ROUNDS_TRAINED,
    boost_in_process,
    boost_on_ray_train,
    fits_one_process,
    training_frame,
)

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


@dataclass(frozen=True)
class TuningOutcome:
    """The best trial: its configuration and metrics (means over the validation folds, and each
    fold's average precision when there are several), its booster, and the number of boosting
    rounds early stopping kept (the mean over the folds), which a refit on later data trains for;
    and what the search cost: trials stopped before their final report (by ASHA, or by the time
    budget), boosting rounds trained over all trials."""

    config: dict[str, Any]
    metrics: dict[str, float]
    booster_file: Path
    rounds: int
    trials: pd.DataFrame
    stopped_early: int = 0
    rounds_trained: int = 0


def tune_models(
    train: ray.data.Dataset,
    validation: pd.DataFrame,
    folds: tuple[Fold, ...],
    features: list[str],
    settings: Settings,
    policy: CostPolicy,
    storage_path: Path,
    *,
    trials: int,
    time_budget_s: float,
    callbacks: list[tune.Callback] | None = None,
) -> TuningOutcome:
    """Search, and return the best trial's configuration, metrics and booster file.

    ``train`` and ``validation`` hold the rows of every fold (``fraud_ray.data.TimeSplits.folds``),
    which each trial cuts by time. ``train`` should be materialised: it is counted, and read once
    more for the trials.
    """
    training = settings.training
    metric, mode = OBJECTIVES[training.objective]
    searcher = OptunaSearch(
        space=partial(search_space, families=list(training.families)),  # picklable, unlike a lambda
        metric=metric,
        mode=mode,
        seed=training.seed,
    )
    if fits_one_process(train.count(), training):
        trainable = tune.with_resources(
            tune.with_parameters(
                boost_in_process,
                train=training_frame(train, features),
                validation=validation,
                folds=folds,
                features=features,
                settings=settings,
                policy=policy,
                metric=metric,
            ),
            {"cpu": training.cpus_per_trial},
        )
    else:
        # The trial only drives Ray Train, whose workers hold the CPUs. Any CPU the trial held,
        # even a sliver, would be missing when the workers ask for every core (two workers of
        # one CPU on two cores wait for ever); Tune refuses an empty request, so the trial asks
        # for one byte of memory instead. Ray Data's tasks and Ray Train's worker group are
        # scheduled outside the trial's placement group.
        trainable = tune.with_resources(
            tune.with_parameters(
                boost_on_ray_train,
                train=train,
                validation=validation,
                folds=folds,
                features=features,
                settings=settings,
                policy=policy,
                storage_path=str(storage_path),
            ),
            {"cpu": 0, "memory": 1},
        )
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=ASHAScheduler(
                time_attr=ROUNDS,
                metric=metric,
                mode=mode,
                # ASHA stops a trial that reaches max_t: past the budget, so that a trial
                # reaching it still makes its final report, with its booster.
                max_t=training.num_boost_round + 1,
                grace_period=2 * training.report_every,
                reduction_factor=3,
            ),
            num_samples=trials,
            time_budget_s=time_budget_s,
            max_concurrent_trials=training.max_concurrent_trials,
            # A trial's process, with the boosters and Ray Data imported, serves the next trial:
            # starting one costs more than boosting most trials.
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name="fraud-ray-tuning",
            storage_path=str(storage_path),
            callbacks=callbacks,
            verbose=1,
        ),
    )
    results = tuner.fit()
    finished = [r for r in results if r.checkpoint is not None and r.metrics and not r.error]
    if not finished:
        errors = [str(result.error) for result in results if result.error]
        raise RuntimeError("no tuning trial finished" + (f": {errors[0]}" if errors else ""))
    pick = max if mode == "max" else min
    best = pick(finished, key=lambda result: float(result.metrics[metric]))
    assert best.checkpoint is not None and best.metrics is not None
    local = Path(best.checkpoint.to_directory())
    table = results.get_dataframe()
    return TuningOutcome(
        config=dict(best.config),
        metrics={
            k: float(v)
            for k, v in best.metrics.items()
            if k in {"average_precision", "roc_auc", "expected_cost"}
            or k.startswith("average_precision_fold")
        },
        booster_file=local / BOOSTER_FILES[best.config["family"]],
        rounds=int(best.metrics["best_iteration"]) + 1,
        trials=table,
        stopped_early=sum(1 for r in results if r.checkpoint is None and not r.error),
        rounds_trained=_rounds_trained(table),
    )


def _rounds_trained(trials: pd.DataFrame) -> int:
    """Rounds boosted over all trials: a finished trial's over all its folds, a stopped one's
    up to its last report."""
    if ROUNDS not in trials:
        return 0
    rounds = trials[ROUNDS]
    if ROUNDS_TRAINED in trials:
        rounds = trials[ROUNDS_TRAINED].fillna(rounds)
    return int(rounds.sum())
