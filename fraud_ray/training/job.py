"""The training job: features, time splits, tuning, calibration, evaluation and registration.

Features are computed over the whole history, so the first training day already sees full windows,
but labels are used only inside the training window (and the validation window, for early stopping,
calibration and model choice). The test window is scored once, at the end, for the report.

With ``split.layout: before`` the trials train on an earlier window than the registered model
(``fraud_ray.data.time_splits``): the winner's configuration is refit on the training window for the
number of rounds early stopping kept, and it keeps the calibration fitted on the winner's
validation scores, the only scores of that configuration on rows it did not learn from.

With ``split.validation_folds`` above 1 the trials are judged on the mean over several earlier
(tuning, validation) pairs as well; the registered model is still the newest fold's (or its refit),
calibrated on the newest validation window, the one nearest to the data it will score.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import ray.data
from mlflow.entities.model_registry import ModelVersion
from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.data.aggregate import Count, Max, Min, Sum
from ray.data.expressions import col

from fraud_ray.boosters import Booster, load_booster, raw_scores
from fraud_ray.calibration import Calibrator
from fraud_ray.costs import CostPolicy
from fraud_ray.data import (
    TimeSplits,
    TimeWindow,
    filter_window,
    read_transactions,
    time_splits,
    tuning_lead,
    without_known_compromised_cards,
)
from fraud_ray.data_summary import DataSummary, summarise
from fraud_ray.features.definitions import FeatureSpec
from fraud_ray.features.distributed import build_features
from fraud_ray.metrics import evaluate
from fraud_ray.model import FraudModel
from fraud_ray.plots import plot_calibration, plot_cost_curve, plot_precision_recall
from fraud_ray.registry import REFERENCE_SAMPLE, RegisteredModel, Registry
from fraud_ray.runtime import init_ray
from fraud_ray.schema import AMOUNT, CARD_ID, LABEL, TIMESTAMP, TRANSACTION_ID, DatasetMapping
from fraud_ray.settings import Settings
from fraud_ray.training.distributed import train_model
from fraud_ray.training.resampling import Resampling, resample_dataset
from fraud_ray.training.search import tune_models
from fraud_ray.training.trial import fit_frame, fits_one_process, split_config, training_frame

TUNING_EXPERIMENT = "fraud-ray-tuning"
REFERENCE_ROWS = 5000
MIN_VALIDATION_FRAUDS = 30  # below this, model choice and early stopping follow noise


class TrainingError(ValueError):
    """A training request that the data cannot satisfy; the message says what to change."""


@dataclass(frozen=True)
class TrainingResult:
    """What ``train`` did: ``validation`` scores the registered model's calibrated probabilities
    on the newest validation window, ``tuning`` the winning trial as the search judged it (means
    over the validation folds), ``test`` the registered model on the test window."""

    registered: RegisteredModel
    config: dict[str, Any]
    validation: dict[str, float]
    test: dict[str, float]
    splits: TimeSplits
    seconds: float
    trials: int
    tuning: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def summary(self) -> dict[str, Any]:
        """The one JSON line ``fraud-ray train`` ends with."""
        return {
            "model_uri": self.registered.uri,
            "alias": self.registered.alias,
            "run_id": self.registered.run_id,
            "config": self.config,
            "validation": self.validation,
            "test": self.test,
            "trials": self.trials,
            "tuning": self.tuning,
            **self.extra,
            "seconds": round(self.seconds, 1),
            "notes": list(self.notes),
        }


def train(
    settings: Settings,
    data: Path,
    mapping: DatasetMapping | None = None,
    *,
    train_start: datetime | None = None,
    train_end: datetime | None = None,
    trials: int | None = None,
    time_budget_s: float | None = None,
    alias: str = "champion",
    on_summary: Callable[[DataSummary], None] | None = None,
) -> TrainingResult:
    """``on_summary`` is shown what was read before any training starts."""
    started = time.perf_counter()
    init_ray(settings)
    spec = FeatureSpec.from_settings(settings.features, mapping)
    transactions = read_transactions(data, mapping).materialize()
    if on_summary is not None:
        on_summary(summarise(transactions))
    table = build_features(transactions, spec, settings.features.partitions)
    table = table.materialize()
    if LABEL not in table.columns():
        raise TrainingError("the data has no label column: set `label` in the dataset mapping")
    summary = table.aggregate(Count(), Sum(AMOUNT), Min(TIMESTAMP), Max(TIMESTAMP), Sum(LABEL))
    first = pd.Timestamp(summary[f"min({TIMESTAMP})"])
    start = (
        pd.Timestamp(train_start)
        if train_start
        else _default_start(first, spec) + tuning_lead(settings.split, spec.label_delay)
    )
    splits = time_splits(start, settings.split, spec.label_delay, train_end)
    splits, fold_notes = _folds_in_data(splits, first)
    tuning_split = filter_window(table, splits.all_tuning).materialize()
    validations = _frame(filter_window(table, splits.all_validation), spec)
    test = _frame(filter_window(table, splits.test), spec)
    for number, fold in enumerate(splits.folds, start=1):
        name = "tuning" if splits.refit else "training"
        if len(splits.folds) > 1:
            name = f"fold {number}'s {name}"
        _check_frauds(filter_window(tuning_split, fold.train), fold.train, name)
        _check_validation(filter_window(validations, fold.validation), fold.validation)
    if splits.refit:
        train_split = filter_window(table, splits.train).materialize()
        _check_frauds(train_split, splits.train, "training")
    # The newest fold's validation rows: the winner's own scores on them calibrate the model.
    validation = filter_window(validations, splits.validation).reset_index(drop=True)

    registry = Registry(settings.mlflow)
    registry.experiment_id(TUNING_EXPERIMENT)  # created with our artifact location, not ./mlruns
    storage = Path(settings.data.raw_dir).resolve().parent / "ray_results"
    policy = CostPolicy.from_settings(settings.costs)
    outcome = tune_models(
        tuning_split,
        validations,
        splits.folds,
        spec.names,
        settings,
        policy,
        storage,
        trials=trials or settings.training.trials,
        time_budget_s=time_budget_s or settings.training.time_budget_s,
        callbacks=[
            MLflowLoggerCallback(
                tracking_uri=settings.mlflow.tracking_uri,
                experiment_name=TUNING_EXPERIMENT,
                save_artifact=False,
            )
        ],
    )
    family, params, strategy, ratio = split_config(outcome.config)
    booster = load_booster(family, outcome.booster_file)
    raw_validation = raw_scores(booster, validation[spec.names].to_numpy(dtype=np.float64))
    calibrator = Calibrator().fit(raw_validation, validation[LABEL])
    if splits.refit:
        booster = _refit(train_split, spec.names, outcome.config, outcome.rounds, settings, storage)
    model = FraudModel(
        booster=booster,
        family=family,
        calibrator=calibrator,
        spec=spec,
        metadata={"trained_at": datetime.now().astimezone().isoformat(), "config": outcome.config},
    )
    # The winner's own validation scores, out of sample even when the refit trained on these rows.
    validation_probabilities = calibrator.transform(raw_validation)
    validation_metrics = evaluate(validation, validation_probabilities, policy)
    test_metrics: dict[str, float] = {}
    notes = (
        fold_notes
        + _few_validation_frauds(validations, splits, outcome.metrics)
        + _test_coverage(splits.test, pd.Timestamp(summary[f"max({TIMESTAMP})"]))
    )
    unseen = without_known_compromised_cards(test, _frauds(table), splits, spec.label_delay)
    if len(unseen) and unseen[LABEL].nunique() == 2:
        test_metrics = evaluate(unseen, model.probabilities(unseen[spec.names].to_numpy()), policy)

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        artifacts = [
            plot_precision_recall(
                validation[LABEL].to_numpy(),
                {"validation": validation_probabilities},
                folder / "precision_recall.png",
            ),
            plot_cost_curve(
                validation_probabilities,
                validation[AMOUNT].to_numpy(),
                validation[LABEL].to_numpy(),
                policy,
                folder / "cost_curve.png",
            ),
            plot_calibration(
                validation[LABEL].to_numpy(),
                raw_validation,
                validation_probabilities,
                folder / "calibration.png",
            ),
            _reference_sample(validation, spec, validation_probabilities, folder),
        ]
        metrics = {f"validation_{k}": v for k, v in validation_metrics.items()}
        metrics |= {f"test_{k}": v for k, v in test_metrics.items()}
        metrics |= {f"tuning_{k}": v for k, v in outcome.metrics.items()}
        registered = registry.register(
            model,
            policy=policy,
            params={
                "family": family,
                "resampling": strategy,
                "ratio": ratio,
                **params,
                "features": ",".join(spec.names),
                "train_window": _interval(splits.train),
                "tuning_window": _interval(splits.tuning),
                "validation_window": _interval(splits.validation),
                "validation_folds": len(splits.folds),
                "rounds": outcome.rounds,
            },
            metrics=metrics,
            tags={
                "data_fingerprint": _fingerprint(summary),
                "calibration": calibrator.method_,
                "review_cost": str(policy.review_cost),
                "decline_cost": str(policy.decline_cost),
            },
            artifacts=artifacts,
            alias=alias,
            run_name=f"{family}-{strategy}",
        )
    return TrainingResult(
        registered=registered,
        config=outcome.config,
        validation=validation_metrics,
        test=test_metrics,
        splits=splits,
        seconds=time.perf_counter() - started,
        trials=len(outcome.trials),
        tuning=outcome.metrics,
        extra={"stopped_early": outcome.stopped_early, "rounds_trained": outcome.rounds_trained},
        notes=notes,
    )


@dataclass(frozen=True)
class Champion:
    """The version serving would load, and the quick training that made it if there was one."""

    version: ModelVersion
    alias: str
    trained: TrainingResult | None = None

    @property
    def uri(self) -> str:
        return f"models:/{self.version.name}/{self.version.version}"


def ensure_champion(
    settings: Settings, data: Path | None = None, *, train_if_missing: bool = False, trials: int = 1
) -> Champion:
    """The model under ``serving.model_alias``; on a fresh machine, asked to, a quick one first.

    ``trials`` is small by default: the point is a servable model in minutes, not the best one.
    """
    alias = settings.serving.model_alias
    registry = Registry(settings.mlflow)
    try:
        return Champion(registry.resolve(f"@{alias}"), alias)
    except Exception as error:  # MLflow raises its own types for a missing model or alias
        if not train_if_missing:
            raise TrainingError(
                f"no {settings.mlflow.model_name}@{alias} in {settings.mlflow.tracking_uri} "
                f"({error}); run `fraud-ray train` or `fraud-ray champion --train-if-missing`"
            ) from error
    source = data or settings.data.raw_dir
    if not source.exists() or not any(source.iterdir()):
        raise TrainingError(f"no transactions in {source}: run `fraud-ray simulate` first")
    mapping = DatasetMapping.from_yaml(settings.data.mapping) if settings.data.mapping else None
    result = train(settings, source, mapping, trials=trials, alias=alias)
    return Champion(registry.resolve(f"@{alias}"), alias, result)


def _default_start(first: pd.Timestamp, spec: FeatureSpec) -> pd.Timestamp:
    """The first midnight after the longest window has filled up, so no training row starts cold."""
    return (first + max(spec.windows)).normalize() + timedelta(days=1)


def _frame(dataset: ray.data.Dataset, spec: FeatureSpec) -> pd.DataFrame:
    """A split in time order with NumPy feature columns (Ray hands over Arrow-backed ones, whose
    missing values are ``pd.NA``, which no booster takes)."""
    frame = dataset.to_pandas()
    if frame.empty:
        return frame
    for name in [*spec.names, LABEL]:
        if name in frame:
            frame[name] = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
    frame[LABEL] = frame[LABEL].astype(np.int8)
    return frame.sort_values([TIMESTAMP, TRANSACTION_ID], kind="stable").reset_index(drop=True)


def _refit(
    train: ray.data.Dataset,
    features: list[str],
    config: dict[str, Any],
    rounds: int,
    settings: Settings,
    storage: Path,
) -> Booster:
    """The winning configuration, resampling included, trained again on the training window for
    the rounds early stopping kept: that window has no later labelled rows to stop on. It boosts
    where the trials did: in this process, or on Ray Train for a split that needs workers."""
    training = settings.training
    if fits_one_process(train.count(), training):
        return fit_frame(
            config,
            training_frame(train, features),
            None,
            features,
            training,
            threads=training.cpus_per_trial,
            num_boost_round=rounds,
        ).booster
    family, params, strategy, ratio = split_config(config)
    resampled = resample_dataset(
        train, features, Resampling(strategy=strategy, ratio=ratio, seed=training.seed)
    )
    trained = train_model(
        resampled.data,
        None,
        features,
        family,
        params,
        training.model_copy(update={"num_boost_round": rounds}),
        str(storage),
        scale_pos_weight=resampled.scale_pos_weight,
    )
    return trained.booster


def _folds_in_data(splits: TimeSplits, first: pd.Timestamp) -> tuple[TimeSplits, tuple[str, ...]]:
    """The validation folds whose training starts inside the data: a short file (hours or days
    of payments) holds fewer earlier weeks than ``split.validation_folds`` asks for."""
    first = first.tz_localize("UTC") if first.tzinfo is None else first.tz_convert("UTC")
    kept = [splits.folds[0], *(fold for fold in splits.folds[1:] if fold.train.start >= first)]
    if len(kept) == len(splits.folds):
        return splits, ()
    note = (
        f"{len(kept)} of the {len(splits.folds)} validation folds fit in the data (the first "
        f"transaction is at {first:%Y-%m-%d %H:%M}): trials are judged on {len(kept)}"
    )
    return replace(splits, folds=tuple(kept)), (note,)


def _few_validation_frauds(
    validations: pd.DataFrame, splits: TimeSplits, tuning: dict[str, float]
) -> tuple[str, ...]:
    """A warning when the validation windows hold too few frauds to choose by: a handful of
    frauds can all rank on top after a few rounds, every trial then scores alike, and early
    stopping keeps the first of many equal rounds."""
    frauds = sum(
        int(filter_window(validations, fold.validation)[LABEL].sum()) for fold in splits.folds
    )
    if frauds >= MIN_VALIDATION_FRAUDS:
        return ()
    return (
        f"the validation windows hold {frauds} frauds (the winner's validation AP "
        f"{tuning.get('average_precision', float('nan')):.3f}): too few to choose a model or a "
        f"round count by; widen --validation-window or add --validation-folds for at least "
        f"{MIN_VALIDATION_FRAUDS}",
    )


def _test_coverage(test: TimeWindow, last: pd.Timestamp) -> tuple[str, ...]:
    """What the test figures stand for when the data end before the test window does: short
    files (hours or days of payments) are scored after training with ``fraud-ray score``."""
    last = last.tz_localize("UTC") if last.tzinfo is None else last.tz_convert("UTC")
    if last < test.start:
        return (
            f"the data end at {last:%Y-%m-%d %H:%M} before the test window starts "
            f"({test.start:%Y-%m-%d %H:%M}): no test figures",
        )
    if last < test.end:
        return (
            f"the data end at {last:%Y-%m-%d %H:%M}, inside the test window "
            f"{test.start:%Y-%m-%d %H:%M} .. {test.end:%Y-%m-%d %H:%M}: the test figures cover "
            "only its start",
        )
    return ()


def _interval(window: TimeWindow) -> str:
    return f"{window.start.isoformat()}/{window.end.isoformat()}"


def _check_frauds(split: ray.data.Dataset, window: TimeWindow, name: str) -> None:
    rows = split.count()
    frauds = int(split.sum(LABEL) or 0) if rows else 0
    if frauds == 0:
        raise TrainingError(
            f"the {name} window {window.start:%Y-%m-%d %H:%M} .. "
            f"{window.end:%Y-%m-%d %H:%M} holds no fraud ({rows:,} transactions): "
            "widen it or move it (--train-start, --train-end)"
        )


def _check_validation(validation: pd.DataFrame, window: TimeWindow) -> None:
    if len(validation) == 0 or validation[LABEL].nunique() < 2:
        raise TrainingError(
            f"the validation window {window.start:%Y-%m-%d %H:%M} .. "
            f"{window.end:%Y-%m-%d %H:%M} needs frauds and legitimate transactions: "
            "the data may end too early for the training window and the label delay"
        )


def _frauds(table: ray.data.Dataset) -> pd.DataFrame:
    """Card, time and label of every fraud: all ``without_known_compromised_cards`` needs."""
    if CARD_ID not in table.columns():
        return pd.DataFrame(columns=[CARD_ID, TIMESTAMP, LABEL])
    frauds = table.select_columns([CARD_ID, TIMESTAMP, LABEL]).filter(expr=col(LABEL) == 1)
    return frauds.to_pandas()


def _reference_sample(
    validation: pd.DataFrame, spec: FeatureSpec, probabilities: np.ndarray, folder: Path
) -> Path:
    """Features and scores drift is measured against later, and labels: the model gate checks a
    version's average precision on them before it may serve."""
    sample = validation[[*spec.names, LABEL]].assign(fraud_probability=probabilities)
    sample = sample.sample(n=min(REFERENCE_ROWS, len(sample)), random_state=0)
    path = folder / REFERENCE_SAMPLE
    sample.to_parquet(path, index=False)
    return path


def _fingerprint(summary: dict[str, Any]) -> str:
    """Identifies the training data by content summaries that any copy of it reproduces."""
    content = {
        "rows": int(summary["count()"]),
        "amount_sum": round(float(summary[f"sum({AMOUNT})"]), 2),
        "first": str(pd.Timestamp(summary[f"min({TIMESTAMP})"])),
        "last": str(pd.Timestamp(summary[f"max({TIMESTAMP})"])),
        "frauds": int(summary[f"sum({LABEL})"]),
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]
