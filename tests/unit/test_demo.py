"""The demo's own steps that need no cluster: what it replays, what it labels, where it writes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from fraud_ray.decision_log import DecisionLog
from fraud_ray.demo import (
    DemoResult,
    demo_settings,
    labels_between,
    messages,
    replay_frame,
    summary,
)
from fraud_ray.schema import Transaction
from fraud_ray.settings import Settings, SimulatorSettings
from fraud_ray.simulator import write_simulation

from ..decision_log_contract import write


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "raw"
    write_simulation(SimulatorSettings(customers=60, terminals=120, days=12), out)
    return out


def test_the_replay_is_the_last_days_in_time_order_with_only_the_last_day_shifted(
    raw: Path,
) -> None:
    original = replay_frame(raw, days=4, amount_shift=1.0)
    shifted = replay_frame(raw, days=4, amount_shift=3.0)
    days = original["timestamp"].dt.normalize()
    assert days.nunique() == 4
    assert days.max() == pd.read_parquet(raw)["timestamp"].max().normalize()
    assert original["timestamp"].is_monotonic_increasing
    last = days == days.max()
    assert (shifted.loc[~last, "amount"] == original.loc[~last, "amount"]).all()
    ratio = shifted.loc[last, "amount"] / original.loc[last, "amount"]
    assert ratio.between(2.95, 3.05).all()


def test_replayed_messages_are_transactions_keyed_by_card(raw: Path) -> None:
    frame = replay_frame(raw, days=2, amount_shift=1.0)
    sent = list(messages(frame))
    assert len(sent) == len(frame)
    key, value = sent[0]
    transaction = Transaction.model_validate_json(value)
    assert key.decode() == transaction.card_id == frame["card_id"].iloc[0]
    assert transaction.amount == pytest.approx(frame["amount"].iloc[0])


def test_labels_are_those_of_their_window_only(raw: Path) -> None:
    frame = replay_frame(raw, days=10, amount_shift=1.0)
    start = frame["timestamp"].min().normalize() + timedelta(days=2)
    end = start + timedelta(days=3)
    labels = labels_between(frame, start, end)
    window = frame[(frame["timestamp"] >= start) & (frame["timestamp"] < end)]
    assert 0 < len(labels) < len(frame)
    assert dict(labels) == dict(zip(window["transaction_id"], window["is_fraud"], strict=True))
    assert labels_between(frame, end, end) == []


def test_the_demo_writes_only_under_its_folder_and_on_topics_of_its_own(tmp_path: Path) -> None:
    settings = demo_settings(Settings(), tmp_path / "demo", run="r1")
    paths = [
        str(settings.data.raw_dir),
        settings.mlflow.tracking_uri,
        settings.mlflow.artifact_location,
        settings.decisions.url,
        settings.monitoring.reports_dir,
    ]
    assert all(str(tmp_path / "demo") in path for path in paths)
    kafka = settings.kafka
    assert kafka.transactions_topic == "demo-r1.transactions"
    assert kafka.group == "fraud-ray-demo-r1"
    assert demo_settings(Settings(), tmp_path, run="r2").kafka.alerts_topic == "demo-r2.alerts"


def test_the_summary_says_what_the_dashboard_shows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    write(DecisionLog(url), list(range(1, 11)))
    settings = Settings().updated({"decisions": {"url": url}})
    result = DemoResult(settings, "http://127.0.0.1:8000", replayed=10, labelled=0)

    console = Console(width=100, record=True, color_system=None)
    console.print(summary(result))
    text = console.export_text()

    assert "replayed 10 transactions through Kafka; 0 labels sent" in text
    assert "2025-06-01" in text  # the day the log holds, in the performance table
    assert "drift: " in text and "0 logged decisions with features" in text  # too few to judge
    assert "Champion and challengers" not in text  # nothing scored in shadow
    assert text.rstrip().endswith("dashboard: http://127.0.0.1:8000/dashboard")
