"""The decision log over HTTP: ``/api/v1/alerts`` and ``/api/v1/decisions/{id}`` as one router,
with the views they answer and the page tokens they hand out.

The Serve ingress includes the router and sets ``app.state.decisions`` to a ``DecisionLogReader``
over its own decision log, so the routes never open a database themselves. The dashboard shows
the same ``LoggedDecisionView`` in its alerts table.

FastAPI reads the handlers' annotations at run time, so this module does not use
``from __future__ import annotations``.
"""

import asyncio
import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import Field

from fraud_ray.decision_log import AlertCursor, DecisionLog, LoggedDecision
from fraud_ray.http import Envelope, Problem
from fraud_ray.schema import Decision, text_problem
from fraud_ray.settings import ServingSettings


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
    def of(cls, logged: LoggedDecision) -> "LoggedDecisionView":
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
    if cursor.scored_at.tzinfo is None or text_problem(cursor.transaction_id):
        raise ValueError(f"before: {token!r} is not a page token from /api/v1/alerts")
    return cursor


@dataclass(frozen=True)
class DecisionLogReader:
    """What the routes read: the app's decision log (``log`` opens it on first use) and the
    page sizes of ``serving.alerts_page_size`` and ``serving.alerts_page_max``."""

    log: Callable[[], DecisionLog]
    serving: ServingSettings


async def reader(request: Request) -> DecisionLogReader:
    """The ``DecisionLogReader`` of the app serving the request."""
    found = getattr(request.app.state, "decisions", None)
    if not isinstance(found, DecisionLogReader):
        raise RuntimeError(
            "the app includes the decision log router but its state.decisions is not a "
            "DecisionLogReader: set app.state.decisions = DecisionLogReader(log, settings.serving)"
        )
    return found


Reader = Annotated[DecisionLogReader, Depends(reader)]

router = APIRouter(responses={422: {"model": Problem}})
# Operation ids other operations' OpenAPI links name.
ALERTS = "alerts"
LOGGED_DECISION = "logged_decision"


def logged_decision_link(transaction_id: str) -> dict[str, object]:
    """An OpenAPI link to the logged decision of the transaction id that the runtime expression
    ``transaction_id`` finds in a response: what a client does next, and a stateful fuzzer."""
    return {
        "operationId": LOGGED_DECISION,
        "parameters": {"transaction_id": transaction_id},
        "description": "the decision as the decision log keeps it",
    }


@router.get(
    "/api/v1/alerts",
    response_model=AlertsPage,
    operation_id=ALERTS,
    responses={
        200: {
            "links": {
                "NextPage": {
                    "operationId": ALERTS,
                    "parameters": {"before": "$response.body#/next"},
                    "description": "the next, older page",
                },
                "FirstAlert": logged_decision_link(
                    "$response.body#/alerts/0/decision/transaction_id"
                ),
            }
        }
    },
)
async def alerts(
    decisions: Reader,
    limit: Annotated[
        int | None, Query(ge=1, description="default serving.alerts_page_size")
    ] = None,
    before: Annotated[str | None, Query(description="`next` of the previous page")] = None,
) -> AlertsPage:
    """Recent decisions other than approve from the decision log, newest first."""
    serving = decisions.serving
    size = limit or serving.alerts_page_size
    if size > serving.alerts_page_max:
        raise HTTPException(
            422,
            f"limit: at most {serving.alerts_page_max} (serving.alerts_page_max), got {size}",
        )
    try:
        cursor = decode_cursor(before) if before else None
    except ValueError as error:
        raise HTTPException(422, str(error)) from None
    # One more than asked says whether another page follows.
    found = await asyncio.to_thread(lambda: decisions.log().alerts(size + 1, cursor))
    page = found[:size]
    more = len(found) > size
    return AlertsPage(
        alerts=[LoggedDecisionView.of(logged) for logged in page],
        next=encode_cursor(page[-1].cursor) if more else None,
    )


@router.get(
    "/api/v1/decisions/{transaction_id}",
    response_model=LoggedDecisionView,
    operation_id=LOGGED_DECISION,
    responses={404: {"model": Problem}},
)
async def logged_decision(decisions: Reader, transaction_id: str) -> LoggedDecisionView:
    """The decision the log holds for one transaction."""
    # An id the log cannot hold (a NUL byte, say) is not looked up: PostgreSQL refuses the query.
    usable = text_problem(transaction_id) is None
    logged = (
        await asyncio.to_thread(lambda: decisions.log().get(transaction_id)) if usable else None
    )
    if logged is None:
        raise HTTPException(
            404, f"no decision for transaction {transaction_id!r} in the decision log"
        )
    return LoggedDecisionView.of(logged)
