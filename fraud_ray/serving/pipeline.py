"""The three steps of a decision as plain objects, with no Ray in them.

Features -> model and cost policy (``Scored``) -> decision records (``render``). The Serve graph
runs each step in its own deployment, the plain FastAPI baseline in ``bench/`` runs them in one
process, and the tests run them in milliseconds: a decision is made by the same code wherever it is
made. Between steps only NumPy arrays travel, because they pickle in microseconds where lists of
pydantic objects take milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from fraud_ray.costs import CostPolicy
from fraud_ray.features.definitions import FeatureSpec
from fraud_ray.features.online import OnlineFeatures
from fraud_ray.features.state import Event, MemoryState, epoch_micros
from fraud_ray.model import FraudModel
from fraud_ray.schema import (
    Action,
    DecisionRecord,
    ModelRecord,
    ModelRef,
    ReasonRecord,
    Transaction,
    instant_text,
)
from fraud_ray.serving.columns import Columns
from fraud_ray.settings import Settings

PROBE_START = datetime(2025, 1, 6, 12, tzinfo=UTC)
NO_HISTORY = ": none yet, no history to compare with"


class ModelRefused(ValueError):
    """A model version that must not serve; the message says why."""


@dataclass(frozen=True)
class Scored:
    """A batch after the model step: calibrated probabilities, the least-cost action and its
    expected cost, and each row's strongest reasons as indices into the features.

    The one shape a batch has between the model and the decision records: the model step decides
    (it must, to explain only the rows an analyst will read) and the records are made from this.
    """

    probabilities: np.ndarray
    actions: np.ndarray
    expected_costs: np.ndarray
    reason_index: np.ndarray
    reason_value: np.ndarray
    reason_unknown: np.ndarray
    model: ModelRef
    policy: CostPolicy

    def rows(self, start: int, end: int) -> Scored:
        """The rows ``start:end``: one request's share of a batched model call."""
        return Scored(
            self.probabilities[start:end],
            self.actions[start:end],
            self.expected_costs[start:end],
            self.reason_index[start:end],
            self.reason_value[start:end],
            self.reason_unknown[start:end],
            self.model,
            self.policy,
        )


def events_from(transactions: Sequence[Transaction]) -> list[Event]:
    return Columns.of(transactions).events()


def amounts_of(transactions: Sequence[Transaction]) -> np.ndarray:
    return np.fromiter((t.amount for t in transactions), dtype=np.float64, count=len(transactions))


