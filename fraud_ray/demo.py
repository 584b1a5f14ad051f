"""The end-to-end demo (``fraud-ray demo``, ``make demo``): everything fraud-ray does, on one machine.

Simulate -> tune a champion and a challenger -> serve the graph -> start a Kafka broker and the
ingestion pool -> replay the last simulated days as a stream, with the amounts of the last day
shifted -> send the labels that are past the label delay -> summarise what the dashboard shows.

Everything the demo writes lives under one folder (``data/demo``), cleared at the start, so that it
neither reads nor spoils the data, registry or decision log of ``make run``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Group, RenderableType

from fraud_ray.schema import AMOUNT, CARD_ID, LABEL, TERMINAL_ID, TIMESTAMP, TRANSACTION_ID
from fraud_ray.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
KAFKA_SCRIPT = ROOT / "scripts" / "kafka.sh"
FEEDBACK_CHUNK = 50_000

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class DemoOptions:
    folder: Path
    customers: int
    days: int
    replay_days: int
    trials: int
    amount_shift: float


def demo_settings(base: Settings, folder: Path, run: str) -> Settings:
    """The settings in force, with every path the demo writes moved under ``folder`` and topics
    and a consumer group of this ``run`` only: a broker kept from an earlier run holds its
    messages and committed offsets, which must not leak into a fresh decision log."""
    folder = folder.resolve()
    kafka = base.kafka
    topics = {
        name: f"demo-{run}.{getattr(kafka, name)}"
        for name in ("transactions_topic", "decisions_topic", "alerts_topic", "dlq_topic")
    }
    return base.updated(
        {
            "kafka": {**topics, "group": f"fraud-ray-demo-{run}"},
            "data": {"raw_dir": folder / "raw", "features_dir": folder / "features"},
            "mlflow": {
                "tracking_uri": f"sqlite:///{folder / 'mlflow.db'}",
                "artifact_location": str(folder / "artifacts"),
            },
            "decisions": {"url": f"sqlite:///{folder / 'decisions.db'}"},
            "monitoring": {"reports_dir": str(folder / "monitoring")},
        }
    )


def replay_frame(raw: Path, days: int, amount_shift: float) -> pd.DataFrame:
    """The last ``days`` days of the simulation in time order, as the stream will carry them, with
    the amounts of the last day multiplied by ``amount_shift``: the drift the monitor must find."""
    frame = pd.read_parquet(raw)
    frame[TIMESTAMP] = pd.to_datetime(frame[TIMESTAMP], utc=True)
    last_day = frame[TIMESTAMP].max().normalize()
    frame = frame[frame[TIMESTAMP] >= last_day - timedelta(days=days - 1)]
    frame = frame.sort_values([TIMESTAMP, TRANSACTION_ID], kind="stable").reset_index(drop=True)
    shifted = frame[TIMESTAMP] >= last_day
    frame.loc[shifted, AMOUNT] = (frame.loc[shifted, AMOUNT] * amount_shift).round(2)
    return frame


def messages(frame: pd.DataFrame) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) per transaction: JSON of the transaction schema, keyed by card."""
    columns = [TRANSACTION_ID, CARD_ID, TERMINAL_ID, AMOUNT]
    for tx, card, terminal, amount, moment in zip(
        *(frame[c].tolist() for c in columns), frame[TIMESTAMP].tolist(), strict=True
    ):
        body = {
            TRANSACTION_ID: str(tx),
            TIMESTAMP: moment.isoformat(),
            CARD_ID: str(card),
            TERMINAL_ID: str(terminal),
            AMOUNT: float(amount),
        }
        yield str(card).encode(), json.dumps(body).encode()


def labels_between(frame: pd.DataFrame, start: datetime, end: datetime) -> list[tuple[str, int]]:
    """(transaction_id, is_fraud) of the transactions in [start, end): the labels that arrive
    once ``end`` is the label delay behind the stream."""
    window = frame[(frame[TIMESTAMP] >= start) & (frame[TIMESTAMP] < end)]
    return list(zip(window[TRANSACTION_ID].astype(str), window[LABEL].astype(int), strict=True))


