"""Prometheus metrics of the Serve graph, through Ray's metrics agent (exported prefixed ``ray_``,
beside Serve's own request counts and latency histograms per deployment).

Recorded once per answered batch, not per transaction: a metric call costs microseconds, and a
batch of 1,000 transactions would otherwise pay a thousand of them.
"""

from __future__ import annotations

import collections

from ray.util.metrics import Counter, Gauge, Histogram

from fraud_ray.monitoring.summaries import DriftSummary
from fraud_ray.schema import DecisionRecord
from fraud_ray.serving.recorder import Flushed
from fraud_ray.telemetry import HeldGauge

# Fraud probabilities are mostly near zero: fine buckets there, coarse above.
PROBABILITY_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9]


class GraphMetrics:
    def __init__(self, app: str) -> None:
        self.tags = {"application": app}
        self.decisions = Counter(
            "fraud_ray_decisions",
            description="Decisions answered, by action and model version.",
            tag_keys=("application", "action", "model_version"),
        )
        self.probabilities = Histogram(
            "fraud_ray_fraud_probability",
            description="Calibrated fraud probability of each answered transaction.",
            boundaries=PROBABILITY_BUCKETS,
            tag_keys=("application",),
        )
        self.logged = Counter(
            "fraud_ray_decision_log_writes",
            description="Rows written by the graph: served (HTTP) and shadow (challenger).",
            tag_keys=("application", "table"),
        )
        self.unlogged = Counter(
            "fraud_ray_decision_log_dropped",
            description="HTTP decisions dropped unlogged because the decision log was away.",
            tag_keys=("application",),
        )
        self.failed_flushes = Counter(
            "fraud_ray_decision_log_failed_flushes",
            description="Writes to the decision log that failed (retried with the next one).",
            tag_keys=("application",),
        )
        self.replays = Counter(
            "fraud_ray_replays",
            description="Transactions sent again over HTTP, answered with their earlier decision.",
            tag_keys=("application",),
        )
        self.unflushed = Gauge(
            "fraud_ray_decision_log_pending",
            description="Answered HTTP decisions waiting to be written to the decision log.",
            tag_keys=("application",),
        )
        # Drift is checked now and then: held until the next check, which replaces them.
        self.drift_score = HeldGauge(
            Gauge(
                "fraud_ray_drift_score",
                description="Drift test score per column at the last drift check "
                "(p-value or distance).",
                tag_keys=("application", "feature", "method"),
            )
        )
        self.drifted = HeldGauge(
            Gauge(
                "fraud_ray_drift_detected",
                description="1 when the last drift check found dataset drift, else 0; "
                "per column too.",
                tag_keys=("application", "feature"),
            )
        )

    def record(self, decisions: list[DecisionRecord]) -> None:
        counts = collections.Counter(
            (decision["decision"], decision["model"]["version"]) for decision in decisions
        )
        for (action, version), count in counts.items():
            self.decisions.inc(count, {**self.tags, "action": action, "model_version": version})
        for decision in decisions:
            self.probabilities.observe(decision["fraud_probability"], self.tags)

    def flushed(self, flushed: Flushed) -> None:
        if flushed.logged:
            self.logged.inc(flushed.logged, {**self.tags, "table": "decisions"})
        if flushed.shadowed:
            self.logged.inc(flushed.shadowed, {**self.tags, "table": "shadow_decisions"})

    def replayed(self, count: int) -> None:
        self.replays.inc(count, self.tags)

    def dropped(self, count: int) -> None:
        self.unlogged.inc(count, self.tags)

    def flush_failed(self) -> None:
        self.failed_flushes.inc(1, self.tags)

    def pending(self, count: int) -> None:
        """Set on every flush beat, failed or not, so it never ages out of Ray's agent."""
        self.unflushed.set(count, self.tags)

    def drift(self, summary: DriftSummary) -> None:
        self.drift_score.forget()
        self.drifted.forget()
        self.drifted.set(float(summary.dataset_drift), {**self.tags, "feature": "*"})
        for column in summary.features:
            tags = {**self.tags, "feature": column.feature}
            self.drift_score.set(column.score, {**tags, "method": column.method})
            self.drifted.set(float(column.drifted), tags)

    def hold(self) -> None:
        """Set the held gauges again, more often than Ray's agent forgets them."""
        self.drift_score.hold()
        self.drifted.hold()
