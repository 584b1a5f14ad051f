"""Prometheus metrics of the consumer pool, through Ray's metrics agent.

Each actor records into ``ray.util.metrics``; Ray exports them with every node's metrics, in
Prometheus format, prefixed ``ray_`` (so ``fraud_ray_consumer_lag`` is scraped as
``ray_fraud_ray_consumer_lag``). The README lists them.
"""

from __future__ import annotations

import time

from ray.util.metrics import Counter, Gauge

from fraud_ray.streaming.loop import BatchOutcome
from fraud_ray.telemetry import HeldGauge

# Short enough to follow a burst, long enough that one batch does not make the rate jump.
RATE_WINDOW_S = 1.0


class PoolMetrics:
    """The loop's ``Observer``: lag per partition, transactions by outcome, and events/s."""

    def __init__(self, group: str, slot: int) -> None:
        self.tags = {"group": group, "consumer": str(slot)}
        self.lag_gauge = Gauge(
            "fraud_ray_consumer_lag",
            description="Messages between the consumer's position and the partition's end.",
            tag_keys=("group", "consumer", "topic", "partition"),
        )
        self.transactions = Counter(
            "fraud_ray_stream_transactions",
            description="Messages the pool took off the input topic, by outcome "
            "(decided, dead_lettered; replayed: answered from the log, as an id sent again or a batch "
            "retried after the log took it).",
            tag_keys=("group", "consumer", "outcome"),
        )
        self.unknown_fields = Counter(
            "fraud_ray_stream_unknown_fields",
            description="Messages decided with fields the transaction schema does not know, "
            "which were ignored (a producer ahead of the schema).",
            tag_keys=("group", "consumer"),
        )
        self.alerts = Counter(
            "fraud_ray_stream_alerts",
            description="Decisions other than approve written to the alerts topic.",
            tag_keys=("group", "consumer"),
        )
        self.rate = Gauge(
            "fraud_ray_stream_events_per_second",
            description="Messages per second this consumer committed over its last batches.",
            tag_keys=("group", "consumer"),
        )
        # Set per batch only: held, so an idle consumer still shows its last batch's time.
        self.batch_seconds = HeldGauge(
            Gauge(
                "fraud_ray_stream_batch_seconds",
                description="Seconds the last batch took from poll to commit.",
                tag_keys=("group", "consumer"),
            )
        )
        self._window_start = time.monotonic()
        self._window_events = 0

    def batch(self, outcome: BatchOutcome) -> None:
        decided = outcome.decided - outcome.replayed
        if decided:
            self.transactions.inc(decided, {**self.tags, "outcome": "decided"})
        if outcome.dead_lettered:
            self.transactions.inc(outcome.dead_lettered, {**self.tags, "outcome": "dead_lettered"})
        if outcome.replayed:
            self.transactions.inc(outcome.replayed, {**self.tags, "outcome": "replayed"})
        if outcome.unknown_fields:
            self.unknown_fields.inc(outcome.unknown_fields, self.tags)
        if outcome.alerts:
            self.alerts.inc(outcome.alerts, self.tags)
        self.batch_seconds.set(outcome.seconds, self.tags)
        self._window_events += outcome.messages
        self._update_rate()

    def lag(self, lag: dict[tuple[str, int], int]) -> None:
        for (topic, partition), value in lag.items():
            self.lag_gauge.set(value, {**self.tags, "topic": topic, "partition": str(partition)})
        self.batch_seconds.hold()
        self._update_rate()

    def _update_rate(self) -> None:
        """Events/s over windows of about a second: an idle consumer's rate falls to 0 too."""
        elapsed = time.monotonic() - self._window_start
        if elapsed >= RATE_WINDOW_S:
            self.rate.set(self._window_events / elapsed, self.tags)
            self._window_start = time.monotonic()
            self._window_events = 0
