"""What the dashboard and the monitoring routes ask of a monitor.

They depend on this interface rather than on ``fraud_ray.monitoring.monitor.Monitor``: the routes
wrap a monitor in a drift cache that answers the same questions, and a test hands the dashboard a
small object returning summaries made by hand. Importing it costs no Evidently and no MLflow.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from fraud_ray.monitoring.summaries import DriftSummary, ModelComparison, PerformanceReport


class MonitorLike(Protocol):
    def performance(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        model_version: str | None = None,
    ) -> PerformanceReport: ...

    def drift(self, end: datetime | None = None) -> DriftSummary:
        """Raises ``fraud_ray.monitoring.drift.NotEnoughData`` when the window is too thin."""
        ...

    def comparison(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> ModelComparison | None:
        """``None`` when no challenger is scored in shadow."""
        ...
