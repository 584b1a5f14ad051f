"""One consumer's loop: poll a batch, decide it, write the decisions out, and only then commit.

The order is what makes the stream lose nothing. Offsets are committed after the decisions are
produced, acknowledged by the broker and written to the decision log: a consumer that dies anywhere
before the commit is restarted from the last committed offset and decides the batch again. The
decision log absorbs the replay (its writes are idempotent by transaction id); ``decisions`` may
then carry a decision twice (at-least-once), unless the loop runs in exactly-once mode, where the
output and the offsets are one Kafka transaction and a ``read_committed`` reader sees each once.

A batch that fails for a reason that may pass (the graph restarting, the broker away) is rewound
to its first offsets and tried again after a pause; nothing is committed past it meanwhile. A
message that can never be decided (not a transaction) goes to the dead-letter topic instead, so it
never holds its partition up.

Kafka and the graph come in through small protocols, so the loop runs in unit tests against
in-memory stand-ins, and in the ``Consumer`` actor against confluent-kafka and a Serve handle.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from fraud_ray.schema import Action, DecisionRecord, Transaction, to_json
from fraud_ray.settings import KafkaSettings
from fraud_ray.streaming.codec import (
    Headers,
    Rejected,
    dead_letter_headers,
    decision_headers,
    message_key,
    parse_transaction,
)

logger = logging.getLogger(__name__)

# librdkafka's "no offset yet" (OFFSET_INVALID): a partition assigned but not fetched from.
NO_OFFSET = -1001


class Record(Protocol):
    """What the loop reads from a Kafka message (``confluent_kafka.Message`` has all of it)."""

    def error(self) -> KafkaError | None: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...


class Source(Protocol):
    """The consumer side of ``confluent_kafka.Consumer`` that the loop uses."""

    def consume(self, num_messages: int, timeout: float) -> Sequence[Record]: ...
    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> Any: ...
    def seek(self, partition: TopicPartition) -> None: ...
    def assignment(self) -> list[TopicPartition]: ...
    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]: ...
    def get_watermark_offsets(
        self, partition: TopicPartition, cached: bool
    ) -> tuple[int, int] | None: ...
    def consumer_group_metadata(self) -> Any: ...


class Sink(Protocol):
    """The producer side of ``confluent_kafka.Producer`` that the loop uses."""

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: Headers | None = None,
        on_delivery: Callable[[KafkaError | None, Any], None] | None = None,
    ) -> None: ...
    def poll(self, timeout: float) -> int: ...
    def flush(self, timeout: float) -> int: ...
    def begin_transaction(self) -> None: ...
    def send_offsets_to_transaction(
        self, positions: list[TopicPartition], group_metadata: Any, timeout: float
    ) -> None: ...
    def commit_transaction(self, timeout: float) -> None: ...
    def abort_transaction(self, timeout: float) -> None: ...


# Decisions travel as the graph answers them, JSON-ready dicts: typing each one back into a
# ``Decision`` cost more than the rest of the consumer's work on it.
Decide = Callable[[list[Transaction]], list[DecisionRecord]]
WriteLog = Callable[[list[DecisionRecord], list[Transaction]], int]


@dataclass(frozen=True)
class BatchOutcome:
    """What one committed batch did."""

    messages: int
    decided: int
    alerts: int
    dead_lettered: int
    new_in_log: int
    seconds: float
    stages: dict[str, float] = field(default_factory=dict)


@dataclass
class LoopStats:
    """A consumer's running totals, as ``ConsumerPool.stats`` reports them."""

    batches: int = 0
    decided: int = 0
    alerts: int = 0
    dead_lettered: int = 0
    new_in_log: int = 0
    failed_batches: int = 0
    last_error: str | None = None
    assigned: list[str] = field(default_factory=list)
    lag: dict[str, int] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def add(self, outcome: BatchOutcome) -> None:
        self.batches += 1
        self.decided += outcome.decided
        self.alerts += outcome.alerts
        self.dead_lettered += outcome.dead_lettered
        self.new_in_log += outcome.new_in_log
        for stage, seconds in outcome.stages.items():
            self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds


class Observer(Protocol):
    """Told after each batch and each lag reading: the metrics exporter in the actor."""

    def batch(self, outcome: BatchOutcome) -> None: ...
    def lag(self, lag: dict[tuple[str, int], int]) -> None: ...


class BatchFailed(RuntimeError):
    """A batch that could not be written out whole; the message says which step failed."""


