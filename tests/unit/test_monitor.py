"""The Monitor end to end: decisions with features in a SQLite decision log, labels recorded
through the Monitor, reference samples in a real MLflow registry on SQLite."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from fraud_ray.costs import CostPolicy
from fraud_ray.decision_log import DecisionLog
from fraud_ray.monitoring.monitor import Monitor, NotEnoughData
from fraud_ray.registry import REFERENCE_SAMPLE, Registry
from fraud_ray.schema import Action, Decision, Fees, ModelRef, Transaction
from fraud_ray.settings import Settings

from ..feature_samples import SHIFTED, features

FEES = Fees(review_cost=3.0, decline_cost=10.0)

DAY_ONE = datetime(2025, 6, 1, tzinfo=UTC)
DAY_TWO = DAY_ONE + timedelta(days=1)
POLICY = CostPolicy(review_cost=3.0, decline_cost=10.0)


def settings_in(root: Path) -> Settings:
    return Settings(
        decisions={"url": f"sqlite:///{root / 'decisions.db'}"},
        mlflow={
            "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
            "artifact_location": str(root / "artifacts"),
            "model_name": "fraud-monitor",
        },
        monitoring={
            "drift_min_rows": 100,
            "drift_share": 0.3,
            "reports_dir": str(root / "reports"),
        },
    )


def register_reference(registry: Registry, sample: pd.DataFrame | None, folder: Path) -> str:
    """A model version whose run holds a reference sample where training logs it (the run's
    root), without a model bundle: drift reads nothing else from a version."""
    with mlflow.start_run(experiment_id=registry.experiment_id()) as run:
        if sample is not None:
            path = folder / REFERENCE_SAMPLE
            sample.to_parquet(path, index=False)
            mlflow.log_artifact(str(path))
    name = registry.settings.model_name
    if not registry.client.search_registered_models(f"name = '{name}'"):
        registry.client.create_registered_model(name)
    run_id = run.info.run_id
    version = registry.client.create_model_version(name, f"runs:/{run_id}", run_id=run_id)
    return str(version.version)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """Version 1 was validated on the generator's usual data, version 2 on shifted data."""
    root = tmp_path_factory.mktemp("registry")
    registry = Registry(settings_in(root).mlflow)
    assert register_reference(registry, features(1, 5000), root) == "1"
    assert register_reference(registry, features(4, 5000, shifted=True), root) == "2"
    assert register_reference(registry, None, root) == "3"
    registry.set_alias("champion", "2")
    return registry


def write_decisions(
    log: DecisionLog, prefix: str, start: datetime, span: timedelta, sample: pd.DataFrame, version
) -> list[str]:
    """Log one decision per sample row, spread evenly over ``span`` from ``start``, decided by
    the cost policy; ``version`` names the model of each row (or of all)."""
    versions = [version] * len(sample) if isinstance(version, str) else list(version)
    actions, costs = POLICY.decide(sample["fraud_probability"], sample["amount"])
    offsets = np.linspace(0, span.total_seconds(), len(sample))
    ids = [f"{prefix}-{i:05d}" for i in range(len(sample))]
    transactions = [
        Transaction(
            transaction_id=ids[i],
            timestamp=start + timedelta(seconds=float(offsets[i])),
            card_id=f"card-{i % 300}",
            terminal_id=f"terminal-{i % 40}",
            amount=float(sample["amount"].iloc[i]),
        )
        for i in range(len(sample))
    ]
    decisions = [
        Decision(
            transaction_id=ids[i],
            fraud_probability=float(sample["fraud_probability"].iloc[i]),
            decision=Action(actions[i]),
            expected_cost=float(costs[i]),
            model=ModelRef(name="fraud-monitor", version=versions[i]),
            costs=FEES,
            scored_at=transactions[i].timestamp,
            latency_ms=1.0,
        )
        for i in range(len(sample))
    ]
    feature_rows = sample.drop(columns="fraud_probability").to_dict("records")
    records = [decision.model_dump(mode="json") for decision in decisions]
    assert log.write(records, transactions, feature_rows) == len(sample)
    return ids


@pytest.fixture
def logged(tmp_path: Path) -> tuple[Settings, DecisionLog, list[str], list[str]]:
    """Day one: 500 ordinary decisions by version 1 in the morning. Day two, the latest: 3,000
    decisions on shifted data over the whole day, 2,000 by version 1 and 1,000 by version 2."""
    settings = settings_in(tmp_path)
    log = DecisionLog(settings.decisions.url)
    first = write_decisions(log, "d1", DAY_ONE, timedelta(hours=12), features(5, 500), "1")
    second = write_decisions(
        log,
        "d2",
        DAY_TWO,
        timedelta(hours=23, minutes=59),
        features(6, 3000, shifted=True),
        ["1", "2", "1"] * 1000,
    )
    return settings, log, first, second