class ServingModel:
    """A registered model ready to serve: decisions in the serving feature order, with reasons.

    The feature step computes the features of the serving spec; a model trained on other feature
    definitions would read the wrong columns, so it is refused instead of served.

    The cost ``policy`` is the settings' (``costs``), never the model's: costs change without
    retraining, and every path decides with the same ones. It runs here, once per batch, because
    reasons depend on its answer: they are the booster's contributions, which cost up to a hundred
    times a prediction (LightGBM), and an analyst reads them only where a transaction is reviewed
    or declined. With ``explain_all`` every transaction gets them (``serving.reasons_for: all``).
    """

    def __init__(
        self,
        model: FraudModel,
        ref: ModelRef,
        spec: FeatureSpec,
        policy: CostPolicy,
        reasons: int,
        explain_all: bool = False,
    ) -> None:
        if model.spec != spec:
            raise ModelRefused(
                f"{ref.name} version {ref.version} was trained on other feature definitions "
                f"({model.spec}) than the graph computes ({spec}); redeploy the graph to serve it"
            )
        self.model = model
        self.ref = ref
        self.policy = policy
        self.reasons = min(reasons, len(model.features))
        self.explain_all = explain_all

    @classmethod
    def for_settings(
        cls, model: FraudModel, ref: ModelRef, spec: FeatureSpec, settings: Settings
    ) -> ServingModel:
        """Costs from ``costs``; how many reasons, and for whom, from ``serving``."""
        serving = settings.serving
        policy = CostPolicy.from_settings(settings.costs)
        return cls(model, ref, spec, policy, serving.reasons, serving.reasons_for == "all")

    def score(self, rows: np.ndarray, amounts: np.ndarray) -> Scored:
        """Probabilities, the least-cost actions, and reasons where someone will read them."""
        probabilities = self.model.probabilities(rows)
        actions, costs = self.policy.decide(probabilities, amounts)
        explain = (
            np.ones(len(rows), dtype=bool) if self.explain_all else actions != Action.APPROVE.value
        )
        index, value, unknown = self._reasons(rows, explain)
        return Scored(probabilities, actions, costs, index, value, unknown, self.ref, self.policy)

    def probe(self) -> None:
        """Score a few synthetic cold-start transactions, reasons and all; refuse a model that
        cannot."""
        rows = probe_rows(self.model.spec)
        try:
            probabilities = self.model.probabilities(rows)
            self._reasons(rows, np.ones(len(rows), dtype=bool))
        except Exception as error:  # any failure to score means the version cannot serve
            raise ModelRefused(
                f"{self.ref.name} version {self.ref.version} failed to score a probe batch: {error}"
            ) from error
        p = probabilities
        if p.shape != (len(rows),) or not np.all(np.isfinite(p) & (p >= 0) & (p <= 1)):
            raise ModelRefused(
                f"{self.ref.name} version {self.ref.version} gave invalid probabilities {p!r}"
            )

    def _reasons(
        self, rows: np.ndarray, explain: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ``reasons`` largest positive contributions of the ``explain`` rows: feature
        indices, contributions, and whether the feature had no value.

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
        return index, value, unknown


def probe_rows(spec: FeatureSpec) -> np.ndarray:
    """Features of a small synthetic history: a first purchase, a repeat, a large one at night."""
    online = OnlineFeatures(spec, MemoryState(spec))
    moments = [PROBE_START, PROBE_START + timedelta(hours=2), PROBE_START + timedelta(hours=11)]
    events = [
        Event(f"probe-{i}", epoch_micros(moment), amount, "probe-card", "probe-terminal")
        for i, (moment, amount) in enumerate(zip(moments, (20.0, 25.0, 900.0), strict=True))
    ]
    return online.compute(events)


def render(
    transaction_ids: Sequence[str],
    scored: Scored,
    spec: FeatureSpec,
    received_at: datetime,
) -> list[DecisionRecord]:
    """Decisions in the ``Decision`` schema's JSON form, reasons named for an analyst.

    The values are already valid (they come from the model and the policy), and this loop runs
    once per transaction on the serving path: plain dicts cost a microsecond where a pydantic
    object costs ten, and they pickle and serialise faster too.
    """
    names = [definition.name for definition in spec.definitions]
    described = [definition.description for definition in spec.definitions]
    indices = scored.reason_index.tolist()
    values = scored.reason_value.tolist()
    unknowns = scored.reason_unknown.tolist()
    reasons: list[list[ReasonRecord]] = [[] for _ in indices]
    # Reasons come strongest first and an unexplained slot (-1) is never followed by a reason,
    # so a row without a first reason has none: most rows, which then cost nothing here.
    first = scored.reason_index[:, 0] if scored.reason_index.shape[1] else np.empty(0)
    for row in np.flatnonzero(first >= 0).tolist():
        reasons[row] = [
            {
                "feature": names[j],
                "description": described[j] + (NO_HISTORY if unknown else ""),
                "contribution": value,
            }
            for j, value, unknown in zip(indices[row], values[row], unknowns[row], strict=True)
            if j >= 0
        ]
    now = datetime.now(UTC)
    return decision_records(
        transaction_ids,
        scored.probabilities,
        scored.actions,
        scored.expected_costs,
        reasons,
        scored.model,
        scored.policy,
        now,
        latency_ms=max((now - received_at).total_seconds() * 1000, 0.0),
    )


def decision_records(
    transaction_ids: Sequence[str],
    probabilities: np.ndarray,
    actions: np.ndarray,
    expected_costs: np.ndarray,
    reasons: Sequence[list[ReasonRecord]] | None,
    model: ModelRef,
    policy: CostPolicy,
    scored_at: datetime,
    latency_ms: float,
) -> list[DecisionRecord]:
    """The one place a ``DecisionRecord`` is built: for answers (``render``) and for a
    challenger's shadow decisions, which have no reasons (nobody reads them)."""
    model_record: ModelRecord = {"name": model.name, "version": model.version}
    fees = policy.fees()
    at = instant_text(scored_at)
    explained = reasons if reasons is not None else [[] for _ in transaction_ids]
    return [
        {
            "transaction_id": transaction_id,
            "fraud_probability": probability,
            "decision": action,
            "expected_cost": cost,
            "reasons": why,
            "model": model_record,
            "costs": fees,
            "scored_at": at,
            "latency_ms": latency_ms,
            "replay": False,
        }
        for transaction_id, probability, action, cost, why in zip(
            transaction_ids,
            probabilities.tolist(),
            actions.tolist(),
            expected_costs.tolist(),
            explained,
            strict=True,
        )
    ]


def transaction_ids(transactions: Sequence[Transaction]) -> list[str]:
    return [transaction.transaction_id for transaction in transactions]


class DecisionPipeline:
    """The three steps in one process: the baseline the Serve graph is measured against."""

    def __init__(self, features: OnlineFeatures, model: ServingModel) -> None:
        self.features = features
        self.model = model

    def decide(self, transactions: Sequence[Transaction]) -> list[DecisionRecord]:
        return self.answer(transactions)[0]

    def answer(
        self, transactions: Sequence[Transaction]
    ) -> tuple[list[DecisionRecord], np.ndarray]:
        """Decisions and the feature rows they were made on, as the graph's ingress answers
        them: a caller that logs the decisions logs their features too."""
        received_at = datetime.now(UTC)
        rows = self.features.compute(events_from(transactions))
        scored = self.model.score(rows, amounts_of(transactions))
        decisions = render(transaction_ids(transactions), scored, self.features.spec, received_at)
        return decisions, rows
