"""Daily performance and the champion/challenger comparison on hand-made decision frames, checked
against scikit-learn and plain NumPy on the same labelled rows."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, precision_score, recall_score

from fraud_ray.monitoring.performance import compare_models, daily_performance

NA = pd.NA

# id, UTC time, card, amount, fraud_probability, decision, expected_cost, is_fraud
DECISIONS = [
    ("t01", "2025-06-01 08:00:00", "A", 120.0, 0.90, "decline", 1.0, 1),
    ("t02", "2025-06-01 09:00:00", "B", 40.0, 0.80, "review", 3.0, 0),
    ("t03", "2025-06-01 10:00:00", "C", 300.0, 0.30, "review", 3.0, 1),
    ("t04", "2025-06-01 11:00:00", "E", 20.0, 0.02, "approve", 0.4, 0),
    ("t05", "2025-06-01 12:00:00", "F", 15.0, 0.10, "approve", 1.5, 1),
    ("t06", "2025-06-01 23:59:59", "G", 60.0, 0.05, "approve", 3.0, 0),
    # The next UTC day starts at midnight; card A was found on day one, so it is blocked.
    ("t07", "2025-06-02 00:00:00", "A", 80.0, 0.95, "decline", 0.5, 1),
    ("t08", "2025-06-02 10:00:00", "D", 50.0, 0.40, "decline", 6.0, 0),
    ("t09", "2025-06-02 11:00:00", "H", 30.0, 0.60, "review", 3.0, NA),
    ("t10", "2025-06-02 12:00:00", "I", 10.0, 0.01, "approve", 0.1, NA),
    # A day whose labels have not arrived.
    ("t11", "2025-06-03 01:00:00", "J", 25.0, 0.20, "approve", 5.0, NA),
    ("t12", "2025-06-03 02:00:00", "K", 70.0, 0.70, "decline", 3.0, NA),
    ("t13", "2025-06-03 03:00:00", "L", 5.0, 0.50, "review", 2.5, NA),
]


def logged(rows: list[tuple], version: str = "1") -> pd.DataFrame:
    """A frame shaped like ``DecisionLog.frame``'s, with the columns monitoring reads."""
    ids, times, cards, amounts, p, actions, expected, labels = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "transaction_id": ids,
            "card_id": cards,
            "amount": amounts,
            "timestamp": pd.to_datetime(list(times), utc=True),
            "fraud_probability": p,
            "decision": actions,
            "expected_cost": expected,
            "model_version": version,
            "review_cost": 3.0,
            "decline_cost": 10.0,
            "is_fraud": pd.array(labels, dtype="Int8"),
        }
    )


def expected_figures(day: pd.DataFrame) -> dict[str, float]:
    """What the day's labelled rows say, computed without fraud-ray's code."""
    labelled = day[day["is_fraud"].notna()]
    y = labelled["is_fraud"].to_numpy(dtype=int)
    alerted = (labelled["decision"] != "approve").to_numpy()
    amount = labelled["amount"].to_numpy()
    action = labelled["decision"].to_numpy()
    realised = (
        np.where((action == "approve") & (y == 1), amount, 0).sum()
        + 3.0 * (action == "review").sum()
        + 10.0 * ((action == "decline") & (y == 0)).sum()
    )
    return {
        "precision": precision_score(y, alerted),
        "recall": recall_score(y, alerted),
        "average_precision": average_precision_score(y, labelled["fraud_probability"]),
        "realised_cost": realised,
        "savings": amount[y == 1].sum() - realised,
    }


