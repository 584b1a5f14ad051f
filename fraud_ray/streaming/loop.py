"""One consumer's loop: poll a batch, decide it, write the decisions out, and only then commit.

The order is what makes the stream lose nothing. Offsets are committed after the decisions are
written to the decision log, produced and acknowledged by the broker: a consumer that dies anywhere
before the commit is restarted from the last committed offset and decides the batch again. The
decision log absorbs the replay (its writes are idempotent by transaction id); ``decisions`` may
then carry a decision twice (at-least-once), unless the loop runs in exactly-once mode, where the
output and the offsets are one Kafka transaction and a ``read_committed`` reader sees each once.
The log is written before anything is produced, so a log that is away holds the batch up without
producing its decisions again on every retry.

A transaction id decided before (a producer's retry, a replayed topic, twice in one batch, or this
batch's own retry after the log took it and the broker did not) is not decided again: the decision
the log keeps is produced again, and its alert if it has one, with a ``replay`` header, so every
answer for an id is the one the log can show.

A batch that fails because a service is away (``Unavailable``: the graph restarting, the log or the
broker unreachable) is rewound to its first offsets and tried again after a pause, as often as it
takes; nothing is committed past it meanwhile. A batch that fails on its data instead (anything
else raised while deciding or logging it) is tried ``kafka.max_attempts`` times, then split in
halves, each decided and committed on its own, until the message at fault is alone: after its own
``max_attempts`` tries it goes to the dead-letter topic with the error, and its neighbours go on.
A message that is not a transaction at all goes to the dead-letter topic at once. So no message
holds its partition up.

Kafka, the graph and the log come in through small protocols, so the loop runs in unit tests against
in-memory stand-ins, and in the ``Consumer`` actor against confluent-kafka, a Serve handle and the
decision log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from fraud_ray.schema import DEFAULT_MAX_FUTURE_S, Action, DecisionRecord, Transaction, to_json
from fraud_ray.schema import replayed as replayed_record
from fraud_ray.settings import KafkaSettings
from fraud_ray.streaming.codec import (
    Headers,
    Parsed,
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
# The decisions the log already holds for some of these transaction ids.
LookUpLog = Callable[[list[str]], Mapping[str, DecisionRecord]]
# Sends a batch to be decided; what it returns waits for the decisions (raising as ``Decide``).
StartDecide = Callable[[list[Transaction]], Callable[[], list[DecisionRecord]]]


def _deferred(decide: Decide) -> StartDecide:
    """``decide`` as a ``StartDecide`` that decides when waited for."""
    return lambda transactions: lambda: decide(transactions)


def _nothing() -> list[DecisionRecord]:
    return []


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
    replayed: int = 0
    unknown_fields: int = 0


@dataclass
class Batch:
    """A polled batch between its graph call and its commit: what to write out, and the clock
    that times its steps."""

    records: Sequence[Record]
    clock: StageClock
    accepted: list[Transaction] = field(default_factory=list)
    rejected: list[tuple[Record, Rejected]] = field(default_factory=list)
    unknown_fields: int = 0
    # Each accepted id's decision: the log's (or the batch before's) first, then the graph's.
    answers: dict[str, DecisionRecord] = field(default_factory=dict)
    from_log: set[str] = field(default_factory=set)
    # The accepted transactions the graph decides (first of each id not answered before).
    fresh: list[Transaction] = field(default_factory=list)
    waiting: Callable[[], list[DecisionRecord]] = _nothing
    decisions: list[DecisionRecord] = field(default_factory=list)


@dataclass
class LoopStats:
    """A consumer's running totals, as ``ConsumerPool.stats`` reports them."""

    batches: int = 0
    decided: int = 0
    alerts: int = 0
    dead_lettered: int = 0
    new_in_log: int = 0
    replayed: int = 0
    unknown_fields: int = 0
    failed_batches: int = 0
    split_batches: int = 0
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
        self.replayed += outcome.replayed
        self.unknown_fields += outcome.unknown_fields
        for stage, seconds in outcome.stages.items():
            self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds


class Observer(Protocol):
    """Told after each batch and each lag reading: the metrics exporter in the actor."""

    def batch(self, outcome: BatchOutcome) -> None: ...
    def lag(self, lag: dict[tuple[str, int], int]) -> None: ...


