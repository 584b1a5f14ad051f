"""The Ray Data execution of the offline features equals the single-process one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraud_ray.data import read_transactions, read_transactions_pandas
from fraud_ray.features.definitions import FeatureSpec
from fraud_ray.features.distributed import MANIFEST, build_features, write_features
from fraud_ray.features.offline import compute_features
from fraud_ray.schema import DatasetMapping
from fraud_ray.settings import FeatureSettings, SimulatorSettings
from fraud_ray.simulator import write_simulation


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("simulated")
    write_simulation(SimulatorSettings(customers=150, terminals=300, days=40), out)
    return out


def test_ray_data_features_equal_single_process(ray_session: None, simulated: Path) -> None:
    spec = FeatureSpec()
    history = read_transactions_pandas(simulated)
    expected = compute_features(history, spec).set_axis(history["transaction_id"])
    got = (
        build_features(read_transactions(simulated), spec, partitions=3)
        .to_pandas()
        .set_index("transaction_id")
        .loc[expected.index, spec.names]
    )
    assert len(got) == len(history)
    values = got.to_numpy(dtype=np.float64, na_value=np.nan)
    np.testing.assert_allclose(values, expected.to_numpy(), rtol=1e-9, equal_nan=True)


def test_feature_table_and_manifest(ray_session: None, simulated: Path, tmp_path: Path) -> None:
    out = tmp_path / "features"
    summary = write_features(simulated, out, FeatureSettings(windows_days=[1, 7]))
    manifest = json.loads((out / MANIFEST).read_text())
    table = pd.read_parquet(out)
    assert summary.rows == len(table) == len(read_transactions_pandas(simulated))
    assert manifest["features"] == list(summary.stats) == FeatureSpec(windows_days=(1, 7)).names
    assert set(manifest["features"]) <= set(table.columns)
    assert summary.stats["card_tx_count_7d"]["max"] > 0
    again = write_features(simulated, out, FeatureSettings(windows_days=[1, 7]))
    assert again.rows == summary.rows, "a rerun replaces its own table instead of adding to it"
    assert len(pd.read_parquet(out)) == summary.rows


def test_a_folder_that_is_not_a_feature_table_is_never_replaced(
    ray_session: None, simulated: Path, tmp_path: Path
) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    with pytest.raises(FileExistsError, match="choose another --out"):
        write_features(simulated, tmp_path, FeatureSettings())
    assert precious.read_text() == "keep me"


def test_data_without_cards_or_terminals_gets_only_its_features(
    ray_session: None, tmp_path: Path
) -> None:
    rows = 50
    pd.DataFrame(
        {
            "t": np.arange(rows) * 3600.0,
            "value": np.linspace(1, 50, rows),
            "v1": np.linspace(0, 1, rows),
            "y": np.arange(rows) % 2,
        }
    ).to_csv(tmp_path / "own.csv", index=False)
    mapping = DatasetMapping(
        time="t",
        time_unit="s",
        time_origin="2024-01-01",
        amount="value",
        label="y",
        features=["v1"],
    )
    out = tmp_path / "features"
    summary = write_features(tmp_path / "own.csv", out, FeatureSettings(), mapping)
    assert list(summary.stats) == ["amount", "log_amount", "hour", "is_weekend", "is_night", "v1"]
    table = pd.read_parquet(out).sort_values("timestamp")
    assert table["transaction_id"].tolist() == [str(i) for i in range(rows)]
    assert table["hour"].tolist() == [i % 24 for i in range(rows)]
