"""Streaming throughput and end-to-end latency: Kafka -> consumer pool -> Serve graph -> Kafka.

Maximum rate: a pool starts and settles (every partition assigned, no rebalance pending), then a
backlog of transactions is produced at once; the rate is the backlog over the time between its
first and last decision messages, and the run ends when the group has committed every offset.
Latency: transactions produced at half that rate to a settled pool, whose first seconds are kept
apart as its warm-up; a transaction's latency is its decision message's timestamp minus its own
(both CreateTime, set by the producers on this machine's clock). Twice, each by a new pool: on a
broker started for the run, the first paced run is where the broker's JVM compiles the code of
small, steady requests (about 11 s of compile time in one run, against 2.5 s in the second: the
pool falls seconds behind it); the second is what a long-running broker gives.

A backlog of 10,000 goes through a pool first, unmeasured: a broker started for the run
compiles its code (JIT) on its first backlog, seconds of CPU that would otherwise be counted
against whichever measured run came first (the pool's, against the plain loop's after it).

CPU: during the maximum-rate run, the CPU time of every process of the run (each consumer, each
Serve replica, Ray's own processes, the broker, this driver, which produces the backlog) is read
from /proc and divided by the transactions. The same backlog is then decided by the plain
reference (bench/plain_stream.py: the same loop in one Python process, no Ray) against the same
broker, for its maximum rate and CPU per transaction beside the pool's.

Needs a model: a small one is trained into a scratch registry first (a minute or two), unless
--tracking-uri names a registry whose alias champion is the model to serve. Kafka is a private
broker started by scripts/kafka.sh, or FRAUD_RAY_KAFKA_BOOTSTRAP; the decision log is SQLite in the
scratch folder unless --decisions names another URL.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import plain_stream
import ray
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from cpu import CpuUse, snapshot, used_between
from ray import serve
from report import write_section

from fraud_ray.serving.graph import build_graph
from fraud_ray.settings import KafkaSettings, ServingSettings, Settings, SimulatorSettings
from fraud_ray.simulator import write_simulation
from fraud_ray.streaming.loop import LoopStats
from fraud_ray.streaming.pool import ConsumerPool
from fraud_ray.training.job import train

KAFKA_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "kafka.sh"
START = datetime(2025, 6, 2, tzinfo=UTC)
TICK_S = 0.005
WARMUP_BACKLOG = 10_000
DRIVER, BROKER, PLAIN = "bench driver", "Kafka broker", "plain loop"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def broker(scratch: Path) -> Iterator[tuple[str, int | None]]:
    """The bootstrap address and, for a broker started here, its pid (to read its CPU time)."""
    if bootstrap := os.environ.get("FRAUD_RAY_KAFKA_BOOTSTRAP"):
        yield bootstrap, None
        return
    port, controller = free_port(), free_port()
    env = {
        **os.environ,
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(controller),
        "KAFKA_DIR": str(scratch / "kafka"),
    }
    subprocess.run([str(KAFKA_SCRIPT), "start"], env=env, check=True, capture_output=True)
    try:
        yield f"127.0.0.1:{port}", int((scratch / "kafka" / "kafka.pid").read_text())
    finally:
        subprocess.run([str(KAFKA_SCRIPT), "stop"], env=env, check=True, capture_output=True)


def payloads(prefix: str, count: int, cards: int = 5000) -> list[tuple[str, bytes, bytes]]:
    """(transaction_id, key, value) of ``count`` transactions on ``cards`` cards."""
    rng = np.random.default_rng(0)
    amounts = rng.gamma(2, 25, count) + 0.01
    out = []
    for i in range(count):
        card = f"{prefix}-card-{i % cards}"
        body = {
            "transaction_id": f"{prefix}-tx-{i}",
            "timestamp": (START + timedelta(milliseconds=50 * i)).isoformat(),
            "card_id": card,
            "terminal_id": f"{prefix}-terminal-{(7 * i) % 10000}",
            "amount": round(float(amounts[i]), 2),
        }
        out.append((body["transaction_id"], card.encode(), json.dumps(body).encode()))
    return out


def topics_for(settings: Settings, partitions: int) -> Settings:
    prefix = f"b{uuid.uuid4().hex[:8]}"
    kafka = settings.kafka.model_copy(
        update={
            "transactions_topic": f"{prefix}.transactions",
            "decisions_topic": f"{prefix}.decisions",
            "alerts_topic": f"{prefix}.alerts",
            "dlq_topic": f"{prefix}.dlq",
            "group": f"{prefix}-group",
        }
    )
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    names = [kafka.transactions_topic, kafka.decisions_topic, kafka.alerts_topic]
    for future in admin.create_topics([NewTopic(n, partitions, 1) for n in names]).values():
        future.result(timeout=60)
    return settings.model_copy(update={"kafka": kafka})


def produce(
    bootstrap: str, topic: str, messages: list[tuple[str, bytes, bytes]], rate: float | None
) -> dict[str, int]:
    """Produce, paced to ``rate`` messages/s if given; returns each transaction's CreateTime (ms).

    Paced in ticks of ``TICK_S``: each tick sends the messages due by then. A sleep per message
    kept this process busy enough, on 2 cores, to slow down the pool it was measuring.
    """
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    stamps: dict[str, int] = {}
    started = time.perf_counter()
    sent = 0
    while sent < len(messages):
        due = len(messages)
        if rate is not None:
            due = min(due, int((time.perf_counter() - started) * rate) + 1)
        now_ms = int(time.time() * 1000)
        for transaction_id, key, value in messages[sent:due]:
            producer.produce(topic, value=value, key=key, timestamp=now_ms)
            stamps[transaction_id] = now_ms
        sent = due
        producer.poll(0)
        if sent < len(messages):
            time.sleep(TICK_S)
    producer.flush(120)
    return stamps


def consumed(settings: Settings) -> bool:
    kafka = settings.kafka
    reader = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": kafka.group})
    try:
        meta = reader.list_topics(kafka.transactions_topic, timeout=30)
        parts = [
            TopicPartition(kafka.transactions_topic, p)
            for p in meta.topics[kafka.transactions_topic].partitions
        ]
        committed = reader.committed(parts, timeout=30)
        return all(
            max(tp.offset, 0) == reader.get_watermark_offsets(tp, timeout=30)[1] for tp in committed
        )
    finally:
        reader.close()


def settle(pool: ConsumerPool, partitions: int, timeout_s: float = 120.0) -> None:
    """Wait until the group has handed out every partition (to every consumer, when there are
    enough) and kept it so for a second: a rebalance inside a measurement pauses consumption."""
    deadline = time.monotonic() + timeout_s
    previous = None
    while time.monotonic() < deadline:
        assigned = [sorted(stats.assigned) for stats in pool.stats()]
        whole = sum(map(len, assigned)) == partitions
        shared = all(assigned) or pool.size > partitions
        if whole and shared and assigned == previous:
            return
        previous = assigned if whole and shared else None
        time.sleep(1.0)
    raise TimeoutError(f"the group did not settle on {partitions} partitions in {timeout_s} s")


@dataclass(frozen=True)
class Run:
    """One backlog decided: the rate, where the consumers' time went (seconds summed over
    consumers, by step), and the CPU each group of processes used meanwhile."""

    transactions: int
    rate: float
    stages: dict[str, float]
    cpu: CpuUse


def with_batches(settings: Settings, pool_size: int, batch: int) -> Settings:
    kafka = settings.kafka.model_copy(update={"pool_size": pool_size, "batch_size": batch})
    return settings.model_copy(update={"kafka": kafka})


def rate_of(settings: Settings, count: int) -> float:
    """Transactions/s between the first and the last decision message's timestamps, so the
    seconds it takes to start the consumers and assign them partitions do not count."""
    stamps = np.array(list(decision_times(settings, count).values()), dtype=float)
    return (len(stamps) - 1) / ((stamps.max() - stamps.min()) / 1000)


def drain_backlog(settings: Settings, backlog: list[tuple[str, bytes, bytes]]) -> None:
    kafka = settings.kafka
    produce(kafka.bootstrap, kafka.transactions_topic, backlog, None)
    while not consumed(settings):
        time.sleep(0.2)


def max_rate(
    settings: Settings,
    count: int,
    pool_size: int,
    batch: int,
    partitions: int,
    broker_pid: int | None = None,
) -> Run:
    """A settled pool given a backlog at once.

    CPU is read from every process below this driver (Ray's, which ray.init started) and the
    broker's, from just before the backlog is produced until the group has committed it all.
    """
    settings = with_batches(topics_for(settings, partitions), pool_size, batch)
    backlog = payloads(settings.kafka.group, count)
    named = {os.getpid(): DRIVER} | ({broker_pid: BROKER} if broker_pid else {})
    pool = ConsumerPool(settings)
    pool.start()
    try:
        settle(pool, partitions)
        before = snapshot(named, os.getpid())
        drain_backlog(settings, backlog)
        after = snapshot(named, os.getpid())
    finally:
        drained = pool.stop()
    return Run(count, rate_of(settings, count), summed_stages(drained), used_between(before, after))


def plain_rate(
    settings: Settings, count: int, batch: int, partitions: int, broker_pid: int | None
) -> Run:
    """The same backlog decided by the plain reference, in a process of its own so that its CPU
    is its own; spawned, not forked, since this process runs Ray's threads."""
    settings = with_batches(topics_for(settings, partitions), 1, batch)
    backlog = payloads(settings.kafka.group, count)
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    process = context.Process(
        target=plain_stream.run, args=(settings, partitions, ready, stop), name="plain-stream"
    )
    process.start()
    try:
        if not ready.wait(300):
            raise TimeoutError("the plain loop did not join its group in 300 s")
        assert process.pid is not None
        named = {os.getpid(): DRIVER, process.pid: PLAIN} | (
            {broker_pid: BROKER} if broker_pid else {}
        )
        before = snapshot(named)
        drain_backlog(settings, backlog)
        after = snapshot(named)
    finally:
        stop.set()
        process.join(120)
    return Run(count, rate_of(settings, count), {}, used_between(before, after))


def decision_times(settings: Settings, count: int) -> dict[str, int]:
    """Each transaction's first decision message's timestamp (ms), read from ``decisions``."""
    kafka = settings.kafka
    reader = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap,
            "group.id": f"{kafka.group}-reader",
            "auto.offset.reset": "earliest",
        }
    )
    reader.subscribe([kafka.decisions_topic])
    seen: dict[str, int] = {}
    while len(seen) < count:
        message = reader.poll(5)
        if message is None:
            break
        if message.error() is None:
            tx = json.loads(message.value())["transaction_id"]
            seen.setdefault(tx, message.timestamp()[1])
    reader.close()
    return seen


