"""The streaming loop's logic without Ray or Kafka: parsing, ordering of writes, commits, retries.

The Kafka clients are replaced by in-memory stand-ins that record what the loop asked of them; the
real clients, broker and graph are exercised in tests/integration/test_streaming.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from fraud_ray.decision_api import decode_cursor, encode_cursor
from fraud_ray.decision_log import AlertCursor
from fraud_ray.schema import Action, Decision, DecisionRecord, Fees, ModelRef, Transaction, to_json
from fraud_ray.settings import KafkaSettings
from fraud_ray.streaming.clients import consumer_config, producer_config, transactional_id
from fraud_ray.streaming.codec import (
    Parsed,
    Rejected,
    dead_letter_headers,
    decision_headers,
    decode_decision,
    header_map,
    parse_transaction,
)
from fraud_ray.streaming.loop import StreamLoop, Unavailable, first_offsets, next_offsets
from tests.unit.eager import eagerly

FEES = Fees(review_cost=3.0, decline_cost=10.0)

WHEN = "2025-06-02T14:00:00Z"


def body(tx: str = "t1", **fields: object) -> dict[str, object]:
    return {
        "transaction_id": tx,
        "timestamp": WHEN,
        "card_id": "c1",
        "terminal_id": "m1",
        "amount": 12.5,
    } | fields


def encoded(payload: object) -> bytes:
    return json.dumps(payload).encode()


POISON = {
    "not json": (b"{not json", "Invalid JSON"),
    "not an object": (b"[1, 2]", "Input should be an object"),
    "missing field": (
        encoded({k: v for k, v in body().items() if k != "card_id"} | {"amount": 1}),
        None,
    ),
    "no transaction id": (
        encoded({k: v for k, v in body().items() if k != "transaction_id"}),
        "transaction_id: Field required",
    ),
    "negative amount": (
        encoded(body(amount=-3)),
        "amount: Input should be greater than or equal to 0",
    ),
    "nan amount": (
        b'{"transaction_id": "t", "timestamp": "2025-06-02T14:00:00Z", "amount": NaN}',
        "amount: Input should be a finite number",
    ),
    "bad timestamp": (encoded(body(timestamp="yesterday")), "timestamp: Input should be a valid"),
    "no value": (None, "empty message"),
    # Past the last datetime Python has once in UTC: OverflowError inside validation.
    "overflowing timestamp": (
        encoded(body(timestamp="9999-12-31T23:00-05:00")),
        "timestamp: Value error, must be from 1970-01-01 to before 2200-01-01",
    ),
    "far future": (encoded(body(timestamp="2199-06-01T00:00:00Z")), "ahead of the clock"),
    "nul in an id": (encoded(body("t\x00x")), "transaction_id: Value error, must not contain"),
    "denormal amount": (encoded(body(amount=5e-324)), "amount: Value error, must be at least"),
    "unknown field beside a bad one": (
        encoded(body(colour="red", amount=-1)),
        "amount: Input should be greater than or equal to 0",
    ),
}


@pytest.mark.parametrize("name", [name for name, (_, e) in POISON.items() if e is not None])
def test_poison_is_rejected_naming_the_field(name: str) -> None:
    value, expected = POISON[name]
    parsed = parse_transaction(value)
    assert isinstance(parsed, Rejected)
    assert expected in parsed.error
    assert "colour" not in parsed.error, "unknown fields are not what is wrong"


def test_card_is_optional_so_a_transaction_without_it_parses() -> None:
    parsed = parse_transaction(POISON["missing field"][0])
    assert isinstance(parsed, Parsed) and parsed.transaction.card_id is None


def test_a_zero_amount_is_a_transaction() -> None:
    parsed = parse_transaction(encoded(body(amount=0)))
    assert isinstance(parsed, Parsed) and parsed.transaction.amount == 0


def test_a_valid_message_is_a_transaction() -> None:
    parsed = parse_transaction(encoded(body(amount=7)))
    assert isinstance(parsed, Parsed) and parsed.ignored == ()
    transaction = parsed.transaction
    assert transaction.amount == 7 and transaction.timestamp == datetime(2025, 6, 2, 14, tzinfo=UTC)


def test_unknown_fields_are_ignored_and_named() -> None:
    parsed = parse_transaction(encoded(body(amount=7, colour="red", pin=1)))
    assert isinstance(parsed, Parsed)
    assert sorted(parsed.ignored) == ["colour", "pin"] and parsed.transaction.amount == 7


def test_the_future_bound_is_the_callers() -> None:
    soon = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
    assert isinstance(parse_transaction(encoded(body(timestamp=soon))), Parsed)
    refused = parse_transaction(encoded(body(timestamp=soon)), timedelta(minutes=5))
    assert isinstance(refused, Rejected) and "ahead of the clock" in refused.error
    assert isinstance(parse_transaction(POISON["far future"][0], None), Parsed)


@pytest.mark.parametrize("error", [OverflowError("date value out of range"), KeyError("x")])
def test_whatever_the_parser_raises_is_a_rejection(
    error: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*_: object, **__: object) -> None:
        raise error

    monkeypatch.setattr(Transaction, "model_validate_json", fail)
    parsed = parse_transaction(encoded(body()))
    assert isinstance(parsed, Rejected) and type(error).__name__ in parsed.error


def decision(tx: str, action: Action = Action.APPROVE) -> DecisionRecord:
    """A decision as the graph answers it."""
    return Decision(
        transaction_id=tx,
        fraud_probability=0.9 if action != Action.APPROVE else 0.01,
        decision=action,
        expected_cost=1.0,
        model=ModelRef(name="fraud-test", version="3"),
        costs=FEES,
        scored_at=datetime(2025, 6, 2, tzinfo=UTC),
        latency_ms=2.0,
    ).model_dump(mode="json")


def test_decisions_round_trip_and_carry_the_model_in_headers() -> None:
    made = decision("t1", Action.REVIEW)
    assert decode_decision(to_json(made)) == Decision.model_validate(made)
    assert header_map(decision_headers(made)) == {"model.name": "fraud-test", "model.version": "3"}


def test_dead_letter_headers_say_what_and_where() -> None:
    headers = header_map(dead_letter_headers(Rejected("amount: bad"), "transactions", 3, 41))
    assert headers == {
        "error": "amount: bad",
        "source.topic": "transactions",
        "source.partition": "3",
        "source.offset": "41",
    }


# ---- the loop, against in-memory stand-ins for the consumer, the producer and the graph ----


@dataclass
class Message:
    value_: bytes | None
    partition_: int
    offset_: int
    key_: bytes | None = b"c1"
    topic_: str = "transactions"

    def error(self) -> KafkaError | None:
        return None

    def topic(self) -> str:
        return self.topic_

    def partition(self) -> int:
        return self.partition_

    def offset(self) -> int:
        return self.offset_

    def key(self) -> bytes | None:
        return self.key_

    def value(self) -> bytes | None:
        return self.value_


@dataclass
class Journal:
    """Everything the loop did, in order, across the stand-ins."""

    events: list[str] = field(default_factory=list)


@dataclass
class Source:
    journal: Journal
    batches: list[list[Message]]
    committed: dict[tuple[str, int], int] = field(default_factory=dict)
    seeks: list[TopicPartition] = field(default_factory=list)
    high: int = 100
    assigned: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    waits: list[float] = field(default_factory=list)

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        assert num_messages >= 1 and timeout >= 0
        self.waits.append(timeout)
        return self.batches.pop(0) if self.batches else []

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:
        assert asynchronous is False
        self.journal.events.append("commit")
        for tp in offsets:
            self.committed[(tp.topic, tp.partition)] = tp.offset

    def seek(self, partition: TopicPartition) -> None:
        self.seeks.append(partition)

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition("transactions", p) for p in self.assigned]

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self.committed.get((tp.topic, tp.partition), 0))
            for tp in partitions
        ]

    def get_watermark_offsets(self, partition: TopicPartition, cached: bool) -> tuple[int, int]:
        return (0, self.high)

    def consumer_group_metadata(self) -> str:
        return "group-metadata"


@dataclass
class Sink:
    journal: Journal
    produced: list[tuple[str, bytes | None, bytes | None, dict[str, str]]] = field(
        default_factory=list
    )
    undelivered: int = 0
    refuse_commits: list[KafkaError] = field(default_factory=list)
    transaction_offsets: list[TopicPartition] = field(default_factory=list)

    def produce(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        headers: Any = None,
        on_delivery: Any = None,
    ) -> None:
        self.produced.append((topic, key, value, header_map(headers)))
        self.journal.events.append(f"produce {topic}")

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        self.journal.events.append("flush")
        return self.undelivered

    def begin_transaction(self) -> None:
        self.journal.events.append("begin")

    def send_offsets_to_transaction(
        self, positions: Any, group_metadata: Any, timeout: float
    ) -> None:
        assert group_metadata == "group-metadata"
        self.transaction_offsets = positions
        self.journal.events.append("send offsets")

    def commit_transaction(self, timeout: float) -> None:
        if self.refuse_commits:
            raise KafkaException(self.refuse_commits.pop(0))
        self.journal.events.append("commit transaction")

    def abort_transaction(self, timeout: float) -> None:
        self.journal.events.append("abort")


# The amount the stand-in model refuses, as a booster refuses a value it cannot score.
REFUSED_AMOUNT = 666.0


class Graph:
    """Declines amounts over 100, approves the rest; can be told to be away for its next calls,
    and refuses every batch holding ``REFUSED_AMOUNT``."""

    def __init__(self, journal: Journal, failures: int = 0) -> None:
        self.journal = journal
        self.failures = failures
        self.calls: list[list[str]] = []

    def __call__(self, transactions: list[Transaction]) -> list[DecisionRecord]:
        self.journal.events.append("decide")
        if self.failures:
            self.failures -= 1
            raise Unavailable("graph restarting")
        if any(t.amount == REFUSED_AMOUNT for t in transactions):
            raise ValueError(f"the model cannot score an amount of {REFUSED_AMOUNT}")
        self.calls.append([t.transaction_id for t in transactions])
        return [
            decision(t.transaction_id, Action.DECLINE if t.amount > 100 else Action.APPROVE)
            for t in transactions
        ]


class Log:
    """Keeps the first decision of each id; can be told to be away for its next writes."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.rows: dict[str, str] = {}
        self.records: dict[str, DecisionRecord] = {}
        self.failures = 0

    def write(self, decisions: list[DecisionRecord], transactions: list[Transaction]) -> int:
        self.journal.events.append("log")
        if self.failures:
            self.failures -= 1
            raise Unavailable("the decision log: connection refused")
        new = [d for d in decisions if d["transaction_id"] not in self.rows]
        for d in new:
            self.rows[d["transaction_id"]] = d["decision"]
            self.records[d["transaction_id"]] = d
        return len(new)

    def logged(self, ids: list[str]) -> dict[str, DecisionRecord]:
        self.journal.events.append("lookup")
        return {tx: self.records[tx] for tx in ids if tx in self.records}


