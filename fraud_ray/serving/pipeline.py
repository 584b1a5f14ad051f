"""The three steps of a decision as plain objects, with no Ray in them.

Features -> model -> cost decision. The Serve graph runs each step in its own deployment, the plain
FastAPI baseline in ``bench/`` runs them in one process, and the tests run them in milliseconds:
a decision is made by the same code wherever it is made. Between steps only NumPy arrays travel,
because they pickle in microseconds where lists of pydantic objects take milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from fraud_ray.costs import CostPolicy
from fraud_ray.features.definitions import FeatureSpec
from fraud_ray.features.online import OnlineFeatures
from fraud_ray.features.state import Event, MemoryState, epoch_micros
from fraud_ray.model import FraudModel
from fraud_ray.schema import Action, ModelRef, Transaction, instant_text
from fraud_ray.settings import Settings

PROBE_START = datetime(2025, 1, 6, 12, tzinfo=UTC)
NO_HISTORY = ": none yet, no history to compare with"


class ModelRefused(ValueError):
    """A model version that must not serve; the message says why."""


@dataclass(frozen=True)
class Scores:
    """Calibrated probabilities and each row's strongest reasons, as indices into the features."""

    probabilities: np.ndarray
    reason_index: np.ndarray
    reason_value: np.ndarray
    reason_unknown: np.ndarray
    model: ModelRef

    def rows(self, start: int, end: int) -> Scores:
        """The scores of rows ``start:end``: one request's share of a batched model call."""
        return Scores(
            self.probabilities[start:end],
            self.reason_index[start:end],
            self.reason_value[start:end],
            self.reason_unknown[start:end],
            self.model,
        )


@dataclass(frozen=True)
class Decided:
    """What the decision step adds: the chosen action and its expected cost."""

    scores: Scores
    actions: np.ndarray
    expected_costs: np.ndarray


def events_from(transactions: Sequence[Transaction]) -> list[Event]:
    return [Event.from_transaction(transaction) for transaction in transactions]


def amounts_of(transactions: Sequence[Transaction]) -> np.ndarray:
    return np.fromiter((t.amount for t in transactions), dtype=np.float64, count=len(transactions))


class ServingModel:
    """A registered model ready to serve: scores in the serving feature order, with reasons.

    The feature step computes the features of the serving spec; a model trained on other feature
    definitions would read the wrong columns, so it is refused instead of served.

    Reasons are the booster's contributions, which cost up to a hundred times a prediction
    (LightGBM), and an analyst reads them only where a transaction is reviewed or declined. Given
    the cost ``policy``, only those transactions get reasons; without one, every transaction does.
    """

    def __init__(
        self,
        model: FraudModel,
        ref: ModelRef,
        spec: FeatureSpec,
        reasons: int,
        policy: CostPolicy | None = None,
    ) -> None:
        if model.spec != spec:
            raise ModelRefused(
                f"{ref.name} version {ref.version} was trained on other feature definitions "
                f"({model.spec}) than the graph computes ({spec}); redeploy the graph to serve it"
            )
        self.model = model
        self.ref = ref
        self.reasons = min(reasons, len(model.features))
        self.policy = policy

    @classmethod
    def for_settings(
        cls, model: FraudModel, ref: ModelRef, spec: FeatureSpec, settings: Settings
    ) -> ServingModel:
        """Reasons and the policy that picks who gets them, from ``serving`` and ``costs``."""
        serving = settings.serving
        explained = serving.reasons_for == "alerts"
        policy = CostPolicy.from_settings(settings.costs) if explained else None
        return cls(model, ref, spec, serving.reasons, policy)

    def score(self, rows: np.ndarray, amounts: np.ndarray) -> Scores:
        probabilities = self.model.probabilities(rows)
        if self.policy is None:
            explain = np.ones(len(rows), dtype=bool)
        else:
            actions, _ = self.policy.decide(probabilities, amounts)
            explain = actions != Action.APPROVE.value
        return self._explained(rows, probabilities, explain)

    def probe(self) -> None:
        """Score a few synthetic cold-start transactions, reasons and all; refuse a model that
        cannot."""
        rows = probe_rows(self.model.spec)
        try:
            probabilities = self.model.probabilities(rows)
            self._explained(rows, probabilities, np.ones(len(rows), dtype=bool))
        except Exception as error:  # any failure to score means the version cannot serve
            raise ModelRefused(
                f"{self.ref.name} version {self.ref.version} failed to score a probe batch: {error}"
            ) from error
        p = probabilities
        if p.shape != (len(rows),) or not np.all(np.isfinite(p) & (p >= 0) & (p <= 1)):
            raise ModelRefused(
                f"{self.ref.name} version {self.ref.version} gave invalid probabilities {p!r}"
            )

    def _explained(
        self, rows: np.ndarray, probabilities: np.ndarray, explain: np.ndarray
    ) -> Scores:
        """Scores with the ``reasons`` largest positive contributions of the ``explain`` rows.

        A feature that pushed the score down is not a reason for suspicion, so non-positive
        contributions, and every row not explained, come back as index -1. A feature without a
        value (a card's first payment has no average yet) can still be a reason: the trees learnt
        what a missing history means.
        """
        index = np.full((len(rows), self.reasons), -1, dtype=np.int64)
        value = np.zeros((len(rows), self.reasons))
        chosen = np.flatnonzero(explain)
        if self.reasons and chosen.size:
            contributions = self.model.contributions(rows[chosen])
            top = np.argsort(-contributions, axis=1, kind="stable")[:, : self.reasons]
            top_value = np.take_along_axis(contributions, top, axis=1)
            index[chosen] = np.where(top_value > 0, top, -1)
            value[chosen] = top_value
        unknown = (index >= 0) & np.isnan(np.take_along_axis(rows, np.maximum(index, 0), axis=1))
        return Scores(probabilities, index, value, unknown, self.ref)


