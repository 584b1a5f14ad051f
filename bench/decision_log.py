"""Decision-log write rate on SQLite and PostgreSQL: rows per second for batches of decisions.

The streaming path writes one batch of decisions per consumed batch of transactions, before it
commits its Kafka offsets, so this rate bounds what one consumer can push through. Each figure is
the best of a few rounds of fresh transactions; "replayed" writes the same batch again, which the
log must absorb (a consumer restarted before its offsets were committed). PostgreSQL is a private
server started by scripts/postgres.sh unless --postgres names one; its durability settings are the
defaults (every commit waits for the WAL flush).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path

from report import write_section

from fraud_ray.decision_log import DecisionLog, metadata
from fraud_ray.schema import (
    Action,
    Decision,
    DecisionRecord,
    Fees,
    ModelRef,
    Reason,
    Transaction,
)

POSTGRES_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "postgres.sh"
START = datetime(2025, 6, 1, tzinfo=UTC)


def batch(first: int, size: int) -> tuple[list[DecisionRecord], list[Transaction], list[dict]]:
    """Decisions as the graph hands them to the log (``DecisionRecord``): two reasons and a full
    feature row each, and one ``scored_at`` for the batch, which the graph scores at once."""
    ids = range(first, first + size)
    transactions = [
        Transaction(
            transaction_id=f"tx-{i}",
            timestamp=START + timedelta(seconds=i),
            card_id=f"card-{i % 5000}",
            terminal_id=f"terminal-{i % 10000}",
            amount=5.0 + i % 200,
        )
        for i in ids
    ]
    decisions: list[DecisionRecord] = [
        Decision(
            transaction_id=f"tx-{i}",
            fraud_probability=(i % 1000) / 1000,
            decision=(Action.APPROVE, Action.APPROVE, Action.REVIEW, Action.DECLINE)[i % 4],
            expected_cost=(i % 50) / 10,
            reasons=[
                Reason(feature="amount", description="amount 120.00", contribution=0.8),
                Reason(
                    feature="terminal_fraud_rate_30d", description="rate 0.04", contribution=0.3
                ),
            ],
            model=ModelRef(name="fraud-ray", version="3"),
            costs=Fees(review_cost=5.0, decline_cost=15.0),
            scored_at=START + timedelta(seconds=first, milliseconds=3),
            latency_ms=4.0,
        ).model_dump(mode="json")
        for i in ids
    ]
    features = [
        {f"feature_{k}": math.nan if (i + k) % 11 == 0 else float(i % 97 + k) for k in range(21)}
        for i in ids
    ]
    return decisions, transactions, features


def rates(url: str, batch_size: int, total: int, rounds: int) -> tuple[float, float]:
    """(new rows/s, replayed rows/s), best of ``rounds``, each round ``total`` rows."""
    new, replayed = [], []
    for round_ in range(rounds):
        log = DecisionLog(url)
        metadata.drop_all(log.engine)
        metadata.create_all(log.engine)
        batches = [batch(round_ * total + b, batch_size) for b in range(0, total, batch_size)]
        started = time.perf_counter()
        written = sum(log.write(*one) for one in batches)
        new.append(total / (time.perf_counter() - started))
        started = time.perf_counter()
        again = sum(log.write(*one) for one in batches)
        replayed.append(total / (time.perf_counter() - started))
        if (written, again) != (total, 0):
            raise RuntimeError(f"wrote {written} then {again} rows of {total}")
        log.close()
    return max(new), max(replayed)


@contextmanager
def private_postgres() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    directory = tempfile.mkdtemp(prefix="fraud-ray-bench-postgres-")
    env = {**os.environ, "POSTGRES_PORT": str(port), "POSTGRES_DIR": directory}
    try:
        started = subprocess.run(
            [str(POSTGRES_SCRIPT), "start"], env=env, capture_output=True, text=True, check=False
        )
        if started.returncode != 0:
            raise SystemExit(started.stderr or started.stdout)
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([str(POSTGRES_SCRIPT), "stop"], env=env, capture_output=True, check=False)
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", help="a PostgreSQL SQLAlchemy URL; default: a private server")
    options = parser.parse_args()
    load = os.getloadavg()[0]
    results = []
    server = nullcontext(options.postgres) if options.postgres else private_postgres()
    with tempfile.TemporaryDirectory() as scratch, server as postgres:
        for name, url in (
            ("SQLite", f"sqlite:///{scratch}/decisions.db"),
            ("PostgreSQL", postgres),
        ):
            for size in options.batch_sizes:
                new, replayed = rates(url, size, options.rows, options.rounds)
                results.append((name, size, new, replayed))
                print(f"{name} batch {size:,}: {new:,.0f} rows/s new, {replayed:,.0f} replayed")
    lines = [
        "## Decision log: write rate",
        "",
        f"{options.rows:,} decisions per round (two reasons and 21 features each), best of "
        f"{options.rounds} rounds; one `DecisionLog.write` per batch, one transaction each.",
        "",
        "| backend | batch | new rows/s | replayed rows/s |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {size:,} | {new:,.0f} | {replayed:,.0f} |"
        for name, size, new, replayed in results
    ]
    lines += [
        "",
        f"Load average when the run started: {load:.1f} (the figures fall as other work shares the "
        "cores). PostgreSQL runs with its default durability: every batch waits for a WAL flush.",
    ]
    body = "\n".join(lines)
    print(body)
    write_section("decision_log", body)


if __name__ == "__main__":
    main()