def test_daily_performance_matches_scikit_learn_on_each_labelled_day() -> None:
    frame = logged(DECISIONS)

    report = daily_performance(frame, k=2)

    assert [day.day for day in report.days] == [date(2025, 6, d) for d in (1, 2, 3)]
    for day, rows in zip(report.days[:2], [frame.iloc[:6], frame.iloc[6:10]], strict=True):
        expected = expected_figures(rows)
        assert day.precision == pytest.approx(expected["precision"])
        assert day.recall == pytest.approx(expected["recall"])
        assert day.average_precision == pytest.approx(expected["average_precision"])
        assert day.realised_cost == pytest.approx(expected["realised_cost"])
        assert day.savings == pytest.approx(expected["savings"])
        assert day.expected_cost == pytest.approx(rows["expected_cost"].sum())
    first, second, _ = report.days
    # By hand: day one alerts t01-t03 (two frauds of three) and misses t05; it pays two reviews
    # and the $15 fraud (21) where approving everything would have lost 120 + 300 + 15.
    assert (first.decisions, first.alerts, first.labelled, first.frauds) == (6, 3, 6, 3)
    assert (first.precision, first.recall) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert (first.realised_cost, first.savings) == (21.0, 414.0)
    assert (second.decisions, second.alerts, second.labelled, second.unlabelled) == (4, 3, 2, 2)


def test_card_precision_counts_a_card_found_once_only() -> None:
    report = daily_performance(logged(DECISIONS), k=2)
    # Day one: top cards A (fraud) and B -> 1/2. Day two: A is blocked, D alone is legitimate
    # -> 0/2; scored day by day, A would have counted again (1/2).
    assert [day.card_precision_at_k for day in report.days] == [0.5, 0.0, None]
    assert report.k == 2


def test_a_day_without_labels_has_counts_and_no_ratios() -> None:
    report = daily_performance(logged(DECISIONS), k=2)
    waiting = report.days[2]
    assert (waiting.decisions, waiting.alerts, waiting.labelled, waiting.unlabelled) == (3, 2, 0, 3)
    assert waiting.frauds == 0
    assert waiting.expected_cost == pytest.approx(10.5)
    undefined = ("precision", "recall", "average_precision", "card_precision_at_k")
    assert [getattr(waiting, name) for name in undefined] == [None] * 4
    assert (waiting.realised_cost, waiting.savings) == (None, None)
    assert "NaN" not in report.model_dump_json()


def test_a_day_without_alerts_or_frauds_has_no_precision_or_recall() -> None:
    quiet = [
        ("q1", "2025-06-05 10:00:00", "A", 10.0, 0.01, "approve", 0.1, 0),
        ("q2", "2025-06-05 11:00:00", "B", 20.0, 0.02, "approve", 0.4, 0),
    ]
    (day,) = daily_performance(logged(quiet), k=2).days
    assert (day.precision, day.recall, day.average_precision) == (None, None, None)
    assert (day.realised_cost, day.savings) == (0.0, 0.0)


def test_one_model_version_only() -> None:
    frame = pd.concat([logged(DECISIONS[:8], "1"), logged(DECISIONS[8:], "2")])

    report = daily_performance(frame, k=2, model_version="2")

    assert report.model_version == "2"
    assert [(day.day.day, day.decisions) for day in report.days] == [(2, 2), (3, 3)]
    assert daily_performance(frame, k=2, model_version="9").days == []


def test_an_empty_log_has_no_days() -> None:
    assert daily_performance(logged(DECISIONS).iloc[:0], k=2).days == []


def test_each_decision_is_priced_with_the_fees_it_was_made_with() -> None:
    """Fees raised on the second day (review 3 -> 5, decline 10 -> 25): the first day's figures
    stay what they were, the second day's reviews and wrong declines cost the new fees."""
    frame = logged(DECISIONS)
    second_day = frame["timestamp"] >= pd.Timestamp("2025-06-02", tz="UTC")
    frame.loc[second_day, ["review_cost", "decline_cost"]] = [5.0, 25.0]
    before, after = daily_performance(logged(DECISIONS), k=2), daily_performance(frame, k=2)
    assert before.days[0].realised_cost == after.days[0].realised_cost
    # Day two's labelled rows: t07 a declined fraud (free), t08 a wrongly declined payment.
    assert before.days[1].realised_cost == 10.0
    assert after.days[1].realised_cost == 25.0


