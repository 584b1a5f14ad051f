"""The baseline of bench/stream.py: the stream's steps in one plain Python process, no Ray.

The same ``StreamLoop`` the pool's consumers run (poll, parse, look up, decide, log, produce,
commit), the same librdkafka configurations, the same decision log, with the graph's three steps
called in process (``DecisionPipeline``) instead of through a Serve handle: what is left between
the two is what the pool and the graph's hops cost.
"""

from __future__ import annotations

from datetime import timedelta
from multiprocessing.synchronize import Event

import numpy as np
from confluent_kafka import Consumer, Producer

from fraud_ray.decision_log import DecisionLog, feature_maps
from fraud_ray.features.online import online_features
from fraud_ray.registry import Registry
from fraud_ray.schema import DecisionRecord, ModelRef, Transaction
from fraud_ray.serving.pipeline import DecisionPipeline, ServingModel
from fraud_ray.settings import Settings
from fraud_ray.streaming.clients import consumer_config, producer_config
from fraud_ray.streaming.loop import StreamLoop


class InProcess:
    """``decide`` and ``write_log`` for the loop; the features of a batch wait between the two,
    as they do in the pool's ``Consumer``, since the loop always logs what it just decided."""

    def __init__(self, pipeline: DecisionPipeline, log: DecisionLog) -> None:
        self.pipeline = pipeline
        self.log = log
        self._rows: np.ndarray | None = None

    def decide(self, transactions: list[Transaction]) -> list[DecisionRecord]:
        decisions, self._rows = self.pipeline.answer(transactions)
        return decisions

    def write_log(self, decisions: list[DecisionRecord], transactions: list[Transaction]) -> int:
        rows, self._rows = self._rows, None
        assert rows is not None
        return self.log.write(
            decisions, transactions, feature_maps(self.pipeline.features.spec.names, rows)
        )


def run(settings: Settings, partitions: int, ready: Event, stop: Event) -> None:
    """Join the group, say ``ready`` once it holds all ``partitions``, then consume until
    ``stop``; the batch in hand is finished and committed before the process ends."""
    kafka = settings.kafka
    bundle, version = Registry(settings.mlflow).load(f"@{settings.serving.model_alias}")
    ref = ModelRef(name=version.name, version=str(version.version))
    pipeline = DecisionPipeline(
        online_features(settings, bundle.spec),
        ServingModel.for_settings(bundle, ref, bundle.spec, settings),
    )
    log = DecisionLog(settings.decisions.url)
    steps = InProcess(pipeline, log)
    consumer = Consumer(consumer_config(kafka))
    producer = Producer(producer_config(kafka, 0))
    max_future = settings.serving.max_future_s
    loop = StreamLoop(
        consumer,
        producer,
        steps.decide,
        steps.write_log,
        log.logged,
        kafka,
        max_future=None if max_future is None else timedelta(seconds=max_future),
    )
    consumer.subscribe([kafka.transactions_topic])
    while len(consumer.assignment()) < partitions:
        loop.step()
    ready.set()
    loop.run(stop.is_set)
    producer.flush(kafka.delivery_timeout_s)
    consumer.close()
    log.close()