@dataclass
class Rig:
    """A loop and the stand-ins it talks to."""

    loop: StreamLoop
    journal: Journal
    source: Source
    sink: Sink
    graph: Graph
    log: Log
    sleeps: list[float]


def rig(
    batches: list[list[Message]], failures: int = 0, overlap: bool = False, **settings: Any
) -> Rig:
    journal = Journal()
    source, sink = Source(journal, batches), Sink(journal)
    graph, log = Graph(journal, failures), Log(journal)
    sleeps: list[float] = []
    loop = StreamLoop(
        source,
        sink,
        graph,
        log.write,
        log.logged,
        KafkaSettings(**settings),
        sleep=sleeps.append,
        start_decide=eagerly(graph),
        overlap=overlap,
    )
    return Rig(loop, journal, source, sink, graph, log, sleeps)


def mixed_batch() -> list[Message]:
    return [
        Message(encoded(body("a", amount=20)), 0, 10),
        Message(b"{oops", 0, 11),
        Message(encoded(body("b", amount=500, card_id="c2")), 1, 7, key_=b"c2"),
        Message(encoded(body("c", amount=30)), 0, 12),
    ]


def test_a_batch_is_decided_written_out_and_only_then_committed() -> None:
    r = rig([mixed_batch()])
    outcome = r.loop.step()

    assert outcome is not None
    assert (outcome.decided, outcome.alerts, outcome.dead_lettered) == (3, 1, 1)
    assert r.graph.calls == [["a", "b", "c"]], "one graph call for the valid messages, in order"
    topics = [topic for topic, *_ in r.sink.produced]
    assert topics.count("decisions") == 3 and topics.count("alerts") == 1
    assert topics.count("transactions.dlq") == 1
    assert r.journal.events.index("log") < r.journal.events.index("produce decisions"), (
        "logged before anything is produced"
    )
    assert r.journal.events.index("log") < r.journal.events.index("flush")
    assert r.journal.events[-1] == "commit"
    assert r.source.committed == {("transactions", 0): 13, ("transactions", 1): 8}
    assert r.log.rows == {"a": "approve", "b": "decline", "c": "approve"}
    assert set(outcome.stages) == {
        "poll",
        "parse",
        "lookup",
        "graph",
        "produce",
        "log",
        "commit",
    }
    assert r.loop.stats.stage_seconds.keys() == outcome.stages.keys()