@dataclass(frozen=True)
class Paced:
    """One paced run: latencies (ms) after the warm-up and during it, how the consumers' batches
    went (``paced_batches``), and the broker's JIT compile seconds meanwhile (None: not known)."""

    measured: np.ndarray
    warming: np.ndarray
    batches: str
    compile_s: float | None

    @property
    def percentiles(self) -> tuple[float, float]:
        p50, p99 = np.percentile(self.measured, [50, 99])
        return float(p50), float(p99)


def jit_seconds(pid: int | None) -> float | None:
    """Seconds the JVM of ``pid`` (the broker) has spent compiling, from ``jstat -compiler``;
    None without a broker of this run or a JDK's jstat."""
    if pid is None:
        return None
    try:
        shown = subprocess.run(
            ["jstat", "-compiler", str(pid)], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        return float(shown[1].split()[3])
    except (OSError, subprocess.CalledProcessError, IndexError, ValueError):
        return None


def jit_since(pid: int | None, before: float | None) -> float | None:
    """The broker's JIT compile seconds since ``before`` (``jit_seconds``); None: not known."""
    now = jit_seconds(pid)
    return None if now is None or before is None else now - before


def jit_phrase(seconds: float | None) -> str:
    if seconds is None:
        return "broker JIT compile time not known"
    return f"broker JIT compile {seconds:.1f} s"


def latencies(
    settings: Settings,
    rate: float,
    seconds: float,
    partitions: int,
    warmup_s: float,
    broker_pid: int | None,
) -> Paced:
    """Latencies of ``seconds`` of transactions at ``rate``, after ``warmup_s`` of the same
    stream, whose own latencies are kept apart: how fast a fresh pool catches up with it."""
    settings = topics_for(settings, partitions)
    kafka = settings.kafka
    pool = ConsumerPool(settings)
    pool.start()
    compiled_before = jit_seconds(broker_pid)
    try:
        settle(pool, partitions)
        warmup = int(rate * warmup_s)
        messages = payloads(kafka.group, warmup + int(rate * seconds))
        stamps = produce(kafka.bootstrap, kafka.transactions_topic, messages, rate)
        while not consumed(settings):
            time.sleep(0.2)
    finally:
        drained = pool.stop()
    compile_s = jit_since(broker_pid, compiled_before)
    seen = decision_times(settings, len(stamps))
    every = np.array([seen[tx] - stamps[tx] for tx, _, _ in messages], dtype=float)
    return Paced(every[warmup:], every[:warmup], paced_batches(drained), compile_s)


def summed_stages(drained: list[LoopStats]) -> dict[str, float]:
    """Each step's seconds, summed over the consumers."""
    stages: dict[str, float] = {}
    for stats in drained:
        for stage, seconds in stats.stage_seconds.items():
            stages[stage] = stages.get(stage, 0.0) + seconds
    return stages


def paced_batches(drained: list[LoopStats]) -> str:
    """Batches, their mean size and each step's milliseconds per batch over a paced stream: a
    latency is the wait for a batch to fill plus the steps of the batch it is in."""
    batches = sum(stats.batches for stats in drained)
    if not batches:
        return "no batches"
    stages = summed_stages(drained)
    decided = sum(stats.decided for stats in drained)
    steps = ", ".join(
        f"{stage} {1000 * seconds / batches:.0f}" for stage, seconds in stages.items()
    )
    failed = sum(stats.failed_batches for stats in drained)
    errors = sorted({stats.last_error for stats in drained if stats.last_error})
    retried = f"; {failed} failed and retried ({'; '.join(errors)})" if failed else ""
    return (
        f"{batches} batches of {decided / batches:,.0f} transactions; ms per batch: {steps}"
        f"{retried}"
    )


def by_second(latencies_ms: np.ndarray, rate: float, percentile: float = 50) -> str:
    """A percentile of the latencies in each second of a paced stream."""
    per_second = max(int(rate), 1)
    return ", ".join(
        f"{np.percentile(latencies_ms[start : start + per_second], percentile):,.0f}"
        for start in range(0, len(latencies_ms), per_second)
    )


def describe_paced(run: Paced, rate: float) -> str:
    """The figures of a paced run, in one line for the console and the section alike."""
    p50, p99 = run.percentiles
    return (
        f"latency at {rate:,.0f} tx/s: p50 {p50:,.0f} ms, p99 {p99:,.0f} ms; "
        f"{jit_phrase(run.compile_s)}; "
        f"p50 in each second of the warm-up (ms): {by_second(run.warming, rate)}; "
        f"p99 in each second after it (ms): {by_second(run.measured, rate, 99)}"
    )


def model_settings(scratch: Path, tracking_uri: str | None) -> Settings:
    settings = Settings(
        data={"raw_dir": scratch / "raw"},
        mlflow={
            "tracking_uri": tracking_uri or f"sqlite:///{scratch / 'mlflow.db'}",
            "artifact_location": str(scratch / "artifacts"),
        },
        split={"train_days": 14},
        training={"num_boost_round": 60, "families": ["xgboost"], "trials": 1},
        decisions={"url": f"sqlite:///{scratch / 'decisions.db'}"},
    )
    if tracking_uri is None:
        write_simulation(
            SimulatorSettings(customers=400, terminals=800, days=90), settings.data.raw_dir
        )
        train(settings, settings.data.raw_dir, trials=1)
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=50_000)
    parser.add_argument("--pool-size", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=KafkaSettings().batch_size)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--warmup-seconds", type=float, default=10.0)
    parser.add_argument("--grid-transactions", type=int, default=10_000)
    parser.add_argument("--tracking-uri", help="a registry with a champion (default: train one)")
    parser.add_argument("--decisions", help="decision log URL (default: SQLite in scratch)")
    parser.add_argument(
        "--fuse-steps",
        action=argparse.BooleanOptionalAction,
        default=ServingSettings().fuse_steps,
        help="serve the graph with serving.fuse_steps (written to its own section)",
    )
    parser.add_argument(
        "--grid", action=argparse.BooleanOptionalAction, default=True, help="pool x batch grid"
    )
    parser.add_argument(
        "--overlap",
        action=argparse.BooleanOptionalAction,
        default=KafkaSettings().overlap,
        help="kafka.overlap: a consumer's next graph call overlaps writing out its last batch",
    )
    parser.add_argument(
        "--plain",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also decide the backlog in the plain reference process (bench/plain_stream.py)",
    )
    parser.add_argument(
        "--write",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write the figures into docs/benchmarks.md (--no-write: print them only)",
    )
    options = parser.parse_args()

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as folder:
        scratch = Path(folder)
        # A new cluster of its own: without an address, ray.init joins any `ray start` head on
        # the machine (a test's), and would measure, and deploy into, somebody else's.
        ray.init(address="local", include_dashboard=False, log_to_driver=False)
        with broker(scratch) as (bootstrap, broker_pid):
            settings = model_settings(scratch, options.tracking_uri)
            updates = {
                "kafka": settings.kafka.model_copy(
                    update={"bootstrap": bootstrap, "overlap": options.overlap}
                ),
                "serving": settings.serving.model_copy(update={"fuse_steps": options.fuse_steps}),
            }
            if options.decisions:
                updates["decisions"] = settings.decisions.model_copy(
                    update={"url": options.decisions}
                )
            settings = settings.model_copy(update=updates)
            serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
            serve.run(build_graph(settings), name=settings.serving.app_name, route_prefix="/")

            # Unmeasured: the broker started for this run compiles its code (JIT) on its first
            # backlog, seconds of CPU that would land in whichever measured run came first.
            compiled = jit_seconds(broker_pid)
            max_rate(
                settings, WARMUP_BACKLOG, options.pool_size, options.batch_size, options.partitions
            )
            print(f"warm-up backlog: {jit_phrase(jit_since(broker_pid, compiled))}", flush=True)
            compiled = jit_seconds(broker_pid)
            load = os.getloadavg()[0]
            pooled = max_rate(
                settings,
                options.transactions,
                options.pool_size,
                options.batch_size,
                options.partitions,
                broker_pid,
            )
            print(
                f"max rate {pooled.rate:,.0f} tx/s (load {load:.2f}); "
                f"{jit_phrase(jit_since(broker_pid, compiled))}",
                flush=True,
            )
            print(pooled.cpu.table(pooled.transactions, (DRIVER,)), flush=True)
            print(
                "consumers' seconds by step: "
                + ", ".join(f"{stage} {seconds:.1f}" for stage, seconds in pooled.stages.items()),
                flush=True,
            )
            plain = None
            if options.plain:
                plain_load = os.getloadavg()[0]
                compiled = jit_seconds(broker_pid)
                plain = plain_rate(
                    settings,
                    options.transactions,
                    options.batch_size,
                    options.partitions,
                    broker_pid,
                )
                print(
                    f"plain loop: max rate {plain.rate:,.0f} tx/s (load {plain_load:.2f}); "
                    f"{jit_phrase(jit_since(broker_pid, compiled))}",
                    flush=True,
                )
                print(plain.cpu.table(plain.transactions, (DRIVER,)), flush=True)
            # Twice: a broker started for this run compiles the paced stream's code paths (its
            # JIT) during the first, which a long-running broker has done long before.
            paced: list[Paced] = []
            for broker_state in ("broker just started", "same broker, warm"):
                latency_load = os.getloadavg()[0]
                paced.append(
                    latencies(
                        with_batches(settings, options.pool_size, options.batch_size),
                        pooled.rate / 2,
                        options.latency_seconds,
                        options.partitions,
                        options.warmup_seconds,
                        broker_pid,
                    )
                )
                print(f"{broker_state}: {describe_paced(paced[-1], pooled.rate / 2)}", flush=True)
                print(f"  (load {latency_load:.2f}); at the paced rate: {paced[-1].batches}")
            grid = []
            for pool_size in (1, 2, 4) if options.grid else ():
                for batch in (250, 1000, 4000):
                    measured = max_rate(
                        settings, options.grid_transactions, pool_size, batch, options.partitions
                    ).rate
                    print(f"pool {pool_size} batch {batch}: {measured:,.0f} tx/s", flush=True)
                    grid.append((pool_size, batch, measured))
            serve.shutdown()
        ray.shutdown()

    if options.write:
        write_section(
            "stream-fused" if options.fuse_steps else "stream",
            section(options, pooled, plain, paced, grid, load),
            script="stream",
        )