@contextmanager
def kafka_broker(bootstrap: str) -> Iterator[None]:
    """A broker for the demo: the one already running, else ``scripts/kafka.sh`` starts one and
    stops it afterwards."""
    if subprocess.run([KAFKA_SCRIPT, "status"], capture_output=True, check=False).returncode == 0:
        yield
        return
    started = subprocess.run([KAFKA_SCRIPT, "start"], capture_output=True, text=True, check=False)
    if started.returncode != 0:
        raise RuntimeError(f"could not start Kafka for {bootstrap}: {started.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run([KAFKA_SCRIPT, "stop"], capture_output=True, check=False)


def fresh(folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def wait_for(
    done: Callable[[], int], total: int, progress: Progress, label: str, stall_s: float
) -> None:
    """Report ``done()`` against ``total`` until they meet; a count that stops moving for
    ``stall_s`` is an error, not a wait forever."""
    last, moved = -1, time.monotonic()
    while (count := done()) < total:
        if count != last:
            last, moved = count, time.monotonic()
        elif time.monotonic() - moved > stall_s:
            raise RuntimeError(
                f"{label}: stuck at {count:,} of {total:,} for {stall_s:.0f} s; the consumers' "
                "errors are in the Ray logs (/tmp/ray/session_latest/logs/worker-*.err)"
            )
        progress(label, count, total)
        time.sleep(0.5)
    progress(label, total, total)


@dataclass(frozen=True)
class DemoResult:
    settings: Settings
    url: str
    replayed: int
    labelled: int


def summary(result: DemoResult) -> RenderableType:
    """What the dashboard shows, for the terminal: performance, drift and the challenger."""
    from fraud_ray.monitoring.monitor import Monitor, NotEnoughData
    from fraud_ray.monitoring.tables import comparison_table, drift_table, performance_table

    monitor = Monitor(result.settings)
    parts: list[RenderableType] = [
        f"replayed {result.replayed:,} transactions through Kafka; "
        f"{result.labelled:,} labels sent as each day came past the label delay",
        performance_table(monitor.performance()),
    ]
    try:
        parts.append(drift_table(monitor.drift()))
    except NotEnoughData as error:
        parts.append(f"drift: {error}")
    comparison = monitor.comparison()
    if comparison is not None:
        parts.append(comparison_table(comparison))
    parts.append(f"[bold]dashboard: {result.url}/dashboard[/bold]")
    return Group(*parts)


@contextmanager
def running_demo(
    options: DemoOptions, base: Settings, say: Callable[[str], None], progress: Progress
) -> Iterator[DemoResult]:
    """Build the whole system from nothing and replay a stream through it; inside the ``with``
    the graph, the pool and the broker keep running (the dashboard stays up), and leaving it
    drains the pool and stops them."""
    from ray import serve

    from fraud_ray.runtime import init_ray
    from fraud_ray.simulator import write_simulation
    from fraud_ray.training.job import train

    fresh(options.folder)
    settings = demo_settings(base, options.folder, run=time.strftime("%Y%m%d%H%M%S")).updated(
        {
            "simulator": {
                "customers": options.customers,
                "terminals": 2 * options.customers,
                "days": options.days,
            }
        }
    )
    simulator = settings.simulator
    raw = Path(settings.data.raw_dir)
    say(f"simulating {options.customers:,} customers for {options.days} days into {raw}")
    write_simulation(
        simulator,
        raw,
        lambda day, _: progress("simulate", (day - simulator.start).days + 1, options.days),
    )

    say(f"tuning the champion: {options.trials} trials")
    champion = train(settings, raw, trials=options.trials)
    say(f"champion: {champion.registered.uri}")
    challenger_settings = settings.updated(
        {"training": {"families": ["lightgbm"], "seed": settings.training.seed + 1}}
    )
    challenger = train(challenger_settings, raw, trials=1, alias="challenger")
    say(f"challenger (scored in shadow): {challenger.registered.uri}")

    with kafka_broker(settings.kafka.bootstrap):
        init_ray(settings)
        try:
            yield from _serve_and_replay(options, settings, say, progress)
        finally:
            serve.shutdown()


def _serve_and_replay(
    options: DemoOptions, settings: Settings, say: Callable[[str], None], progress: Progress
) -> Iterator[DemoResult]:
    from ray import serve

    from fraud_ray.serving.graph import build_graph
    from fraud_ray.streaming.pool import ConsumerPool

    serving = settings.serving
    serve.start(http_options={"host": serving.host, "port": serving.port})
    serve.run(build_graph(settings), name=serving.app_name, route_prefix="/")
    url = f"http://{serving.host}:{serving.port}"
    say(f"serving on {url}")

    frame = replay_frame(Path(settings.data.raw_dir), options.replay_days, options.amount_shift)
    pool = ConsumerPool(settings)
    pool.start()
    try:
        yield _replay(frame, settings, url, say, progress)
    finally:
        pool.stop()


def _replay(
    frame: pd.DataFrame,
    settings: Settings,
    url: str,
    say: Callable[[str], None],
    progress: Progress,
) -> DemoResult:
    """Day by day, as a bank lives it: the day's transactions go through Kafka and are decided,
    then the labels that have just come past the label delay are sent to the app, so the
    terminals' fraud rates build up during the replay as they would in production."""
    import httpx
    from confluent_kafka import Producer

    from fraud_ray.decision_log import DecisionLog

    kafka = settings.kafka
    say(f"ingestion pool of {kafka.pool_size} consumers on {kafka.transactions_topic}")
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "linger.ms": 20})
    log = DecisionLog(settings.decisions.url)
    delay = settings.features.label_delay
    days = frame[TIMESTAMP].dt.normalize()
    labelled_until = frame[TIMESTAMP].min()
    sent = labelled = 0
    with httpx.Client(base_url=url, timeout=300) as client:
        for i, (day, today) in enumerate(frame.groupby(days, sort=True), start=1):
            _produce(producer, kafka.transactions_topic, today, kafka.bootstrap)
            sent += len(today)
            wait_for(log.count, sent, progress, "decided", kafka.graph_timeout_s * 2)
            known_until = day + timedelta(days=1) - delay
            labelled += _send_labels(client, labels_between(frame, labelled_until, known_until))
            labelled_until = max(labelled_until, known_until)
            progress("days replayed", i, days.nunique())
    return DemoResult(settings, url, sent, labelled)


def _produce(producer: Any, topic: str, frame: pd.DataFrame, bootstrap: str) -> None:
    for key, value in messages(frame):
        while True:
            try:
                producer.produce(topic, value=value, key=key)
                break
            except BufferError:  # the local queue is full: let the broker catch up
                producer.poll(0.5)
    if producer.flush(120):
        raise RuntimeError(f"the broker at {bootstrap} did not take the replay")


def _send_labels(client: Any, labels: list[tuple[str, int]]) -> int:
    for start in range(0, len(labels), FEEDBACK_CHUNK):
        chunk = labels[start : start + FEEDBACK_CHUNK]
        body = {"labels": [{"transaction_id": t, "is_fraud": y} for t, y in chunk]}
        client.post("/api/v1/feedback", json=body).raise_for_status()
    return len(labels)
