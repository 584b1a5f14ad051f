"""A new user's first steps on their own short file: suggest a mapping, train, score, evaluate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from fraud_ray.cli import app
from fraud_ray.mapping import read_sample, suggest_mapping
from fraud_ray.schema import DatasetMapping

from ..two_day_file import COLUMNS, two_day_frame, write_two_day_file

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
            "--validation-folds",
            "3",
        ],
    )
    assert trained.exit_code == 0, trained.output
    result = json_line(trained.stdout)
    assert result["validation"]["average_precision"] > 0.3
    assert "inside the test window" in " ".join(result["notes"])
    # The file holds no earlier 8-hour folds: the trials are judged on the one there is.
    assert "1 of the 3 validation folds fit in the data" in " ".join(result["notes"])
    # Nine frauds in the 8-hour validation window: the user is told model choice is noise there.
    assert "too few to choose a model" in " ".join(result["notes"])
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


@pytest.fixture(scope="module")
def bad_file(workspace: Path) -> tuple[Path, Path]:
    """A short file with one negative amount, and the mapping suggested for it."""
    frame = two_day_frame(3000)
    frame.loc[1500, "Amount"] = -4.0
    data = workspace / "bad.csv"
    frame.to_csv(data, index=False)
    mapping = workspace / "bad-mapping.yaml"
    mapping.write_text(suggest_mapping(read_sample(data)).yaml(data))
    return data, mapping


def test_a_data_error_in_a_ray_task_is_one_line_without_traces(
    workspace: Path, bad_file: tuple[Path, Path]
) -> None:
    """As a user runs it, in a process of its own: Ray Data would log the task's traceback."""
    data, mapping = bad_file
    command = [
        str(Path(sys.executable).parent / "fraud-ray"),
        *("--config", str(workspace / "settings.yaml"), "train"),
        *("--data", str(data), "--mapping", str(mapping), "--train-start", "1970-01-01"),
    ]
    env = os.environ | {"RAY_ADDRESS": "local", "RAY_AUTH_MODE": "disabled"}
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    output = run.stdout + run.stderr
    assert run.returncode == 2, output
    assert "error: amount column 'Amount': negative in 1 of 3000 rows" in " ".join(output.split())
    assert "Traceback" not in output
    assert "RayTaskError" not in output


def test_verbose_shows_the_trace(
    ray_session: None, workspace: Path, bad_file: tuple[Path, Path]
) -> None:
    data, mapping = bad_file
    config = ["--config", str(workspace / "settings.yaml"), "--verbose"]
    source = ["--data", str(data), "--mapping", str(mapping), "--train-start", "1970-01-01"]
    result = runner.invoke(app, [*config, "train", *source])
    assert result.exit_code == 2
    assert "Traceback" in result.output
    assert "error: amount column 'Amount': negative" in " ".join(result.output.split())
