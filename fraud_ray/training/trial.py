"""One Tune trial: resample the training split its own way, boost, report, keep the booster.

A trial boosts where it runs when the split fits one process (``fits_one_process``): the split
reaches every trial once, through the object store (``tune.with_parameters``), the library trains
with the trial's CPUs as threads, and a report every ``training.report_every`` rounds gives ASHA
the points at which it stops a weak trial. Starting a Ray Train worker group costs tens of
seconds, far more than boosting a week of transactions, so Ray Train is kept for a split that
needs several workers (``boost_on_ray_train``); its workers report once, at the end (each report
waits for the Train controller's poll), so ASHA cannot stop those trials early.

With several validation folds (``split.validation_folds``) a trial boosts the newest fold first,
reporting as it goes, so ASHA judges it there; a trial that survives then boosts the older folds
and is judged on the mean over all of them, as the Fraud Detection Handbook selects models. The
booster it keeps is the newest fold's, and the round count it reports is the mean of the folds'
best rounds: what a refit on the newest data trains for.

Every trial ends with one report carrying the full validation metrics and the booster checkpoint;
a trial ASHA stopped has neither, and is never the winner.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import ray.data
from ray import tune
from sklearn.metrics import average_precision_score, roc_auc_score

from fraud_ray.boosters import (
    BOOSTER_FILES,
    Booster,
    Family,
    Fitted,
    booster_params,
    fit,
    progress_callback,
    raw_scores,
)
from fraud_ray.calibration import Calibrator
from fraud_ray.costs import CostPolicy
from fraud_ray.data import Fold, filter_window
from fraud_ray.metrics import evaluate
from fraud_ray.runtime import configure_data
from fraud_ray.schema import LABEL, TIMESTAMP, TRANSACTION_ID
from fraud_ray.settings import Settings, TrainingSettings
from fraud_ray.training.distributed import train_model
from fraud_ray.training.resampling import Resampling, resample_dataset, resample_frame

ROUNDS = "rounds"  # what ASHA counts a trial's progress in: the newest fold's rounds
ROUNDS_TRAINED = "rounds_trained"  # a finished trial's rounds over all its folds


def split_config(config: dict[str, Any]) -> tuple[Family, dict[str, Any], str, float]:
    """(family, booster parameters, resampling strategy, ratio) from a flat trial config."""
    rest = {k: v for k, v in config.items() if k not in {"family", "resampling", "ratio"}}
    return config["family"], rest, config["resampling"], float(config["ratio"])


def fits_one_process(rows: int, settings: TrainingSettings) -> bool:
    """Whether trials and the refit boost in one process rather than on Ray Train workers."""
    return settings.num_workers <= 1 or rows <= settings.in_process_max_rows


def training_frame(dataset: ray.data.Dataset, features: list[str]) -> pd.DataFrame:
    """What a trial needs of the training split, in memory: features and label as floats with NaN
    for missing values (Ray hands over Arrow-backed columns), the ids resampling draws by and the
    times the folds are cut by.

    In time order, whatever order Ray Data's blocks arrived in: a booster's row subsampling picks
    rows by position, so the same data in another order is another model, and on a loaded machine
    the blocks do arrive in another order.
    """
    frame = dataset.select_columns([*features, LABEL, TRANSACTION_ID, TIMESTAMP]).to_pandas()
    for name in [*features, LABEL]:
        frame[name] = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
    return frame.sort_values([TIMESTAMP, TRANSACTION_ID], kind="stable", ignore_index=True)


def fit_frame(
    config: dict[str, Any],
    train: pd.DataFrame,
    validation: pd.DataFrame | None,
    features: list[str],
    settings: TrainingSettings,
    *,
    threads: int,
    num_boost_round: int | None = None,
    callbacks: list[Any] | None = None,
) -> Fitted:
    """One configuration, resampling included, boosted in this process."""
    family, params, strategy, ratio = split_config(config)
    resampled = resample_frame(
        train, features, Resampling(strategy=strategy, ratio=ratio, seed=settings.seed)
    )
    return fit(
        family,
        booster_params(family, params, threads, resampled.scale_pos_weight, seed=settings.seed),
        _arrays(resampled.data, features),
        None if validation is None else _arrays(validation, features),
        features,
        num_boost_round or settings.num_boost_round,
        settings.early_stopping_rounds,
        callbacks or [],
    )


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


def boost_in_process(
    config: dict[str, Any],
    *,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    folds: tuple[Fold, ...],
    features: list[str],
    settings: Settings,
    policy: CostPolicy,
    metric: str,
) -> None:
    """A trial that boosts in its own process and reports as it goes.

    The reports in between carry the objective on the newest fold only: the library's own
    validation metric (best so far, the round early stopping would keep) for average precision,
    the realised cost of the booster as it stands for the cost objective (which the library
    cannot compute).
    """
    training = settings.training
    family, *_ = split_config(config)
    validations = [filter_window(validation, fold.validation) for fold in folds]
    matrices = [rows[features].to_numpy(dtype=np.float64) for rows in validations]

    def report(booster: Booster, rounds: int, best: float) -> None:
        if rounds % training.report_every:
            return
        if metric == "average_precision":
            value = best
        else:
            scores = raw_scores(booster, matrices[0])
            value = validation_metrics(scores, validations[0], policy)[metric]
        tune.report({metric: value, ROUNDS: rounds})

    judged = []
    for k, (fold, rows, matrix) in enumerate(zip(folds, validations, matrices, strict=True)):
        fitted = fit_frame(
            config,
            filter_window(train, fold.train),
            rows,
            features,
            training,
            threads=training.cpus_per_trial,
            callbacks=[progress_callback(family, report)] if k == 0 else [],
        )
        judged.append(
            (fitted, validation_metrics(raw_scores(fitted.booster, matrix), rows, policy))
        )
    _report_final(*_over_folds(judged), family)


def boost_on_ray_train(
    config: dict[str, Any],
    *,
    train: ray.data.Dataset,
    validation: pd.DataFrame,
    folds: tuple[Fold, ...],
    features: list[str],
    settings: Settings,
    policy: CostPolicy,
    storage_path: str,
) -> None:
    """A trial that drives a Ray Train run per fold, for a split too big for one process."""
    configure_data(settings.ray)  # a trial runs in a process of its own, with Ray's defaults
    ray.data.DataContext.get_current().enable_progress_bars = False
    family, params, strategy, ratio = split_config(config)
    judged = []
    for fold in folds:
        fold_validation = filter_window(validation, fold.validation)
        resampled = resample_dataset(
            filter_window(train, fold.train).materialize(),
            features,
            Resampling(strategy=strategy, ratio=ratio, seed=settings.training.seed),
        )
        model = train_model(
            resampled.data,
            ray.data.from_pandas(fold_validation[[*features, LABEL]]),
            features,
            family,
            params,
            settings.training,
            storage_path,
            scale_pos_weight=resampled.scale_pos_weight,
        )
        fitted = Fitted(model.booster, model.best_iteration, model.rounds)
        judged.append(
            (
                fitted,
                validation_metrics(model.predict_raw(fold_validation), fold_validation, policy),
            )
        )
    _report_final(*_over_folds(judged), family)


def _over_folds(
    judged: list[tuple[Fitted, dict[str, float]]],
) -> tuple[dict[str, float], Booster, int, int]:
    """Mean metrics over the folds, each fold's average precision too, the rounds boosted in
    all, the newest fold's booster and round count, and the mean best round (0-based) a refit
    trains up to."""
    metrics = {
        name: float(np.mean([fold_metrics[name] for _, fold_metrics in judged]))
        for name in judged[0][1]
    }
    if len(judged) > 1:
        metrics |= {
            f"average_precision_fold{k}": fold_metrics["average_precision"]
            for k, (_, fold_metrics) in enumerate(judged)
        }
    metrics[ROUNDS_TRAINED] = sum(fitted.rounds for fitted, _ in judged)
    best_iteration = round(float(np.mean([fitted.best_iteration for fitted, _ in judged])))
    newest = judged[0][0]
    return metrics, newest.booster, best_iteration, newest.rounds


def _report_final(
    metrics: dict[str, float], booster: Booster, best_iteration: int, rounds: int, family: Family
) -> None:
    metrics = {**metrics, "best_iteration": best_iteration, ROUNDS: rounds}
    with tempfile.TemporaryDirectory() as folder:
        booster.save_model(str(Path(folder) / BOOSTER_FILES[family]))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def _arrays(frame: pd.DataFrame, features: list[str]) -> tuple[np.ndarray, np.ndarray]:
    return (
        frame[features].to_numpy(dtype=np.float64, na_value=np.nan),
        frame[LABEL].to_numpy(dtype=np.float64),
    )
