"""The ``fraud-ray`` command: every job behind one entry point, with progress and readable errors."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fraud_ray.data import DataValidationError
from fraud_ray.schema import DatasetMapping, MappingError
from fraud_ray.settings import Settings, SettingsError, load_settings

app = typer.Typer(
    help="Real-time card-fraud detection on Ray.", no_args_is_help=True, add_completion=False
)
console = Console()


class State:
    config: Path | None = None


@app.callback()
def main(
    config: Annotated[
        Path | None,
        typer.Option(help="Settings YAML (default: $FRAUD_RAY_CONFIG or configs/default.yaml)."),
    ] = None,
) -> None:
    State.config = config


def settings(**overrides: object) -> Settings:
    """The settings for this command; a bad file or value ends the command with its key named."""
    try:
        return load_settings(State.config, **overrides)
    except SettingsError as error:
        fail(str(error))


def fail(message: str) -> NoReturn:
    console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code=2)


def load_mapping(path: Path | None) -> DatasetMapping | None:
    if path is None:
        return None
    try:
        return DatasetMapping.from_yaml(path)
    except MappingError as error:
        fail(str(error))


@app.command()
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

    base = settings()
    chosen = {"customers": customers, "terminals": terminals, "days": days, "seed": seed}
    if start is not None:
        try:
            chosen["start"] = date.fromisoformat(start)
        except ValueError:
            fail(f"--start: {start!r} is not a date like 2025-04-01")
    overrides = {key: value for key, value in chosen.items() if value is not None}
    simulator = base.simulator.model_copy(update=overrides)
    target = out or base.data.raw_dir
    with _progress() as progress:
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


@app.command()
def features(
    data: Annotated[Path | None, typer.Option(help="Transactions (default: data.raw_dir).")] = None,
    mapping: Annotated[Path | None, typer.Option(help="Dataset mapping YAML.")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default: data.features_dir).")
    ] = None,
) -> None:
    """Compute the offline features of a transaction history with Ray Data, point-in-time correct."""
    from fraud_ray.features.distributed import write_features
    from fraud_ray.runtime import init_ray

    base = settings()
    source = data or base.data.raw_dir
    if not source.exists():
        fail(f"--data: {source} does not exist (run `fraud-ray simulate` first?)")
    dataset_mapping = load_mapping(mapping or base.data.mapping)
    init_ray(base)
    try:
        summary = write_features(
            source, out or base.data.features_dir, base.features, dataset_mapping
        )
    except (DataValidationError, FileExistsError) as error:
        # A Ray task's error carries the worker traceback; the user needs only the original line.
        fail(str(getattr(error, "cause", None) or error))
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


@app.command()
def settings_show() -> None:
    """Print the settings in force, after the YAML file and FRAUD_RAY_* variables."""
    console.print_json(json.dumps(settings().model_dump(mode="json")))


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


if __name__ == "__main__":
    app()
