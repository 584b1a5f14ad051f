"""The ingestion pool end to end: a real Kafka broker, real Ray actors, the real Serve graph and a
real PostgreSQL decision log. Nothing here is a mock.

One Serve application serves the module. Every test writes its own topics, consumer group and
transaction/card/terminal id prefix, so tests share the graph's feature state and the decision
log without seeing each other's transactions.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import ray
import redis
import sqlalchemy as sa
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from ray import serve
from ray.exceptions import ActorDiedError, GetTimeoutError, RayTaskError

from fraud_ray.costs import CostPolicy
from fraud_ray.decision_log import DecisionLog, decisions_table
from fraud_ray.model import FraudModel
from fraud_ray.monitoring.monitor import Monitor
from fraud_ray.registry import Registry
from fraud_ray.schema import TRANSACTION_ID, DatasetMapping, Decision
from fraud_ray.scoring import score_file
from fraud_ray.serving.graph import build_graph
from fraud_ray.settings import CostSettings, KafkaSettings, Settings
from fraud_ray.streaming.codec import decode_decision, header_map
from fraud_ray.streaming.loop import Unavailable
from fraud_ray.streaming.pool import ConsumerPool, PoolNotStarted, graph_errors, log_errors

from ..conftest import ensure_ray, free_port
from .conftest import KafkaBroker, OwnServer

# As many as the fault run of the hardening issue asks for: each fault lands mid-stream, with
# batches committed before it and batches left after it.
TRANSACTIONS = 50_000
# Only a bound against a hung test, never a figure that is checked.
DEADLINE_S = 300.0
START = datetime(2025, 6, 2, 8, tzinfo=UTC)
SERVED_COSTS = CostSettings(review_cost=1.5, decline_cost=25.0)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def services_up(kafka_broker: KafkaBroker, postgres: OwnServer) -> None:
    """The broker and the database up before each test, whatever the test before did to them."""
    kafka_broker.ensure_running()
    postgres.ensure_running()


@dataclass(frozen=True)
class Served:
    url: str
    settings: Settings


@pytest.fixture(scope="module")
def served(
    training_run: tuple, champion: FraudModel, kafka_broker: KafkaBroker, postgres_url: str
) -> Iterator[Served]:
    settings, _ = training_run
    settings = settings.model_copy(
        update={
            "decisions": settings.decisions.model_copy(update={"url": postgres_url}),
            # Batches small enough that a consumer killed "in the middle" has batches to replay.
            "kafka": settings.kafka.model_copy(
                update={
                    "bootstrap": kafka_broker.bootstrap,
                    "consumer_cpus": 0.2,
                    "batch_size": 1000,
                }
            ),
            # A drift verdict on any one test's stream, whichever tests ran before.
            "monitoring": settings.monitoring.model_copy(update={"drift_min_rows": 200}),
            # Not the costs the model was trained with: every path must decide with these.
            "costs": SERVED_COSTS,
        }
    )
    ensure_ray()
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_graph(settings), name=settings.serving.app_name, route_prefix="/")
    yield Served(f"http://127.0.0.1:{port}", settings)
    serve.shutdown()


@dataclass(frozen=True)
class Stream:
    """The topics, group and id prefix of one test, and the settings that name them."""

    prefix: str
    settings: Settings

    @property
    def kafka(self) -> KafkaSettings:
        return self.settings.kafka


def stream_for(served: Served, partitions: int = 4, **kafka: object) -> Stream:
    prefix = f"s{uuid.uuid4().hex[:8]}"
    names = {
        "transactions_topic": f"{prefix}.transactions",
        "decisions_topic": f"{prefix}.decisions",
        "alerts_topic": f"{prefix}.alerts",
        "dlq_topic": f"{prefix}.transactions.dlq",
        "group": f"{prefix}-group",
    }
    settings = served.settings.model_copy(
        update={"kafka": served.settings.kafka.model_copy(update={**names, **kafka})}
    )
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap})
    futures = admin.create_topics([NewTopic(names["transactions_topic"], partitions, 1)])
    for future in futures.values():
        future.result(timeout=60)
    return Stream(prefix, settings)


def transactions(prefix: str, count: int, cards: int = 300, seed: int = 0) -> list[dict]:
    """A day of payments on ``cards`` cards, a few of them large enough to be alerts."""
    rng = np.random.default_rng(seed)
    amounts = np.where(
        rng.random(count) < 0.03, rng.uniform(400, 2000, count), rng.gamma(2, 25, count)
    )
    return [
        {
            "transaction_id": f"{prefix}-tx-{i}",
            "timestamp": (START + timedelta(seconds=3 * i)).isoformat(),
            "card_id": f"{prefix}-card-{i % cards}",
            "terminal_id": f"{prefix}-terminal-{(7 * i) % (2 * cards)}",
            "amount": round(float(amounts[i]) + 0.01, 2),
        }
        for i in range(count)
    ]


def produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> list[Message]:
    """Produce keyed messages and return their delivery reports, in the order produced."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    reports: list[Message] = []
    errors: list[KafkaError] = []

    def delivered(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            errors.append(error)
        reports.append(message)

    for key, value in messages:
        producer.produce(topic, value=value, key=key, on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert errors == []
    return reports


def produce_transactions(stream: Stream, batch: list[dict]) -> None:
    produce(
        stream.kafka.bootstrap,
        stream.kafka.transactions_topic,
        [(t["card_id"].encode(), json.dumps(t).encode()) for t in batch],
    )


def group_positions(stream: Stream) -> tuple[dict[int, int], dict[int, int]]:
    """The group's committed offset and the end offset of each input partition."""
    kafka = stream.kafka
    reader = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": kafka.group})
    try:
        metadata = reader.list_topics(kafka.transactions_topic, timeout=30)
        partitions = [
            TopicPartition(kafka.transactions_topic, p)
            for p in metadata.topics[kafka.transactions_topic].partitions
        ]
        # Nothing committed yet reads as the start: an empty partition is consumed.
        committed = {
            tp.partition: max(tp.offset, 0) for tp in reader.committed(partitions, timeout=30)
        }
        ends = {tp.partition: reader.get_watermark_offsets(tp, timeout=30)[1] for tp in partitions}
    finally:
        reader.close()
    return committed, ends


def consumers_said(pool: ConsumerPool | None) -> str:
    """What each consumer of ``pool`` did and last failed on: why a stream fell behind."""
    if pool is None:
        return ""
    try:
        stats = ray.get([actor.stats.remote() for actor in pool.actors], timeout=30)
    except Exception as error:
        return f"; the consumers did not answer: {error!r}"
    return "".join(
        f"; consumer {slot}: {s.decided} decided, {s.failed_batches} failed batches, "
        f"assigned {s.assigned}, last error {s.last_error}"
        for slot, s in enumerate(stats)
    )


def wait_until_consumed(stream: Stream, pool: ConsumerPool | None = None) -> dict[int, int]:
    """Wait until the group has committed every partition to its end; returns the end offsets."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        try:
            committed, ends = group_positions(stream)
        except Exception:  # the broker restarting under a test: ask again
            committed, ends = {}, {None: 0}
        if committed == ends:
            return ends
        assert time.monotonic() < deadline, (
            f"not consumed: committed {committed}, ends {ends}{consumers_said(pool)}"
        )
        time.sleep(0.5)


def logged_ids(log_url: str, prefix: str) -> list[str]:
    log = DecisionLog(log_url)
    try:
        with log.engine.connect() as connection:
            column = decisions_table.c[TRANSACTION_ID]
            return list(
                connection.execute(sa.select(column).where(column.like(f"{prefix}-%"))).scalars()
            )
    finally:
        log.close()


def wait_for_logged(
    log_url: str, prefix: str, count: int, pool: ConsumerPool | None = None
) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while len(logged_ids(log_url, prefix)) < count:
        assert time.monotonic() < deadline, (
            f"fewer than {count} decisions logged{consumers_said(pool)}"
        )
        time.sleep(0.2)


def read_topic(
    bootstrap: str, topic: str, until_distinct: int, committed_only: bool = False
) -> list[Message]:
    """Every message of ``topic`` from the start: read until ``until_distinct`` distinct keys of
    transaction ids are seen, then on until the partitions' ends, so duplicates are seen too."""
    reader = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed" if committed_only else "read_uncommitted",
        }
    )
    reader.subscribe([topic])
    messages: list[Message] = []
    seen: set[str] = set()
    deadline = time.monotonic() + DEADLINE_S
    quiet_since: float | None = None
    try:
        while True:
            message = reader.poll(0.5)
            if message is None or message.error() is not None:
                if len(seen) >= until_distinct:
                    quiet_since = quiet_since or time.monotonic()
                    # Past the last message: three quiet seconds after every id was seen.
                    if time.monotonic() - quiet_since > 3:
                        return messages
                assert time.monotonic() < deadline, f"{len(seen)} of {until_distinct} in {topic}"
                continue
            quiet_since = None
            messages.append(message)
            seen.add(decode_decision(message.value()).transaction_id)
    finally:
        reader.close()


