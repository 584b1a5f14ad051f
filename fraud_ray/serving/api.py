"""The HTTP contract of the serving API: the bodies of prediction, feedback and the model endpoints.

Transactions and decisions are the domain schema itself (``fraud_ray.schema``); this module only
wraps them in envelopes, so ``/docs`` documents exactly what the rest of fraud-ray uses. How a
refusal reads is ``fraud_ray.http``'s; the decision log's views are ``fraud_ray.decision_api``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

from fastapi.exceptions import RequestValidationError
from pydantic import Field, field_validator

from fraud_ray.decision_api import logged_decision_link
from fraud_ray.http import Envelope
from fraud_ray.schema import Decision, Identifier, Transaction, too_far_ahead


class BatchRequest(Envelope):
    transactions: list[Transaction] = Field(
        min_length=1,
        description="at most serving.max_batch_transactions (default 10,000), each id once",
    )

    @field_validator("transactions")
    @classmethod
    def _each_id_once(cls, transactions: list[Transaction]) -> list[Transaction]:
        """Two payments under one id would get two answers where the log keeps one: the
        request is refused (422) rather than half-audited."""
        seen: set[str] = set()
        repeated: dict[str, None] = {}
        for transaction in transactions:
            if transaction.transaction_id in seen:
                repeated[transaction.transaction_id] = None
            seen.add(transaction.transaction_id)
        if repeated:
            shown = ", ".join(repr(tx) for tx in list(repeated)[:5])
            more = f" and {len(repeated) - 5} more" if len(repeated) > 5 else ""
            raise ValueError(f"transaction ids must be distinct in a batch: {shown}{more} repeated")
        return transactions


FEEDBACK = "feedback"


def answer_links(transaction_id: str) -> dict[int | str, dict[str, object]]:
    """The OpenAPI links of a prediction's answer, ``transaction_id`` locating an answered id:
    its decision in the log, and the label an operator sends for it later."""
    return {
        200: {
            "links": {
                "LoggedDecision": logged_decision_link(transaction_id),
                "Label": {
                    "operationId": FEEDBACK,
                    "requestBody": {"labels": [{"transaction_id": transaction_id, "is_fraud": 1}]},
                    "description": "the transaction's label, once its outcome is known",
                },
            }
        }
    }


def refuse_future(
    transactions: Sequence[Transaction], max_future_s: float | None, *, batch: bool
) -> None:
    """Refuse (422) transactions dated more than ``serving.max_future_s`` ahead of the clock.

    The stream applies the setting while it validates a message; FastAPI validates a body without
    a context to pass it in, so the handlers apply it here, with validation's own message and a
    location in the body, as a 422 from validation reads.
    """
    if max_future_s is None:
        return
    ahead = timedelta(seconds=max_future_s)
    # One reading of the clock screens the batch; ``too_far_ahead`` has the last word on the few
    # it catches, so the message is the one validation gives.
    screen = datetime.now(UTC) + ahead
    errors = []
    for index, transaction in enumerate(transactions):
        if transaction.timestamp <= screen:
            continue
        problem = too_far_ahead(transaction.timestamp, ahead)
        if problem is not None:
            where = ("body", "transactions", index) if batch else ("body",)
            errors.append(
                {
                    "type": "value_error",
                    "loc": (*where, "timestamp"),
                    "msg": f"Value error, {problem}",
                    "input": transaction.timestamp.isoformat(),
                }
            )
    if errors:
        raise RequestValidationError(errors)


class BatchResponse(Envelope):
    decisions: list[Decision] = Field(description="one per transaction, in the request's order")


class Label(Envelope):
    transaction_id: Identifier
    is_fraud: Literal[0, 1]


class FeedbackRequest(Envelope):
    labels: list[Label] = Field(min_length=1, max_length=100_000)


class FeedbackResponse(Envelope):
    received: int
    matched: int = Field(description="labels of transactions the feature state still remembers")
    logged: int = Field(description="labels of transactions in the decision log")


class ModelInfo(Envelope):
    name: str
    version: str
    alias: str
    trained_at: str | None
    metrics: dict[str, float]
    features: list[str]
    costs: dict[str, float]
    loaded_at: datetime


class ReloadResponse(Envelope):
    name: str
    version: str
    previous_version: str
    replicas: int = Field(description="Scorer replicas now serving this version")
