"""The recorder: answered decisions into the decision log off the request path, a challenger
scored in shadow on the same rows, and nothing lost when the log is away for a while."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from fraud_ray.decision_log import DecisionLog, DecisionLogError
from fraud_ray.schema import ModelRef, Transaction
from fraud_ray.serving.pipeline import (
    ServingModel,
    amounts_of,
    events_from,
    render,
    transaction_ids,
)
from fraud_ray.serving.recorder import DecisionRecorder

from .test_model import make_model
from .test_serving_pipeline import POLICY, SPEC, pipeline

START = datetime(2025, 5, 1, 9, tzinfo=UTC)
CHALLENGER = ModelRef(name="fraud-test", version="4")


def answered(first: int, count: int) -> tuple[list[Transaction], list[dict], np.ndarray]:
    """What the ingress hands the recorder: transactions, their decisions and feature rows."""
    steps = pipeline()
    batch = [
        Transaction(
            transaction_id=f"t{i}",
            timestamp=START + timedelta(minutes=i),
            card_id=f"c{i % 3}",
            terminal_id="term",
            amount=10.0 + 300 * (i % 4),
        )
        for i in range(first, first + count)
    ]
    rows = steps.features.compute(events_from(batch))
    scored = steps.model.score(rows, amounts_of(batch))
    return batch, render(transaction_ids(batch), scored, SPEC, datetime.now(UTC)), rows


def add(
    sink: DecisionRecorder,
    batch: tuple[list[Transaction], list[dict], np.ndarray],
    *,
    log: bool,
) -> None:
    """Hand ``batch`` over as the ingress does: with its transactions when the recorder logs it,
    without when the caller (the streaming pool) logs it itself."""
    transactions, decisions, rows = batch
    sink.add(decisions, rows, amounts_of(transactions), transactions=transactions if log else None)


def recorder(
    log: DecisionLog, max_pending: int = 1000, drops: list[int] | None = None
) -> DecisionRecorder:
    on_drop = (lambda count: None) if drops is None else drops.append
    return DecisionRecorder(lambda: log, SPEC.names, max_pending, on_drop=on_drop)


@pytest.fixture
def log(tmp_path: Path) -> DecisionLog:
    return DecisionLog(f"sqlite:///{tmp_path / 'decisions.db'}")


def test_a_flush_logs_every_answered_decision_with_its_features(log: DecisionLog) -> None:
    sink = recorder(log)
    for first in (0, 5):
        transactions, decisions, rows = answered(first, 5)
        add(sink, (transactions, decisions, rows), log=True)
    flushed = sink.flush(sink.take(), shadow=None)
    assert (flushed.logged, flushed.shadowed) == (10, 0)
    logged = log.get("t7")
    assert logged is not None
    assert logged.decision.fraud_probability == decisions[2]["fraud_probability"]
    assert logged.features is not None and list(logged.features) == SPEC.names
    np.testing.assert_allclose(list(logged.features.values()), rows[2], equal_nan=True)


def test_decisions_the_caller_logs_itself_are_only_shadowed(log: DecisionLog) -> None:
    sink = recorder(log)
    transactions, decisions, rows = answered(0, 6)
    add(sink, (transactions, decisions, rows), log=False)
    challenger = ServingModel(make_model("lightgbm", SPEC)[0], CHALLENGER, SPEC, POLICY, reasons=0)
    flushed = sink.flush(sink.take(), shadow=challenger)
    assert (flushed.logged, flushed.shadowed) == (0, 6)
    assert log.count() == 0
    shadow = log.shadow_frame()
    assert shadow.empty, "shadow rows are read beside the served decisions, which are not logged"


def test_the_challenger_scores_the_same_rows_without_touching_the_answers(
    log: DecisionLog,
) -> None:
    sink = recorder(log)
    transactions, decisions, rows = answered(0, 8)
    before = [dict(d) for d in decisions]
    add(sink, (transactions, decisions, rows), log=True)
    challenger = ServingModel(make_model("lightgbm", SPEC)[0], CHALLENGER, SPEC, POLICY, reasons=0)
    sink.flush(sink.take(), shadow=challenger)
    assert decisions == before
    shadow = log.shadow_frame()
    assert shadow["transaction_id"].tolist() == [t.transaction_id for t in transactions]
    assert set(shadow["model_version"]) == {"4"}
    np.testing.assert_allclose(shadow["fraud_probability"], challenger.model.probabilities(rows))
    served = log.frame()
    assert set(served["model_version"]) == {"3"}


def test_a_failed_flush_is_restored_ahead_of_newer_decisions(log: DecisionLog) -> None:
    sink = recorder(log)
    first = answered(0, 3)
    add(sink, first, log=True)
    failed = sink.take()
    second = answered(3, 2)
    add(sink, second, log=False)
    sink.restore(failed)
    pending = sink.take()
    assert [d["transaction_id"] for d in pending.decisions] == ["t0", "t1", "t2", "t3", "t4"]
    assert [t is not None for t in pending.transactions] == [True, True, True, False, False]
    assert sink.flush(pending, shadow=None).logged == 3


def test_a_full_buffer_drops_the_oldest_and_counts_them_at_once(log: DecisionLog) -> None:
    drops: list[int] = []
    sink = recorder(log, max_pending=4, drops=drops)
    add(sink, answered(0, 3), log=True)
    add(sink, answered(3, 3), log=True)
    assert drops == [2]
    pending = sink.take()
    assert [len(rows) for rows in pending.rows] == [1, 3], "a batch is sliced, not re-stacked"
    assert sink.flush(pending, shadow=None).logged == 4
    assert log.get("t1") is None
    kept = log.get("t2")
    assert kept is not None and kept.features is not None
    np.testing.assert_allclose(list(kept.features.values()), answered(0, 3)[2][2], equal_nan=True)


def away() -> DecisionLog:
    raise DecisionLogError(
        "cannot open the decision log at postgresql://db/fraud: connection refused"
    )


def test_decisions_dropped_while_the_log_is_away_are_counted_while_it_is_away(
    log: DecisionLog,
) -> None:
    drops: list[int] = []
    sink = DecisionRecorder(away, SPEC.names, max_pending=4, on_drop=drops.append)
    add(sink, answered(0, 3), log=True)
    add(sink, answered(3, 3), log=True)
    pending = sink.take()
    with pytest.raises(DecisionLogError):
        sink.flush(pending, shadow=None)
    sink.restore(pending)
    add(sink, answered(6, 1), log=True)
    assert sum(drops) == 3, "2 dropped before the failure, 1 after, counted as they went"
    sink.open_log = lambda: log
    assert sink.flush(sink.take(), shadow=None).logged == 4
    assert [log.get(f"t{i}") is not None for i in range(7)] == [False] * 3 + [True] * 4


def test_an_answer_is_found_until_it_is_written_and_after_a_failed_flush(
    log: DecisionLog,
) -> None:
    """Between an answer and its write, the recorder is the only place a repeated transaction
    can find it: pending, being flushed, or put back after a failed flush."""
    sink = DecisionRecorder(away, SPEC.names, max_pending=10)
    add(sink, answered(0, 3), log=True)
    assert set(sink.answered(["t0", "t2", "t9"])) == {"t0", "t2"}
    pending = sink.take()
    assert set(sink.answered(["t1"])) == {"t1"}, "being flushed, not yet in the log"
    with pytest.raises(DecisionLogError):
        sink.flush(pending, shadow=None)
    sink.restore(pending)
    assert set(sink.answered(["t1"])) == {"t1"}
    sink.open_log = lambda: log
    pending = sink.take()
    assert sink.flush(pending, shadow=None).logged == 3
    sink.written(pending)
    assert sink.answered(["t0", "t1", "t2"]) == {}, "the log answers for them now"


def test_a_dropped_answer_is_not_found_again() -> None:
    sink = DecisionRecorder(away, SPEC.names, max_pending=2)
    add(sink, answered(0, 3), log=True)
    assert set(sink.answered(["t0", "t1", "t2"])) == {"t1", "t2"}
