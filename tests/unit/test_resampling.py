"""Each imbalance strategy on a small hand-made training frame, without Ray."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from fraud_ray.schema import AMOUNT, CARD_ID, LABEL, TIMESTAMP, TRANSACTION_ID
from fraud_ray.training.resampling import Resampling, resample_frame

FEATURES = [AMOUNT, "velocity", "history"]


@pytest.fixture
def frame() -> pd.DataFrame:
    """10 frauds among 100 payments; ``history`` is missing for some rows, as new cards are."""
    rng = np.random.default_rng(5)
    rows = 100
    labels = np.zeros(rows, dtype="int8")
    labels[rng.choice(rows, size=10, replace=False)] = 1
    history = rng.normal(50.0, 10.0, rows)
    history[::7] = np.nan
    return pd.DataFrame(
        {
            TRANSACTION_ID: [f"tx-{i}" for i in range(rows)],
            TIMESTAMP: pd.date_range("2025-04-01", periods=rows, freq="h", tz="UTC"),
            CARD_ID: [f"card-{i % 13}" for i in range(rows)],
            AMOUNT: rng.uniform(1.0, 500.0, rows) + 400.0 * labels,
            "velocity": rng.poisson(3, rows).astype("float64") + 5.0 * labels,
            "history": history,
            LABEL: labels,
        }
    )


def _counts(frame: pd.DataFrame) -> tuple[int, int]:
    frauds = int(frame[LABEL].sum())
    return frauds, len(frame) - frauds


def test_none_returns_the_frame_untouched(frame: pd.DataFrame) -> None:
    result = resample_frame(frame, FEATURES, Resampling("none"))
    assert result.data is frame
    assert result.scale_pos_weight == 1.0


def test_class_weights_change_no_row_and_weigh_the_frauds(frame: pd.DataFrame) -> None:
    original = frame.copy()
    result = resample_frame(frame, FEATURES, Resampling("class_weights", ratio=0.5))
    pd.testing.assert_frame_equal(result.data, original)
    assert result.scale_pos_weight == pytest.approx(0.5 * 90 / 10)


def test_undersampling_reaches_the_ratio_and_keeps_every_fraud(frame: pd.DataFrame) -> None:
    result = resample_frame(frame, FEATURES, Resampling("undersample", ratio=0.25, seed=3))
    frauds, legit = _counts(result.data)
    assert (frauds, legit) == (10, 40)
    fraud_ids = set(frame.loc[frame[LABEL] == 1, TRANSACTION_ID])
    assert fraud_ids <= set(result.data[TRANSACTION_ID])
    assert set(result.data[TRANSACTION_ID]) <= set(frame[TRANSACTION_ID])
    assert result.scale_pos_weight == 1.0


def test_undersampling_is_seeded_and_independent_of_row_order(frame: pd.DataFrame) -> None:
    plan = Resampling("undersample", ratio=0.25, seed=3)
    first = set(resample_frame(frame, FEATURES, plan).data[TRANSACTION_ID])
    shuffled = frame.sample(frac=1.0, random_state=1)
    assert set(resample_frame(shuffled, FEATURES, plan).data[TRANSACTION_ID]) == first
    other = Resampling("undersample", ratio=0.25, seed=4)
    assert set(resample_frame(frame, FEATURES, other).data[TRANSACTION_ID]) != first


def test_undersampling_keeps_everything_when_the_ratio_is_already_met(
    frame: pd.DataFrame,
) -> None:
    result = resample_frame(frame, FEATURES, Resampling("undersample", ratio=0.05))
    assert len(result.data) == len(frame)


def test_smote_reaches_the_ratio_and_only_adds_frauds(frame: pd.DataFrame) -> None:
    result = resample_frame(frame, FEATURES, Resampling("smote", ratio=0.5, seed=2))
    frauds, legit = _counts(result.data)
    assert (frauds, legit) == (45, 90)
    pd.testing.assert_frame_equal(result.data.iloc[: len(frame)], frame)
    synthetic = result.data.iloc[len(frame) :]
    assert synthetic[TRANSACTION_ID].str.startswith("smote-").all()
    assert synthetic[TRANSACTION_ID].is_unique
    assert result.data.dtypes.equals(frame.dtypes)
    assert result.scale_pos_weight == 1.0


def test_smote_rows_lie_between_two_frauds(frame: pd.DataFrame) -> None:
    """Each synthetic row is base + t * (neighbour - base) for two real frauds and t in [0, 1]."""
    result = resample_frame(frame, FEATURES, Resampling("smote", ratio=0.5, seed=2))
    frauds = frame.loc[frame[LABEL] == 1, FEATURES]
    real = frauds.fillna(frauds.median()).to_numpy()
    synthetic = result.data.iloc[len(frame) :][FEATURES].to_numpy()
    assert not np.isnan(synthetic).any()
    for row in synthetic:
        assert any(
            _on_segment(row, real[a], real[b])
            for a, b in itertools.permutations(range(len(real)), 2)
        ), row


def _on_segment(point: np.ndarray, start: np.ndarray, end: np.ndarray) -> bool:
    step = end - start
    moving = np.abs(step) > 1e-9
    if not np.allclose(point[~moving], start[~moving]):
        return False
    ts = (point[moving] - start[moving]) / step[moving]
    return bool(np.allclose(ts, ts[0], atol=1e-6) and -1e-9 <= ts[0] <= 1 + 1e-9)


def test_smote_leaves_missing_a_feature_no_fraud_has(frame: pd.DataFrame) -> None:
    frame.loc[frame[LABEL] == 1, "history"] = np.nan
    result = resample_frame(frame, FEATURES, Resampling("smote", ratio=0.5, seed=2))
    synthetic = result.data.iloc[len(frame) :]
    assert synthetic["history"].isna().all()
    assert synthetic["velocity"].notna().all()


def test_smote_is_deterministic_for_a_seed(frame: pd.DataFrame) -> None:
    plan = Resampling("smote", ratio=0.5, seed=2)
    first = resample_frame(frame, FEATURES, plan).data
    pd.testing.assert_frame_equal(resample_frame(frame, FEATURES, plan).data, first)
    shuffled = resample_frame(frame.sample(frac=1.0, random_state=1), FEATURES, plan).data
    pd.testing.assert_frame_equal(
        shuffled.iloc[len(frame) :].reset_index(drop=True),
        first.iloc[len(frame) :].reset_index(drop=True),
    )
    other = resample_frame(frame, FEATURES, Resampling("smote", ratio=0.5, seed=9)).data
    assert not np.allclose(other.iloc[len(frame) :][FEATURES], first.iloc[len(frame) :][FEATURES])


def test_strategies_refuse_a_split_without_fraud(frame: pd.DataFrame) -> None:
    legit_only = frame[frame[LABEL] == 0]
    for strategy in ("class_weights", "undersample", "smote"):
        with pytest.raises(ValueError, match="holds none"):
            resample_frame(legit_only, FEATURES, Resampling(strategy, ratio=0.5))


def test_a_ratio_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Resampling("undersample", ratio=0.0)
