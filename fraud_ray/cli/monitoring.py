"""``fraud-ray feedback`` and ``fraud-ray monitor ...``: labels in, and what the decision log shows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fraud_ray.cli.common import EndOption, StartOption, console, fail, moment, settings
from fraud_ray.monitoring.tables import comparison_table, drift_table, performance_table
from fraud_ray.settings import Settings

if TYPE_CHECKING:
    from fraud_ray.monitoring.monitor import Monitor


def feedback(
    file: Annotated[
        Path,
        typer.Option(
            "--file",
            help="CSV, Parquet or JSON Lines (.jsonl) with transaction_id and is_fraud (0 or 1).",
        ),
    ],
) -> None:
    """Record labels (chargebacks, analyst verdicts) in the decision log, for monitoring."""
    from fraud_ray.monitoring.labels import LabelFileError, read_labels

    base = settings()
    try:
        labels = read_labels(file)
    except LabelFileError as error:
        fail(str(error))
    matched = monitor_of(base).record_labels(labels)
    console.print(
        f"received {len(labels):,} labels: {matched:,} matched a logged decision, "
        f"{len(labels) - matched:,} did not"
    )
    print(json.dumps({"received": len(labels), "matched": matched}))


def performance(
    start: StartOption = None,
    end: EndOption = None,
    model_version: Annotated[
        str | None, typer.Option(help="Only this model version's decisions (default: all).")
    ] = None,
) -> None:
    """Per day: alerts, labels so far, precision, recall, AP, card precision@k and costs."""
    base = settings()
    report = monitor_of(base).performance(
        moment(start, "--start"), moment(end, "--end"), model_version
    )
    console.print(performance_table(report))
    print(report.model_dump_json())


def drift(end: EndOption = None) -> None:
    """Evidently drift of the latest window against the model's reference sample.

    The window is the monitoring.drift_window_days before --end (default: just after the latest
    logged transaction); the reference is the sample saved with the model version that made most
    of its decisions. Saves the HTML report in monitoring.reports_dir and raises the alarm (a
    WARNING, and monitoring.webhook_url if set) when at least monitoring.drift_share of the
    columns drifted.
    """
    from mlflow.exceptions import MlflowException

    base = settings()
    monitor = monitor_of(base)
    try:
        summary = monitor.drift(moment(end, "--end"))
    except (ValueError, MlflowException) as error:  # NotEnoughData is a ValueError
        fail(str(error))
    console.print(drift_table(summary))
    print(summary.model_dump_json())


def compare(start: StartOption = None, end: EndOption = None) -> None:
    """The champion against the challengers scored in shadow, on the same transactions.

    Those are the labelled transactions that every model decided in the window (default: from the
    first to the last shadow decision); prints null when no challenger scored in shadow.
    """
    base = settings()
    comparison = monitor_of(base).comparison(moment(start, "--start"), moment(end, "--end"))
    if comparison is None:
        console.print("no shadow decisions in the window: no challenger to compare")
        print("null")
        return
    console.print(comparison_table(comparison))
    print(comparison.model_dump_json())


def monitor_serve(
    host: Annotated[str | None, typer.Option(help="Address (default: monitoring.host).")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port (default: monitoring.port).")
    ] = None,
) -> None:
    """The dashboard (/dashboard) and /api/v1/monitoring/* without Ray, until interrupted.

    Reads the decision log and the registry the settings name, as the Serve app's /dashboard
    does; for teams that keep monitoring off the serving path.
    """
    from fraud_ray.access import ExposedDefaultToken
    from fraud_ray.monitoring.app import serve

    try:
        serve(settings(), host, port)
    except ExposedDefaultToken as error:
        fail(str(error))


def monitor_of(base: Settings) -> Monitor:
    from fraud_ray.decision_log import DecisionLogError
    from fraud_ray.monitoring.monitor import Monitor

    try:
        return Monitor(base)
    except DecisionLogError as error:
        fail(str(error))