class Unavailable(RuntimeError):
    """A service a batch needs is away (the graph, the decision log): the batch is retried as it
    is once the service is back, never split or dead-lettered, since no message is at fault.
    The ``Consumer`` actor raises it for the errors of its clients that mean "unreachable"."""


class BatchFailed(Unavailable):
    """A batch the broker did not take whole; the message says which step failed."""


# Failures that say nothing about the batch's messages: retried as they are, for as long as it takes.
SERVICE_AWAY: tuple[type[BaseException], ...] = (
    Unavailable,
    KafkaException,
    TimeoutError,
    ConnectionError,
)


class StreamLoop:
    """Poll, decide, log, produce, commit: one batch at a time, in that order.

    With ``overlap`` the graph decides a batch while the loop writes out the one before: poll
    N+1, send it to the graph, log, produce and commit N, then wait for N+1's decisions. Each
    batch is still written out and committed whole and in order, and an id of N+1 that N decided
    is answered with N's decision, as if N were in the log already. A batch N that fails
    abandons N+1 (rewound, to be polled again) before it is retried, split or rewound itself, so
    nothing is committed past it. The graph may then have seen N+1 before N's retry; the feature
    state takes a replay as it does any other. N+1 is polled before N commits, so a rebalance in
    that poll can take N's partitions first: N commits only the partitions it still holds, and
    the new owner decides the rest again from the group's commit (at-least-once, as after a
    crash). Exactly-once mode never overlaps: its Kafka transaction would have to stay open
    across a poll.
    """

    def __init__(
        self,
        source: Source,
        sink: Sink,
        decide: Decide,
        write_log: WriteLog,
        look_up_log: LookUpLog,
        settings: KafkaSettings,
        observer: Observer | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_future: timedelta | None = timedelta(seconds=DEFAULT_MAX_FUTURE_S),
        start_decide: StartDecide | None = None,
        overlap: bool = False,
    ) -> None:
        self.source = source
        self.sink = sink
        self.decide = decide
        self.start_decide = start_decide or _deferred(decide)
        self.write_log = write_log
        self.look_up_log = look_up_log
        self.settings = settings
        self.observer = observer
        self.sleep = sleep
        self.max_future = max_future
        self.overlap = overlap and not settings.exactly_once
        self.stats = LoopStats()
        self._in_transaction = False
        # With overlap: the batch decided, not yet written out.
        self._pending: Batch | None = None

    def run(self, stopping: Callable[[], bool]) -> None:
        """Batches until ``stopping()`` says so; a batch in hand is always finished first."""
        while not stopping():
            self.step()
        self.finish()

    def step(self) -> BatchOutcome | None:
        """One poll and, if it brought messages, one batch written out and committed.

        A batch that failed because a service is away is rewound so the next poll returns it
        again; ``None`` then, as after an empty poll. A batch split to isolate a message at fault
        returns the sum of its parts. With ``overlap`` the batch written out is the previous
        poll's (an empty poll writes it out at once), and the new one is left decided, in hand.
        """
        kafka = self.settings
        clock = StageClock()
        # What the client has fetched already, without waiting for a batch to fill: a stream
        # that keeps up then never waits batch_wait_s on top of its last batch's steps. Only an
        # idle consumer waits, for the next messages.
        messages = self.source.consume(kafka.batch_size, 0)
        if not messages:
            messages = self.source.consume(kafka.batch_size, kafka.batch_wait_s)
        clock.lap("poll")
        records = [message for message in messages if not self._is_error(message)]
        outcome = None
        if self.overlap:
            outcome = self._overlapped(records, clock)
        elif records:
            outcome = self._settle(records, clock)
        self._report_lag()
        return outcome

    def finish(self) -> BatchOutcome | None:
        """Write out and commit the batch decided but not yet written (with ``overlap``)."""
        batch, self._pending = self._pending, None
        if batch is None:
            return None
        batch.clock.resume()
        try:
            return self._write(batch)
        except Exception as failure:
            return self._recover(batch.records, failure)

    def _overlapped(self, records: Sequence[Record], clock: StageClock) -> BatchOutcome | None:
        """Send ``records`` to the graph, write out the batch before meanwhile, then wait for
        the graph, leaving the new batch in hand."""
        previous, self._pending = self._pending, None
        started: Batch | None = None
        if records:
            try:
                started = self._prepare(records, clock, previous.answers if previous else {})
            except Exception:
                # Tried again below, on its own, once the batch before is out of the way.
                started = None
        done = None
        if previous is not None:
            previous.clock.resume()
            try:
                done = self._write(previous)
            except Exception as failure:
                # Rewound first, so that the batch before, whose offsets come earlier, is
                # rewound last: nothing is committed past it, and nothing after it skipped.
                if records:
                    self._seek(records)
                return self._recover(previous.records, failure)
        if not records:
            return done
        if started is None:
            return _summed([o for o in (done, self._settle(records, clock)) if o is not None])
        clock.resume()
        try:
            self._decided(started)
        except Exception as failure:
            recovered = self._recover(records, failure)
            return _summed([o for o in (done, recovered) if o is not None])
        self._pending = started
        return done

    def _settle(
        self,
        records: Sequence[Record],
        clock: StageClock | None,
        tried: int = 0,
        error: Exception | None = None,
    ) -> BatchOutcome | None:
        """Process the batch, retrying it in hand while it fails on its data, then split it;
        ``tried`` times it failed already, last with ``error``."""
        for attempt in range(tried, self.settings.max_attempts):
            if attempt:
                self.sleep(self.settings.retry_backoff_s)
            try:
                return self.process(records, clock if attempt == 0 else None)
            except Exception as failure:
                self._failed(records, failure)
                if isinstance(failure, SERVICE_AWAY):
                    self._rewind(records)
                    return None
                error = failure
        assert error is not None
        return self._split(records, error)

    def _recover(self, records: Sequence[Record], failure: Exception) -> BatchOutcome | None:
        """After an overlapped attempt at a batch failed: what ``_settle`` does after its first."""
        self._failed(records, failure)
        if isinstance(failure, SERVICE_AWAY):
            self._rewind(records)
            return None
        return self._settle(records, None, tried=1, error=failure)

    def _split(self, records: Sequence[Record], error: Exception) -> BatchOutcome | None:
        """Bisect a batch that keeps failing on its data until the message at fault is alone.

        Ranges are processed left to right, each committed when it succeeds, so what is left
        uncommitted is always a suffix of the batch: that is what a service going away
        meanwhile rewinds to. A range of several messages is tried once, then split again; a
        message alone gets ``max_attempts`` tries before it is dead-lettered.
        """
        self.stats.split_batches += 1
        logger.warning("batch of %d messages keeps failing (%s); splitting it", len(records), error)
        attempts = self.settings.max_attempts
        outcomes: list[BatchOutcome] = []
        # (start, end, tries so far, last error): the whole batch has had its tries already.
        todo = [(0, len(records), attempts, error)]
        while todo:
            start, end, tried, last = todo.pop()
            part = records[start:end]
            tries = 1 if len(part) > 1 else attempts
            while tried < tries:
                tried += 1
                try:
                    outcomes.append(self.process(part))
                    break
                except Exception as failure:
                    self._failed(part, failure)
                    if isinstance(failure, SERVICE_AWAY):
                        self._rewind(records[start:])
                        return _summed(outcomes)
                    last = failure
            else:
                if len(part) > 1:
                    middle = (start + end) // 2
                    todo += [(middle, end, 0, last), (start, middle, 0, last)]
                    continue
                try:
                    outcomes.append(self.process(part, refused=_refusal(last, attempts)))
                except Exception as failure:
                    self._failed(part, failure)
                    self._rewind(records[start:])
                    return _summed(outcomes)
        return _summed(outcomes)

    def process(
        self,
        records: Sequence[Record],
        clock: StageClock | None = None,
        refused: str | None = None,
    ) -> BatchOutcome:
        """Decide and write out one batch, then commit its offsets; raises if any step fails.

        ``clock`` times the steps, from the poll that brought the batch when the caller has one.
        ``refused`` sends every message of the batch to the dead-letter topic with that reason,
        and commits them: the end of a message that could not be decided.
        """
        batch = self._prepare(records, clock or StageClock(), {}, refused)
        self._decided(batch)
        return self._write(batch)

    def _prepare(
        self,
        records: Sequence[Record],
        clock: StageClock,
        earlier: Mapping[str, DecisionRecord],
        refused: str | None = None,
    ) -> Batch:
        """Parse a batch, look its ids up, and send the new ones to the graph.

        ``earlier`` answers the ids of a batch decided but not yet in the log (with ``overlap``,
        the one before), as the log would once it has it.
        """
        if self.settings.exactly_once:
            self.sink.begin_transaction()
            self._in_transaction = True
        batch = Batch(records, clock)
        for record in records:
            parsed = (
                Rejected(refused)
                if refused is not None
                else parse_transaction(record.value(), self.max_future)
            )
            if isinstance(parsed, Parsed):
                batch.accepted.append(parsed.transaction)
                batch.unknown_fields += bool(parsed.ignored)
            else:
                batch.rejected.append((record, parsed))
        clock.lap("parse")
        first: dict[str, Transaction] = {}
        for transaction in batch.accepted:
            first.setdefault(transaction.transaction_id, transaction)
        unseen = [tx for tx in first if tx not in earlier]
        batch.answers = {tx: earlier[tx] for tx in first if tx in earlier}
        if unseen:
            batch.answers.update(self.look_up_log(unseen))
        batch.from_log = set(batch.answers)
        clock.lap("lookup")
        batch.fresh = [t for tx, t in first.items() if tx not in batch.from_log]
        batch.waiting = self.start_decide(batch.fresh) if batch.fresh else _nothing
        return batch

    def _decided(self, batch: Batch) -> None:
        """Wait for the graph's decisions of the batch's new ids, in the order asked."""
        decisions = batch.waiting()
        answered = [decision["transaction_id"] for decision in decisions]
        asked = [transaction.transaction_id for transaction in batch.fresh]
        if answered != asked:
            raise BatchFailed(
                f"the graph answered {len(answered)} decisions for {len(asked)} transactions, "
                "or in another order"
            )
        batch.decisions = decisions
        batch.answers.update(zip(asked, decisions, strict=True))
        batch.clock.lap("graph")

    def _write(self, batch: Batch) -> BatchOutcome:
        """Log, produce and commit a decided batch: the log first, so a log that is away holds
        the batch up without producing its decisions again on every retry."""
        kafka = self.settings
        clock = batch.clock
        delivery_errors: list[KafkaError] = []

        def delivered(error: KafkaError | None, _: object) -> None:
            if error is not None:
                delivery_errors.append(error)

        decisions = batch.decisions
        new_in_log = self.write_log(decisions, batch.fresh) if decisions else 0
        clock.lap("log")
        for record, rejection in batch.rejected:
            self.sink.produce(
                kafka.dlq_topic,
                value=record.value(),
                key=record.key(),
                headers=dead_letter_headers(
                    rejection, record.topic() or "", record.partition() or 0, record.offset() or 0
                ),
                on_delivery=delivered,
            )
        alerts = replayed = 0
        answered: set[str] = set()
        for transaction in batch.accepted:
            transaction_id = transaction.transaction_id
            decision = batch.answers[transaction_id]
            replay = transaction_id in batch.from_log or transaction_id in answered
            answered.add(transaction_id)
            key = message_key(transaction)
            value = to_json(replayed_record(decision) if replay else decision)
            headers = decision_headers(decision, replay=replay)
            self.sink.produce(
                kafka.decisions_topic, value=value, key=key, headers=headers, on_delivery=delivered
            )
            replayed += replay
            # A replay alerts again: it may be this batch's own retry after the log took it and
            # the broker did not, whose alert nobody has seen yet.
            if decision["decision"] != Action.APPROVE:
                alerts += 1
                self.sink.produce(
                    kafka.alerts_topic, value=value, key=key, headers=headers, on_delivery=delivered
                )
            # Serve librdkafka's delivery reports as we go, so its queue never fills up.
            self.sink.poll(0)
        clock.lap("produce")
        offsets = next_offsets(batch.records)
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
            owned = owned_offsets(offsets, self.source.assignment())
            if owned:
                self.source.commit(offsets=owned, asynchronous=False)
        stages = clock.lap("commit")
        outcome = BatchOutcome(
            messages=len(batch.records),
            decided=len(batch.accepted),
            alerts=alerts,
            dead_lettered=len(batch.rejected),
            new_in_log=new_in_log,
            seconds=clock.total(),
            stages=stages,
            replayed=replayed,
            unknown_fields=batch.unknown_fields,
        )
        self.stats.add(outcome)
        if self.observer is not None:
            self.observer.batch(outcome)
        return outcome

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

    def _failed(self, records: Sequence[Record], error: Exception) -> None:
        """Count the failure and undo what can be undone: in exactly-once mode the open
        transaction is aborted. An abort that fails (a fenced producer, a fatal error) is raised:
        the actor dies and Ray restarts it, and its new producer, with the same
        ``transactional.id``, aborts what this one left open."""
        self.stats.failed_batches += 1
        self.stats.last_error = f"{type(error).__name__}: {error}"
        logger.warning("batch of %d messages failed: %s", len(records), self.stats.last_error)
        if self._in_transaction:
            self.sink.abort_transaction(self.settings.delivery_timeout_s)
            self._in_transaction = False

    def _rewind(self, records: Sequence[Record]) -> None:
        """Seek back to the first offsets of what is uncommitted, so nothing is skipped, and pause
        before the next poll brings it again."""
        self._seek(records)
        self.sleep(self.settings.retry_backoff_s)

    def _seek(self, records: Sequence[Record]) -> None:
        for partition in first_offsets(records):
            try:
                self.source.seek(partition)
            except KafkaException as seek_error:
                # The partition was taken away meanwhile: its new owner starts at the commit.
                logger.info("not rewinding %s: %s", partition, seek_error)

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

    def resume(self) -> None:
        """Start the next lap now: the time since the last one went to another batch."""
        self.last = time.perf_counter()

    def lap(self, stage: str) -> dict[str, float]:
        now = time.perf_counter()
        self.stages[stage] = now - self.last
        self.last = now
        return self.stages

    def total(self) -> float:
        return time.perf_counter() - self.started


