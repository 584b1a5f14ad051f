"""The fault run: the stream through a killed consumer, a broker restart and a database outage.

50,000 transactions (``--transactions``) with 1% poison of several kinds are produced in four
waves to a pool of two consumers serving through the Serve graph into a PostgreSQL decision log.
While each of the first three waves is being consumed, one fault: a consumer actor killed
mid-batch, the Kafka broker stopped and started again, PostgreSQL stopped for 10 s. Printed and
written to docs/benchmarks.md: how many transactions were decided, logged and dead-lettered, the
duplicates the decisions topic carries (at-least-once: a batch replayed after a fault is produced
again, and the log keeps one row per id), the lag at the end, and for each fault how long the
stream logged nothing after it ended.

Needs a model: a small one is trained into a scratch registry first (a minute or two), unless
--tracking-uri names a registry whose alias champion is the model to serve. The broker and the
database are private ones started by scripts/kafka.sh and scripts/postgres.sh, since the run stops
them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import ray
import sqlalchemy as sa
from confluent_kafka import Consumer, Message
from ray import serve
from report import write_section
from stream import consumed, free_port, model_settings, payloads, produce, topics_for

from fraud_ray.decision_log import DecisionLog, decisions_table
from fraud_ray.schema import TRANSACTION_ID
from fraud_ray.serving.graph import build_graph
from fraud_ray.settings import Settings
from fraud_ray.streaming.codec import decode_decision, header_map
from fraud_ray.streaming.pool import ConsumerPool

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
# One of each kind the stream must dead-letter without stalling its partition.
POISON = [
    b"{not json",
    b'["a", 1]',
    b'{"transaction_id": "p", "timestamp": "2025-06-02T08:00:00Z"}',
    b'{"transaction_id": "p", "timestamp": "2025-06-02T08:00:00Z", "amount": -5}',
    b'{"transaction_id": "p", "timestamp": "9999-12-31T23:00-05:00", "amount": 5}',
    b'{"transaction_id": "p", "timestamp": "2199-06-01T00:00:00Z", "amount": 5}',
    b'{"transaction_id": "p\\u0000q", "timestamp": "2025-06-02T08:00:00Z", "amount": 5}',
    b'{"transaction_id": "p", "timestamp": "2025-06-02T08:00:00Z", "amount": 5e-324}',
]
OUTAGE_S = 10.0
DEADLINE_S = 600.0


class Service:
    """A private server run by one of ``scripts/``, stopped and started by the run."""

    def __init__(self, script: str, env: dict[str, str]) -> None:
        self.script = str(SCRIPTS / script)
        self.env = {**os.environ, **env}

    def run(self, command: str) -> str:
        done = subprocess.run(
            [self.script, command], env=self.env, check=True, capture_output=True, text=True
        )
        return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


@contextmanager
def services(scratch: Path) -> Iterator[tuple[Service, str, Service, str]]:
    """A broker and a database of the run's own: (broker, bootstrap, database, its URL)."""
    port, controller = free_port(), free_port()
    kafka = Service(
        "kafka.sh",
        {
            "KAFKA_PORT": str(port),
            "KAFKA_CONTROLLER_PORT": str(controller),
            "KAFKA_DIR": str(scratch / "kafka"),
        },
    )
    # As root the server runs as the user postgres, which needs a folder it can enter.
    folder = Path(tempfile.mkdtemp(prefix="bench-faults-postgres-"))
    postgres = Service(
        "postgres.sh", {"POSTGRES_PORT": str(free_port()), "POSTGRES_DIR": str(folder)}
    )
    kafka.run("start")
    try:
        url = postgres.run("start")
        try:
            yield kafka, f"127.0.0.1:{port}", postgres, url
        finally:
            postgres.run("stop")
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        kafka.run("stop")


def logged(engine: sa.Engine, prefix: str) -> int | None:
    """How many of the run's transactions the log holds; None while it cannot be asked."""
    column = decisions_table.c[TRANSACTION_ID]
    query = sa.select(sa.func.count()).where(column.like(f"{prefix}-%"))
    try:
        with engine.connect() as connection:
            return int(connection.execute(query).scalar_one())
    except sa.exc.OperationalError:
        return None


def wait_for(engine: sa.Engine, prefix: str, count: int) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while (logged(engine, prefix) or 0) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {count} decisions logged in {DEADLINE_S:.0f} s")
        time.sleep(0.2)


def silence_after(engine: sa.Engine, prefix: str, since: float) -> float:
    """Seconds from ``since`` until the log holds one more of the run's decisions."""
    before = logged(engine, prefix) or 0
    deadline = since + DEADLINE_S
    while time.monotonic() < deadline:
        now = logged(engine, prefix)
        if now is not None and now > before:
            return time.monotonic() - since
        time.sleep(0.1)
    raise TimeoutError(f"nothing logged for {DEADLINE_S:.0f} s after a fault")