def test_drift_of_the_latest_day_against_the_model_that_decided_most_of_it(
    logged: tuple, registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    settings, log, _, _ = logged
    monitor = Monitor(settings, log, registry)

    with caplog.at_level(logging.WARNING):
        summary = monitor.drift()

    # Version 1 decided 2,000 of the day's 3,000: its ordinary reference sees the shift. (The
    # champion, version 2, was validated on shifted data and would have seen none.)
    assert summary.model_version == "1"
    assert {feature.feature for feature in summary.features if feature.drifted} == SHIFTED
    assert summary.dataset_drift
    # The window is the day before the latest transaction: day one's morning is not in it.
    assert summary.current_rows == 3000
    assert summary.window_end - summary.window_start == timedelta(days=1)
    assert summary.window_end > DAY_TWO + timedelta(hours=23, minutes=59)
    assert summary.report is not None
    assert Path(summary.report).parent == Path(settings.monitoring.reports_dir).resolve()
    assert Path(summary.report).is_file()
    assert "data drift for model version 1" in caplog.text


def test_drift_needs_enough_rows_before_it_asks_the_registry(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    log = DecisionLog(settings.decisions.url)
    # The registry in ``settings`` holds no model: reaching it would fail otherwise.
    monitor = Monitor(settings, log)
    with pytest.raises(NotEnoughData, match="decision log is empty"):
        monitor.drift()
    write_decisions(log, "few", DAY_ONE, timedelta(hours=1), features(5, 99), "1")
    with pytest.raises(NotEnoughData, match="99 logged decisions"):
        monitor.drift()


def test_a_version_without_a_reference_sample_is_named(registry: Registry) -> None:
    with pytest.raises(MlflowException, match=r"no reference_sample\.parquet for model version"):
        registry.reference_sample("3")


def test_the_reference_sample_is_the_one_logged_with_the_version(registry: Registry) -> None:
    pd.testing.assert_frame_equal(registry.reference_sample("@champion"), features(4, 5000, True))


def test_labels_recorded_through_the_monitor_reach_the_performance_report(logged: tuple) -> None:
    settings, log, first, _ = logged
    monitor = Monitor(settings, log)
    frauds = set(first[:10])
    labels = [(tid, int(tid in frauds)) for tid in first[:100]]

    assert monitor.record_labels([*labels, ("unknown", 1)]) == 100

    report = monitor.performance()
    day_one, day_two = report.days
    assert (day_one.day, day_one.decisions, day_one.labelled, day_one.frauds) == (
        DAY_ONE.date(),
        500,
        100,
        10,
    )
    assert day_one.unlabelled == 400
    assert day_one.recall is not None
    assert (day_two.decisions, day_two.labelled, day_two.precision) == (3000, 0, None)
    assert report.k == settings.monitoring.precision_k
    version_two = monitor.performance(model_version="2")
    assert [(day.day, day.decisions) for day in version_two.days] == [(DAY_TWO.date(), 1000)]
    assert [day.day for day in monitor.performance(start=DAY_TWO).days] == [DAY_TWO.date()]


def test_the_comparison_is_none_until_a_challenger_scored_in_shadow(logged: tuple) -> None:
    settings, log, _, second = logged
    monitor = Monitor(settings, log)
    assert monitor.comparison() is None

    served = {row.transaction_id: row for row in log.frame(DAY_TWO).itertuples()}
    challenger = [
        Decision(
            transaction_id=tid,
            fraud_probability=0.9,
            decision=Action.DECLINE,
            expected_cost=1.0,
            model=ModelRef(name="fraud-monitor", version="4"),
            costs=FEES,
            scored_at=served[tid].timestamp,
            latency_ms=1.0,
        )
        for tid in second[:200]
    ]
    log.write_shadow([decision.model_dump(mode="json") for decision in challenger])
    monitor.record_labels([(tid, 1) for tid in second[:100]])

    comparison = monitor.comparison()

    assert comparison is not None
    assert comparison.compared == 100
    champion_declined = sum(served[tid].decision == "decline" for tid in second[:100])
    assert comparison.agreement == pytest.approx(champion_declined / 100)
    assert [(o.role, o.model_version) for o in comparison.outcomes] == [
        ("champion", "1"),
        ("champion", "2"),
        ("challenger", "4"),
    ]
    assert comparison.outcomes[-1].recall == 1.0
    assert comparison.window_start == served[second[0]].timestamp
