"""The ``fraud-ray`` command: every job behind one entry point, with progress and readable errors.

Each module holds the commands of one part of the library; a command parses its options, builds
the settings, calls the library and prints. This module only assembles them into one app.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from fraud_ray.cli import data, demo, models, monitoring, streaming
from fraud_ray.cli.common import ConfigOption, State, console, quiet_ray_data_errors, settings

app = typer.Typer(
    help="Real-time card-fraud detection on Ray.", no_args_is_help=True, add_completion=False
)
monitor_app = typer.Typer(
    help="Performance, drift and challengers, read from the decision log; each ends with JSON.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(monitor_app, name="monitor")
mapping_app = typer.Typer(
    help="Dataset mappings: how a file's columns map onto transactions.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(mapping_app, name="mapping")


@app.callback()
def main(
    config: ConfigOption = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Print the full trace of an error, Ray's included.")
    ] = False,
) -> None:
    State.config = config
    State.verbose = verbose
    if not verbose:
        quiet_ray_data_errors()


@monitor_app.callback()
def monitor_main(config: ConfigOption = None) -> None:
    # monitor.py runs this sub-app on its own, so it takes --config too; under `fraud-ray
    # --config FILE monitor ...` it must not forget the FILE given before it.
    if config is not None:
        State.config = config


for command in (
    data.simulate,
    data.features,
    models.train,
    models.champion,
    models.promote,
    models.score,
    models.evaluate,
    streaming.ingest,
    demo.demo,
    monitoring.feedback,
):
    app.command()(command)
for command in (monitoring.performance, monitoring.drift, monitoring.compare):
    monitor_app.command()(command)
monitor_app.command("serve")(monitoring.monitor_serve)
mapping_app.command("suggest")(data.mapping_suggest)


@app.command()
def settings_show() -> None:
    """Print the settings in force, after the YAML file and FRAUD_RAY_* variables."""
    console.print_json(json.dumps(settings().model_dump(mode="json")))