def _refusal(error: Exception, tries: int) -> str:
    """The dead-letter reason of a valid message that could not be decided."""
    return (
        f"failed {tries} times after validation, alone in its batch: {type(error).__name__}: "
        f"{error}"
    )


def _summed(outcomes: list[BatchOutcome]) -> BatchOutcome | None:
    """The parts of a split batch as one outcome (the parts were reported one by one)."""
    if not outcomes:
        return None
    stages: dict[str, float] = {}
    for outcome in outcomes:
        for stage, seconds in outcome.stages.items():
            stages[stage] = stages.get(stage, 0.0) + seconds
    return BatchOutcome(
        messages=sum(o.messages for o in outcomes),
        decided=sum(o.decided for o in outcomes),
        alerts=sum(o.alerts for o in outcomes),
        dead_lettered=sum(o.dead_lettered for o in outcomes),
        new_in_log=sum(o.new_in_log for o in outcomes),
        seconds=sum(o.seconds for o in outcomes),
        stages=stages,
        replayed=sum(o.replayed for o in outcomes),
        unknown_fields=sum(o.unknown_fields for o in outcomes),
    )


def next_offsets(records: Sequence[Record]) -> list[TopicPartition]:
    """What to commit for a batch: per partition, one past the last message of it."""
    last: dict[tuple[str, int], int] = {}
    for record in records:
        place = (record.topic() or "", record.partition() or 0)
        last[place] = max(last.get(place, -1), record.offset() or 0)
    return [
        TopicPartition(topic, partition, offset + 1) for (topic, partition), offset in last.items()
    ]


def owned_offsets(
    offsets: list[TopicPartition], assignment: list[TopicPartition]
) -> list[TopicPartition]:
    """The offsets of the partitions this consumer still holds.

    With cooperative rebalancing the broker takes a member's commit for a partition it has just
    handed over: a batch polled before the rebalance and committed after it would move the
    group's offset back under the new owner, which, once it has read to the end, never commits
    that partition again, so the group shows a lag that never drains and a restart replays it.
    Rebalances run inside a poll, never between this check and the commit after it.
    """
    held = {(tp.topic, tp.partition) for tp in assignment}
    return [tp for tp in offsets if (tp.topic, tp.partition) in held]


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
