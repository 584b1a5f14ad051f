"""Monitoring over the decision log, for the CLI, the HTTP routes and the dashboard alike.

Every method blocks (SQL, Evidently) and is meant to be called from a worker thread by async
callers. The registry is opened on the first drift measurement only: MLflow takes seconds to
import, and the performance and comparison pages never need it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from fraud_ray.decision_log import DecisionLog
from fraud_ray.monitoring.drift import NotEnoughData, alarm, check_enough_rows, measure_drift
from fraud_ray.monitoring.performance import compare_models, daily_performance, version_order
from fraud_ray.monitoring.summaries import DriftSummary, ModelComparison, PerformanceReport
from fraud_ray.schema import TIMESTAMP, latest_accepted
from fraud_ray.settings import Settings

if TYPE_CHECKING:
    from fraud_ray.registry import Registry

__all__ = ["Monitor", "NotEnoughData"]

# Logged times have microsecond precision: this puts the latest transaction inside a window whose
# end is exclusive.
JUST_AFTER = timedelta(microseconds=1)


class Monitor:
    def __init__(
        self, settings: Settings, log: DecisionLog | None = None, registry: Registry | None = None
    ) -> None:
        self.settings = settings
        self.log = log or DecisionLog(settings.decisions.url)
        self._registry = registry

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            from fraud_ray.registry import Registry

            self._registry = Registry(self.settings.mlflow)
        return self._registry

    def performance(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        model_version: str | None = None,
    ) -> PerformanceReport:
        """Daily performance of the decisions with transaction time in [start, end) (open
        bounds: the whole log), of one model version or of all."""
        return daily_performance(
            self.log.frame(start, end),
            self.settings.monitoring.precision_k,
            model_version,
        )

    def drift(self, end: datetime | None = None) -> DriftSummary:
        """Drift of the last ``monitoring.drift_window_days`` before ``end`` (by default just
        after the latest logged transaction) against the reference sample of the model version
        that made most of the window's decisions; saves the HTML report and raises the alarm.

        Raises ``NotEnoughData`` before anything is read from the registry when the window holds
        fewer than ``monitoring.drift_min_rows`` decisions with features, and MLflow's
        ``MlflowException`` when the registry lacks that version or its reference sample.
        """
        monitoring = self.settings.monitoring
        end = end or self._after_last_transaction()
        window = (end - timedelta(days=monitoring.drift_window_days), end)
        current = self.log.feature_frame(*window)
        current = current.drop(columns=[c for c in monitoring.drift_ignore if c in current])
        check_enough_rows(len(current), monitoring, window)
        # By name and version: a model registered under another name (train --model-name) is
        # found under its own name, not under mlflow.model_name.
        decided = self.log.frame(*window).groupby(["model_name", "model_version"]).size()
        name, version = max(decided.index, key=lambda key: (decided[key], version_order(key[1])))
        summary = measure_drift(
            self.registry.reference_sample(f"models:/{name}/{version}"),
            current,
            monitoring,
            model_version=version,
            window=window,
            reports_dir=Path(monitoring.reports_dir),
        )
        alarm(summary, monitoring)
        return summary

    def comparison(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> ModelComparison | None:
        """Champion against challengers on the transactions both decided in [start, end); open
        bounds reach the first and the last shadow decision. None when there is none."""
        shadow = self.log.shadow_frame(start, end)
        if shadow.empty:
            return None
        window = (
            start or shadow[TIMESTAMP].min().to_pydatetime(),
            end or shadow[TIMESTAMP].max().to_pydatetime() + JUST_AFTER,
        )
        return compare_models(self.log.frame(*window), shadow, window)

    def record_labels(self, labels: Iterable[tuple[str, int]]) -> int:
        """Store (transaction_id, is_fraud) labels; returns how many named a logged decision."""
        return self.log.record_labels(labels)

    def _after_last_transaction(self) -> datetime:
        last = self.log.last_transaction_time(latest_accepted(self.settings.serving.max_future_s))
        if last is None:
            raise NotEnoughData("the decision log is empty: no decision to measure drift on")
        return last + JUST_AFTER
