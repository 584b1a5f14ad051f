"""What every command shares: the console, the common options, the settings, and failing readably.

A command that fails says why on one line and exits with status 2, without a traceback (unless
``--verbose``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fraud_ray.data import DataValidationError
from fraud_ray.durations import DurationError, parse_duration
from fraud_ray.schema import DatasetMapping, MappingError
from fraud_ray.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from fraud_ray.data_summary import DataSummary

console = Console()

# Ray Data logs a failed task's traceback itself before raising the error to the caller, which
# reports it in one line; these are the loggers, silenced at ERROR unless --verbose.
RAY_DATA_ERROR_LOGGERS = (
    "ray.data.exceptions",
    "ray.data._internal.execution.streaming_executor_state",
)

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
    verbose: bool = False


def quiet_ray_data_errors() -> None:
    """Without --verbose, a data error in a Ray Data task ends the command in one line only."""
    for name in RAY_DATA_ERROR_LOGGERS:
        logging.getLogger(name).addFilter(_below_error)


def _below_error(record: logging.LogRecord) -> bool:
    return record.levelno < logging.ERROR


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


@contextlib.contextmanager
def user_errors(*kinds: type[Exception]) -> Iterator[None]:
    """Errors in what the user gave (data, mapping, windows) end the command with their own line
    and exit code 2, also when a Ray task raised them; the trace only with --verbose."""
    try:
        yield
    except Exception as error:
        found = original_error(error, (DataValidationError, MappingError, *kinds))
        if found is None:
            raise
        if State.verbose:
            console.print_exception()
        fail(str(found).strip().splitlines()[-1] if _is_ray_error(found) else str(found))


def original_error(
    error: BaseException, kinds: tuple[type[Exception], ...]
) -> BaseException | None:
    """The first error of ``kinds`` in the chain: Ray wraps a task's error (``cause``) and Ray Data
    wraps it again in ``UserCodeException`` (``__cause__``)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, kinds) and not _is_ray_error(current):
            return current
        if isinstance(current, kinds):
            inner = getattr(current, "cause", None)
            return inner if isinstance(inner, BaseException) else current
        current = getattr(current, "cause", None) or current.__cause__ or current.__context__
    return None


def _is_ray_error(error: BaseException) -> bool:
    return type(error).__module__.startswith("ray.")


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


def duration(value: str | None, option: str) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except DurationError as error:
        fail(f"{option}: {error}")


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


def show_data_summary(summary: DataSummary) -> None:
    table = Table(title="What was read", show_header=False)
    for what, value in summary.lines():
        table.add_row(what, value)
    console.print(table)


def progress_bars() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