def test_outputs_are_keyed_by_card_and_the_dead_letter_names_its_origin() -> None:
    r = rig([mixed_batch()])
    r.loop.step()
    alert = next(p for p in r.sink.produced if p[0] == "alerts")
    assert alert[1] == b"c2"
    assert decode_decision(alert[2]).transaction_id == "b"
    assert alert[3] == {"model.name": "fraud-test", "model.version": "3"}
    dead = next(p for p in r.sink.produced if p[0] == "transactions.dlq")
    assert dead[2] == b"{oops"
    assert dead[3]["source.partition"] == "0" and dead[3]["source.offset"] == "11"
    assert "Invalid JSON" in dead[3]["error"]


def test_a_batch_of_poison_only_is_committed_without_calling_the_graph() -> None:
    r = rig([[Message(b"x", 2, 5)]])
    outcome = r.loop.step()
    assert outcome is not None and outcome.dead_lettered == 1
    assert r.graph.calls == [] and "decide" not in r.journal.events
    assert r.source.committed == {("transactions", 2): 6}


def test_a_failed_graph_call_rewinds_and_commits_nothing_until_it_succeeds() -> None:
    batch = mixed_batch()
    r = rig([batch, batch], failures=1)
    assert r.loop.step() is None
    assert r.source.committed == {}
    assert {(tp.partition, tp.offset) for tp in r.source.seeks} == {(0, 10), (1, 7)}
    assert r.sleeps == [r.loop.settings.retry_backoff_s]
    assert r.loop.stats.failed_batches == 1 and "graph restarting" in (
        r.loop.stats.last_error or ""
    )

    assert r.loop.step() is not None
    assert r.source.committed == {("transactions", 0): 13, ("transactions", 1): 8}