def topic_counts(
    bootstrap: str, topic: str, expected: int, identity: Callable[[Message], object]
) -> tuple[int, int]:
    """(messages, distinct identities) of ``topic``, read until ``expected`` distinct ones are
    seen and the topic has been quiet for 5 s, so duplicates after them are counted too."""
    reader = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"faults-reader-{time.time_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    reader.subscribe([topic])
    total, seen = 0, set()
    last = started = time.monotonic()
    try:
        while (len(seen) < expected or time.monotonic() - last < 5) and (
            time.monotonic() - started < DEADLINE_S
        ):
            message = reader.poll(0.5)
            if message is None or message.error() is not None:
                continue
            last = time.monotonic()
            total += 1
            seen.add(identity(message))
    finally:
        reader.close()
    return total, len(seen)


def source_of(message: Message) -> tuple[str, str]:
    headers = header_map(message.headers())
    return headers["source.partition"], headers["source.offset"]


def fault_run(
    settings: Settings, kafka: Service, postgres: Service, transactions: int
) -> tuple[dict[str, int], dict[str, float]]:
    settings = topics_for(settings, partitions=4)
    prefix = settings.kafka.group.removesuffix("-group")
    valid = payloads(prefix, transactions)
    pool = ConsumerPool(settings)
    engine = DecisionLog(settings.decisions.url).engine

    def kill_a_consumer() -> None:
        ray.kill(pool.actors[0], no_restart=False)

    def restart_the_broker() -> None:
        kafka.run("stop")
        kafka.run("start")

    def stop_the_database() -> None:
        postgres.run("stop")
        time.sleep(OUTAGE_S)
        postgres.run("start")

    faults: list[tuple[str, Callable[[], None] | None]] = [
        ("consumer killed", kill_a_consumer),
        ("broker restarted", restart_the_broker),
        (f"PostgreSQL stopped {OUTAGE_S:.0f} s", stop_the_database),
        ("none", None),
    ]
    quarter = len(valid) // len(faults)
    poisoned = 0
    silences: dict[str, float] = {}
    pool.start()
    started = time.monotonic()
    try:
        for wave, (name, fault) in enumerate(faults):
            messages = []
            for i, message in enumerate(valid[wave * quarter : (wave + 1) * quarter]):
                messages.append(message)
                if i % 100 == 99:
                    poison = POISON[poisoned % len(POISON)]
                    messages.append((f"poison-{poisoned}", message[1], poison))
                    poisoned += 1
            produce(settings.kafka.bootstrap, settings.kafka.transactions_topic, messages, None)
            if fault is not None:
                wait_for(engine, prefix, wave * quarter + quarter // 3)
                fault()
                silences[name] = silence_after(engine, prefix, time.monotonic())
                print(f"{name}: logging resumed {silences[name]:.1f} s after", flush=True)
        deadline = time.monotonic() + DEADLINE_S
        while not consumed(settings) and time.monotonic() < deadline:
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        lag_zero = consumed(settings)
    finally:
        pool.stop()
    kafka_settings = settings.kafka
    decisions, decided = topic_counts(
        kafka_settings.bootstrap,
        kafka_settings.decisions_topic,
        len(valid),
        lambda message: decode_decision(message.value()).transaction_id,
    )
    _, dead = topic_counts(kafka_settings.bootstrap, kafka_settings.dlq_topic, poisoned, source_of)
    counts = {
        "valid transactions sent": len(valid),
        "poison messages sent": poisoned,
        "decided (distinct ids on the decisions topic)": decided,
        "logged (rows in the decision log)": logged(engine, prefix) or 0,
        "decision messages (with replays after faults)": decisions,
        "dead-lettered (distinct source offsets)": dead,
        "lag 0 at the end": int(lag_zero),
    }
    engine.dispose()
    return counts, silences | {"whole run": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=50_000)
    parser.add_argument("--tracking-uri", help="a registry with a champion (default: train one)")
    options = parser.parse_args()

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as folder:
        scratch = Path(folder)
        ray.init(include_dashboard=False, log_to_driver=False)
        with services(scratch) as (kafka, bootstrap, postgres, url):
            settings = model_settings(scratch, options.tracking_uri)
            settings = settings.model_copy(
                update={
                    "kafka": settings.kafka.model_copy(
                        update={"bootstrap": bootstrap, "pool_size": 2, "batch_size": 1000}
                    ),
                    "decisions": settings.decisions.model_copy(update={"url": url}),
                }
            )
            serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
            serve.run(build_graph(settings), name=settings.serving.app_name, route_prefix="/")
            load = os.getloadavg()[0]
            counts, seconds = fault_run(settings, kafka, postgres, options.transactions)
            serve.shutdown()
        ray.shutdown()

    print(json.dumps({"counts": counts, "seconds": seconds}, indent=2))
    count_rows = "\n".join(f"| {name} | {value:,} |" for name, value in counts.items())
    second_rows = "\n".join(f"| {name} | {value:,.1f} |" for name, value in seconds.items())
    write_section(
        "faults",
        f"""## Fault run: a killed consumer, a broker restart, a database outage

{options.transactions:,} transactions with 1% poison ({len(POISON)} kinds), four waves, a fault
while each of the first three is consumed; pool of 2 consumers, batches of 1,000, PostgreSQL
decision log:

| count | measured |
|---|---|
{count_rows}

Seconds from the end of each fault until the log took a decision again, and the whole run:

| fault | seconds |
|---|---|
{second_rows}

The machine's 1-minute load average when the run started was {load:.1f} on {os.cpu_count()} cores.""",
    )


if __name__ == "__main__":
    main()
