"""What every command shares: the console, the common options, the settings, and failing readably.

A command that fails says why on one line and exits with status 2, without a traceback.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fraud_ray.schema import DatasetMapping, MappingError
from fraud_ray.settings import Settings, SettingsError, load_settings

console = Console()

ConfigOption = Annotated[
    Path | None,
    typer.Option(help="Settings YAML (default: $FRAUD_RAY_CONFIG or configs/default.yaml)."),
]

DataOption = Annotated[
    Path | None,
    typer.Option(help="Transactions: a folder or a CSV/Parquet file (default: data.raw_dir)."),
]
MappingOption = Annotated[
    Path | None, typer.Option(help="Dataset mapping YAML (default: data.mapping).")
]

StartOption = Annotated[
    str | None, typer.Option(help="From this ISO date or date-time of transaction time.")
]
EndOption = Annotated[
    str | None,
    typer.Option(help="Until this ISO date or date-time of transaction time (exclusive)."),
]


class State:
    config: Path | None = None


def settings(base: Settings | None = None, **changes: dict[str, object]) -> Settings:
    """The settings for this command (``base``, else those loaded) with its options, such as
    ``kafka={"pool_size": 4}``, merged in; a bad file, value or combination of them ends the
    command with the key named."""
    try:
        return (base or load_settings(State.config)).updated(changes)
    except SettingsError as error:
        fail(str(error))


def given(**options: object) -> dict[str, object]:
    """The options the user gave: an option left out keeps the setting's value."""
    return {name: value for name, value in options.items() if value is not None}


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


def existing(path: Path) -> Path:
    if not path.exists():
        fail(f"--data: {path} does not exist (run `fraud-ray simulate` first?)")
    return path


def moment(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 date or date-time; naive values are UTC, like every time in fraud-ray."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option}: {value!r} is not an ISO 8601 date or date-time")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def json_default(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def progress_bars() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