def test_while_the_log_is_away_nothing_is_produced_again() -> None:
    batch = mixed_batch()
    r = rig([batch] * 4)
    r.log.failures = 3
    outcomes = [r.loop.step() for _ in range(4)]
    assert outcomes[:3] == [None] * 3 and outcomes[3] is not None
    decisions = [p for p in r.sink.produced if p[0] == "decisions"]
    assert len(decisions) == 3, "each decision produced once, after the log took it"
    assert r.loop.stats.dead_lettered == 1, "only the message that is not a transaction"
    assert r.source.committed == {("transactions", 0): 13, ("transactions", 1): 8}


def test_a_message_the_model_refuses_is_isolated_and_its_neighbours_are_committed() -> None:
    batch = [
        Message(encoded(body(f"n{i}", amount=REFUSED_AMOUNT if i == 5 else 10 + i)), 0, 100 + i)
        for i in range(8)
    ]
    r = rig([batch], max_attempts=2)
    outcome = r.loop.step()
    assert outcome is not None
    assert (outcome.messages, outcome.decided, outcome.dead_lettered) == (8, 7, 1)
    assert set(r.log.rows) == {f"n{i}" for i in range(8) if i != 5}
    dead = [p for p in r.sink.produced if p[0] == "transactions.dlq"]
    assert len(dead) == 1 and dead[0][3]["source.offset"] == "105"
    assert "failed 2 times after validation" in dead[0][3]["error"]
    assert "ValueError: the model cannot score an amount of 666.0" in dead[0][3]["error"]
    assert r.source.committed == {("transactions", 0): 108}
    assert r.loop.stats.split_batches == 1 and r.loop.stats.dead_lettered == 1
    decided = {decode_decision(p[2]).transaction_id for p in r.sink.produced if p[0] == "decisions"}
    assert decided == set(r.log.rows)


