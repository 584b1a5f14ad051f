"""The dashboard page and the monitoring endpoints as one router that any FastAPI app includes:
the Serve ingress (``fraud_ray.serving.graph``) and the standalone ``python monitor.py serve``.

The app provides what the routes read by setting ``app.state.monitoring`` to a
``MonitoringService`` (``fraud_ray.monitoring.service``):
the routes never open a database or load a model themselves, so the same router works in both
apps and in a test. Whatever blocks (the database, Evidently, matplotlib) runs in a worker
thread, never on the event loop that also serves the app's other requests.

FastAPI reads the handlers' annotations at run time, so this module does not use
``from __future__ import annotations``.
"""

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BeforeValidator

from fraud_ray.http import Problem
from fraud_ray.monitoring.charts import NO_CHALLENGER
from fraud_ray.monitoring.drift import NotEnoughData
from fraud_ray.monitoring.service import MonitoringService
from fraud_ray.monitoring.summaries import DriftSummary, ModelComparison, PerformanceReport
from fraud_ray.schema import text_problem

# The log's frames hold pandas timestamps: a window beyond them cannot be read, only refused.
EARLIEST = pd.Timestamp.min.tz_localize(UTC)
LATEST = pd.Timestamp.max.tz_localize(UTC)


async def monitoring(request: Request) -> MonitoringService:
    """The ``MonitoringService`` of the app serving the request."""
    found = getattr(request.app.state, "monitoring", None)
    if not isinstance(found, MonitoringService):
        raise RuntimeError(
            "the app includes the monitoring router but its state.monitoring is not a "
            "MonitoringService: set app.state.monitoring = MonitoringService(settings)"
        )
    return found


Monitored = Annotated[MonitoringService, Depends(monitoring)]


def _iso_only(value: object) -> object:
    """Pydantic would read a number as epoch seconds: the parameter is documented, and read, as
    ISO 8601 only, so a number is refused rather than taken for a time in 1970."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError("must be an ISO 8601 time, not a number")
    return value


Moment = Annotated[
    datetime | None,
    BeforeValidator(_iso_only),
    Query(description="transaction time, ISO 8601; a time without zone is UTC"),
]

router = APIRouter(tags=["monitoring"], responses={422: {"model": Problem}})


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard(monitoring: Monitored) -> HTMLResponse:
    """The dashboard: one self-contained HTML page (plots inline, nothing fetched) over the
    latest ``monitoring.dashboard_days`` of logged transactions."""
    return HTMLResponse(await asyncio.to_thread(monitoring.page))


@router.get(
    "/api/v1/monitoring/drift",
    response_model=DriftSummary,
    responses={409: {"model": Problem, "description": "no verdict to give yet, and why"}},
)
async def drift(monitoring: Monitored) -> DriftSummary:
    """Drift of the latest logged transactions against the reference sample of the model that
    decided most of them; a summary measured less than ``monitoring.drift_cache_s`` ago is
    answered again."""
    from mlflow.exceptions import MlflowException  # loaded with the monitor, not with the app

    try:
        return await asyncio.to_thread(lambda: monitoring.monitor().drift())
    except NotEnoughData as error:
        raise HTTPException(409, f"not enough data for a drift verdict: {error}") from None
    except (ValueError, MlflowException) as error:
        # What `fraud-ray monitor drift` refuses too: a version registered without its
        # reference sample, logged features that share no column with it.
        raise HTTPException(409, f"drift cannot be measured: {error}") from None


@router.get("/api/v1/monitoring/performance", response_model=PerformanceReport)
async def performance(
    monitoring: Monitored,
    start: Moment = None,
    end: Moment = None,
    model_version: Annotated[
        str | None, Query(description="only this model version's decisions")
    ] = None,
) -> PerformanceReport:
    """Precision, recall, cost and what is still unlabelled, per day of transaction time."""
    first, last = _window(start, end)
    problem = None if model_version is None else text_problem(model_version)
    if problem is not None:
        raise HTTPException(422, f"model_version: {problem}")
    return await asyncio.to_thread(
        lambda: monitoring.monitor().performance(first, last, model_version)
    )


@router.get(
    "/api/v1/monitoring/comparison",
    response_model=ModelComparison,
    responses={404: {"model": Problem, "description": "no challenger in shadow"}},
)
async def comparison(
    monitoring: Monitored, start: Moment = None, end: Moment = None
) -> ModelComparison:
    """The champion and the challenger scored in shadow, on the labelled transactions both saw."""
    first, last = _window(start, end)
    found = await asyncio.to_thread(lambda: monitoring.monitor().comparison(first, last))
    if found is None:
        raise HTTPException(404, f"no challenger in shadow: {NO_CHALLENGER}")
    return found


def _window(
    start: datetime | None, end: datetime | None
) -> tuple[datetime | None, datetime | None]:
    first, last = _utc(start, "start"), _utc(end, "end")
    if first is not None and last is not None and first >= last:
        raise HTTPException(
            422, f"start: {first.isoformat()} must be before end ({last.isoformat()})"
        )
    return first, last


def _utc(moment: datetime | None, name: str) -> datetime | None:
    """A query time in UTC, or a 422 naming the parameter."""
    if moment is None:
        return None
    try:
        utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise HTTPException(
            422,
            f"{name}: {moment.isoformat()} is outside the times a decision log holds "
            f"({EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d})",
        )
    return utc
