"""The decision pipeline without Ray: features, model and cost decision in one process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import xgboost as xgb
from pydantic import ValidationError
from ray import cloudpickle

from fraud_ray.costs import CostPolicy
from fraud_ray.features.definitions import FeatureSpec
from fraud_ray.features.online import OnlineFeatures
from fraud_ray.features.state import MemoryState, epoch_micros
from fraud_ray.model import FraudModel
from fraud_ray.schema import MAX_AMOUNT, MAX_ATTRIBUTES, Action, Decision, ModelRef, Transaction
from fraud_ray.serving.columns import Columns
from fraud_ray.serving.pipeline import (
    NO_HISTORY,
    DecisionPipeline,
    ModelRefused,
    ServingModel,
    events_from,
    probe_rows,
    render,
)

from .test_model import make_model

SPEC = FeatureSpec()
REF = ModelRef(name="fraud-test", version="3")
START = datetime(2025, 5, 1, 9, tzinfo=UTC)
POLICY = CostPolicy(review_cost=3.0, decline_cost=10.0)


def pipeline(spec: FeatureSpec = SPEC) -> DecisionPipeline:
    model, _ = make_model("xgboost", spec)
    return DecisionPipeline(
        OnlineFeatures(spec, MemoryState(spec)),
        ServingModel(model, REF, spec, POLICY, reasons=3, explain_all=True),
    )


def transactions(amounts: list[float]) -> list[Transaction]:
    return [
        Transaction(
            transaction_id=f"t{i}",
            timestamp=START + timedelta(minutes=i),
            card_id="c1",
            terminal_id=f"term{i % 2}",
            amount=amount,
        )
        for i, amount in enumerate(amounts)
    ]


def test_decisions_come_back_in_order_with_the_cheapest_action() -> None:
    steps = pipeline()
    batch = transactions([12.0, 3000.0, 40.0])
    decisions = [Decision.model_validate(record) for record in steps.decide(batch)]
    assert [d.transaction_id for d in decisions] == ["t0", "t1", "t2"]
    probabilities = np.array([d.fraud_probability for d in decisions])
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    actions, costs = POLICY.decide(probabilities, [12.0, 3000.0, 40.0])
    assert [d.decision.value for d in decisions] == list(actions)
    np.testing.assert_allclose([d.expected_cost for d in decisions], costs)
    assert all(d.model == REF and d.latency_ms >= 0 for d in decisions)
    assert all(d.costs.review_cost == 3.0 and d.costs.decline_cost == 10.0 for d in decisions)
    assert all(d.scored_at.tzinfo is not None for d in decisions)


def test_reasons_are_the_largest_positive_contributions_in_words() -> None:
    record = pipeline().decide(transactions([5000.0]))[0]
    reasons = Decision.model_validate(record).reasons
    assert reasons, "a large amount must give at least one reason"
    assert all(r.contribution > 0 for r in reasons)
    assert [r.contribution for r in reasons] == sorted(
        (r.contribution for r in reasons), reverse=True
    )
    described = {d.name: d.description for d in SPEC.definitions}
    assert all(r.description.startswith(described[r.feature]) for r in reasons)
    assert reasons[0].feature == "amount"  # the toy model's fraud rises with the amount alone
    assert reasons[0].description == described["amount"]


def test_a_reason_without_a_value_says_there_is_no_history_yet() -> None:
    steps = pipeline()
    rows = steps.features.compute(events_from(transactions([5000.0])))
    scored = steps.model.score(rows, np.array([5000.0]))
    for j, unknown in zip(scored.reason_index[0], scored.reason_unknown[0], strict=True):
        assert bool(unknown) == bool(j >= 0 and np.isnan(rows[0, j]))
    record = render(["t0"], scored, SPEC, START)[0]
    for reason, unknown in zip(record["reasons"], scored.reason_unknown[0], strict=False):
        assert reason["description"].endswith(NO_HISTORY) == bool(unknown)


def test_a_large_amount_is_not_approved_where_a_small_one_is() -> None:
    small, large = (
        Decision.model_validate(record) for record in pipeline().decide(transactions([0.5, 5000.0]))
    )
    assert small.decision == Action.APPROVE
    assert large.fraud_probability > small.fraud_probability
    assert large.decision != Action.APPROVE


def test_a_model_of_other_feature_definitions_is_refused() -> None:
    other = FeatureSpec(windows_days=(1, 7))
    model, _ = make_model("xgboost", other)
    with pytest.raises(ModelRefused, match="other feature definitions"):
        ServingModel(model, REF, SPEC, POLICY, reasons=3)


def test_a_model_that_cannot_score_fails_its_probe() -> None:
    model, _ = make_model("xgboost", SPEC)
    rng = np.random.default_rng(1)
    broken = xgb.train(
        {"objective": "binary:logistic", "verbosity": 0},
        xgb.DMatrix(rng.normal(size=(50, 3)), label=rng.integers(0, 2, 50)),
        num_boost_round=2,
    )
    bad = FraudModel(broken, "xgboost", model.calibrator, SPEC)
    serving = ServingModel(bad, REF, SPEC, POLICY, reasons=3)
    with pytest.raises(ModelRefused, match="failed to score a probe batch"):
        serving.probe()


def test_probe_rows_describe_a_short_card_history() -> None:
    rows = probe_rows(SPEC)
    names = SPEC.names
    assert rows.shape == (3, len(names))
    counts = rows[:, names.index("card_tx_count_1d")]
    np.testing.assert_array_equal(counts, [0, 1, 2])


def test_no_reasons_when_none_are_asked_for() -> None:
    model, _ = make_model("xgboost", SPEC)
    steps = DecisionPipeline(
        OnlineFeatures(SPEC, MemoryState(SPEC)), ServingModel(model, REF, SPEC, POLICY, reasons=0)
    )
    assert steps.decide(transactions([5000.0]))[0]["reasons"] == []


@pytest.mark.parametrize("amount", [-0.01, -1.0, float("nan"), float("inf"), 3.4e38])
def test_amounts_that_no_payment_has_are_refused(amount: float) -> None:
    with pytest.raises(ValidationError, match="amount"):
        transactions([amount])


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "2200-01-01"])
def test_times_no_payment_has_are_refused(moment: str) -> None:
    body = {"transaction_id": "t", "timestamp": moment, "amount": 5.0}
    with pytest.raises(ValidationError, match="timestamp"):
        Transaction.model_validate(body)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("transaction_id", "t" * 129),
        ("card_id", "c" * 129),
        ("merchant_category", "m" * 129),
        ("channel", "c" * 129),
        ("country", "x" * 129),
        ("attributes", {f"extra_{i}": 1.0 for i in range(MAX_ATTRIBUTES + 1)}),
        ("attributes", {"k" * 129: 1.0}),
    ],
)
def test_oversized_fields_are_refused(field: str, value: object) -> None:
    body = {"transaction_id": "t", "timestamp": "2025-01-01T00:00:00Z", "amount": 5.0}
    with pytest.raises(ValidationError, match=field):
        Transaction.model_validate(body | {field: value})


def test_a_zero_amount_is_scored_and_approved() -> None:
    record = pipeline().decide(transactions([0.0]))[0]
    assert 0 <= record["fraud_probability"] <= 1
    assert record["decision"] == Action.APPROVE
    assert record["expected_cost"] == 0


def test_the_largest_accepted_amount_still_scores() -> None:
    record = pipeline().decide(transactions([MAX_AMOUNT]))[0]
    assert 0 <= record["fraud_probability"] <= 1


def test_by_default_only_reviews_and_declines_get_reasons() -> None:
    model, _ = make_model("xgboost", SPEC)
    explained = DecisionPipeline(
        OnlineFeatures(SPEC, MemoryState(SPEC)), ServingModel(model, REF, SPEC, POLICY, 3)
    )
    everyone = pipeline()
    batch = transactions([0.5, 5000.0, 2.0, 8000.0])
    decisions = [Decision.model_validate(record) for record in explained.decide(batch)]
    approved = [d.decision == Action.APPROVE for d in decisions]
    assert any(approved) and not all(approved)
    assert [bool(d.reasons) for d in decisions] == [not a for a in approved]
    unexplained = [Decision.model_validate(record) for record in everyone.decide(batch)]
    for made, reference in zip(decisions, unexplained, strict=True):
        assert made.fraud_probability == reference.fraud_probability
        assert made.decision == reference.decision
        if made.decision != Action.APPROVE:
            assert made.reasons == reference.reasons


def test_a_batch_crosses_a_handle_as_columns_and_becomes_the_same_events() -> None:
    """The pool hands the ingress a batch as columns; unpickled there, it must give the feature
    state exactly the events the transactions themselves give."""
    batch = [
        Transaction(
            transaction_id=f"t{i}",
            timestamp=datetime(2025, 5, 1, 9, tzinfo=UTC) + timedelta(seconds=i, microseconds=7),
            card_id=None if i == 2 else f"c{i}",
            terminal_id=f"term{i % 2}",
            amount=12.5 * i,
            attributes={"score": float(i)} if i % 2 else {},
        )
        for i in range(4)
    ]
    columns = cloudpickle.loads(cloudpickle.dumps(Columns.of(batch)))
    events = columns.events()
    assert [e.key for e in events] == [(epoch_micros(t.timestamp), t.transaction_id) for t in batch]
    assert [(e.amount, e.card_id, e.terminal_id, e.attributes) for e in events] == [
        (t.amount, t.card_id, t.terminal_id, t.attributes) for t in batch
    ]