def test_a_batch_of_one_message_the_model_refuses_is_dead_lettered() -> None:
    r = rig([[Message(encoded(body("only", amount=REFUSED_AMOUNT)), 3, 9)]])
    outcome = r.loop.step()
    assert outcome is not None and outcome.dead_lettered == 1
    assert r.graph.calls == [] and r.source.committed == {("transactions", 3): 10}
    assert r.journal.events.count("decide") == r.loop.settings.max_attempts


def test_a_graph_that_is_away_never_dead_letters_anything() -> None:
    batch = mixed_batch()
    r = rig([batch] * 6, failures=5, max_attempts=2)
    outcomes = [r.loop.step() for _ in range(6)]
    assert outcomes[-1] is not None and outcomes[:-1] == [None] * 5
    assert r.loop.stats.dead_lettered == 1 and r.loop.stats.split_batches == 0


def test_a_transaction_sent_again_gets_the_logged_decision_marked_as_a_replay() -> None:
    first = [Message(encoded(body("a", amount=500)), 0, 1)]
    again = [
        Message(encoded(body("a", amount=5)), 0, 2),
        Message(encoded(body("b", amount=7)), 0, 3),
        Message(encoded(body("b", amount=900)), 0, 4),
    ]
    r = rig([first, again])
    r.loop.step()
    outcome = r.loop.step()
    assert outcome is not None
    assert (outcome.decided, outcome.replayed, outcome.alerts) == (3, 2, 1)
    assert r.graph.calls == [["a"], ["b"]], "each id decided once"
    produced = [p for p in r.sink.produced if p[0] == "decisions"]
    replays = [decode_decision(p[2]) for p in produced if p[3].get("replay") == "true"]
    assert [d.transaction_id for d in replays] == ["a", "b"]
    assert replays[0].decision == Action.DECLINE, "the logged decision, not a new one"
    assert replays[1] == decode_decision(produced[2][2]).model_copy(update={"replay": True}), (
        "the batch's own decision for b"
    )
    assert all(d.replay for d in replays) and not decode_decision(produced[2][2]).replay
    assert r.log.rows == {"a": "decline", "b": "approve"}


def test_a_batch_retried_after_the_log_took_it_still_alerts() -> None:
    batch = [Message(encoded(body("big", amount=500)), 0, 1)]
    r = rig([batch, batch])
    r.sink.undelivered = 1
    assert r.loop.step() is None
    r.sink.undelivered = 0
    outcome = r.loop.step()
    assert outcome is not None and (outcome.replayed, outcome.alerts) == (1, 1)
    alerts = [p for p in r.sink.produced if p[0] == "alerts"]
    assert len(alerts) == 2 and alerts[-1][3]["replay"] == "true"
    assert r.graph.calls == [["big"]], "decided once"


def test_unknown_fields_are_counted_not_dead_lettered() -> None:
    r = rig([[Message(encoded(body("u", colour="red")), 0, 1)]])
    outcome = r.loop.step()
    assert outcome is not None
    assert (outcome.decided, outcome.dead_lettered, outcome.unknown_fields) == (1, 0, 1)
    assert r.loop.stats.unknown_fields == 1


