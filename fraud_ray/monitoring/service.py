"""The monitoring an app serves: the decision log and a monitor behind the routes, opened on first
use, with the drift verdict kept a while and checked on a timer.

An app sets ``app.state.monitoring`` to a ``MonitoringService`` and includes
``fraud_ray.monitoring.routes.router``: the Serve ingress and the standalone ``monitor.py serve``
alike. Blocking calls here (SQL, Evidently) are meant for a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from fraud_ray.decision_log import DecisionLog
from fraud_ray.monitoring.dashboard import collect, render
from fraud_ray.monitoring.drift import NotEnoughData
from fraud_ray.monitoring.summaries import (
    DriftSummary,
    ModelComparison,
    PerformanceReport,
    SummarySource,
)
from fraud_ray.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _DriftOutcome:
    end: datetime | None
    at: float
    summary: DriftSummary | None
    error: NotEnoughData | None


class CachedMonitor:
    """A monitor that keeps its last drift outcome for ``ttl_s`` seconds.

    Evidently takes seconds over a day of decisions, and the page, the API and every analyst's
    refresh ask for the same verdict. A caller that arrives while it is being measured waits for
    that measurement rather than starting another on the same cores. "Not enough data" is an
    outcome too, and kept as long.
    """

    def __init__(
        self,
        monitor: SummarySource,
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


class MonitoringService:
    """The decision log and the monitor behind the routes, opened on first use.

    An app starts at once and needs no database to start; Evidently and MLflow are imported
    when monitoring is first asked for, not when the Serve ingress imports this module. A monitor
    or log given here is used as it is (a test's, or an app's own).
    """

    def __init__(
        self,
        settings: Settings,
        monitor: SummarySource | None = None,
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

    def monitor(self) -> CachedMonitor:
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

    def _cached(self, monitor: SummarySource) -> CachedMonitor:
        return CachedMonitor(
            monitor, self.settings.monitoring.drift_cache_s, on_drift=self.on_drift
        )
