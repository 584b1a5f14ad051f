"""Choosing approve, review or decline by expected cost instead of a fixed probability threshold.

A fraud on a $2,000 purchase and one on a $3 purchase are not the same mistake, and a review costs an
analyst's time whatever the amount. So each transaction gets the action whose expected cost, given
its calibrated fraud probability and its amount, is the least: the probability at which fraud-ray
starts to review or decline falls as the amount grows. This only makes sense with calibrated
probabilities, which is why the models are calibrated before their scores reach this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fraud_ray.schema import Action, FeesRecord
from fraud_ray.settings import CostSettings

# Least to most intrusive. ``argmin`` keeps the first of equal costs, so a tie goes to the action that
# bothers the customer less: a policy should not decline someone it is indifferent about.
ACTIONS = (Action.APPROVE, Action.REVIEW, Action.DECLINE)
_ACTION_VALUES = np.array([action.value for action in ACTIONS])


@dataclass(frozen=True)
class ActionThresholds:
    """Where the decision changes along the probability axis, for one amount.

    Up to ``review_above`` (or ``decline_above`` when ``review_above`` is None) a transaction is
    approved, then reviewed, and declined once the probability exceeds ``decline_above``; a
    probability exactly on a threshold gets the gentler action. ``review_above`` is None when no
    probability makes a review the cheapest action, e.g. for amounts below the review fee;
    ``decline_above`` is 1.0 when nothing is ever declined.
    """

    review_above: float | None
    decline_above: float


@dataclass(frozen=True)
class Savings:
    """What the policy's decisions cost on labelled data, next to the two baselines it must beat.

    ``realised_cost`` is the policy's own total; ``approve_all_cost`` is the fraud that goes through
    with no detection at all, and ``threshold_cost`` that of declining everything whose probability
    reaches a fixed threshold. The savings are baseline minus policy, so positive is better.
    """

    realised_cost: float
    approve_all_cost: float
    threshold_cost: float
    savings_vs_approve_all: float
    savings_vs_threshold: float


@dataclass(frozen=True)
class CostPolicy:
    """The example-dependent cost decision.

    Approving a fraud loses its amount, a review costs ``review_cost`` whatever the outcome (a
    reviewed fraud is stopped) and declining a legitimate transaction costs ``decline_cost`` in
    friction and lost business. Approving a legitimate transaction and declining a fraud are free.
    """

    review_cost: float
    decline_cost: float

    def __post_init__(self) -> None:
        for name in ("review_cost", "decline_cost"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    @classmethod
    def from_settings(cls, settings: CostSettings) -> CostPolicy:
        return cls(review_cost=settings.review_cost, decline_cost=settings.decline_cost)

    def expected_costs(self, probabilities: ArrayLike, amounts: ArrayLike) -> NDArray[np.float64]:
        """Expected cost of each action, one row per transaction, columns in ``ACTIONS`` order."""
        p, amount = _probabilities_and_amounts(probabilities, amounts)
        return np.column_stack(
            [p * amount, np.full_like(p, self.review_cost), (1.0 - p) * self.decline_cost]
        )

    def decide(
        self, probabilities: ArrayLike, amounts: ArrayLike
    ) -> tuple[NDArray[np.str_], NDArray[np.float64]]:
        """The cheapest action for each transaction (as ``Action`` values) and its expected cost."""
        costs = self.expected_costs(probabilities, amounts)
        chosen = np.argmin(costs, axis=1)
        return _ACTION_VALUES[chosen], costs[np.arange(len(costs)), chosen]

    def realised_cost(
        self, actions: ArrayLike, amounts: ArrayLike, is_fraud: ArrayLike
    ) -> NDArray[np.float64]:
        """What each decision actually cost once the label is known."""
        return realised_costs(actions, amounts, is_fraud, self.review_cost, self.decline_cost)

    def fees(self) -> FeesRecord:
        """The fees as every decision records them (``Decision.costs``)."""
        return {"review_cost": self.review_cost, "decline_cost": self.decline_cost}

    def threshold_costs(
        self,
        probabilities: ArrayLike,
        amounts: ArrayLike,
        is_fraud: ArrayLike,
        thresholds: ArrayLike,
    ) -> NDArray[np.float64]:
        """Total realised cost of ``threshold_actions`` at each of ``thresholds``.

        Sorting once and reading cumulative sums keeps a fine threshold grid over a large
        validation set cheap, where re-deciding every transaction per threshold would not be.
        """
        p, amount = _probabilities_and_amounts(probabilities, amounts)
        fraud = _labels(is_fraud)
        _same_length(probabilities=p, is_fraud=fraud)
        order = np.argsort(p, kind="stable")
        # Entry i: fraud amount missed / legitimate transactions among the i lowest probabilities.
        missed = np.concatenate([[0.0], np.cumsum(np.where(fraud, amount, 0.0)[order])])
        legit = np.concatenate([[0], np.cumsum(~fraud[order])])
        approved = np.searchsorted(p[order], np.asarray(thresholds, dtype=float), side="left")
        return missed[approved] + self.decline_cost * (legit[-1] - legit[approved])

    def savings(
        self,
        probabilities: ArrayLike,
        amounts: ArrayLike,
        is_fraud: ArrayLike,
        threshold: float = 0.5,
    ) -> Savings:
        """Total realised cost of the policy against "approve everything" and a fixed threshold."""
        p, amount = _probabilities_and_amounts(probabilities, amounts)
        fraud = _labels(is_fraud)
        actions, _ = self.decide(p, amount)
        policy = float(self.realised_cost(actions, amount, fraud).sum())
        approve_all = approve_all_cost(amount, fraud)
        fixed = float(self.realised_cost(threshold_actions(p, threshold), amount, fraud).sum())
        return Savings(
            realised_cost=policy,
            approve_all_cost=approve_all,
            threshold_cost=fixed,
            savings_vs_approve_all=approve_all - policy,
            savings_vs_threshold=fixed - policy,
        )

    def thresholds(self, amount: float) -> ActionThresholds:
        """The probabilities at which the decision for ``amount`` changes.

        Approving costs ``p * amount`` and rises with p, declining costs ``(1 - p) * decline_cost``
        and falls, a review is flat: the cheapest action therefore goes approve, (review,) decline
        as p grows, and the crossings of those lines are the thresholds.
        """
        if not (np.isfinite(amount) and amount >= 0):
            raise ValueError(f"amount must be a finite number >= 0, got {amount!r}")
        if amount == 0:
            # Approving a zero amount (a card verification) costs nothing, whatever the probability.
            return ActionThresholds(None, 1.0)
        review, decline = self.review_cost, self.decline_cost
        review_beats_approve_above = review / amount
        if decline > 0:
            review_beats_decline_up_to = 1.0 - review / decline
        else:
            # A free decline is matched only by a free review, which then wins the tie everywhere.
            review_beats_decline_up_to = 1.0 if review == 0 else -np.inf
        if review_beats_approve_above < review_beats_decline_up_to:
            return ActionThresholds(review_beats_approve_above, review_beats_decline_up_to)
        return ActionThresholds(None, decline / (amount + decline))


def approve_all_cost(amounts: ArrayLike, is_fraud: ArrayLike) -> float:
    """The baseline of no detection at all: every fraud goes through and costs its amount, and
    no fee is ever paid."""
    amount = _amounts(amounts)
    fraud = _labels(is_fraud)
    _same_length(amount=amount, is_fraud=fraud)
    return float(amount[fraud].sum())


def realised_costs(
    actions: ArrayLike,
    amounts: ArrayLike,
    is_fraud: ArrayLike,
    review_cost: ArrayLike,
    decline_cost: ArrayLike,
) -> NDArray[np.float64]:
    """What each decision cost once its label is known, with fees per decision (or one for all).

    Monitoring judges logged decisions with the fees each was made with, which change over the
    life of a log; a decision made under old fees is not re-priced by today's.
    """
    action = _actions(actions)
    amount = _amounts(amounts)
    fraud = _labels(is_fraud)
    _same_length(action=action, amount=amount, is_fraud=fraud)
    approve = action == Action.APPROVE.value
    review = action == Action.REVIEW.value
    decline = action == Action.DECLINE.value
    return (
        np.where(approve & fraud, amount, 0.0)
        + np.where(review, review_cost, 0.0)
        + np.where(decline & ~fraud, decline_cost, 0.0)
    )


def threshold_actions(probabilities: ArrayLike, threshold: float = 0.5) -> NDArray[np.str_]:
    """The usual baseline: decline from ``threshold`` on, approve below, never review."""
    p = _probabilities(probabilities)
    return np.where(p >= threshold, Action.DECLINE.value, Action.APPROVE.value)


def _probabilities(values: ArrayLike) -> NDArray[np.float64]:
    p = np.asarray(values, dtype=float).ravel()
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError("probabilities must lie in [0, 1] (calibrate the raw scores first)")
    return p


def _amounts(values: ArrayLike) -> NDArray[np.float64]:
    amount = np.asarray(values, dtype=float).ravel()
    if not np.all(np.isfinite(amount) & (amount >= 0)):
        raise ValueError("amounts must be finite and >= 0")
    return amount


def _probabilities_and_amounts(
    probabilities: ArrayLike, amounts: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    p, amount = _probabilities(probabilities), _amounts(amounts)
    _same_length(probabilities=p, amounts=amount)
    return p, amount


def _labels(values: ArrayLike) -> NDArray[np.bool_]:
    labels = np.asarray(values).ravel()
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError("is_fraud must hold only 0 and 1")
    return labels.astype(bool)


def _actions(values: ArrayLike) -> NDArray[np.str_]:
    # ``astype(str)`` turns Action members into their values, so members and plain strings both work.
    actions = np.asarray(values, dtype=object).ravel().astype(str)
    unknown = sorted(set(actions[~np.isin(actions, _ACTION_VALUES)]))
    if unknown:
        raise ValueError(f"unknown actions: {', '.join(unknown)}")
    return actions


def _same_length(**arrays: np.ndarray) -> None:
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"arrays differ in length: {lengths}")
