"""The training job end to end on a small simulation: tune, calibrate, register, load, score."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from fraud_ray.costs import CostPolicy
from fraud_ray.registry import Registry
from fraud_ray.schema import DatasetMapping
from fraud_ray.scoring import score_file
from fraud_ray.training.job import TrainingError, ensure_champion, train

from ..conftest import small_settings


def test_the_winner_is_registered_as_champion_with_its_evidence(training_run: tuple) -> None:
    settings, result = training_run
    assert result.registered.uri == "models:/fraud-test/1"
    assert result.trials == 2
    registry = Registry(settings.mlflow)
    version = registry.resolve("@champion")
    assert str(version.version) == "1"
    assert version.tags["calibration"] in {"isotonic", "platt"}
    assert len(version.tags["data_fingerprint"]) == 16
    run = mlflow.get_run(result.registered.run_id)
    assert run.data.metrics["validation_average_precision"] > 0.3
    assert "test_card_precision_at_100" in run.data.metrics
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(result.registered.run_id)}
    assert {"precision_recall.png", "cost_curve.png", "calibration.png"} <= artifacts
    assert "reference_sample.parquet" in artifacts
    tuning = mlflow.get_experiment_by_name("fraud-ray-tuning")
    trials = mlflow.search_runs([tuning.experiment_id])
    assert len(trials) == 2, "every trial's parameters and metrics are in MLflow"
    summary = json.loads(json.dumps(result.summary(), default=str))
    assert summary["model_uri"] == "models:/fraud-test/1"


def test_the_model_saves_money(training_run: tuple) -> None:
    _, result = training_run
    assert result.validation["average_precision"] > 0.3
    assert result.validation["savings_vs_approve_all"] > 0


def test_batch_scoring_writes_a_decision_per_transaction(
    training_run: tuple, tmp_path: Path
) -> None:
    settings, _ = training_run
    model, _ = Registry(settings.mlflow).load("@champion")
    last_days = pd.Timestamp("2025-06-01", tz="UTC")
    out = tmp_path / "decisions.parquet"
    policy = CostPolicy.from_settings(settings.costs)
    summary = score_file(
        settings.data.raw_dir,
        model,
        policy,
        out,
        settings.features,
        start=last_days.to_pydatetime(),
    )
    decisions = pd.read_parquet(out)
    raw = pd.read_parquet(settings.data.raw_dir)
    expected = raw[raw["timestamp"] >= last_days]
    assert summary.rows == len(decisions) == len(expected)
    assert set(decisions["transaction_id"]) == set(expected["transaction_id"])
    assert decisions["fraud_probability"].between(0, 1).all()
    assert set(decisions["decision"]) <= {"approve", "review", "decline"}
    frauds = expected.set_index("transaction_id")["is_fraud"]
    flagged = decisions.set_index("transaction_id")["decision"] != "approve"
    assert frauds[flagged[flagged].index].mean() > 2 * frauds.mean()


def own_file(path: Path, rows: int, *, seed: int, columns: list[str]) -> DatasetMapping:
    """A user's file of 60 days: time in seconds, anonymised columns of which the first decides
    the label, an amount; no card, terminal or id. Returns the mapping that reads it."""
    rng = np.random.default_rng(seed)
    values = {name: rng.normal(size=rows) for name in columns}
    fraud = (values[columns[0]] + 0.5 * rng.normal(size=rows) > 2.0).astype(int)
    seconds = np.sort(rng.uniform(0, 60 * 86400, rows)).round()
    pd.DataFrame({"secs": seconds, **values, "amt": rng.uniform(1, 200, rows), "y": fraud}).to_csv(
        path, index=False
    )
    return DatasetMapping(
        time="secs",
        time_unit="s",
        time_origin="2024-01-01",
        amount="amt",
        label="y",
        features=columns,
    )


def test_own_data_without_cards_terminals_or_ids(ray_session: None, tmp_path: Path) -> None:
    rows = 12_000
    mapping = own_file(tmp_path / "own.csv", rows, seed=3, columns=["v1", "v2"])
    settings = small_settings(tmp_path)
    result = train(
        settings,
        tmp_path / "own.csv",
        mapping,
        train_start=pd.Timestamp("2024-01-05", tz="UTC"),
        train_end=pd.Timestamp("2024-01-26", tz="UTC"),
        trials=1,
    )
    assert result.validation["average_precision"] > 0.5
    model, _ = Registry(settings.mlflow).load(result.registered.uri)
    assert model.features == ["amount", "log_amount", "hour", "is_weekend", "is_night", "v1", "v2"]
    out = tmp_path / "scores.parquet"
    policy = CostPolicy.from_settings(settings.costs)
    summary = score_file(tmp_path / "own.csv", model, policy, out, settings.features, mapping)
    assert summary.rows == rows
    assert set(pd.read_parquet(out)["transaction_id"]) == {str(i) for i in range(rows)}


def test_a_window_without_fraud_is_refused_with_advice(ray_session: None, tmp_path: Path) -> None:
    pd.DataFrame({"secs": np.arange(500) * 3600.0, "amt": 10.0, "y": 0}).to_csv(
        tmp_path / "clean.csv", index=False
    )
    mapping = DatasetMapping(time="secs", time_unit="s", amount="amt", label="y")
    with pytest.raises(TrainingError, match="holds no fraud"):
        train(small_settings(tmp_path), tmp_path / "clean.csv", mapping, trials=1)


def test_champion_on_a_fresh_machine_says_how_to_get_one(tmp_path: Path) -> None:
    settings = small_settings(tmp_path)
    with pytest.raises(TrainingError, match="fraud-ray champion --train-if-missing"):
        ensure_champion(settings)
    with pytest.raises(TrainingError, match="fraud-ray simulate"):
        ensure_champion(settings, train_if_missing=True)


def test_champion_is_found_once_trained(training_run: tuple) -> None:
    settings, result = training_run
    found = ensure_champion(settings, train_if_missing=True)
    assert found.uri == result.registered.uri
    assert found.trained is None


def test_trials_can_be_judged_over_several_weeks(ray_session: None, tmp_path: Path) -> None:
    """Two validation folds in the handbook's layout: every fold's labels end where training
    ends, and the registered model records the folds and their figures."""
    mapping = own_file(tmp_path / "own.csv", 12_000, seed=4, columns=["v1"])
    settings = small_settings(tmp_path).updated(
        {"split": {"layout": "before", "validation_folds": 2}}
    )
    result = train(
        settings,
        tmp_path / "own.csv",
        mapping,
        train_start=pd.Timestamp("2024-01-29", tz="UTC"),
        trials=1,
    )

    folds = result.splits.folds
    assert len(folds) == 2
    assert folds[1].validation.end == folds[0].validation.start  # one week back
    assert folds[0].validation.end == result.splits.train.end
    assert result.tuning["average_precision"] == pytest.approx(
        (result.tuning["average_precision_fold0"] + result.tuning["average_precision_fold1"]) / 2
    )
    run = mlflow.MlflowClient(settings.mlflow.tracking_uri).get_run(result.registered.run_id)
    assert run.data.params["validation_folds"] == "2"
    assert "tuning_average_precision_fold1" in run.data.metrics