def test_undelivered_output_is_not_committed() -> None:
    r = rig([mixed_batch()])
    r.sink.undelivered = 2
    assert r.loop.step() is None
    assert "commit" not in r.journal.events and r.source.seeks


def test_a_replayed_batch_adds_nothing_to_the_log() -> None:
    batch = mixed_batch()
    r = rig([batch, batch])
    first, second = r.loop.step(), r.loop.step()
    assert first is not None and second is not None
    assert (first.new_in_log, second.new_in_log) == (3, 0)


def test_exactly_once_commits_offsets_inside_the_transaction() -> None:
    r = rig([mixed_batch()], exactly_once=True)
    r.loop.step()
    assert r.journal.events[0] == "begin"
    assert r.journal.events[-2:] == ["send offsets", "commit transaction"]
    assert "commit" not in r.journal.events, "no consumer commit beside the transaction"
    assert {(tp.partition, tp.offset) for tp in r.sink.transaction_offsets} == {(0, 13), (1, 8)}


def test_exactly_once_retries_a_retriable_commit_and_aborts_otherwise() -> None:
    r = rig([mixed_batch(), mixed_batch()], exactly_once=True)
    r.sink.refuse_commits = [KafkaError(KafkaError._TIMED_OUT, retriable=True)]
    assert r.loop.step() is not None
    assert r.journal.events.count("commit transaction") == 1 and "abort" not in r.journal.events

    r.sink.refuse_commits = [KafkaError(KafkaError._FENCED, txn_requires_abort=True)]
    assert r.loop.step() is None
    assert r.journal.events[-1] == "abort" and r.source.seeks


def two_batches() -> list[list[Message]]:
    return [
        [Message(encoded(body("a", amount=20)), 0, 10), Message(b"{oops", 1, 3)],
        [Message(encoded(body("b", amount=500)), 0, 11), Message(encoded(body("c")), 1, 4)],
    ]


def test_overlap_decides_the_next_batch_before_writing_out_the_one_before() -> None:
    r = rig(two_batches(), overlap=True)
    assert r.loop.step() is None, "the first batch is decided and kept in hand"
    assert r.graph.calls == [["a"]] and "commit" not in r.journal.events

    first = r.loop.step()
    assert first is not None and (first.messages, first.decided, first.dead_lettered) == (2, 1, 1)
    events = r.journal.events
    assert events.index("decide", events.index("decide") + 1) < events.index("log"), (
        "the second batch went to the graph before the first was logged"
    )
    assert r.source.committed == {("transactions", 0): 11, ("transactions", 1): 4}

    second = r.loop.step()
    assert second is not None and second.decided == 2, "an empty poll writes out the batch in hand"
    assert r.source.committed == {("transactions", 0): 12, ("transactions", 1): 5}
    assert [p[0] for p in r.sink.produced].count("decisions") == 3


def test_overlap_commits_only_the_partitions_still_held_after_a_rebalance() -> None:
    """The poll of the next batch handed partition 1 to another consumer, which may already
    have committed past this batch: committing it here would move the group's offset back."""
    r = rig(two_batches(), overlap=True)
    r.source.committed[("transactions", 1)] = 9  # the new owner's commit
    assert r.loop.step() is None
    r.source.assigned = [0]
    first = r.loop.step()
    assert first is not None and first.messages == 2, "the batch is still written out whole"
    assert r.source.committed == {("transactions", 0): 11, ("transactions", 1): 9}
    assert [p[0] for p in r.sink.produced].count("decisions") == 1


def test_a_batch_whose_partitions_all_moved_commits_nothing() -> None:
    r = rig(two_batches(), overlap=True)
    assert r.loop.step() is None
    r.source.assigned = []
    assert r.loop.step() is not None
    assert "commit" not in r.journal.events and r.source.committed == {}