def assert_nothing_lost(stream: Stream, sent: list[dict], log_url: str) -> list[Message]:
    ids = {t["transaction_id"] for t in sent}
    logged = logged_ids(log_url, stream.prefix)
    assert len(logged) == len(set(logged)) == len(ids), "one row per transaction"
    assert set(logged) == ids
    committed, ends = group_positions(stream)
    assert committed == ends
    decisions = read_topic(stream.kafka.bootstrap, stream.kafka.decisions_topic, len(ids))
    assert {decode_decision(m.value()).transaction_id for m in decisions} == ids
    return decisions


def test_exactly_once_a_committed_reader_sees_each_decision_once(served: Served) -> None:
    stream = stream_for(served, pool_size=2, exactly_once=True)
    # Fewer than the fault run: enough for batches committed on each side of the kill.
    sent = transactions(stream.prefix, TRANSACTIONS // 5, seed=2)
    pool = ConsumerPool(stream.settings)
    pool.start()
    try:
        produce_transactions(stream, sent)
        wait_for_logged(served.settings.decisions.url, stream.prefix, len(sent) // 3, pool)
        ray.kill(pool.actors[1], no_restart=False)
        wait_until_consumed(stream, pool)
    finally:
        pool.stop()
    ids = [t["transaction_id"] for t in sent]
    decisions = read_topic(
        stream.kafka.bootstrap, stream.kafka.decisions_topic, len(ids), committed_only=True
    )
    received = [decode_decision(m.value()).transaction_id for m in decisions]
    assert sorted(received) == sorted(ids), "each transaction exactly once"
    assert set(logged_ids(served.settings.decisions.url, stream.prefix)) == set(ids)


POISON = {
    "not json": (b"{not json", "Invalid JSON"),
    "not an object": (b'["a", 1]', "Input should be an object"),
    "missing field": (
        b'{"transaction_id": "x", "timestamp": "2025-06-02T08:00:00Z"}',
        "amount: Field required",
    ),
    "negative amount": (
        b'{"transaction_id": "x", "timestamp": "2025-06-02T08:00:00Z", "amount": -5}',
        "amount: Input should be greater than or equal to 0",
    ),
    "nan amount": (
        b'{"transaction_id": "x", "timestamp": "2025-06-02T08:00:00Z", "amount": NaN}',
        "amount: Input should be a finite number",
    ),
    "bad timestamp": (
        b'{"transaction_id": "x", "timestamp": "not a time", "amount": 5}',
        "timestamp: Input should be a valid datetime",
    ),
    # Past Python's last datetime once in UTC: an OverflowError that used to stall the partition.
    "overflowing timestamp": (
        b'{"transaction_id": "x", "timestamp": "9999-12-31T23:00-05:00", "amount": 5}',
        "timestamp: Value error, must be from 1970-01-01",
    ),
    "far future": (
        b'{"transaction_id": "x", "timestamp": "2199-06-01T00:00:00Z", "amount": 5}',
        "ahead of the clock",
    ),
    # PostgreSQL cannot store it: it used to fail the batch at the log, for ever.
    "nul in an id": (
        b'{"transaction_id": "x\\u0000y", "timestamp": "2025-06-02T08:00:00Z", "amount": 5}',
        "transaction_id: Value error, must not contain control characters",
    ),
    "denormal amount": (
        b'{"transaction_id": "x", "timestamp": "2025-06-02T08:00:00Z", "amount": 5e-324}',
        "amount: Value error, must be at least",
    ),
}


def with_poison(valid: list[dict], every: int) -> tuple[list[tuple[bytes, bytes]], int]:
    """The transactions as keyed messages, a poison message of each kind in turn after every
    ``every``-th one, in its card's partition; and how many poison messages that is."""
    poisons = [value for value, _ in POISON.values()]
    messages: list[tuple[bytes, bytes]] = []
    for i, transaction in enumerate(valid):
        key = transaction["card_id"].encode()
        messages.append((key, json.dumps(transaction).encode()))
        if i % every == every - 1:
            messages.append((key, poisons[(i // every) % len(poisons)]))
    return messages, len(valid) // every


def read_dead_letters(stream: Stream, count: int) -> dict[tuple[int, int], tuple[bytes, str]]:
    """The dead-letter topic by source partition and offset, until ``count`` distinct sources
    are seen: a message dead-lettered again after a crash is the same message."""
    reader = Consumer(
        {
            "bootstrap.servers": stream.kafka.bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
        }
    )
    reader.subscribe([stream.kafka.dlq_topic])
    dead: dict[tuple[int, int], tuple[bytes, str]] = {}
    deadline = time.monotonic() + DEADLINE_S
    try:
        while len(dead) < count:
            assert time.monotonic() < deadline, f"{len(dead)} of {count} dead letters"
            message = reader.poll(0.5)
            if message is not None and message.error() is None:
                headers = header_map(message.headers())
                source = (int(headers["source.partition"]), int(headers["source.offset"]))
                dead[source] = (message.value(), headers["error"])
    finally:
        reader.close()
    return dead


def test_a_fault_run_decides_every_transaction_once_and_dead_letters_every_poison(
    served: Served, kafka_broker: KafkaBroker, postgres: OwnServer
) -> None:
    """50,000 transactions with 1% poison of every kind, in four waves, each of the first three
    followed by a fault while it is being consumed: a consumer killed mid-batch, the broker
    restarted, PostgreSQL stopped for 10 s. Afterwards every valid transaction is decided and
    logged once, every poison message is in the dead-letter topic with its reason, and the
    consumer lag is back to 0."""
    stream = stream_for(served, pool_size=2)
    valid = transactions(stream.prefix, TRANSACTIONS)
    url = served.settings.decisions.url
    pool = ConsumerPool(stream.settings)

    def kill_a_consumer() -> None:
        ray.kill(pool.actors[0], no_restart=False)

    def restart_the_broker() -> None:
        kafka_broker.stop()
        kafka_broker.start()

    def stop_the_database() -> None:
        with postgres.stopped():
            time.sleep(10)

    reports: list[Message] = []
    poisoned = decided_before = 0
    pool.start()
    try:
        quarter = len(valid) // 4
        for first, fault in zip(
            range(0, len(valid), quarter),
            [kill_a_consumer, restart_the_broker, stop_the_database, None],
            strict=True,
        ):
            wave = valid[first : first + quarter]
            messages, count = with_poison(wave, every=100)
            poisoned += count
            reports += produce(stream.kafka.bootstrap, stream.kafka.transactions_topic, messages)
            if fault is not None:
                # Mid-wave: some of its batches are committed before the fault, the rest after.
                wait_for_logged(url, stream.prefix, decided_before + len(wave) // 3, pool)
                fault()
            decided_before += len(wave)
        wait_until_consumed(stream, pool)
    finally:
        pool.stop()
    assert_nothing_lost(stream, valid, url)
    reasons = dict(POISON.values())
    origin = {(m.partition(), m.offset()): m.value() for m in reports if m.value() in reasons}
    assert len(origin) == poisoned
    dead = read_dead_letters(stream, poisoned)
    assert set(dead) == set(origin), "every poison message, and nothing else, dead-lettered"
    for source, (value, error) in dead.items():
        assert value == origin[source] and reasons[value] in error


def test_poison_goes_to_the_dead_letter_topic_and_its_neighbours_are_scored(
    served: Served,
) -> None:
    stream = stream_for(served, pool_size=1, partitions=2)
    valid = transactions(stream.prefix, 3 * len(POISON) + 3, cards=1, seed=3)
    key = valid[0]["card_id"].encode()  # one card: one partition, poison between neighbours
    messages: list[tuple[bytes, bytes]] = []
    for i, (value, _) in enumerate(POISON.values()):
        messages += [(key, json.dumps(t).encode()) for t in valid[3 * i : 3 * i + 3]]
        messages.append((key, value))
    messages += [(key, json.dumps(t).encode()) for t in valid[-3:]]
    reports = produce(stream.kafka.bootstrap, stream.kafka.transactions_topic, messages)
    origin = {m.value(): (m.partition(), m.offset()) for m in reports}
    pool = ConsumerPool(stream.settings)
    pool.start()
    try:
        wait_until_consumed(stream, pool)
    finally:
        pool.stop()

    reader = Consumer(
        {
            "bootstrap.servers": stream.kafka.bootstrap,
            "group.id": f"reader-{stream.prefix}",
            "auto.offset.reset": "earliest",
        }
    )
    reader.subscribe([stream.kafka.dlq_topic])
    dead: list[Message] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(dead) < len(POISON) and time.monotonic() < deadline:
        message = reader.poll(0.5)
        if message is not None and message.error() is None:
            dead.append(message)
    reader.close()
    assert len(dead) == len(POISON)
    for message, (value, error) in zip(dead, POISON.values(), strict=True):
        headers = header_map(message.headers())
        assert message.value() == value
        assert error in headers["error"]
        assert headers["source.topic"] == stream.kafka.transactions_topic
        partition, offset = origin[value]
        assert (int(headers["source.partition"]), int(headers["source.offset"])) == (
            partition,
            offset,
        )
    assert set(logged_ids(served.settings.decisions.url, stream.prefix)) == {
        t["transaction_id"] for t in valid
    }


def test_a_poison_mix_is_dead_lettered_and_everything_else_decided_once(served: Served) -> None:
    """A few thousand transactions across partitions with every poison kind mixed in, ids sent
    twice and fields no schema knows: the stream never stalls, each poison message is in the
    dead-letter topic with its reason, each id is logged once and every answer for it is the
    logged decision (a repeat is marked as a replay), unknown fields are counted."""
    stream = stream_for(served, pool_size=2, partitions=3)
    valid = transactions(stream.prefix, 2000, cards=100, seed=8)
    poisons = list(POISON.values())
    messages: list[tuple[bytes, bytes]] = []
    repeated: list[dict] = []
    extra = 0
    for i, transaction in enumerate(valid):
        key = transaction["card_id"].encode()
        # A producer ahead of the schema adds a field.
        sent = transaction | {"terminal_firmware": "4.2"} if i % 10 == 3 else transaction
        extra += sent is not transaction
        messages.append((key, json.dumps(sent).encode()))
        if i % 40 == 7:
            messages.append((key, poisons[(i // 40) % len(poisons)][0]))
        if i % 100 == 50:
            # Sent again, other amount, same card (so after the first, in its partition).
            again = valid[i - 20]
            repeated.append(again)
            messages.append(
                (again["card_id"].encode(), json.dumps(again | {"amount": 9999.0}).encode())
            )
    pool = ConsumerPool(stream.settings)
    pool.start()
    try:
        reports = produce(stream.kafka.bootstrap, stream.kafka.transactions_topic, messages)
        wait_until_consumed(stream, pool)
    finally:
        final = pool.stop()
    url = served.settings.decisions.url
    logged = logged_ids(url, stream.prefix)
    assert sorted(logged) == sorted(t["transaction_id"] for t in valid), "each id logged once"
    # By source offset: a batch taken over by the other consumer in a rebalance before its
    # commit is dead-lettered again (at least once), and the copy is the same message.
    reasons = dict(POISON.values())
    origin = {(m.partition(), m.offset()): m.value() for m in reports if m.value() in reasons}
    dead = read_dead_letters(stream, len(origin))
    assert set(dead) == set(origin), "every poison message, and nothing else, dead-lettered"
    for source, (value, error) in dead.items():
        assert value == origin[source] and reasons[value] in error
    decisions = read_topic(stream.kafka.bootstrap, stream.kafka.decisions_topic, len(valid))
    log = DecisionLog(url)
    try:
        kept = log.logged(logged)
    finally:
        log.close()
    replays = 0
    for message in decisions:
        decision = decode_decision(message.value())
        replay = header_map(message.headers()).get("replay") == "true"
        assert decision.replay == replay, "the body marks a replay as its header does"
        first = decision.model_copy(update={"replay": False})
        assert first == Decision.model_validate(kept[decision.transaction_id]), (
            "every answer for an id is the logged one"
        )
        replays += replay
    assert replays >= len(repeated)
    # At least: a batch consumed again after a rebalance is counted again.
    assert sum(stats.unknown_fields for stats in final) >= extra
    assert sum(stats.replayed for stats in final) >= len(repeated)
    assert sum(stats.dead_lettered for stats in final) >= len(origin)


def test_every_partition_is_consumed_while_the_pool_grows_and_shrinks(served: Served) -> None:
    stream = stream_for(served, pool_size=1, partitions=6)
    waves = [transactions(f"{stream.prefix}-w{i}", 1000, seed=10 + i) for i in range(3)]
    pool = ConsumerPool(stream.settings)
    pool.start()
    try:
        for wave, size in zip(waves, (1, 3, 2), strict=True):
            pool.resize(size)
            assert pool.size == size
            produce_transactions(stream, wave)
            ends = wait_until_consumed(stream)
        assert len(ends) == 6 and all(end > 0 for end in ends.values())
        assert sum(s.decided for s in pool.stats()) > 0
    finally:
        pool.stop()
    logged = set(logged_ids(served.settings.decisions.url, stream.prefix))
    assert logged == {t["transaction_id"] for wave in waves for t in wave}


def test_a_pool_no_node_can_place_says_so_and_starts_once_it_fits(served: Served) -> None:
    stream = stream_for(served, pool_size=1, consumer_cpus=3.0, start_timeout_s=2.0)
    pool = ConsumerPool(stream.settings)
    with pytest.raises(PoolNotStarted, match=r"3\.0 free CPUs \(kafka\.consumer_cpus\)"):
        pool.start()
    assert pool.size == 0
    fits = {"consumer_cpus": 0.2, "start_timeout_s": served.settings.kafka.start_timeout_s}
    pool.settings = stream.settings.model_copy(
        update={"kafka": stream.kafka.model_copy(update=fits)}
    )
    sent = transactions(stream.prefix, 50, seed=5)
    pool.start()
    try:
        produce_transactions(stream, sent)
        wait_until_consumed(stream, pool)
    finally:
        pool.stop()
    assert set(logged_ids(served.settings.decisions.url, stream.prefix)) == {
        t["transaction_id"] for t in sent
    }


def test_stream_decisions_equal_the_batch_endpoint(served: Served, tmp_path: Path) -> None:
    """The stream and ``POST /api/v1/predict/batch`` must decide the same transaction the same way.

    The graph's online feature state is shared: sending the same transactions twice would make
    the second copy see the first as its card's history. So the HTTP copy goes under other card,
    terminal and transaction ids, with identical times and amounts: both copies then have
    identical histories, hence identical features, and must get identical probabilities, actions,
    costs and reasons. Per card, the order is the same (Kafka keeps a key's order in its
    partition; the HTTP batch is in time order); how the stream cuts batches does not matter,
    because the online features are incremental.
    """
    stream = stream_for(served, pool_size=2)
    sent = transactions(stream.prefix, 600, cards=20, seed=4)
    produce_transactions(stream, sent)
    pool = ConsumerPool(stream.settings)
    pool.start()
    try:
        wait_until_consumed(stream, pool)
    finally:
        pool.stop()
    streamed = {
        decision.transaction_id: decision
        for decision in (
            decode_decision(m.value())
            for m in read_topic(stream.kafka.bootstrap, stream.kafka.decisions_topic, len(sent))
        )
    }
    twin = f"{stream.prefix}http"
    copies = [
        t
        | {
            "transaction_id": t["transaction_id"].replace(stream.prefix, twin),
            "card_id": t["card_id"].replace(stream.prefix, twin),
            "terminal_id": t["terminal_id"].replace(stream.prefix, twin),
        }
        for t in sent
    ]
    with httpx.Client(base_url=served.url, timeout=60) as client:
        answer = client.post("/api/v1/predict/batch", json={"transactions": copies})
    assert answer.status_code == 200, answer.text
    alerts = 0
    for original, over_http in zip(sent, answer.json()["decisions"], strict=True):
        from_stream = streamed[original["transaction_id"]]
        assert from_stream.fraud_probability == over_http["fraud_probability"]
        assert from_stream.decision.value == over_http["decision"]
        assert from_stream.expected_cost == over_http["expected_cost"]
        assert [r.model_dump() for r in from_stream.reasons] == over_http["reasons"]
        alerts += from_stream.decision.value != "approve"
    assert alerts > 0, "the comparison must cover alerts too"
    assert_every_path_decides_with_the_served_costs(served, sent, streamed, tmp_path)


def assert_every_path_decides_with_the_served_costs(
    served: Served, sent: list[dict], streamed: dict[str, Decision], tmp_path: Path
) -> None:
    """After a change of costs (the graph serves ``SERVED_COSTS``, not the training run's), batch
    scoring (``fraud-ray score``) decides each transaction as the stream did, every decision
    records the costs it was made with, and monitoring prices the logged decisions with them."""
    settings = served.settings
    policy = CostPolicy.from_settings(settings.costs)
    trained = CostPolicy.from_settings(CostSettings())
    probabilities = np.array([streamed[t["transaction_id"]].fraud_probability for t in sent])
    amounts = np.array([t["amount"] for t in sent])
    changed = policy.decide(probabilities, amounts)[0] != trained.decide(probabilities, amounts)[0]
    assert changed.any(), "the new costs must change some decisions, or the test shows nothing"
    for decision in streamed.values():
        assert decision.costs.model_dump() == settings.costs.model_dump()

    file = tmp_path / "sent.parquet"
    frame = pd.DataFrame(sent).assign(timestamp=lambda f: pd.to_datetime(f["timestamp"]))
    frame.to_parquet(file, index=False)
    model, _ = Registry(settings.mlflow).load(f"@{settings.serving.model_alias}")
    mapping = DatasetMapping(
        id=TRANSACTION_ID, time="timestamp", card="card_id", terminal="terminal_id", amount="amount"
    )
    out = tmp_path / "scored.parquet"
    score_file(file, model, policy, out, settings.features, mapping)
    scored = pd.read_parquet(out).set_index(TRANSACTION_ID)
    for t in sent:
        from_stream = streamed[t["transaction_id"]]
        batch = scored.loc[t["transaction_id"]]
        assert batch["fraud_probability"] == pytest.approx(from_stream.fraud_probability, abs=1e-6)
        assert batch["decision"] == from_stream.decision.value

    log = DecisionLog(settings.decisions.url)
    ids = [t["transaction_id"] for t in sent]
    logged = log.frame().set_index(TRANSACTION_ID).loc[ids]
    assert (logged["review_cost"] == settings.costs.review_cost).all()
    assert (logged["decline_cost"] == settings.costs.decline_cost).all()
    labels = [(i, int(k % 7 == 0)) for k, i in enumerate(ids)]
    log.record_labels(labels)
    report = Monitor(settings, log).performance(START, START + timedelta(days=1))
    fraud = np.array([label for _, label in labels])
    expected = policy.realised_cost(logged["decision"].to_numpy(), amounts, fraud).sum()
    mine = log.frame(START, START + timedelta(days=1))
    others = mine[~mine[TRANSACTION_ID].isin(ids) & mine["is_fraud"].notna()]
    assert others.empty, "only this test's transactions are labelled in its window"
    realised = sum(day.realised_cost or 0.0 for day in report.days)
    assert realised == pytest.approx(expected)


def test_the_alert_and_decision_endpoints_read_the_log(served: Served) -> None:
    stream = stream_for(served, pool_size=1)
    sent = transactions(stream.prefix, 400, seed=5)
    produce_transactions(stream, sent)
    pool = ConsumerPool(stream.settings)
    pool.start()
    try:
        wait_until_consumed(stream, pool)
    finally:
        pool.stop()
    log = DecisionLog(served.settings.decisions.url)
    analyst = {"Authorization": f"Bearer {served.settings.serving.analyst_token}"}
    with httpx.Client(base_url=served.url, timeout=60, headers=analyst) as client:
        first = client.get("/api/v1/alerts", params={"limit": 3}).json()
        second = client.get("/api/v1/alerts", params={"limit": 3, "before": first["next"]}).json()
        one = sent[0]["transaction_id"]
        found = client.get(f"/api/v1/decisions/{one}")
        missing = client.get(f"/api/v1/decisions/{stream.prefix}-never-sent")
        bad_cursor = client.get("/api/v1/alerts", params={"before": "nonsense"})
    try:
        expected = log.alerts(6)
        assert [a["decision"]["transaction_id"] for a in first["alerts"] + second["alerts"]] == [
            a.transaction_id for a in expected
        ]
        assert all(a["decision"]["decision"] != "approve" for a in first["alerts"])
        assert found.status_code == 200
        logged = log.get(one)
        assert logged is not None
        assert found.json()["decision"]["fraud_probability"] == logged.decision.fraud_probability
        assert found.json()["card_id"] == sent[0]["card_id"]
    finally:
        log.close()
    assert missing.status_code == 404 and "never-sent" in missing.json()["message"]
    assert bad_cursor.status_code == 422 and "before" in bad_cursor.json()["message"]


def test_ingest_command_drains_on_sigterm(served: Served) -> None:
    """``python ingest.py`` joins the running Ray and Serve app, and SIGTERM ends it cleanly."""
    stream = stream_for(served)
    sent = transactions(stream.prefix, 500, seed=6)
    produce_transactions(stream, sent)
    kafka = stream.kafka
    env = {
        **os.environ,
        "RAY_ADDRESS": ray.get_runtime_context().gcs_address,
        "FRAUD_RAY_DECISIONS_URL": served.settings.decisions.url,
        "FRAUD_RAY_KAFKA_DECISIONS_TOPIC": kafka.decisions_topic,
        "FRAUD_RAY_KAFKA_ALERTS_TOPIC": kafka.alerts_topic,
        "FRAUD_RAY_KAFKA_DLQ_TOPIC": kafka.dlq_topic,
        "FRAUD_RAY_KAFKA_CONSUMER_CPUS": "0.2",
    }
    command = [
        sys.executable,
        str(ROOT / "ingest.py"),
        "--bootstrap",
        kafka.bootstrap,
        "--topic",
        kafka.transactions_topic,
        "--group",
        kafka.group,
        "--pool-size",
        "1",
        "--app-name",
        served.settings.serving.app_name,
        "--report-every",
        "1",
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until_consumed(stream)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=DEADLINE_S)
    text = output.decode()
    assert process.returncode == 0, text
    assert "drained" in text and "500 decided" in text
    assert set(logged_ids(served.settings.decisions.url, stream.prefix)) == {
        t["transaction_id"] for t in sent
    }


def queried_metrics() -> set[str]:
    """Every metric the shipped Grafana dashboard and Prometheus alert rules query."""
    deploy = ROOT / "deploy"
    text = (deploy / "grafana" / "fraud-ray.json").read_text()
    text += (deploy / "prometheus" / "alerts.yml").read_text()
    return set(re.findall(r"\b(ray_(?:serve|fraud_ray)_[a-z_]+)", text))


# Ray's agent forgets a gauge series not set again for two export intervals (10 s each).
RAY_GAUGE_TTL_S = 20.0

# Exported only when something goes wrong (the decision log unreachable).
ONLY_ON_FAILURE = {
    "ray_fraud_ray_decision_log_dropped_total",
    "ray_fraud_ray_decision_log_failed_flushes_total",
}


def test_every_metric_the_dashboards_query_is_exported(served: Served) -> None:
    """The metric names the README, the Grafana dashboard and the alert rules use are what Ray's
    metrics agent serves, once the graph has answered HTTP and a stream, and measured drift."""
    stream = stream_for(served, pool_size=1)
    produce_transactions(stream, transactions(stream.prefix, 300, seed=7))
    pool = ConsumerPool(stream.settings)
    pool.start()
    try:
        wait_until_consumed(stream, pool)
        with httpx.Client(base_url=served.url, timeout=60) as client:
            answer = client.post("/api/v1/predict/single", json=transactions("metrics", 1)[0])
            assert answer.status_code == 200, answer.text
            drift = client.get(
                "/api/v1/monitoring/drift",
                headers={"Authorization": f"Bearer {served.settings.serving.analyst_token}"},
            )
            assert drift.status_code == 200, drift.text
        measured_at = time.monotonic()
        port = next(node["MetricsExportPort"] for node in ray.nodes() if node["Alive"])
        wanted = queried_metrics() - ONLY_ON_FAILURE
        topic = f'topic="{stream.kafka.transactions_topic}"'
        deadline = time.monotonic() + DEADLINE_S
        while True:
            # Ray exports every few seconds: wait for this test's own lag, not an earlier test's.
            exported, lag_lines = scrape(port)
            ours = any(topic in line for line in lag_lines)
            if (wanted <= exported and ours) or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert len(wanted) > 10, f"the dashboards query too little: {sorted(wanted)}"
        assert wanted <= exported, f"missing {sorted(wanted - exported)}"
        assert ours, f"no lag of {topic} among {lag_lines}"
        # Values set once (the drift verdict, an idle consumer's last batch) are still there
        # after Ray's agent would have forgotten them, so an alert rule on them can fire.
        time.sleep(max(0.0, measured_at + RAY_GAUGE_TTL_S + 5 - time.monotonic()))
        exported, _ = scrape(port)
        assert wanted <= exported, f"forgotten {sorted(wanted - exported)}"
    finally:
        pool.stop()


def scrape(port: int) -> tuple[set[str], list[str]]:
    """The metric names a node's agent exports, and its consumer lag lines."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    exported = {line.split("{")[0] for line in text.splitlines() if line[:1] != "#"}
    lag_lines = [
        line for line in text.splitlines() if line.startswith("ray_fraud_ray_consumer_lag")
    ]
    return exported, lag_lines


@pytest.mark.parametrize(
    ("raised", "away"),
    [
        (RayTaskError("decide_for_log", "tb", ValueError("model refuses")), False),
        (RayTaskError("decide_for_log", "tb", redis.exceptions.ConnectionError("down")), True),
        (RayTaskError("decide_for_log", "tb", ActorDiedError()), True),
        (GetTimeoutError("late"), True),
    ],
)
def test_the_graphs_errors_are_told_apart_from_a_batchs_fault(
    raised: Exception, away: bool
) -> None:
    """A service behind the graph that is away retries the batch as it is; anything else the
    replica raised is the batch's fault, which isolates the message in it."""
    error = raised.as_instanceof_cause() if isinstance(raised, RayTaskError) else raised
    with pytest.raises(Unavailable if away else ValueError), graph_errors():
        raise error


def test_an_unreachable_log_is_away_and_a_refused_value_is_the_batchs_fault(
    postgres_url: str,
) -> None:
    unreachable = DecisionLog(postgres_url)
    unreachable.engine = sa.create_engine(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/x")
    with pytest.raises(Unavailable, match="the decision log"), log_errors():
        unreachable.logged(["a"])
    log = DecisionLog(postgres_url)
    try:
        with pytest.raises(sa.exc.DataError), log_errors(), log.engine.connect() as connection:
            connection.execute(sa.text("select cast('x' as integer)"))
    finally:
        log.close()


def test_http_answers_while_the_decision_log_is_away_and_logs_every_decision_when_it_returns(
    served: Served, postgres: OwnServer
) -> None:
    """PostgreSQL stopped: predictions answer as before, the failed writes are counted, and the
    decisions waiting in the ingress are all written once the database is back."""
    batch = transactions(f"away{uuid.uuid4().hex[:6]}", 200)
    ids = [t["transaction_id"] for t in batch]
    port = next(node["MetricsExportPort"] for node in ray.nodes() if node["Alive"])
    with postgres.stopped(), httpx.Client(base_url=served.url, timeout=60) as client:
        for first in range(0, len(batch), 50):
            answer = client.post(
                "/api/v1/predict/batch", json={"transactions": batch[first : first + 50]}
            )
            assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + DEADLINE_S
        while "ray_fraud_ray_decision_log_failed_flushes_total" not in scrape(port)[0]:
            assert time.monotonic() < deadline, "no failed write was counted while it was away"
            time.sleep(2)
    log = DecisionLog(served.settings.decisions.url)
    try:
        deadline = time.monotonic() + DEADLINE_S
        while len(logged := log.logged(ids)) < len(ids) and time.monotonic() < deadline:
            time.sleep(1)
        assert sorted(logged) == sorted(ids)
    finally:
        log.close()
