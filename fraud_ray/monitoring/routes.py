"""The dashboard page and the monitoring endpoints as one router that any FastAPI app includes:
the Serve ingress (``fraud_ray.serving.graph``) and the standalone ``python monitor.py serve``.

The app provides what the routes read by setting ``app.state.monitoring`` to a ``Monitoring``:
the routes never open a database or load a model themselves, so the same router works in both
apps and in a test. Whatever blocks (the database, Evidently, matplotlib) runs in a worker
thread, never on the event loop that also serves the app's other requests.

FastAPI reads the handlers' annotations at run time, so this module does not use
``from __future__ import annotations``.
"""

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from fraud_ray.decision_log import DecisionLog
from fraud_ray.monitoring.dashboard import NO_CHALLENGER, collect, render
from fraud_ray.monitoring.drift import NotEnoughData
from fraud_ray.monitoring.interface import MonitorLike
from fraud_ray.monitoring.summaries import DriftSummary, ModelComparison, PerformanceReport
from fraud_ray.serving.api import Problem
from fraud_ray.settings import Settings

logger = logging.getLogger(__name__)

# The log's frames hold pandas timestamps: a window beyond them cannot be read, only refused.
EARLIEST = pd.Timestamp.min.tz_localize(UTC)
LATEST = pd.Timestamp.max.tz_localize(UTC)


@dataclass(frozen=True)
class _DriftOutcome:
    end: datetime | None
    at: float
    summary: DriftSummary | None
    error: NotEnoughData | None


class DriftCache:
    """A monitor that keeps its last drift outcome for ``ttl_s`` seconds.

    Evidently takes seconds over a day of decisions, and the page, the API and every analyst's
    refresh ask for the same verdict. A caller that arrives while it is being measured waits for
    that measurement rather than starting another on the same cores. "Not enough data" is an
    outcome too, and kept as long.
    """

    def __init__(
        self,
        monitor: MonitorLike,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
        on_drift: Callable[[DriftSummary], None] | None = None,
    ) -> None:
        self.monitor = monitor
        self.ttl_s = ttl_s
        self.on_drift = on_drift
        self._clock = clock
        self._lock = threading.Lock()
        self._last: _DriftOutcome | None = None

    def drift(self, end: datetime | None = None) -> DriftSummary:
        with self._lock:
            last = self._last
            if last is None or last.end != end or self._clock() - last.at >= self.ttl_s:
                try:
                    summary = self.monitor.drift(end)
                    last = _DriftOutcome(end, self._clock(), summary, None)
                    if self.on_drift is not None:
                        self.on_drift(summary)
                except NotEnoughData as error:
                    last = _DriftOutcome(end, self._clock(), None, error)
                self._last = last
        if last.error is not None:
            raise last.error.with_traceback(None)
        assert last.summary is not None
        return last.summary

    def performance(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        model_version: str | None = None,
    ) -> PerformanceReport:
        return self.monitor.performance(start, end, model_version)

    def comparison(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> ModelComparison | None:
        return self.monitor.comparison(start, end)


class Monitoring:
    """The decision log and the monitor behind the routes, opened on first use.

    An app starts at once and needs no database to start; Evidently and MLflow are imported
    when monitoring is first asked for, not when the Serve ingress imports this module. A monitor
    or log given here is used as it is (a test's, or an app's own).
    """

    def __init__(
        self,
        settings: Settings,
        monitor: MonitorLike | None = None,
        log: DecisionLog | None = None,
        on_drift: Callable[[DriftSummary], None] | None = None,
    ) -> None:
        """``on_drift`` sees every fresh drift summary (the Serve app exports it as gauges)."""
        self.settings = settings
        self.on_drift = on_drift
        self._log = log
        self._monitor = None if monitor is None else self._cached(monitor)
        self._lock = threading.Lock()

    def log(self) -> DecisionLog:
        with self._lock:
            if self._log is None:
                self._log = DecisionLog(self.settings.decisions.url)
            return self._log

    def monitor(self) -> DriftCache:
        log = self.log()
        with self._lock:
            if self._monitor is None:
                from fraud_ray.monitoring.monitor import Monitor

                self._monitor = self._cached(Monitor(self.settings, log))
            return self._monitor

    def page(self) -> str:
        return render(collect(self.monitor(), self.log(), self.settings))

    async def check_drift_every(self, interval_s: float) -> None:
        """Check drift every ``interval_s`` until cancelled.

        The alarm (the log line, the webhook, the gauges an alert rule reads) is raised by a drift
        check, and without this one only happens when someone opens the dashboard or the API. A
        check that cannot be made (too few rows, the database away) is logged and tried again at
        the next interval; Evidently runs in a worker thread, off the app's event loop.
        """
        while True:
            await asyncio.sleep(interval_s)
            try:
                await asyncio.to_thread(self.monitor().drift)
            except NotEnoughData as reason:
                logger.info("drift not checked: %s", reason)
            except Exception as error:  # the next interval tries again; the app serves on
                logger.warning("drift check failed: %s", error)

    def _cached(self, monitor: MonitorLike) -> DriftCache:
        return DriftCache(monitor, self.settings.monitoring.drift_cache_s, on_drift=self.on_drift)


def monitoring(request: Request) -> Monitoring:
    """The ``Monitoring`` of the app serving the request."""
    found = getattr(request.app.state, "monitoring", None)
    if not isinstance(found, Monitoring):
        raise RuntimeError(
            "the app includes the monitoring router but its state.monitoring is not a "
            "Monitoring: set app.state.monitoring = Monitoring(settings)"
        )
    return found


Monitored = Annotated[Monitoring, Depends(monitoring)]
Moment = Annotated[
    datetime | None, Query(description="transaction time, ISO 8601; a time without zone is UTC")
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
