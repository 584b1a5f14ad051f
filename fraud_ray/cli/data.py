"""``fraud-ray simulate``, ``features`` and ``mapping suggest``: transactions, their offline
features, and how a file's columns map onto them."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fraud_ray.cli.common import (
    DataOption,
    MappingOption,
    console,
    existing,
    fail,
    given,
    load_mapping,
    progress_bars,
    settings,
    user_errors,
)


def simulate(
    customers: Annotated[int | None, typer.Option(min=1)] = None,
    terminals: Annotated[int | None, typer.Option(min=1)] = None,
    days: Annotated[int | None, typer.Option(min=1)] = None,
    start: Annotated[str | None, typer.Option(help="First day, YYYY-MM-DD.")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: data.raw_dir).")] = None,
) -> None:
    """Simulate card transactions with three fraud scenarios, as Parquet partitioned by day."""
    from fraud_ray.simulator import write_simulation

    first_day = None
    if start is not None:
        try:
            first_day = date.fromisoformat(start)
        except ValueError:
            fail(f"--start: {start!r} is not a date like 2025-04-01")
    chosen = given(customers=customers, terminals=terminals, days=days, seed=seed, start=first_day)
    base = settings(simulator=chosen)
    simulator = base.simulator
    target = out or base.data.raw_dir
    with progress_bars() as progress:
        task = progress.add_task("simulating days", total=simulator.days)
        summary = write_simulation(
            simulator, target, on_day=lambda day, rows: progress.advance(task)
        )
    table = Table(title=f"Simulated transactions in {target}", show_header=False)
    table.add_row("days", f"{summary.first_day} .. {summary.last_day} ({summary.days})")
    table.add_row("transactions", f"{summary.transactions:,}")
    table.add_row("frauds", f"{summary.frauds:,} ({summary.fraud_rate:.2%})")
    for scenario, count in sorted(summary.by_scenario.items()):
        table.add_row(f"  scenario {scenario}", f"{count:,}")
    table.add_row("seconds", f"{summary.seconds:.1f}")
    console.print(table)


def features(
    data: DataOption = None,
    mapping: MappingOption = None,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default: data.features_dir).")
    ] = None,
) -> None:
    """Compute the offline features of a transaction history with Ray Data, point-in-time correct."""
    from fraud_ray.features.distributed import write_features
    from fraud_ray.runtime import init_ray

    base = settings()
    source = existing(data or base.data.raw_dir)
    dataset_mapping = load_mapping(mapping or base.data.mapping)
    init_ray(base)
    with user_errors(FileExistsError):
        summary = write_features(
            source, out or base.data.features_dir, base.features, dataset_mapping
        )
    console.print(
        f"[bold]{summary.rows:,} transactions[/bold], {len(summary.stats)} features "
        f"in {summary.seconds:.1f} s -> {summary.out}"
    )
    table = Table(title="Feature statistics")
    table.add_column("feature", no_wrap=True, min_width=27)
    for column in ("missing", "mean", "std", "min", "max"):
        table.add_column(column, justify="right")
    for name, stats in summary.stats.items():
        table.add_row(
            name, *(f"{stats[key]:,.3f}" for key in ("missing", "mean", "std", "min", "max"))
        )
    console.print(table)


def mapping_suggest(
    data: Annotated[Path, typer.Option(help="A CSV or Parquet file of transactions.")],
) -> None:
    """Propose a dataset mapping from the file's header and first rows, each guess commented;
    check it, then save it (`> mapping.yaml`) and pass it as --mapping."""
    from fraud_ray.mapping import read_sample, suggest_mapping

    with user_errors(FileNotFoundError):
        suggestion = suggest_mapping(read_sample(data))
    print(suggestion.yaml(data), end="")
