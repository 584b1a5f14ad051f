"""Suggested mappings: roles guessed from names and values, every guess commented."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from fraud_ray.data import DataValidationError, apply_mapping
from fraud_ray.mapping import read_sample, suggest_mapping
from fraud_ray.schema import DatasetMapping

from ..two_day_file import COLUMNS, two_day_frame, write_two_day_file


def test_the_two_day_shape_maps_time_in_seconds_and_anonymised_features(tmp_path: Path) -> None:
    path = write_two_day_file(tmp_path / "payments.csv", rows=2000)
    suggestion = suggest_mapping(read_sample(path))
    text = suggestion.yaml(path)
    mapping = DatasetMapping.model_validate(yaml.safe_load(text))
    assert mapping == suggestion.mapping
    assert (mapping.time, mapping.time_unit) == ("Time", "s")
    assert (mapping.amount, mapping.label) == ("Amount", "Class")
    assert mapping.id is mapping.card is mapping.terminal is None
    assert mapping.features == [f"V{i}" for i in range(1, COLUMNS + 1)]
    assert "# id: not found" in text and "seconds since the first payment" in text
    assert len(apply_mapping(two_day_frame(500), mapping)) == 500


def test_simulator_like_columns_and_leaks_left_out() -> None:
    sample = pd.DataFrame(
        {
            "TRANSACTION_ID": ["a", "b", "c"],
            "TX_DATETIME": ["2025-04-01 10:00:00", "2025-04-01 11:00:00", "2025-04-02 09:00:00"],
            "CUSTOMER_ID": ["1", "2", "1"],
            "TERMINAL_ID": ["7", "8", "9"],
            "TX_AMOUNT": [12.5, 0.0, 80.0],
            "TX_FRAUD": [0, 1, 0],
            "TX_FRAUD_SCENARIO": [0, 2, 0],
            "CHANNEL": ["web", "pos", "pos"],
        }
    )
    suggestion = suggest_mapping(sample)
    mapping = suggestion.mapping
    assert (mapping.id, mapping.time, mapping.time_unit) == ("TRANSACTION_ID", "TX_DATETIME", None)
    assert (mapping.card, mapping.terminal) == ("CUSTOMER_ID", "TERMINAL_ID")
    assert (mapping.amount, mapping.label) == ("TX_AMOUNT", "TX_FRAUD")
    assert mapping.features == []
    assert "leak" in suggestion.left_out["TX_FRAUD_SCENARIO"]
    assert "not numeric" in suggestion.left_out["CHANNEL"]


@pytest.mark.parametrize(("largest", "unit"), [(1.7e9, "s"), (1.7e12, "ms"), (1.7e18, "ns")])
def test_epoch_times_get_their_unit_from_their_size(largest: float, unit: str) -> None:
    sample = pd.DataFrame({"unix_time": [largest - 10, largest], "amt": [1.0, 2.0]})
    assert suggest_mapping(sample).mapping.time_unit == unit


def test_without_an_amount_it_asks_for_a_mapping_by_hand() -> None:
    with pytest.raises(DataValidationError, match="amount"):
        suggest_mapping(pd.DataFrame({"time": [1, 2], "colour": ["red", "blue"]}))
