"""The librdkafka configurations of a pool member's consumer and producer, from the settings.

Kept apart from the actor so what each key is for can be read (and tested) without a broker.
"""

from __future__ import annotations

from typing import Any

from fraud_ray.settings import KafkaSettings


def transactional_id(kafka: KafkaSettings, slot: int) -> str:
    """Stable per pool slot, not per process: when Ray restarts a crashed actor in the same slot,
    its producer registers the same id, which fences the old one (a zombie still holding a
    transaction open) and aborts what it left unfinished."""
    return f"{kafka.group}-consumer-{slot}"


def consumer_config(kafka: KafkaSettings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap,
        "group.id": kafka.group,
        # Offsets are committed by the loop, after the decisions are out, never in the background.
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        # A pool that grows or shrinks moves only the partitions that change hands.
        "partition.assignment.strategy": "cooperative-sticky",
        # A killed actor's partitions go to the others (or its restart) this soon.
        "session.timeout.ms": int(kafka.session_timeout_s * 1000),
        # Transactions of an exactly-once writer upstream are read only once committed.
        "isolation.level": "read_committed",
        # A fetch answered with whatever one message brought kept the broker answering small
        # fetches without pause, which starved the pool on a shared machine (docs/benchmarks.md,
        # streaming); it now waits for a batch's worth, or as long as the loop would anyway.
        "fetch.min.bytes": kafka.fetch_min_bytes,
        "fetch.wait.max.ms": max(int(kafka.batch_wait_s * 1000), 1),
    }
    return config


def producer_config(kafka: KafkaSettings, slot: int) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap,
        # No duplicates from the producer's own retries, and per-key order kept across them.
        "enable.idempotence": True,
        # A message the broker has not taken by then is reported failed and its batch retried.
        "delivery.timeout.ms": int(kafka.delivery_timeout_s * 1000),
        "linger.ms": kafka.linger_ms,
        "compression.type": "lz4",
    }
    if kafka.exactly_once:
        config["transactional.id"] = transactional_id(kafka, slot)
        config["transaction.timeout.ms"] = int(kafka.delivery_timeout_s * 1000)
    return config
