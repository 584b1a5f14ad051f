"""The cost decision, its baselines and its thresholds, on cases worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from fraud_ray.costs import (
    ActionThresholds,
    CostPolicy,
    Savings,
    approve_all_cost,
    realised_costs,
    threshold_actions,
)
from fraud_ray.schema import Action
from fraud_ray.settings import CostSettings

POLICY = CostPolicy(review_cost=3.0, decline_cost=10.0)


def test_from_settings_takes_the_configured_costs() -> None:
    policy = CostPolicy.from_settings(CostSettings(review_cost=4.5, decline_cost=20.0))
    assert policy == CostPolicy(review_cost=4.5, decline_cost=20.0)


@pytest.mark.parametrize("costs", [(-1.0, 10.0), (3.0, float("nan")), (3.0, float("inf"))])
def test_costs_must_be_finite_and_non_negative(costs: tuple[float, float]) -> None:
    with pytest.raises(ValueError):
        CostPolicy(*costs)


def test_expected_costs_per_action() -> None:
    costs = POLICY.expected_costs([0.05, 0.5], [1000.0, 10.0])
    # approve = p * amount, review = fee, decline = (1 - p) * friction
    np.testing.assert_allclose(costs, [[50.0, 3.0, 9.5], [5.0, 3.0, 5.0]])


def test_the_same_probability_is_approved_small_and_reviewed_large() -> None:
    actions, expected = POLICY.decide([0.05, 0.05, 0.9], [10.0, 1000.0, 1000.0])
    # $10: approve 0.50 < review 3 < decline 9.50; $1,000: review 3 < decline 9.50 < approve 50;
    # $1,000 at 0.9: decline 1 < review 3 < approve 900.
    assert actions.tolist() == [Action.APPROVE, Action.REVIEW, Action.DECLINE]
    np.testing.assert_allclose(expected, [0.5, 3.0, 1.0])


def test_ties_go_to_the_less_intrusive_action() -> None:
    # approve 0.25 * 12 = 3 = review fee
    assert POLICY.decide([0.25], [12.0])[0].tolist() == [Action.APPROVE]
    # review 2.5 = decline (1 - 0.75) * 10, approve 75
    assert CostPolicy(2.5, 10.0).decide([0.75], [100.0])[0].tolist() == [Action.REVIEW]
    # approve 0.5 * 10 = 5 = decline 0.5 * 10, review 100
    assert CostPolicy(100.0, 10.0).decide([0.5], [10.0])[0].tolist() == [Action.APPROVE]


def test_decide_refuses_uncalibrated_scores_and_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        POLICY.decide([1.2], [10.0])
    with pytest.raises(ValueError, match="length"):
        POLICY.decide([0.1, 0.2], [10.0])


def test_realised_cost_of_each_outcome() -> None:
    actions = ["approve", "approve", "review", "review", "decline", Action.DECLINE]
    amounts = [100.0, 100.0, 100.0, 100.0, 100.0, 100.0]
    is_fraud = [1, 0, 1, 0, 1, 0]
    cost = POLICY.realised_cost(actions, amounts, is_fraud)
    np.testing.assert_allclose(cost, [100.0, 0.0, 3.0, 3.0, 0.0, 10.0])


def test_realised_cost_refuses_unknown_actions() -> None:
    with pytest.raises(ValueError, match="block"):
        POLICY.realised_cost(["approve", "block"], [1.0, 1.0], [0, 0])


def test_approving_everything_costs_the_frauds_amounts() -> None:
    assert approve_all_cost([1000.0, 10.0, 200.0, 50.0], [1, 0, 0, 1]) == 1050.0
    assert approve_all_cost([], []) == 0.0


def test_threshold_baseline_declines_from_the_threshold_on() -> None:
    actions = threshold_actions([0.1, 0.5, 0.9])
    assert actions.tolist() == [Action.APPROVE, Action.DECLINE, Action.DECLINE]
    assert threshold_actions([0.5], threshold=0.6).tolist() == [Action.APPROVE]


def test_savings_against_both_baselines() -> None:
    p = [0.05, 0.05, 0.6, 0.9]
    amounts = [1000.0, 10.0, 200.0, 50.0]
    is_fraud = [1, 0, 0, 1]
    # policy: review (3), approve legit (0), review (3), decline fraud (0) -> 6
    # approve all: the two frauds go through -> 1050
    # threshold 0.5: approve the $1,000 fraud (1000), decline the $200 legit one (10) -> 1010
    assert POLICY.savings(p, amounts, is_fraud) == Savings(
        realised_cost=6.0,
        approve_all_cost=1050.0,
        threshold_cost=1010.0,
        savings_vs_approve_all=1044.0,
        savings_vs_threshold=1004.0,
    )


def test_threshold_costs_match_deciding_at_each_threshold() -> None:
    rng = np.random.default_rng(3)
    p = np.round(rng.uniform(size=300), 2)  # rounded so that thresholds land on ties
    amounts = rng.uniform(1, 500, size=300)
    is_fraud = (rng.uniform(size=300) < p).astype(int)
    grid = np.linspace(0, 1, 101)
    expected = [
        POLICY.realised_cost(threshold_actions(p, t), amounts, is_fraud).sum() for t in grid
    ]
    np.testing.assert_allclose(POLICY.threshold_costs(p, amounts, is_fraud, grid), expected)


def test_thresholds_move_with_the_amount() -> None:
    # $4: review beats approval only above 3 / 4, but decline beats review above 1 - 3 / 10,
    # so review never wins and approval meets decline where 4p = 10(1 - p)
    assert POLICY.thresholds(4.0) == ActionThresholds(review_above=None, decline_above=10 / 14)
    # $10 and $1,000: review from 3 / amount, decline from 1 - 3 / 10 whatever the amount
    ten, thousand = POLICY.thresholds(10.0), POLICY.thresholds(1000.0)
    assert ten.review_above == pytest.approx(0.3)
    assert thousand.review_above == pytest.approx(0.003)
    assert ten.decline_above == thousand.decline_above == pytest.approx(0.7)


@pytest.mark.parametrize(
    ("review_cost", "decline_cost"), [(3.0, 10.0), (0.0, 10.0), (3.0, 0.0), (0.0, 0.0), (50.0, 5.0)]
)
@pytest.mark.parametrize("amount", [0.5, 2.0, 10.0, 60.0, 5000.0])
def test_thresholds_agree_with_decide(
    review_cost: float, decline_cost: float, amount: float
) -> None:
    policy = CostPolicy(review_cost, decline_cost)
    limits = policy.thresholds(amount)
    grid = np.linspace(0, 1, 2001)
    actions, _ = policy.decide(grid, np.full_like(grid, amount))
    review_above = limits.decline_above if limits.review_above is None else limits.review_above
    predicted = np.where(
        grid > limits.decline_above,
        Action.DECLINE.value,
        np.where(grid > review_above, Action.REVIEW.value, Action.APPROVE.value),
    )
    # Exactly on a threshold rounding decides; everywhere else the two must agree.
    edges = [t for t in (limits.review_above, limits.decline_above) if t is not None]
    away = np.all([np.abs(grid - t) > 1e-9 for t in edges], axis=0)
    assert (actions[away] == predicted[away]).all()


@pytest.mark.parametrize(
    ("review_cost", "decline_cost"), [(3.0, 10.0), (0.0, 10.0), (3.0, 0.0), (0.0, 0.0)]
)
def test_a_zero_amount_is_always_approved(review_cost: float, decline_cost: float) -> None:
    policy = CostPolicy(review_cost, decline_cost)
    assert policy.thresholds(0.0) == ActionThresholds(review_above=None, decline_above=1.0)
    grid = np.linspace(0, 1, 101)
    actions, costs = policy.decide(grid, np.zeros_like(grid))
    assert (actions == Action.APPROVE.value).all()
    assert (costs == 0).all()


def test_thresholds_refuse_a_negative_amount() -> None:
    with pytest.raises(ValueError, match="amount"):
        POLICY.thresholds(-1.0)


def test_each_decision_is_priced_with_its_own_fees() -> None:
    """A log spans cost changes: a review made under a 3.0 fee still cost 3.0 after the fee went
    to 5.0, and a policy's own realised cost is the same sum with one fee for all."""
    actions = ["review", "review", "decline", "approve"]
    amounts = [100.0, 100.0, 20.0, 70.0]
    fraud = [0, 1, 0, 1]
    per_row = realised_costs(actions, amounts, fraud, [3.0, 5.0, 0.0, 0.0], [10.0, 10.0, 12.0, 0.0])
    assert per_row.tolist() == [3.0, 5.0, 12.0, 70.0]
    assert (
        realised_costs(actions, amounts, fraud, 3.0, 10.0).tolist()
        == POLICY.realised_cost(actions, amounts, fraud).tolist()
    )


def test_fees_are_what_a_decision_records() -> None:
    assert CostPolicy(2.5, 40.0).fees() == {"review_cost": 2.5, "decline_cost": 40.0}