# Champion (served) and challenger (shadow) decisions on the same transactions.
SERVED = [
    ("s1", "2025-06-01 08:00:00", "A", 100.0, 0.9, "decline", 1.0, 1),
    ("s2", "2025-06-01 09:00:00", "B", 50.0, 0.2, "approve", 10.0, 0),
    ("s3", "2025-06-01 10:00:00", "C", 200.0, 0.1, "approve", 20.0, 1),
    ("s4", "2025-06-01 11:00:00", "D", 20.0, 0.6, "review", 3.0, 0),
    ("s5", "2025-06-01 12:00:00", "E", 30.0, 0.5, "review", 3.0, NA),  # no label yet
    ("s6", "2025-06-01 13:00:00", "F", 40.0, 0.3, "approve", 12.0, 0),  # no shadow decision
    ("s7", "2025-06-03 08:00:00", "G", 90.0, 0.9, "decline", 1.0, 1),  # after the window
]
WINDOW = (datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 6, 2, tzinfo=UTC))


def shadow(decided: dict[str, tuple[float, str]], version: str) -> pd.DataFrame:
    """Shadow rows as ``DecisionLog.shadow_frame`` gives them: the served row's transaction
    fields and label beside the challenger's own probability and action."""
    served = logged(SERVED).set_index("transaction_id").loc[list(decided)].reset_index()
    return served.assign(
        model_version=version,
        fraud_probability=[p for p, _ in decided.values()],
        decision=[action for _, action in decided.values()],
    )


CHALLENGER = {
    "s1": (0.8, "decline"),
    "s2": (0.4, "review"),
    "s3": (0.7, "decline"),
    "s4": (0.5, "review"),
    "s5": (0.2, "approve"),
    "s7": (0.9, "decline"),
}


def test_compare_models_on_the_labelled_transactions_both_decided() -> None:
    comparison = compare_models(logged(SERVED, "3"), shadow(CHALLENGER, "4"), WINDOW)

    assert (comparison.window_start, comparison.window_end) == WINDOW
    # s1-s4: s5 has no label, s6 no shadow decision, s7 is outside the window.
    assert comparison.compared == 4
    assert comparison.agreement == 0.5  # s1 and s4 alike, s2 and s3 not
    champion, challenger = comparison.outcomes
    assert (champion.role, champion.model_version, champion.labelled) == ("champion", "3", 4)
    assert (challenger.role, challenger.model_version, challenger.labelled) == (
        "challenger",
        "4",
        4,
    )
    # Champion: misses the $200 fraud and reviews s4 -> 203; approving all loses 300.
    assert (champion.realised_cost, champion.savings) == (203.0, 97.0)
    assert (champion.precision, champion.recall) == (0.5, 0.5)
    assert champion.average_precision == pytest.approx(
        average_precision_score([1, 0, 1, 0], [0.9, 0.2, 0.1, 0.6])
    )
    # Challenger: declines both frauds and reviews the two legitimate payments -> 6.
    assert (challenger.realised_cost, challenger.savings) == (6.0, 294.0)
    assert (challenger.precision, challenger.recall, challenger.average_precision) == (
        0.5,
        1.0,
        1.0,
    )


def test_several_challengers_are_compared_on_what_all_of_them_decided() -> None:
    both = pd.concat(
        [shadow(CHALLENGER, "4"), shadow({"s1": (0.6, "decline"), "s2": (0.1, "approve")}, "10")]
    )

    comparison = compare_models(logged(SERVED, "3"), both, WINDOW)

    assert comparison.compared == 2
    assert [(o.role, o.model_version, o.labelled) for o in comparison.outcomes] == [
        ("champion", "3", 2),
        ("challenger", "4", 2),
        ("challenger", "10", 2),
    ]
    # s1: everyone declines; s2: version 4 reviews where the others approve.
    assert comparison.agreement == 0.5


def test_a_comparison_before_any_label_lists_the_models_and_nothing_else() -> None:
    served = logged(SERVED, "3").assign(is_fraud=pd.array([NA] * len(SERVED), dtype="Int8"))

    comparison = compare_models(served, shadow(CHALLENGER, "4"), WINDOW)

    assert (comparison.compared, comparison.agreement) == (0, None)
    assert [(o.model_version, o.labelled, o.precision) for o in comparison.outcomes] == [
        ("3", 0, None),
        ("4", 0, None),
    ]