class StreamLoop:
    """Poll, decide, produce, log, commit: one batch at a time, in that order."""

    def __init__(
        self,
        source: Source,
        sink: Sink,
        decide: Decide,
        write_log: WriteLog,
        settings: KafkaSettings,
        observer: Observer | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.source = source
        self.sink = sink
        self.decide = decide
        self.write_log = write_log
        self.settings = settings
        self.observer = observer
        self.sleep = sleep
        self.stats = LoopStats()
        self._in_transaction = False

    def run(self, stopping: Callable[[], bool]) -> None:
        """Batches until ``stopping()`` says so; a batch in hand is always finished first."""
        while not stopping():
            self.step()

    def step(self) -> BatchOutcome | None:
        """One poll and, if it brought messages, one batch written out and committed.

        A failed batch is rewound so the next poll returns it again; ``None`` then, as after an
        empty poll.
        """
        kafka = self.settings
        clock = StageClock()
        messages = self.source.consume(kafka.batch_size, kafka.batch_wait_s)
        clock.lap("poll")
        records = [message for message in messages if not self._is_error(message)]
        outcome = None
        if records:
            try:
                outcome = self.process(records, clock)
            except Exception as error:  # any step: rewind and retry, never commit past it
                self._recover(records, error)
        self._report_lag()
        return outcome

    def process(self, records: Sequence[Record], clock: StageClock | None = None) -> BatchOutcome:
        """Decide and write out one batch, then commit its offsets; raises if any step fails.

        ``clock`` times the steps, from the poll that brought the batch when the caller has one.
        """
        clock = clock or StageClock()
        kafka = self.settings
        delivery_errors: list[KafkaError] = []

        def delivered(error: KafkaError | None, _: object) -> None:
            if error is not None:
                delivery_errors.append(error)

        if kafka.exactly_once:
            self.sink.begin_transaction()
            self._in_transaction = True
        valid: list[Transaction] = []
        rejected = 0
        for record in records:
            parsed = parse_transaction(record.value())
            if isinstance(parsed, Rejected):
                rejected += 1
                self.sink.produce(
                    kafka.dlq_topic,
                    value=record.value(),
                    key=record.key(),
                    headers=dead_letter_headers(
                        parsed, record.topic() or "", record.partition() or 0, record.offset() or 0
                    ),
                    on_delivery=delivered,
                )
            else:
                valid.append(parsed)
        clock.lap("parse")
        decisions = self._decide(valid)
        clock.lap("graph")
        alerts = 0
        for decision, transaction in zip(decisions, valid, strict=True):
            key, value, headers = (
                message_key(transaction),
                to_json(decision),
                decision_headers(decision),
            )
            self.sink.produce(
                kafka.decisions_topic, value=value, key=key, headers=headers, on_delivery=delivered
            )
            if decision["decision"] != Action.APPROVE:
                alerts += 1
                self.sink.produce(
                    kafka.alerts_topic, value=value, key=key, headers=headers, on_delivery=delivered
                )
            # Serve librdkafka's delivery reports as we go, so its queue never fills up.
            self.sink.poll(0)
        clock.lap("produce")
        new_in_log = self.write_log(decisions, valid) if decisions else 0
        clock.lap("log")
        offsets = next_offsets(records)
        if kafka.exactly_once:
            self.sink.send_offsets_to_transaction(
                offsets, self.source.consumer_group_metadata(), kafka.delivery_timeout_s
            )
            self._commit_transaction()
        else:
            undelivered = self.sink.flush(kafka.delivery_timeout_s)
            if undelivered:
                raise BatchFailed(
                    f"{undelivered} decisions not acknowledged by the broker within "
                    f"{kafka.delivery_timeout_s} s"
                )
        if delivery_errors:
            raise BatchFailed(f"the broker refused output of the batch: {delivery_errors[0]}")
        if not kafka.exactly_once:
            self.source.commit(offsets=offsets, asynchronous=False)
        stages = clock.lap("commit")
        outcome = BatchOutcome(
            messages=len(records),
            decided=len(decisions),
            alerts=alerts,
            dead_lettered=rejected,
            new_in_log=new_in_log,
            seconds=clock.total(),
            stages=stages,
        )
        self.stats.add(outcome)
        if self.observer is not None:
            self.observer.batch(outcome)
        return outcome

    def _decide(self, transactions: list[Transaction]) -> list[DecisionRecord]:
        if not transactions:
            return []
        decisions = self.decide(transactions)
        answered = [decision["transaction_id"] for decision in decisions]
        asked = [transaction.transaction_id for transaction in transactions]
        if answered != asked:
            raise BatchFailed(
                f"the graph answered {len(answered)} decisions for {len(asked)} transactions, "
                "or in another order"
            )
        return decisions

    def _commit_transaction(self) -> None:
        """Commit the Kafka transaction, retrying what librdkafka calls retriable (a broker
        briefly away); an error that needs an abort is raised for ``_recover`` to abort."""
        while True:
            try:
                self.sink.commit_transaction(self.settings.delivery_timeout_s)
                self._in_transaction = False
                return
            except KafkaException as error:
                kafka_error: KafkaError = error.args[0]
                if not kafka_error.retriable():
                    raise
                logger.warning("retrying the commit of a Kafka transaction: %s", kafka_error)

    def _recover(self, records: Sequence[Record], error: Exception) -> None:
        """Undo what can be undone and rewind to the batch's first offsets, so nothing is skipped.

        In exactly-once mode the open transaction is aborted first; an abort that fails (a fenced
        producer, a fatal error) is raised: the actor dies and Ray restarts it, and its new
        producer, with the same ``transactional.id``, aborts what this one left open.
        """
        self.stats.failed_batches += 1
        self.stats.last_error = f"{type(error).__name__}: {error}"
        logger.warning("batch of %d messages failed, will retry: %s", len(records), error)
        if self._in_transaction:
            self.sink.abort_transaction(self.settings.delivery_timeout_s)
            self._in_transaction = False
        for partition in first_offsets(records):
            try:
                self.source.seek(partition)
            except KafkaException as seek_error:
                # The partition was taken away meanwhile: its new owner starts at the commit.
                logger.info("not rewinding %s: %s", partition, seek_error)
        self.sleep(self.settings.retry_backoff_s)

    def _is_error(self, message: Record) -> bool:
        error = message.error()
        if error is None:
            return False
        logger.warning("consumer error on %s: %s", message.topic(), error)
        return True

    def _report_lag(self) -> None:
        assigned = self.source.assignment()
        self.stats.assigned = [f"{p.topic}/{p.partition}" for p in assigned]
        lag = self.lag(assigned)
        self.stats.lag = {
            f"{topic}/{partition}": value for (topic, partition), value in lag.items()
        }
        if self.observer is not None:
            self.observer.lag(lag)

    def lag(self, assigned: list[TopicPartition] | None = None) -> dict[tuple[str, int], int]:
        """Messages between this consumer's position and the end of each assigned partition,
        from the high watermarks the last fetches brought (no extra request to the broker)."""
        lag: dict[tuple[str, int], int] = {}
        if assigned is None:
            assigned = self.source.assignment()
        if not assigned:
            return lag
        for partition in self.source.position(assigned):
            watermarks = self.source.get_watermark_offsets(partition, cached=True)
            if watermarks is None or partition.offset == NO_OFFSET:
                continue
            _, high = watermarks
            if high >= 0:
                lag[(partition.topic, partition.partition)] = max(high - partition.offset, 0)
        return lag


class StageClock:
    """Seconds spent in each step of a batch: where a consumer's time goes, for the bench and the
    stats, measured on every batch because it costs two clock reads per step."""

    def __init__(self) -> None:
        self.started = self.last = time.perf_counter()
        self.stages: dict[str, float] = {}

    def lap(self, stage: str) -> dict[str, float]:
        now = time.perf_counter()
        self.stages[stage] = now - self.last
        self.last = now
        return self.stages

    def total(self) -> float:
        return time.perf_counter() - self.started


def next_offsets(records: Sequence[Record]) -> list[TopicPartition]:
    """What to commit for a batch: per partition, one past the last message of it."""
    last: dict[tuple[str, int], int] = {}
    for record in records:
        place = (record.topic() or "", record.partition() or 0)
        last[place] = max(last.get(place, -1), record.offset() or 0)
    return [
        TopicPartition(topic, partition, offset + 1) for (topic, partition), offset in last.items()
    ]


def first_offsets(records: Sequence[Record]) -> list[TopicPartition]:
    """Where to rewind a failed batch to: per partition, its first message."""
    first: dict[tuple[str, int], int] = {}
    for record in records:
        place = (record.topic() or "", record.partition() or 0)
        offset = record.offset() or 0
        first[place] = min(first.get(place, offset), offset)
    return [
        TopicPartition(topic, partition, offset) for (topic, partition), offset in first.items()
    ]
