"""A new user's first steps on their own short file: suggest a mapping, train, score, evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from fraud_ray.cli import app
from fraud_ray.schema import DatasetMapping

from ..two_day_file import COLUMNS, write_two_day_file

runner = CliRunner()
TRAIN_END = "1970-01-02T12:00"  # 36 hours in; the last 12 hours are scored after training


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("your-data")
    write_two_day_file(root / "payments.csv")
    config = {
        "data": {"raw_dir": str(root / "raw")},
        "mlflow": {
            "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
            "artifact_location": str(root / "artifacts"),
            "model_name": "your-data",
        },
        "training": {"num_boost_round": 60, "families": ["xgboost"], "trials": 1},
    }
    (root / "settings.yaml").write_text(yaml.safe_dump(config))
    return root


def json_line(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_a_two_day_file_trains_scores_and_evaluates(ray_session: None, workspace: Path) -> None:
    data, mapping = workspace / "payments.csv", workspace / "mapping.yaml"
    config = ["--config", str(workspace / "settings.yaml")]

    suggested = runner.invoke(app, [*config, "mapping", "suggest", "--data", str(data)])
    assert suggested.exit_code == 0, suggested.output
    mapping.write_text(suggested.stdout)
    guess = DatasetMapping.from_yaml(mapping)
    assert (guess.time, guess.time_unit, guess.amount, guess.label) == (
        "Time",
        "s",
        "Amount",
        "Class",
    )
    assert guess.id is guess.card is guess.terminal is None
    assert guess.features == [f"V{i}" for i in range(1, COLUMNS + 1)]

    source = ["--data", str(data), "--mapping", str(mapping)]
    trained = runner.invoke(
        app,
        [
            *config,
            "train",
            *source,
            "--train-start",
            "1970-01-01",
            "--train-end",
            TRAIN_END,
            "--label-delay",
            "0h",
            "--validation-window",
            "8h",
            "--layout",
            "before",
        ],
    )
    assert trained.exit_code == 0, trained.output
    result = json_line(trained.stdout)
    assert result["validation"]["average_precision"] > 0.3
    assert "inside the test window" in " ".join(result["notes"])
    assert "rows" in trained.output and "label rate" in trained.output  # the data summary

    scored_file = workspace / "scored.parquet"
    scored = runner.invoke(
        app,
        [
            *config,
            "score",
            *source,
            "--model",
            result["model_uri"],
            "--start",
            TRAIN_END,
            "--out",
            str(scored_file),
        ],
    )
    assert scored.exit_code == 0, scored.output
    frame = pd.read_csv(data)
    assert pq.read_table(scored_file).num_rows == int((frame["Time"] >= 36 * 3600).sum())

    out = workspace / "evaluation"
    evaluated = runner.invoke(
        app,
        [
            *config,
            "evaluate",
            "--model",
            result["model_uri"],
            *source,
            "--start",
            TRAIN_END,
            "--out",
            str(out),
        ],
    )
    assert evaluated.exit_code == 0, evaluated.output
    figures = json_line(evaluated.stdout)
    assert figures["rows"] == pq.read_table(scored_file).num_rows
    assert figures["average_precision"] > 0.3
    assert "card_precision_at_100" not in figures  # no cards in this file
    assert {"savings_vs_approve_all", "savings_vs_threshold", "recall_at_fpr_0_01"} <= set(figures)
    assert {p.name for p in out.glob("*.png")} == {
        "precision_recall.png",
        "cost_curve.png",
        "calibration.png",
    }
