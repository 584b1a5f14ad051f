"""What every decision-log backend must do, written once and run against each of them.

``tests/unit/test_decision_log.py`` runs it on SQLite and ``tests/integration/
test_decision_log_postgres.py`` on a real PostgreSQL: each subclasses ``DecisionLogContract`` and
provides the ``log`` fixture. The class name does not start with ``Test``, so it is not collected here.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from fraud_ray.decision_log import DecisionLog
from fraud_ray.schema import Action, Decision, DecisionRecord, Fees, ModelRef, Reason, Transaction

START = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
ACTIONS = [Action.APPROVE, Action.REVIEW, Action.DECLINE]
FEES = Fees(review_cost=3.0, decline_cost=10.0)


def transaction(i: int) -> Transaction:
    return Transaction(
        transaction_id=f"tx-{i:05d}",
        timestamp=START + timedelta(seconds=i),
        card_id=f"card-{i % 7}",
        terminal_id=f"terminal-{i % 5}",
        amount=10.0 + i,
    )


def decision(
    i: int, action: Action | None = None, scored_at: datetime | None = None, version: str = "1"
) -> DecisionRecord:
    """A decision as the graph hands it to the log."""
    return Decision(
        transaction_id=f"tx-{i:05d}",
        fraud_probability=(i % 100) / 100,
        decision=action or ACTIONS[i % 3],
        expected_cost=0.5 + i,
        reasons=[
            Reason(feature="amount", description=f"amount {10.0 + i:.2f}", contribution=0.25),
            Reason(feature="card_tx_count_1d", description="1 payment today", contribution=-0.1),
        ],
        model=ModelRef(name="fraud-ray", version=version),
        costs=FEES,
        scored_at=scored_at or START + timedelta(seconds=i, milliseconds=40),
        latency_ms=2.5,
    ).model_dump(mode="json")


def write(
    log: DecisionLog,
    ids: list[int],
    action: Action | None = None,
    scored_at: datetime | None = None,
    version: str = "1",
) -> int:
    return log.write(
        [decision(i, action, scored_at, version) for i in ids], [transaction(i) for i in ids]
    )


class DecisionLogContract:
    def test_a_written_decision_reads_back_whole(self, log: DecisionLog) -> None:
        features = {
            "amount": 17.0,
            "card_mean_amount_7d": math.nan,
            "terminal_risk_7d": math.inf,
            "card_tx_count_1d": np.float32(3.0),
        }
        assert log.write([decision(7)], [transaction(7)], [features]) == 1

        logged = log.get("tx-00007")

        assert logged is not None
        assert logged.decision == Decision.model_validate(decision(7))
        assert logged.decision.scored_at.tzinfo == UTC
        assert (logged.card_id, logged.terminal_id, logged.amount) == ("card-0", "terminal-2", 17.0)
        assert logged.timestamp == transaction(7).timestamp
        assert logged.timestamp.tzinfo == UTC
        assert logged.features is not None
        assert logged.features["amount"] == 17.0
        assert math.isnan(logged.features["card_mean_amount_7d"])
        assert math.isnan(logged.features["terminal_risk_7d"]), "JSON has no infinity"
        assert logged.features["card_tx_count_1d"] == 3.0
        assert (logged.is_fraud, logged.labelled_at) == (None, None)

    def test_unknown_transaction_is_none(self, log: DecisionLog) -> None:
        write(log, [1])
        assert log.get("tx-99999") is None

    def test_features_are_optional(self, log: DecisionLog) -> None:
        write(log, [1])
        logged = log.get("tx-00001")
        assert logged is not None
        assert logged.features is None

    def test_times_in_other_zones_are_kept_as_the_same_instant_in_utc(
        self, log: DecisionLog
    ) -> None:
        paris = timezone(timedelta(hours=2))
        scored_at = datetime(2025, 6, 1, 14, 30, tzinfo=paris)
        write(log, [1], scored_at=scored_at)
        logged = log.get("tx-00001")
        assert logged is not None
        assert logged.decision.scored_at == datetime(2025, 6, 1, 12, 30, tzinfo=UTC)
        assert logged.decision.scored_at.tzinfo == UTC

    def test_writing_a_batch_again_changes_nothing(self, log: DecisionLog) -> None:
        assert write(log, list(range(10))) == 10
        # The replay carries a different verdict from another model: the first one stays.
        assert write(log, list(range(10)), action=Action.DECLINE, version="2") == 0
        assert log.count() == 10
        first = log.get("tx-00000")
        assert first is not None
        assert (first.decision.decision, first.decision.model.version) == (Action.APPROVE, "1")

    def test_a_lookup_answers_the_first_decision_of_each_logged_id(self, log: DecisionLog) -> None:
        write(log, [0, 1, 2])
        write(log, [1, 2], action=Action.DECLINE, version="2")
        found = log.logged(["tx-00002", "tx-00000", "tx-00077", "tx-00000"])
        assert set(found) == {"tx-00000", "tx-00002"}, "ids never logged are absent"
        for i in (0, 2):
            assert Decision.model_validate(found[f"tx-{i:05d}"]) == Decision.model_validate(
                decision(i)
            ), "the decision as first written, in the graph's JSON form"
        assert log.logged([]) == {}

    def test_a_batch_mixing_old_and_new_transactions_adds_the_new_ones(
        self, log: DecisionLog
    ) -> None:
        write(log, [0, 1, 2])
        assert write(log, [1, 2, 3, 4]) == 2
        assert log.count() == 5

    def test_a_transaction_twice_in_one_batch_is_logged_once(self, log: DecisionLog) -> None:
        assert write(log, [1, 2, 1]) == 2
        assert log.count() == 2

    def test_an_empty_batch_writes_nothing(self, log: DecisionLog) -> None:
        assert log.write([], []) == 0
        assert log.count() == 0

    def test_decisions_must_pair_with_their_transactions(self, log: DecisionLog) -> None:
        with pytest.raises(ValueError, match="paired with transaction 'tx-00002'"):
            log.write([decision(1)], [transaction(2)])
        with pytest.raises(ValueError, match="2 decisions but 1 transactions"):
            log.write([decision(1), decision(2)], [transaction(1)])
        with pytest.raises(ValueError, match="1 decisions but 2 feature rows"):
            log.write([decision(1)], [transaction(1)], [{}, {}])
        assert log.count() == 0

    def test_alerts_are_the_decisions_not_approved_newest_first(self, log: DecisionLog) -> None:
        write(log, list(range(30)))

        alerts = log.alerts(limit=100)

        expected = [f"tx-{i:05d}" for i in reversed(range(30)) if ACTIONS[i % 3] != Action.APPROVE]
        assert [alert.transaction_id for alert in alerts] == expected
        assert {alert.decision.decision for alert in alerts} == {Action.REVIEW, Action.DECLINE}

    def test_alert_pages_cover_every_alert_once_in_order(self, log: DecisionLog) -> None:
        # Half of the alerts share one scored_at: the cursor must break ties, not skip them.
        same_time = START + timedelta(hours=1)
        write(log, list(range(20)), action=Action.REVIEW)
        write(log, list(range(20, 40)), action=Action.DECLINE, scored_at=same_time)
        everything = [alert.transaction_id for alert in log.alerts(limit=100)]

        pages: list[list[str]] = []
        cursor = None
        while page := log.alerts(limit=7, before=cursor):
            pages.append([alert.transaction_id for alert in page])
            cursor = page[-1].cursor
            if len(pages) == 1:
                # An alert arriving between two pages is newer than any cursor: the later pages
                # neither repeat nor skip an alert because of it.
                write(log, [40], action=Action.DECLINE, scored_at=same_time + timedelta(hours=1))

        assert [len(page) for page in pages] == [7, 7, 7, 7, 7, 5]
        assert [transaction_id for page in pages for transaction_id in page] == everything
        assert everything[:20] == [f"tx-{i:05d}" for i in reversed(range(20, 40))]

    def test_labels_are_recorded_and_can_be_overturned(self, log: DecisionLog) -> None:
        write(log, [1, 2, 3])
        first_at = datetime(2025, 6, 9, tzinfo=UTC)

        known = log.record_labels([("tx-00001", 1), ("tx-00002", 0), ("tx-99999", 1)], first_at)

        assert known == 2
        labelled = log.get("tx-00001")
        assert labelled is not None
        assert (labelled.is_fraud, labelled.labelled_at) == (1, first_at)
        unlabelled = log.get("tx-00003")
        assert unlabelled is not None
        assert unlabelled.is_fraud is None

        assert log.record_labels([("tx-00001", 0)]) == 1
        overturned = log.get("tx-00001")
        assert overturned is not None
        assert overturned.is_fraud == 0
        assert overturned.labelled_at is not None
        assert overturned.labelled_at > first_at

    def test_every_label_stays_in_the_history_with_its_sender(self, log: DecisionLog) -> None:
        write(log, [1])
        first_at = datetime(2025, 6, 9, tzinfo=UTC)
        log.record_labels([("tx-00001", 1), ("tx-99999", 1)], first_at, labelled_by="operator")
        log.record_labels([("tx-00001", 0)], labelled_by="cli")

        history = log.label_history("tx-00001")
        assert [(h.is_fraud, h.labelled_by) for h in history] == [(1, "operator"), (0, "cli")]
        assert history[0].labelled_at == first_at and history[1].labelled_at > first_at
        assert [h.labelled_by for h in log.label_history("tx-99999")] == ["operator"]
        assert log.label_history("tx-00002") == []
        current = log.get("tx-00001")
        assert current is not None and current.is_fraud == 0

    def test_the_last_transaction_time_is_the_latest_logged(self, log: DecisionLog) -> None:
        assert log.last_transaction_time() is None
        write(log, [5, 2, 9, 1])
        last = log.last_transaction_time()
        assert last == transaction(9).timestamp
        assert last is not None
        assert last.tzinfo == UTC

    def test_the_last_transaction_time_can_leave_out_times_past_a_bound(
        self, log: DecisionLog
    ) -> None:
        write(log, [5, 2, 9, 1])
        assert log.last_transaction_time(transaction(9).timestamp) == transaction(9).timestamp
        assert log.last_transaction_time(transaction(8).timestamp) == transaction(5).timestamp
        assert log.last_transaction_time(transaction(0).timestamp) is None

    def test_a_window_frame_has_one_row_per_decision_with_nullable_labels(
        self, log: DecisionLog
    ) -> None:
        write(log, list(range(10)))
        log.record_labels([("tx-00003", 1), ("tx-00004", 0)])
        frame = log.frame(START + timedelta(seconds=2), START + timedelta(seconds=6))
        assert frame["transaction_id"].tolist() == [f"tx-{i:05d}" for i in range(2, 6)]
        assert frame["is_fraud"].tolist()[1:3] == [1, 0]
        assert frame["is_fraud"].isna().tolist() == [True, False, False, True]
        assert str(frame["timestamp"].dt.tz) == "UTC"
        assert "features" not in frame

    def test_a_feature_frame_holds_what_each_decision_was_made_on(self, log: DecisionLog) -> None:
        log.write(
            [decision(1), decision(2)],
            [transaction(1), transaction(2)],
            [
                {"amount": 11.0, "card_tx_count_1d": math.nan},
                {"amount": 12.0, "card_tx_count_1d": 3},
            ],
        )
        log.write([decision(3)], [transaction(3)])
        frame = log.feature_frame()
        assert frame.columns.tolist() == ["amount", "card_tx_count_1d", "fraud_probability"]
        assert frame["amount"].tolist() == [11.0, 12.0]
        assert math.isnan(frame["card_tx_count_1d"][0])
        assert frame["card_tx_count_1d"][1] == 3.0
        assert frame["fraud_probability"].tolist() == [0.01, 0.02]

    def test_shadow_decisions_read_back_with_the_served_label(self, log: DecisionLog) -> None:
        write(log, [1, 2])
        log.record_labels([("tx-00002", 1)])
        shadow = [decision(i, Action.DECLINE, version="2") for i in (1, 2)]
        assert log.write_shadow(shadow) == 2
        assert log.write_shadow(shadow) == 0
        frame = log.shadow_frame()
        assert frame["model_version"].tolist() == ["2", "2"]
        assert frame["decision"].tolist() == ["decline", "decline"]
        assert frame["is_fraud"].isna().tolist() == [True, False]
        assert frame["amount"].tolist() == [11.0, 12.0]
