"""``fraud-ray ingest``: the Kafka ingestion pool in front of a running Serve graph."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from fraud_ray.cli.common import console, fail, given, settings


def ingest(
    bootstrap: Annotated[
        str | None, typer.Option(help="Kafka bootstrap servers (default: kafka.bootstrap).")
    ] = None,
    topic: Annotated[
        str | None, typer.Option(help="Topic of transactions (default: kafka.transactions_topic).")
    ] = None,
    pool_size: Annotated[
        int | None, typer.Option(min=1, help="Consumer actors (default: kafka.pool_size).")
    ] = None,
    group: Annotated[
        str | None, typer.Option(help="Consumer group (default: kafka.group).")
    ] = None,
    exactly_once: Annotated[
        bool | None,
        typer.Option(
            "--exactly-once/--at-least-once",
            help="Kafka transactions for decisions and offsets (default: kafka.exactly_once).",
        ),
    ] = None,
    app_name: Annotated[
        str | None,
        typer.Option(help="The running Serve application to feed (default: serving.app_name)."),
    ] = None,
    report_every: Annotated[
        float, typer.Option(min=0.1, help="Seconds between two progress lines.")
    ] = 10.0,
) -> None:
    """Feed Kafka transactions through the running Serve graph until SIGTERM, then drain.

    Joins the Ray cluster where the Serve application runs: ray.address, else $RAY_ADDRESS, else
    the cluster `ray start` started on this machine. Decisions go to kafka.decisions_topic,
    kafka.alerts_topic and the decision log (decisions.url); malformed messages to
    kafka.dlq_topic.
    """
    from fraud_ray.runtime import init_ray
    from fraud_ray.streaming.loop import LoopStats
    from fraud_ray.streaming.pool import GraphNotRunning, PoolNotStarted, run_until_signalled

    base = settings(
        kafka=given(
            bootstrap=bootstrap,
            transactions_topic=topic,
            pool_size=pool_size,
            group=group,
            exactly_once=exactly_once,
        ),
        serving=given(app_name=app_name),
    )
    if base.ray.address is None:
        # The graph runs in a Ray cluster already: join it, never start a private one.
        base = settings(base, ray={"address": os.environ.get("RAY_ADDRESS") or "auto"})
    kafka, serving = base.kafka, base.serving
    try:
        init_ray(base)
    except ConnectionError as error:
        fail(
            f"no Ray cluster at {base.ray.address} ({error}): start one with `ray start "
            "--head` and the graph with `serve run serve_app:graph`, or set ray.address"
        )
    console.print(
        f"ingesting {kafka.transactions_topic} from {kafka.bootstrap} with {kafka.pool_size} "
        f"consumers in group {kafka.group} into Serve app {serving.app_name!r} "
        f"({'exactly-once' if kafka.exactly_once else 'at-least-once'}); SIGTERM or Ctrl-C drains"
    )

    def report(stats: list[LoopStats]) -> None:
        decided = sum(s.decided for s in stats)
        lag = sum(sum(s.lag.values()) for s in stats)
        dead = sum(s.dead_lettered for s in stats)
        console.print(f"{decided:,} decided, {dead:,} dead-lettered, lag {lag:,}", highlight=False)

    try:
        final = run_until_signalled(base, report, report_every)
    except (GraphNotRunning, PoolNotStarted) as error:
        fail(str(error))
    report(final)
    console.print("drained: every batch in hand was committed")
