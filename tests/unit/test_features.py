"""Each feature on hand-computed cases, through both executions (offline and online)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fraud_ray.features.definitions import FeatureSpec
from fraud_ray.features.offline import compute_features
from fraud_ray.features.online import OnlineFeatures, replay
from fraud_ray.features.state import Event, MemoryState

DAY = pd.Timedelta(days=1)
T0 = pd.Timestamp("2025-01-06 10:00", tz="UTC")  # a Monday


def frame(rows: list[tuple]) -> pd.DataFrame:
    """Rows of (transaction_id, time, card, terminal, amount, is_fraud)."""
    columns = ["transaction_id", "timestamp", "card_id", "terminal_id", "amount", "is_fraud"]
    result = pd.DataFrame(rows, columns=columns)
    result["timestamp"] = pd.to_datetime(result["timestamp"], utc=True).dt.as_unit("us")
    return result


def offline(rows: list[tuple], spec: FeatureSpec) -> pd.DataFrame:
    data = frame(rows)
    return compute_features(data, spec).set_axis(data["transaction_id"])


def online(rows: list[tuple], spec: FeatureSpec) -> pd.DataFrame:
    data = frame(rows)
    values = replay(data, OnlineFeatures(spec, MemoryState(spec)))
    return pd.DataFrame(values, columns=spec.names, index=data["transaction_id"])


both_paths = pytest.mark.parametrize("compute", [offline, online], ids=["offline", "online"])


@both_paths
def test_calendar_features(compute) -> None:
    spec = FeatureSpec(night_start_hour=22, night_end_hour=6)
    rows = [
        ("a", "2025-01-04 23:30", "c", "t", 10.0, 0),  # Saturday night
        ("b", "2025-01-06 05:59", "d", "t", 10.0, 0),  # Monday, still night
        ("c", "2025-01-06 06:00", "e", "t", 10.0, 0),  # Monday morning
    ]
    got = compute(rows, spec)
    assert got.loc["a", ["hour", "is_weekend", "is_night"]].tolist() == [23, 1, 1]
    assert got.loc["b", ["hour", "is_weekend", "is_night"]].tolist() == [5, 0, 1]
    assert got.loc["c", ["hour", "is_weekend", "is_night"]].tolist() == [6, 0, 0]
    assert got.loc["a", "log_amount"] == pytest.approx(math.log(11.0))


@both_paths
def test_card_windows_cover_the_history_before_the_transaction(compute) -> None:
    spec = FeatureSpec(windows_days=(1, 7))
    rows = [
        ("t1", T0, "x", "m", 10.0, 0),
        ("t2", T0 + pd.Timedelta(hours=2), "x", "m", 20.0, 0),
        ("t3", T0 + DAY, "x", "m", 90.0, 0),  # t1 is exactly one day earlier: inside [t - 1d, t)
        ("t4", T0 + 9 * DAY, "x", "m", 40.0, 0),  # everything else is older than 7 days
        ("other", T0 + DAY, "y", "m", 1000.0, 0),  # another card never mixes in
    ]
    got = compute(rows, spec)
    assert got.loc["t1", "card_tx_count_1d"] == 0
    assert np.isnan(got.loc["t1", "card_mean_amount_7d"])
    assert np.isnan(got.loc["t1", "card_seconds_since_previous"])
    assert got.loc["t2", "card_tx_count_1d"] == 1
    assert got.loc["t2", "card_mean_amount_1d"] == 10.0
    assert got.loc["t2", "amount_to_card_mean_1d"] == 2.0
    assert got.loc["t2", "card_seconds_since_previous"] == 7200
    assert got.loc["t3", "card_tx_count_1d"] == 2
    assert got.loc["t3", "card_mean_amount_1d"] == 15.0
    assert got.loc["t3", "amount_to_card_mean_7d"] == 6.0
    assert got.loc["t3", "card_seconds_since_previous"] == 22 * 3600
    assert got.loc["t4", "card_tx_count_7d"] == 0
    assert np.isnan(got.loc["t4", "card_mean_amount_7d"])
    assert got.loc["t4", "card_seconds_since_previous"] == 8 * 86400
    assert got.loc["other", "card_tx_count_7d"] == 0


@both_paths
def test_every_feature_copes_with_zero_amounts(compute) -> None:
    spec = FeatureSpec(windows_days=(1, 7))
    rows = [
        ("v1", T0, "x", "m", 0.0, 0),  # a card verification
        ("v2", T0 + pd.Timedelta(minutes=5), "x", "m", 0.0, 0),  # only zeros before it
        ("buy", T0 + pd.Timedelta(hours=1), "x", "m", 80.0, 0),  # after a history averaging 0
        ("after", T0 + pd.Timedelta(hours=2), "x", "m", 0.0, 0),  # a zero after a payment
    ]
    got = compute(rows, spec)
    assert np.isfinite(got.drop(columns=[c for c in spec.names if "fraud_rate" in c])).sum().sum()
    assert not np.isinf(got.to_numpy()).any()
    assert got.loc["v1", "amount"] == 0.0
    assert got.loc["v1", "log_amount"] == 0.0
    assert got.loc["v2", "card_mean_amount_1d"] == 0.0
    assert np.isnan(got.loc["v2", "amount_to_card_mean_1d"])  # 0 against an average of 0
    assert got.loc["buy", "card_tx_count_1d"] == 2
    assert got.loc["buy", "card_mean_amount_7d"] == 0.0
    assert np.isnan(got.loc["buy", "amount_to_card_mean_7d"])  # 80 against an average of 0
    assert got.loc["after", "card_mean_amount_1d"] == pytest.approx(80 / 3)
    assert got.loc["after", "amount_to_card_mean_1d"] == 0.0
    assert got.loc["after", "terminal_tx_count_1d"] == 3


@both_paths
def test_simultaneous_transactions_are_ordered_by_id(compute) -> None:
    rows = [("b", T0, "x", "m", 30.0, 0), ("a", T0, "x", "m", 10.0, 0)]
    got = compute(rows, FeatureSpec())
    assert got.loc["a", "card_tx_count_1d"] == 0
    assert got.loc["b", "card_tx_count_1d"] == 1
    assert got.loc["b", "card_mean_amount_1d"] == 10.0
    assert got.loc["b", "card_seconds_since_previous"] == 0
    assert got.loc["b", "terminal_tx_count_1d"] == 1


@both_paths
def test_terminal_fraud_rate_only_uses_labels_older_than_the_delay(compute) -> None:
    spec = FeatureSpec(windows_days=(1, 7), label_delay_days=7)
    rows = [
        ("f", T0, "a", "m", 10.0, 1),
        ("g", T0 + pd.Timedelta(hours=1), "b", "m", 10.0, 0),
        ("early", T0 + 7 * DAY, "c", "m", 10.0, 0),  # the fraud is exactly 7 days old: not yet
        ("later", T0 + 7 * DAY + pd.Timedelta(hours=2), "d", "m", 10.0, 0),
        ("elsewhere", T0 + 8 * DAY, "e", "n", 10.0, 0),
    ]
    got = compute(rows, spec)
    assert np.isnan(got.loc["f", "terminal_fraud_rate_7d"])
    assert np.isnan(got.loc["early", "terminal_fraud_rate_1d"])
    assert got.loc["early", "terminal_tx_count_7d"] == 2
    assert got.loc["later", "terminal_fraud_rate_1d"] == 0.5
    assert got.loc["later", "terminal_fraud_rate_7d"] == 0.5
    assert got.loc["later", "terminal_tx_count_1d"] == 1
    assert np.isnan(got.loc["elsewhere", "terminal_fraud_rate_7d"])


def test_features_without_cards_or_terminals_leave_their_features_out() -> None:
    spec = FeatureSpec(has_card=False, has_terminal=False, attributes=("v1",))
    assert spec.names == ["amount", "log_amount", "hour", "is_weekend", "is_night", "v1"]
    data = frame([("a", T0, None, None, 5.0, 0)]).drop(columns=["card_id", "terminal_id"])
    data["v1"] = [0.25]
    assert compute_features(data, spec)["v1"].tolist() == [0.25]
    got = OnlineFeatures(spec, MemoryState(spec)).compute_one(
        Event("a", 0, 5.0, attributes={"v1": 0.25})
    )
    assert got["v1"] == 0.25


def test_a_repeated_transaction_is_counted_once() -> None:
    spec = FeatureSpec()
    features = OnlineFeatures(spec, MemoryState(spec))
    first = Event("a", 0, 10.0, "x", "m")
    features.compute([first])
    again = features.compute([first, Event("b", 1_000_000, 30.0, "x", "m")])
    card_count = spec.names.index("card_tx_count_1d")
    assert again[0, card_count] == 0
    assert again[1, card_count] == 1


def test_labels_for_unknown_transactions_are_reported_not_stored() -> None:
    spec = FeatureSpec()
    features = OnlineFeatures(spec, MemoryState(spec))
    features.compute([Event("a", 0, 10.0, "x", "m")])
    assert features.record_labels([("a", 1), ("nobody", 1)]) == 1


HOUR = pd.Timedelta(hours=1)


@both_paths
def test_windows_shorter_than_a_day(compute) -> None:
    spec = FeatureSpec(windows_s=(3600, 5400), label_delay_s=2 * 3600)
    rows = [
        ("f", T0, "x", "m", 10.0, 1),
        ("a", T0 + 30 * pd.Timedelta(minutes=1), "x", "m", 20.0, 0),
        ("b", T0 + HOUR + pd.Timedelta(minutes=15), "x", "m", 60.0, 0),  # f is 75 minutes old
        ("c", T0 + 2 * HOUR, "y", "m", 5.0, 0),  # f's label is exactly 2 hours old: not yet
        ("d", T0 + 2 * HOUR + pd.Timedelta(minutes=1), "z", "m", 5.0, 0),
    ]
    got = compute(rows, spec)
    assert spec.names[5:8] == ["card_tx_count_1h", "card_mean_amount_1h", "amount_to_card_mean_1h"]
    assert got.loc["a", "card_tx_count_1h"] == 1
    assert got.loc["b", "card_tx_count_1h"] == 1  # only a, 45 minutes earlier
    assert got.loc["b", "card_mean_amount_1h"] == 20.0
    assert got.loc["b", "card_tx_count_90m"] == 2
    assert got.loc["b", "amount_to_card_mean_90m"] == 4.0
    assert np.isnan(got.loc["c", "terminal_fraud_rate_90m"])
    assert got.loc["c", "terminal_tx_count_1h"] == 1  # b only
    assert got.loc["d", "terminal_fraud_rate_90m"] == 1.0  # [t - 3h30, t - 2h): f alone


def test_specs_saved_in_days_load_as_before() -> None:
    """Model bundles saved before durations spell windows and the delay in days."""
    old = FeatureSpec(windows_days=(1, 7, 30), label_delay_days=7)
    assert old == FeatureSpec()
    assert old.names == FeatureSpec().names
    assert "card_tx_count_7d" in old.names and "terminal_fraud_rate_30d" in old.names


def test_windows_follow_the_settings() -> None:
    spec = FeatureSpec(windows_days=(2, 14))
    assert "card_tx_count_14d" in spec.names
    assert "terminal_fraud_rate_2d" in spec.names
    assert "card_tx_count_30d" not in spec.names


def test_a_transaction_dated_far_ahead_forgets_nothing_of_other_cards_and_terminals() -> None:
    spec = FeatureSpec()
    features = OnlineFeatures(spec, MemoryState(spec))
    hour = 3_600_000_000
    features.compute([Event(f"h{i}", i * hour, 10.0, "x", "m") for i in range(3)])
    features.compute([Event("outlier", 200 * 365 * 24 * hour, 10.0, "z", "o")])
    after = features.compute_one(Event("next", 4 * hour, 10.0, "x", "m"))
    assert after["card_tx_count_1d"] == 3 and after["terminal_tx_count_30d"] == 3
    assert features.record_labels([("h0", 1), ("h2", 0)]) == 2, "labels still find the terminal"