def per_tx_us(run: Run) -> float:
    """CPU-us per transaction of everything but the bench driver, the load generator, which does
    the same work for both."""
    return run.cpu.total((DRIVER,)) / run.transactions * 1e6


def section(
    options: argparse.Namespace,
    pooled: Run,
    plain: Run | None,
    paced: list[Paced],
    grid: list[tuple[int, int, float]],
    load: float,
) -> str:
    fresh, warm = paced
    p50, p99 = warm.percentiles
    rate = pooled.rate
    rows = "\n".join(f"| {p} | {b:,} | {r:,.0f} |" for p, b, r in grid)
    grid_table = f"""
Pool size against batch size ({options.grid_transactions:,} backlogged transactions each):

| consumers | batch | transactions/s |
|---|---|---|
{rows}
"""
    graph = "fused steps (2 deployments)" if options.fuse_steps else "4 deployments"
    busy = sum(pooled.stages.values())
    where = "\n".join(
        f"| {stage} | {seconds:,.1f} | {seconds / busy:.0%} |"
        for stage, seconds in pooled.stages.items()
    )
    reference = (
        f"""
The same backlog decided by the plain reference (`bench/plain_stream.py`: the same loop in one
Python process, no Ray), against the same broker, in the same run: {plain.rate:,.0f} tx/s,
{per_tx_us(plain):,.0f} CPU-us a transaction against the pool's {per_tx_us(pooled):,.0f}
({per_tx_us(pooled) / per_tx_us(plain):.2f}x; goal <= 1.5x; both without the bench driver, which
produces the backlog):

{plain.cpu.table(plain.transactions, (DRIVER,))}
"""
        if plain is not None
        else ""
    )
    return f"""## Streaming: Kafka -> consumer pool -> Serve graph ({graph}) -> Kafka

{options.transactions:,} transactions backlogged on {options.partitions} partitions, pool of
{options.pool_size} consumers, batches of {options.batch_size:,}, decision log
{"on " + options.decisions.split(":")[0] if options.decisions else "on SQLite"}, latency measured
over {options.latency_seconds:.0f} s after {options.warmup_seconds:.0f} s of the same paced stream, by
a fresh pool, twice: the goal is read on the second, when the broker (started for this run) has
compiled the paced stream's code; the first shows what a broker just started costs:

| figure | measured | goal |
|---|---|---|
| sustained transactions/s, `transactions` -> `decisions` (and log, and commit) | {rate:,.0f} | >= 20,000 |
| end-to-end latency p50 at {rate / 2:,.0f} tx/s (50% of max) | {p50:,.0f} ms | |
| end-to-end latency p99 at {rate / 2:,.0f} tx/s | {p99:,.0f} ms | < 1,000 ms |

- broker just started: {describe_paced(fresh, rate / 2)}.
- same broker, warm: {describe_paced(warm, rate / 2)}.
- the consumers' batches at the paced rate (warm): {warm.batches}.

Where the consumers' time went during the maximum-rate run (seconds summed over consumers;
`graph` is the wait for the Serve graph's answer, including moving the batch there and the
decisions back; with `kafka.overlap` ({options.overlap}), only what is left of it once the batch
before is written out):

| step | seconds | share |
|---|---|---|
{where}

CPU time of each group of processes during the maximum-rate run, per transaction:

{pooled.cpu.table(pooled.transactions, (DRIVER,))}
{reference}
The machine's 1-minute load average when the run started was {load:.1f} on {os.cpu_count()} cores
(other work shares it), so these figures are a floor for an idle machine.
{grid_table if grid else ""}"""


if __name__ == "__main__":
    main()
