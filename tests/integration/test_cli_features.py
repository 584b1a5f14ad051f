"""`fraud-ray features` end to end on Ray: a table and its summary, or one readable error."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from fraud_ray.cli import app

runner = CliRunner()


def test_features_command_prints_feature_statistics(ray_session: None, tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "features"
    simulate = ["simulate", "--customers", "60", "--terminals", "120", "--days", "10"]
    assert runner.invoke(app, [*simulate, "--out", str(raw)]).exit_code == 0
    result = runner.invoke(app, ["features", "--data", str(raw), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "card_tx_count_30d" in result.output
    assert "terminal_fraud_rate_7d" in result.output
    assert len(pd.read_parquet(out)) == len(pd.read_parquet(raw))


def test_bad_values_end_the_command_with_one_readable_line(
    ray_session: None, tmp_path: Path
) -> None:
    data = tmp_path / "bad.csv"
    data.write_text(
        "transaction_id,timestamp,card_id,terminal_id,amount,is_fraud\n"
        "a,2025-01-01T10:00:00Z,c1,t1,10.0,0\n"
        "b,2025-01-01T11:00:00Z,c1,t1,-4.0,0\n"
    )
    result = runner.invoke(app, ["features", "--data", str(data), "--out", str(tmp_path / "f")])
    assert result.exit_code == 2
    assert "amount column 'amount': negative" in result.output
    assert "Traceback" not in result.output
    assert "RayTaskError" not in result.output
