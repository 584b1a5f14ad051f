"""The HTTP contract: request and response bodies of the serving API, and how errors read.

Transactions and decisions are the domain schema itself (``fraud_ray.schema``); this module only
wraps them in envelopes, so ``/docs`` documents exactly what the rest of fraud-ray uses.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.exceptions import HTTPException

from fraud_ray.decision_log import AlertCursor, LoggedDecision
from fraud_ray.schema import Decision, Transaction


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


class BatchResponse(Envelope):
    decisions: list[Decision] = Field(description="one per transaction, in the request's order")


class Label(Envelope):
    transaction_id: str = Field(min_length=1, max_length=128)
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


class LoggedDecisionView(Envelope):
    """A decision from the decision log, with the transaction fields an analyst looks at first
    and its label once one arrived. The features are left out: they are for monitoring."""

    decision: Decision
    card_id: str | None
    terminal_id: str | None
    amount: float
    timestamp: datetime
    is_fraud: Literal[0, 1] | None = None

    @classmethod
    def of(cls, logged: LoggedDecision) -> LoggedDecisionView:
        return cls(
            decision=logged.decision,
            card_id=logged.card_id,
            terminal_id=logged.terminal_id,
            amount=logged.amount,
            timestamp=logged.timestamp,
            is_fraud=logged.is_fraud,
        )


class AlertsPage(Envelope):
    alerts: list[LoggedDecisionView] = Field(description="review and decline, newest first")
    next: str | None = Field(
        description="pass as ?before= for the next page; null on the last page"
    )


def encode_cursor(cursor: AlertCursor) -> str:
    """An opaque page token: clients pass it back, they need not read it."""
    raw = json.dumps([cursor.scored_at.isoformat(), cursor.transaction_id]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(token: str) -> AlertCursor:
    """The cursor in a ``before`` token; ``ValueError`` for a token this API did not hand out."""
    try:
        scored_at, transaction_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        cursor = AlertCursor(datetime.fromisoformat(scored_at), str(transaction_id))
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as error:
        raise ValueError(f"before: {token!r} is not a page token from /api/v1/alerts") from error
    if cursor.scored_at.tzinfo is None:
        raise ValueError(f"before: {token!r} is not a page token from /api/v1/alerts")
    return cursor


class Problem(Envelope):
    """Every 4xx body: one sentence for a person, and the fields at fault for a program."""

    message: str
    errors: list[dict[str, Any]] = Field(default_factory=list)


def field_name(location: tuple[int | str, ...] | list[int | str]) -> str:
    """``body.transactions.3.amount`` reads better than pydantic's location tuple."""
    return ".".join(str(part) for part in location) or "body"


async def validation_problem(_: Request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 with a readable message that names each field at fault first."""
    errors = [
        {"field": field_name(issue.get("loc", ())), "message": issue.get("msg", "invalid")}
        for issue in error.errors()
    ]
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return JSONResponse(
        status_code=422,
        content=Problem(message=f"invalid request: {summary}{more}", errors=errors).model_dump(),
    )


async def http_problem(_: Request, error: HTTPException) -> JSONResponse:
    """Refusals raised by the handlers (401, 409, 413, ...) in the same shape as a 422."""
    return JSONResponse(
        status_code=error.status_code,
        content=Problem(message=str(error.detail)).model_dump(),
        headers=error.headers,
    )


def problem_app(title: str, summary: str) -> FastAPI:
    """A FastAPI app whose every refusal (422 and the handlers' 4xx) is a ``Problem`` body: the
    serving API and the standalone monitoring app read the same to a client."""
    app = FastAPI(title=title, summary=summary, version="1", responses={422: {"model": Problem}})
    app.add_exception_handler(RequestValidationError, validation_problem)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, http_problem)  # type: ignore[arg-type]
    return app
