"""The stream loop under random failures at every step it takes: poll, graph, log, produce, commit.

Hypothesis draws the input (valid transactions, ids sent twice, messages that are not transactions,
transactions the model refuses) and, for each step, which of its calls fail. The broker, the graph
and the log are in-memory stand-ins behind the loop's own protocols; what they model is what the
loop relies on: output is visible once flushed (or once its Kafka transaction commits), a consumer
that crashes restarts from the committed offsets, the log keeps the first decision of an id.

The loop runs one batch at a time, or overlapped (the graph called for a batch before the one
before it is written out and committed), with the graph called when the batch is sent, as the
pool's handle does.

Two properties, checked after every step and at the end:
- every committed offset is decided (logged, and its decision on the decisions topic) or
  dead-lettered;
- once the failures stop, every offset ends decided or dead-lettered, only messages at fault are
  dead-lettered, and every decision produced for an id is the one the log keeps.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud_ray.schema import Decision, DecisionRecord, Transaction
from fraud_ray.settings import KafkaSettings
from fraud_ray.streaming.codec import decode_decision, header_map
from fraud_ray.streaming.loop import StreamLoop, Unavailable
from tests.unit.eager import eagerly

TOPIC = "transactions"
PARTITIONS = 2
REFUSED_AMOUNT = 666.0


class Faults:
    """Which calls fail, per step: drawn lists of booleans, consumed call by call; once a list
    is used up, that step never fails again (so every run ends)."""

    def __init__(self, plan: dict[str, list[bool]]) -> None:
        self.plan = {name: iter(flags) for name, flags in plan.items()}

    def fail(self, step: str) -> bool:
        return next(self.plan[step], False)


@dataclass
class Record:
    value_: bytes
    partition_: int
    offset_: int
    error_: KafkaError | None = None

    def error(self) -> KafkaError | None:
        return self.error_

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self.partition_

    def offset(self) -> int:
        return self.offset_

    def key(self) -> bytes:
        return b"card"

    def value(self) -> bytes:
        return self.value_


@dataclass
class Broker:
    """The input partitions, the group's committed offsets and the output topics as readers
    see them (only what was flushed, or committed in a Kafka transaction)."""

    partitions: list[list[bytes]]
    committed: list[int] = field(default_factory=lambda: [0] * PARTITIONS)
    topics: dict[str, list[tuple[bytes, dict[str, str]]]] = field(default_factory=dict)

    def visible(self, topic: str) -> list[tuple[bytes, dict[str, str]]]:
        return self.topics.get(topic, [])


class Source:
    """A consumer: reads from its positions, which start at the committed offsets."""

    def __init__(self, broker: Broker, faults: Faults) -> None:
        self.broker = broker
        self.faults = faults
        self.positions = list(broker.committed)

    def consume(self, num_messages: int, timeout: float) -> list[Record]:
        if self.faults.fail("poll crash"):
            raise KafkaException(KafkaError(KafkaError._FATAL, "consumer fenced"))
        if self.faults.fail("poll error"):
            return [Record(b"", 0, -1, KafkaError(KafkaError._TRANSPORT, "broker away"))]
        batch: list[Record] = []
        while len(batch) < num_messages:
            moved = False
            for p, messages in enumerate(self.broker.partitions):
                at = self.positions[p]
                if at < len(messages) and len(batch) < num_messages:
                    batch.append(Record(messages[at], p, at))
                    self.positions[p] += 1
                    moved = True
            if not moved:
                break
        return batch

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:
        if self.faults.fail("commit"):
            if self.faults.fail("commit applied anyway"):
                self._apply(offsets)
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "commit timed out"))
        self._apply(offsets)

    def _apply(self, offsets: list[TopicPartition]) -> None:
        for tp in offsets:
            self.broker.committed[tp.partition] = tp.offset

    def seek(self, partition: TopicPartition) -> None:
        self.positions[partition.partition] = partition.offset

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(TOPIC, tp.partition, self.positions[tp.partition]) for tp in partitions
        ]

    def get_watermark_offsets(self, partition: TopicPartition, cached: bool) -> tuple[int, int]:
        return (0, len(self.broker.partitions[partition.partition]))

    def consumer_group_metadata(self) -> str:
        return "group"


class Sink:
    """A producer: output waits in ``pending`` until a flush (or a transaction's commit) makes it
    visible; a failed flush loses it, the worst a broker can do."""

    def __init__(self, broker: Broker, source: Source, faults: Faults) -> None:
        self.broker = broker
        self.source = source
        self.faults = faults
        self.pending: list[tuple[str, bytes, dict[str, str]]] = []
        self.offsets: list[TopicPartition] = []
        self.open = False

    def produce(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        headers: Any = None,
        on_delivery: Any = None,
    ) -> None:
        self.pending.append((topic, value, header_map(headers)))

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        pending, self.pending = self.pending, []
        if self.faults.fail("produce"):
            return len(pending) or 1
        self._publish(pending)
        return 0

    def _publish(self, pending: list[tuple[str, bytes, dict[str, str]]]) -> None:
        for topic, value, headers in pending:
            self.broker.topics.setdefault(topic, []).append((value, headers))

    def begin_transaction(self) -> None:
        assert not self.open, "a transaction left open"
        self.open = True

    def send_offsets_to_transaction(
        self, positions: Any, group_metadata: Any, timeout: float
    ) -> None:
        self.offsets = positions

    def commit_transaction(self, timeout: float) -> None:
        if self.faults.fail("produce"):
            raise KafkaException(KafkaError(KafkaError._FENCED, "fenced", txn_requires_abort=True))
        self._publish(self.pending)
        self.source._apply(self.offsets)
        self.pending, self.open = [], False

    def abort_transaction(self, timeout: float) -> None:
        self.pending, self.open = [], False


class Graph:
    """Decisions that differ on every call (a counter in ``latency_ms``), so a transaction decided
    twice would show; refuses every batch holding ``REFUSED_AMOUNT``."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.calls = 0

    def __call__(self, transactions: list[Transaction]) -> list[DecisionRecord]:
        if self.faults.fail("graph"):
            raise Unavailable("graph restarting")
        if any(t.amount == REFUSED_AMOUNT for t in transactions):
            raise ValueError("the model cannot score this amount")
        self.calls += 1
        return [
            {
                "transaction_id": t.transaction_id,
                "fraud_probability": 0.9 if t.amount > 100 else 0.1,
                "decision": "decline" if t.amount > 100 else "approve",
                "expected_cost": 1.0,
                "reasons": [],
                "model": {"name": "m", "version": "1"},
                "costs": {"review_cost": 3.0, "decline_cost": 10.0},
                "scored_at": "2025-06-02T00:00:00Z",
                "latency_ms": float(self.calls),
                "replay": False,
            }
            for t in transactions
        ]


class Log:
    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.rows: dict[str, DecisionRecord] = {}

    def write(self, decisions: list[DecisionRecord], transactions: list[Transaction]) -> int:
        if self.faults.fail("log"):
            raise Unavailable("the decision log: connection refused")
        new = 0
        for decision in decisions:
            if decision["transaction_id"] not in self.rows:
                self.rows[decision["transaction_id"]] = decision
                new += 1
        return new

    def logged(self, ids: list[str]) -> dict[str, DecisionRecord]:
        if self.faults.fail("log"):
            raise Unavailable("the decision log: connection refused")
        return {tx: self.rows[tx] for tx in ids if tx in self.rows}


KINDS = st.sampled_from(["valid", "valid", "again", "not json", "refused"])
STEPS = ["poll crash", "poll error", "graph", "log", "produce", "commit", "commit applied anyway"]


def message(kind: str, i: int) -> bytes:
    if kind == "not json":
        return b"{not json"
    # An id sent again names an earlier message's; one the model refuses is never sent twice.
    tx = {"again": f"tx-{i // 3}", "refused": f"refused-{i}"}.get(kind, f"tx-{i}")
    amount = REFUSED_AMOUNT if kind == "refused" else 10.0 + 50 * (i % 4)
    when = datetime(2025, 6, 2, tzinfo=UTC).isoformat()
    return json.dumps(
        {"transaction_id": tx, "timestamp": when, "card_id": "c", "amount": amount}
    ).encode()


def decided_or_dead(broker: Broker, log: Log, upto: list[int]) -> Iterator[str]:
    """The offsets below ``upto`` that are neither decided nor dead-lettered."""
    decided = {decode_decision(value).transaction_id for value, _ in broker.visible("decisions")}
    dead = {
        (int(h["source.partition"]), int(h["source.offset"]))
        for _, h in broker.visible("transactions.dlq")
    }
    for p, messages in enumerate(broker.partitions):
        for offset in range(upto[p]):
            if (p, offset) in dead:
                continue
            value = messages[offset]
            tx = None if value == b"{not json" else json.loads(value)["transaction_id"]
            if tx not in log.rows or tx not in decided:
                yield f"{p}/{offset} ({tx})"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kinds=st.lists(KINDS, min_size=1, max_size=30),
    batch_size=st.integers(1, 8),
    exactly_once=st.booleans(),
    overlap=st.booleans(),
    plan=st.fixed_dictionaries({step: st.lists(st.booleans(), max_size=12) for step in STEPS}),
)
def test_committed_offsets_are_decided_and_every_offset_ends_decided_or_dead_lettered(
    kinds: list[str],
    batch_size: int,
    exactly_once: bool,
    overlap: bool,
    plan: dict[str, list[bool]],
) -> None:
    messages = [message(kind, i) for i, kind in enumerate(kinds)]
    broker = Broker([messages[p::PARTITIONS] for p in range(PARTITIONS)])
    faults = Faults(plan)
    graph, log = Graph(faults), Log(faults)
    kafka = KafkaSettings(batch_size=batch_size, exactly_once=exactly_once, max_attempts=2)

    def new_consumer() -> StreamLoop:
        """A consumer (re)started: from the committed offsets, with nothing in hand."""
        source = Source(broker, faults)
        sink = Sink(broker, source, faults)
        return StreamLoop(
            source,
            sink,
            graph,
            log.write,
            log.logged,
            kafka,
            sleep=lambda _: None,
            start_decide=eagerly(graph),
            overlap=overlap,
        )

    loop = new_consumer()
    ends = [len(partition) for partition in broker.partitions]
    for _ in range(500):
        if broker.committed == ends:
            break
        try:
            loop.step()
        except KafkaException:  # the actor dies; Ray restarts it
            loop = new_consumer()
        undecided = list(decided_or_dead(broker, log, broker.committed))
        assert not undecided, f"committed but neither decided nor dead-lettered: {undecided}"
    assert broker.committed == ends, "the stream stalled"

    dead = {value for value, _ in broker.visible("transactions.dlq")}
    at_fault = {m for m in messages if m == b"{not json" or b"refused-" in m}
    assert dead == at_fault, "dead-lettered: the messages at fault, and only they"
    for value, _ in broker.visible("decisions"):
        made = decode_decision(value).model_copy(update={"replay": False})
        assert made == Decision.model_validate(log.rows[made.transaction_id]), (
            "every answer for an id is the one the log keeps"
        )
    ids = {json.loads(m)["transaction_id"] for m in messages if m not in at_fault}
    assert set(log.rows) == ids
