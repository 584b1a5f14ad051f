"""`fraud-ray feedback` and `fraud-ray monitor ...` as a user types them, on a SQLite decision log."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from fraud_ray.cli import app, monitor_app
from fraud_ray.decision_log import DecisionLog
from fraud_ray.monitoring.summaries import PerformanceReport

from ..decision_log_contract import START, write

runner = CliRunner()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """Settings pointing at a decision log in ``tmp_path`` holding tx-00001 .. tx-00010."""
    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    write(DecisionLog(url), list(range(1, 11)))
    path = tmp_path / "settings.yaml"
    path.write_text(
        f"decisions:\n  url: {url}\nmonitoring:\n  reports_dir: {tmp_path / 'reports'}\n"
    )
    return path


def log_of(config: Path) -> DecisionLog:
    return DecisionLog(f"sqlite:///{config.parent / 'decisions.db'}")


LABELS = pd.DataFrame(
    {
        "transaction_id": ["tx-00001", "tx-00002", "tx-00003", "tx-99999"],
        "is_fraud": [1, 0, 1, 1],
        "analyst": ["ann", "bob", "ann", "bob"],  # other columns are ignored
    }
)


def label_file(folder: Path, suffix: str, frame: pd.DataFrame = LABELS) -> Path:
    path = folder / f"labels{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True)
    return path


def feedback(config: Path, path: Path) -> object:
    return runner.invoke(app, ["--config", str(config), "feedback", "--file", str(path)])


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_feedback_records_labels_and_counts_the_matched(
    config: Path, tmp_path: Path, suffix: str
) -> None:
    result = feedback(config, label_file(tmp_path, suffix))

    assert result.exit_code == 0, result.output
    assert "received 4 labels: 3 matched a logged decision, 1 did not" in result.output
    assert json.loads(result.stdout.splitlines()[-1]) == {"received": 4, "matched": 3}
    log = log_of(config)
    assert [log.get(f"tx-0000{i}").is_fraud for i in (1, 2, 3, 4)] == [1, 0, 1, None]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("labels.csv", "transaction_id,label\ntx-00001,1\n", "no column is_fraud (found: "),
        (
            "labels.csv",
            "transaction_id,is_fraud\ntx-00001,1\ntx-00002,yes\n",
            "row 2 (transaction_id tx-00002): is_fraud is 'yes', not 0 or 1",
        ),
        (
            "labels.jsonl",
            '{"transaction_id": "tx-00001", "is_fraud": 0}\n'
            '{"transaction_id": "tx-00002", "is_fraud": 2}\n',
            "row 2 (transaction_id tx-00002): is_fraud is 2, not 0 or 1",
        ),
        ("labels.csv", "transaction_id,is_fraud\n,1\n", "row 1: transaction_id is empty"),
        ("labels.csv", "transaction_id,is_fraud\ntx-00001,\n", "is_fraud is empty, not 0 or 1"),
        (
            "labels.jsonl",
            '{"transaction_id": "tx-00001", "is_fraud": 0.5}\n',
            "is_fraud is 0.5, not 0 or 1",
        ),
        ("labels.csv", "", "cannot read CSV file"),
        ("labels.parquet", "not parquet at all", "cannot read Parquet file"),
        ("labels.jsonl", "{not json", "cannot read JSON Lines file"),
        ("labels.txt", "transaction_id,is_fraud\n", "not a label file by its name"),
    ],
)
def test_a_bad_label_file_is_named_and_nothing_is_recorded(
    config: Path, tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)

    result = feedback(config, path)

    assert result.exit_code == 2
    assert message in " ".join(result.output.split())  # rich may wrap a long message
    assert "Traceback" not in result.output
    assert log_of(config).frame()["is_fraud"].isna().all()


def test_a_missing_label_file_is_named(config: Path, tmp_path: Path) -> None:
    result = feedback(config, tmp_path / "nowhere.csv")
    assert result.exit_code == 2
    assert "cannot read CSV file" in result.output
    assert "nowhere.csv" in " ".join(result.output.split())


def test_monitor_performance_prints_a_table_then_the_report(config: Path, tmp_path: Path) -> None:
    feedback(config, label_file(tmp_path, ".csv"))

    result = runner.invoke(app, ["--config", str(config), "monitor", "performance"])

    assert result.exit_code == 0, result.output
    assert "labelled" in result.output
    report = PerformanceReport.model_validate_json(result.stdout.splitlines()[-1])
    (day,) = report.days
    assert (day.day, day.decisions, day.labelled, day.frauds) == (START.date(), 10, 3, 2)


def test_monitor_performance_refuses_a_bad_date(config: Path) -> None:
    args = ["--config", str(config), "monitor", "performance", "--start", "June"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "--start: 'June' is not an ISO 8601 date" in result.output


def test_monitor_drift_without_enough_decisions_says_so(config: Path) -> None:
    result = runner.invoke(app, ["--config", str(config), "monitor", "drift"])
    assert result.exit_code == 2
    assert "0 logged decisions with features" in result.output  # written without features
    assert "Traceback" not in result.output


def test_monitor_compare_without_a_challenger_prints_null(config: Path) -> None:
    # The sub-app alone, as monitor.py runs it, with its own --config.
    result = runner.invoke(monitor_app, ["--config", str(config), "compare"])
    assert result.exit_code == 0, result.output
    assert "no shadow decisions" in result.output
    assert result.stdout.splitlines()[-1] == "null"
