"""What the dashboard and the monitoring routes ask of a monitor.

They depend on this interface rather than on ``fraud_ray.monitoring.monitor.Monitor``: the routes
wrap a monitor in a drift cache that answers the same questions, and a test hands the dashboard a
small object returning summaries made by hand.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from fraud_ray.monitoring.summaries import DriftSummary, ModelComparison, PerformanceReport


# Until the monitoring branch is merged; then this class gives way to the one Monitor raises,
# fraud_ray.monitoring.drift.NotEnoughData, imported here under the same name.
class NotEnoughData(ValueError):
    """Raised by ``drift`` when the window holds too few logged rows for a verdict; the message
    says how many there are and how many are needed."""


class MonitorLike(Protocol):
    def performance(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        model_version: str | None = None,
    ) -> PerformanceReport: ...

    def drift(self, end: datetime | None = None) -> DriftSummary: ...

    def comparison(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> ModelComparison | None:
        """``None`` when no challenger is scored in shadow."""
        ...