def probe_rows(spec: FeatureSpec) -> np.ndarray:
    """Features of a small synthetic history: a first purchase, a repeat, a large one at night."""
    online = OnlineFeatures(spec, MemoryState(spec))
    moments = [PROBE_START, PROBE_START + timedelta(hours=2), PROBE_START + timedelta(hours=11)]
    events = [
        Event(f"probe-{i}", epoch_micros(moment), amount, "probe-card", "probe-terminal")
        for i, (moment, amount) in enumerate(zip(moments, (20.0, 25.0, 900.0), strict=True))
    ]
    return online.compute(events)


def decide(policy: CostPolicy, scores: Scores, amounts: np.ndarray) -> Decided:
    actions, costs = policy.decide(scores.probabilities, amounts)
    return Decided(scores, actions, costs)


def render(
    transactions: Sequence[Transaction],
    decided: Decided,
    spec: FeatureSpec,
    received_at: datetime,
) -> list[dict[str, Any]]:
    """Decisions as JSON-ready dicts of the ``Decision`` schema, reasons named for an analyst.

    The values are already valid (they come from the model and the policy), and this loop runs
    once per transaction on the serving path: plain dicts cost a microsecond where a pydantic
    object costs ten, and they pickle and serialise faster too. ``Decision.model_validate``
    turns one into the typed object where a caller wants it.
    """
    definitions = spec.definitions
    now = datetime.now(UTC)
    latency_ms = max((now - received_at).total_seconds() * 1000, 0.0)
    scored_at = instant_text(now)
    scores = decided.scores
    model = scores.model.model_dump()
    return [
        {
            "transaction_id": transaction.transaction_id,
            "fraud_probability": probability,
            "decision": action,
            "expected_cost": cost,
            "reasons": [
                {
                    "feature": definitions[j].name,
                    "description": definitions[j].description + (NO_HISTORY if unknown else ""),
                    "contribution": value,
                }
                for j, value, unknown in zip(indices, values, unknowns, strict=True)
                if j >= 0
            ],
            "model": model,
            "scored_at": scored_at,
            "latency_ms": latency_ms,
        }
        for transaction, probability, action, cost, indices, values, unknowns in zip(
            transactions,
            scores.probabilities.tolist(),
            decided.actions.tolist(),
            decided.expected_costs.tolist(),
            scores.reason_index.tolist(),
            scores.reason_value.tolist(),
            scores.reason_unknown.tolist(),
            strict=True,
        )
    ]


class DecisionPipeline:
    """The three steps in one process: the baseline the Serve graph is measured against."""

    def __init__(self, features: OnlineFeatures, model: ServingModel, policy: CostPolicy) -> None:
        self.features = features
        self.model = model
        self.policy = policy

    def decide(self, transactions: Sequence[Transaction]) -> list[dict[str, Any]]:
        received_at = datetime.now(UTC)
        rows = self.features.compute(events_from(transactions))
        amounts = amounts_of(transactions)
        decided = decide(self.policy, self.model.score(rows, amounts), amounts)
        return render(transactions, decided, self.features.spec, received_at)