def test_overlap_answers_an_id_of_the_batch_in_hand_with_its_decision() -> None:
    batches = [
        [Message(encoded(body("a", amount=500)), 0, 1)],
        [Message(encoded(body("a", amount=5)), 0, 2)],
    ]
    r = rig(batches, overlap=True)
    outcomes = [r.loop.step() for _ in range(3)]
    assert r.graph.calls == [["a"]], "decided once, though not yet in the log when asked again"
    assert outcomes[2] is not None and outcomes[2].replayed == 1
    replay = decode_decision(r.sink.produced[-1][2])
    assert replay.replay and replay.decision == Action.DECLINE


def test_overlap_a_batch_that_fails_rewinds_the_next_one_first() -> None:
    batches = two_batches()
    r = rig(batches + batches, overlap=True)
    r.log.failures = 1
    r.loop.step()
    assert r.loop.step() is None
    assert [(tp.partition, tp.offset) for tp in r.source.seeks] == [
        (0, 11),
        (1, 4),
        (0, 10),
        (1, 3),
    ], "the next batch rewound, then the failed one, whose offsets come first"
    assert r.source.committed == {}
    while r.loop.step() is not None or r.source.batches:
        pass
    assert r.source.committed == {("transactions", 0): 12, ("transactions", 1): 5}
    assert r.log.rows == {"a": "approve", "b": "decline", "c": "approve"}


def test_overlap_a_stopping_loop_writes_out_the_batch_in_hand() -> None:
    r = rig(two_batches()[:1], overlap=True)
    r.loop.run(iter([False, True]).__next__)
    assert r.source.committed == {("transactions", 0): 11, ("transactions", 1): 4}


def test_exactly_once_never_overlaps() -> None:
    assert not rig([], overlap=True, exactly_once=True).loop.overlap
    assert rig([], overlap=True).loop.overlap


def test_lag_is_the_distance_from_position_to_the_end() -> None:
    r = rig([mixed_batch()])
    r.source.assigned = [0, 1]
    r.loop.step()
    assert r.loop.lag() == {("transactions", 0): 100 - 13, ("transactions", 1): 100 - 8}
    assert r.loop.stats.lag == {"transactions/0": 87, "transactions/1": 92}
    assert sorted(r.loop.stats.assigned) == ["transactions/0", "transactions/1"]


def test_a_consumer_takes_what_was_fetched_and_waits_only_when_it_has_nothing() -> None:
    r = rig([mixed_batch(), []], batch_wait_s=0.2)

    r.loop.step()
    assert r.source.waits == [0], "messages in hand: no wait for the batch to fill"
    r.loop.step()
    assert r.source.waits == [0, 0, 0.2], "nothing fetched: one wait for the next messages"


def test_offsets_of_a_batch() -> None:
    batch = mixed_batch()
    assert {(tp.partition, tp.offset) for tp in next_offsets(batch)} == {(0, 13), (1, 8)}
    assert {(tp.partition, tp.offset) for tp in first_offsets(batch)} == {(0, 10), (1, 7)}


def test_client_configurations() -> None:
    kafka = KafkaSettings(group="g", exactly_once=True)
    consumer = consumer_config(kafka)
    assert consumer["enable.auto.commit"] is False and consumer["group.id"] == "g"
    # The broker holds a fetch no longer than an idle consumer waits for messages.
    assert consumer["fetch.wait.max.ms"] == 50 and consumer["fetch.min.bytes"] == 65536
    assert consumer_config(KafkaSettings(batch_wait_s=0.0004))["fetch.wait.max.ms"] == 1
    producer = producer_config(kafka, 3)
    assert producer["transactional.id"] == transactional_id(kafka, 3) == "g-consumer-3"
    assert producer["enable.idempotence"] is True
    assert "transactional.id" not in producer_config(KafkaSettings(), 3)


def test_alert_page_tokens_round_trip_and_foreign_ones_are_refused() -> None:
    cursor = AlertCursor(datetime(2025, 6, 2, 14, 3, tzinfo=UTC), "tx-9")
    assert decode_cursor(encode_cursor(cursor)) == cursor
    naive = encode_cursor(AlertCursor(datetime(2025, 6, 2), "tx-9"))
    for token in ("nonsense", naive, "WzFd"):
        with pytest.raises(ValueError, match=r"before: .* is not a page token"):
            decode_cursor(token)
