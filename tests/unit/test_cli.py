"""The fraud-ray command as a user types it: output, progress and readable failures."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from fraud_ray.cli import app

runner = CliRunner()


def test_simulate_writes_days_and_prints_a_summary(tmp_path: Path) -> None:
    args = ["simulate", "--customers", "50", "--terminals", "100", "--days", "3"]
    result = runner.invoke(app, [*args, "--start", "2025-02-01", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "day=2025-02-01",
        "day=2025-02-02",
        "day=2025-02-03",
    ]
    rows = pq.read_table(tmp_path).num_rows
    assert f"{rows:,}" in result.output
    assert "frauds" in result.output


def test_a_bad_date_is_named_without_a_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["simulate", "--start", "2025-13-01", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--start" in result.output
    assert "Traceback" not in result.output


def test_bad_settings_stop_the_command_with_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("simulator:\n  customers: 0\n")
    result = runner.invoke(app, ["--config", str(config), "simulate", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "simulator.customers" in result.output


def test_features_of_missing_data_say_what_to_do(tmp_path: Path) -> None:
    result = runner.invoke(app, ["features", "--data", str(tmp_path / "nothing")])
    assert result.exit_code == 2
    assert "fraud-ray simulate" in result.output


def test_an_option_that_breaks_a_rule_across_settings_is_refused_with_the_key(
    tmp_path: Path,
) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text("kafka:\n  decisions_topic: decided\n")
    # Refused before it joins Ray or Kafka: the pool would read its own decisions back.
    result = runner.invoke(app, ["--config", str(config), "ingest", "--topic", "decided"])
    assert result.exit_code == 2
    assert "kafka: transactions_topic 'decided' is also the decisions_topic" in result.output
    assert "Traceback" not in result.output


def test_a_bad_duration_is_named_without_a_traceback(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["train", "--data", str(tmp_path), "--validation-window", "8 hours"]
    )
    assert result.exit_code == 2
    assert "--validation-window" in result.output and "8 hours" in result.output
    assert "Traceback" not in result.output


def test_a_bad_layout_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--data", str(tmp_path), "--layout", "between"])
    assert result.exit_code == 2
    assert "--layout" in result.output


def test_an_unknown_model_is_named_without_a_traceback(tmp_path: Path) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text(f"mlflow:\n  tracking_uri: sqlite:///{tmp_path / 'mlflow.db'}\n")
    args = ["evaluate", "--model", "models:/nobody@champion", "--data", str(tmp_path)]
    result = runner.invoke(app, ["--config", str(config), *args])
    assert result.exit_code == 2, result.output
    assert "--model models:/nobody@champion" in result.output
    assert "Traceback" not in result.output
