"""Evaluation metrics on tiny labelled frames whose values are worked out by hand."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from fraud_ray.costs import CostPolicy
from fraud_ray.metrics import average_precision, card_precision_at_k, evaluate, recall_at_fpr
from fraud_ray.schema import AMOUNT, CARD_ID, LABEL, TIMESTAMP


def _frame(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    """(UTC time, card, is_fraud) rows, amounts all 1."""
    times, cards, labels = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            TIMESTAMP: pd.to_datetime(list(times), utc=True),
            CARD_ID: list(cards),
            AMOUNT: 1.0,
            LABEL: list(labels),
        }
    )


def test_card_precision_removes_cards_found_on_an_earlier_day() -> None:
    frame = _frame(
        [
            # day 1: A's best score is a legitimate transaction, but A also had a fraud that day
            ("2025-04-01 09:00", "A", 1),
            ("2025-04-01 10:00", "A", 0),
            ("2025-04-01 11:00", "B", 0),
            ("2025-04-01 23:59", "C", 1),
            # day 2: A would top the ranking again, but it was found (and blocked) on day 1
            ("2025-04-02 00:01", "A", 1),
            ("2025-04-02 08:00", "C", 1),
            ("2025-04-02 09:00", "B", 0),
        ]
    )
    scores = [0.2, 0.9, 0.8, 0.1, 0.95, 0.6, 0.5]
    result = card_precision_at_k(frame, scores, k=2)
    # day 1: top 2 = A (0.9, has a fraud), B (0.8) -> 1/2; day 2 without A: C (fraud), B -> 1/2.
    # Without the removal day 2 would be A, C -> 2/2.
    assert result.per_day.tolist() == [0.5, 0.5]
    assert result.mean == 0.5
    assert [day.date().isoformat() for day in result.per_day.index] == ["2025-04-01", "2025-04-02"]


def test_card_precision_divides_by_k_and_ignores_row_order() -> None:
    frame = _frame(
        [
            ("2025-04-01 09:00", "A", 1),
            ("2025-04-01 10:00", "B", 1),
            ("2025-04-01 11:00", "C", 0),
        ]
    )
    scores = np.array([0.7, 0.7, 0.7])
    # Equal scores rank by card id: A and B in the top 2 -> 2/2; k = 5 on three cards -> 2/5.
    assert card_precision_at_k(frame, scores, k=2).mean == 1.0
    assert card_precision_at_k(frame, scores, k=5).mean == pytest.approx(0.4)
    reversed_order = frame.iloc[::-1]
    assert card_precision_at_k(reversed_order, scores[::-1], k=2).mean == 1.0


def test_card_precision_needs_cards() -> None:
    frame = _frame([("2025-04-01 09:00", "A", 1)]).drop(columns=CARD_ID)
    with pytest.raises(ValueError, match=CARD_ID):
        card_precision_at_k(frame, [0.5])


def test_recall_at_fpr_on_a_hand_case() -> None:
    positives = [0.9, 0.7, 0.5, 0.2]
    negatives = [0.8, 0.6, 0.4, 0.3] + [0.1] * 6
    y = [1] * 4 + [0] * 10
    scores = positives + negatives
    # Lowering the threshold: 0.9 (1 TP), 0.8 (1 FP), 0.7 (2 TP), 0.6 (2 FP), 0.5 (3 TP), 0.4,
    # 0.3 (4 FP), 0.2 (4 TP).
    assert recall_at_fpr(y, scores, 0.0) == 0.25
    assert recall_at_fpr(y, scores, 0.1) == 0.5
    assert recall_at_fpr(y, scores, 0.25) == 0.75
    assert recall_at_fpr(y, scores, 0.4) == 1.0


def test_recall_at_fpr_does_not_split_ties() -> None:
    y = [1, 0] + [0] * 9
    scores = [0.9, 0.9] + [0.1] * 9
    # The fraud cannot be flagged without the legitimate transaction that shares its score.
    assert recall_at_fpr(y, scores, 0.0) == 0.0
    assert recall_at_fpr(y, scores, 0.1) == 1.0


def test_recall_at_fpr_is_nan_with_one_class() -> None:
    assert math.isnan(recall_at_fpr([0, 0, 0], [0.1, 0.2, 0.3], 0.01))


def test_average_precision_needs_both_classes() -> None:
    # Frauds ranked 1st and 3rd: precision 1/1 at the first, 2/3 at the second.
    assert average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx((1 + 2 / 3) / 2)
    assert math.isnan(average_precision([1, 1], [0.1, 0.2]))
    assert math.isnan(average_precision([0, 0], [0.1, 0.2]))


def _labelled() -> tuple[pd.DataFrame, list[float]]:
    frame = pd.DataFrame(
        {
            TIMESTAMP: pd.to_datetime(["2025-04-01 10:00"] * 4, utc=True),
            CARD_ID: ["c1", "c2", "c3", "c4"],
            AMOUNT: [1000.0, 10.0, 200.0, 50.0],
            LABEL: [1, 0, 0, 1],
        }
    )
    return frame, [0.05, 0.05, 0.6, 0.9]


def test_evaluate_reports_every_figure() -> None:
    frame, p = _labelled()
    metrics = evaluate(frame, p, CostPolicy(review_cost=3.0, decline_cost=10.0))
    assert metrics == pytest.approx(
        {
            # frauds 0.05 and 0.9 against legit 0.05 and 0.6: (0.5 + 0 + 1 + 1) / 4
            "roc_auc": 0.625,
            # 0.9 gives precision 1 at recall 1/2; the 0.05 tie gives 2/4 at recall 1
            "average_precision": 0.75,
            # (0.95² + 0.1² + 0.05² + 0.6²) / 4
            "brier": 0.31875,
            # (0.05 + 0.9 + 0.05 + 0.6) / 2 frauds
            "expected_to_actual_frauds": 0.8,
            "recall_at_fpr_0_001": 0.5,
            "recall_at_fpr_0_01": 0.5,
            # two fraudulent cards among the top 100 of four cards
            "card_precision_at_100": 0.02,
            # review 3 + approve 0.5 + review 3 + decline 0.1 * 10
            "expected_cost": 7.5,
            "realised_cost": 6.0,
            "approve_all_cost": 1050.0,
            "threshold_cost": 1010.0,
            "savings_vs_approve_all": 1044.0,
            "savings_vs_threshold": 1004.0,
        }
    )
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+", key) for key in metrics)


def test_evaluate_without_cards_skips_card_precision() -> None:
    frame, p = _labelled()
    metrics = evaluate(frame.drop(columns=CARD_ID), p, CostPolicy(3.0, 10.0), k=10)
    assert "card_precision_at_10" not in metrics
    assert "card_precision_at_100" not in metrics
    assert metrics["roc_auc"] == 0.625


def test_evaluate_with_one_class_gives_nan_ranking_metrics() -> None:
    frame, p = _labelled()
    frame[LABEL] = 0
    metrics = evaluate(frame, p, CostPolicy(3.0, 10.0), fprs=[0.05])
    assert math.isnan(metrics["roc_auc"])
    assert math.isnan(metrics["average_precision"])
    assert math.isnan(metrics["recall_at_fpr_0_05"])
    assert metrics["approve_all_cost"] == 0.0
