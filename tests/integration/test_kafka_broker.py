"""The test broker is a real Kafka: keyed messages, transactions and a restart behave as in production.

The streaming path relies on all three: ordering per card, read_committed consumers that never see an
aborted batch, and nothing lost or duplicated when the broker goes down and comes back.
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaError, Message, Producer

from .conftest import KafkaBroker

# Only a bound against a hung test: a healthy broker answers in well under a second.
DEADLINE_S = 60.0


def topic() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def producer(bootstrap: str, **config: object) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, **config})


def consumer(bootstrap: str, **config: object) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"group-{uuid.uuid4().hex[:12]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **config,
        }
    )


def produce(client: Producer, name: str, messages: list[tuple[str, str]]) -> None:
    """Produce and wait for every delivery report, failing on the first error a report carries."""
    errors: list[KafkaError] = []

    def report(error: KafkaError | None, _: Message) -> None:
        if error is not None:
            errors.append(error)

    for key, value in messages:
        client.produce(name, key=key, value=value, on_delivery=report)
    assert client.flush(DEADLINE_S) == 0, "messages still undelivered"
    assert errors == []


def consume(client: Consumer, name: str, count: int) -> list[tuple[str, str, int]]:
    """``count`` messages as (key, value, partition), or fewer if the deadline passes first."""
    client.subscribe([name])
    received: list[tuple[str, str, int]] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(received) < count and time.monotonic() < deadline:
        message = client.poll(0.5)
        if message is None:
            continue
        assert message.error() is None, message.error()
        received.append((message.key().decode(), message.value().decode(), message.partition()))
    return received


def test_keyed_messages_keep_their_order_per_key(kafka_bootstrap: str) -> None:
    name = topic()
    messages = [(f"card-{i % 5}", f"payment-{i}") for i in range(200)]
    produce(producer(kafka_bootstrap), name, messages)

    reader = consumer(kafka_bootstrap)
    received = consume(reader, name, len(messages))
    reader.close()

    assert sorted(value for _, value, _ in received) == sorted(value for _, value in messages)
    for card in {key for key, _ in messages}:
        sent = [value for key, value in messages if key == card]
        assert [value for key, value, _ in received if key == card] == sent
        assert len({p for key, _, p in received if key == card}) == 1


def test_read_committed_sees_committed_transactions_only(kafka_bootstrap: str) -> None:
    name = topic()
    writer = producer(kafka_bootstrap, **{"transactional.id": f"tx-{uuid.uuid4().hex[:12]}"})
    writer.init_transactions(DEADLINE_S)
    committed = [(f"card-{i}", f"committed-{i}") for i in range(10)]
    aborted = [(f"card-{i}", f"aborted-{i}") for i in range(10)]
    writer.begin_transaction()
    produce(writer, name, committed)
    writer.commit_transaction(DEADLINE_S)
    writer.begin_transaction()
    produce(writer, name, aborted)
    writer.abort_transaction(DEADLINE_S)
    # Committed after the aborted batch: a reader that let aborted messages through would meet
    # them before it had read as many messages as were committed.
    last = [(f"card-{i}", f"last-{i}") for i in range(10)]
    writer.begin_transaction()
    produce(writer, name, last)
    writer.commit_transaction(DEADLINE_S)

    committed_reader = consumer(kafka_bootstrap, **{"isolation.level": "read_committed"})
    seen_committed = consume(committed_reader, name, len(committed) + len(last))
    committed_reader.close()
    uncommitted_reader = consumer(kafka_bootstrap, **{"isolation.level": "read_uncommitted"})
    seen_uncommitted = consume(uncommitted_reader, name, len(committed + aborted + last))
    uncommitted_reader.close()

    assert sorted(value for _, value, _ in seen_committed) == sorted(
        value for _, value in committed + last
    )
    # The aborted batch did reach the log: it is the isolation level that hides it.
    assert sorted(value for _, value, _ in seen_uncommitted) == sorted(
        value for _, value in committed + aborted + last
    )


def test_messages_and_offsets_survive_a_broker_restart(kafka_broker: KafkaBroker) -> None:
    name = topic()
    group = f"group-{uuid.uuid4().hex[:12]}"
    writer = producer(kafka_broker.bootstrap)
    before = [(f"card-{i % 3}", f"before-{i}") for i in range(30)]
    produce(writer, name, before)
    reader = consumer(kafka_broker.bootstrap, **{"group.id": group})
    first_half = consume(reader, name, 15)
    reader.commit(asynchronous=False)
    reader.close()

    with kafka_broker.stopped():
        # Produced while the broker is down: the client keeps these until it comes back.
        during = [(f"card-{i % 3}", f"during-{i}") for i in range(30)]
        for key, value in during:
            writer.produce(name, key=key, value=value)
        writer.poll(1.0)
    after = [(f"card-{i % 3}", f"after-{i}") for i in range(30)]
    produce(writer, name, after)

    resumed = consumer(kafka_broker.bootstrap, **{"group.id": group})
    rest = consume(resumed, name, len(before + during + after) - len(first_half))
    resumed.close()

    assert len(first_half) == 15
    values = [value for _, value, _ in first_half + rest]
    # The committed offsets survived: the group resumes where it stopped, with no gap and no repeat.
    assert sorted(values) == sorted(value for _, value in before + during + after)
    assert len(values) == len(set(values))
